#include "dag/common/thread_name.hpp"

#include <gtest/gtest.h>
#include <pthread.h>

#include <array>
#include <string>
#include <string_view>
#include <thread>

namespace {

std::string name_of_this_thread() {
  std::array<char, 16> buf{};
  if (pthread_getname_np(pthread_self(), buf.data(), buf.size()) != 0) return "?";
  return buf.data();
}

// The name a new thread reads back after naming itself `name`.
std::string named_in_a_thread(std::string_view name) {
  std::string inside;
  std::thread t([&] {
    dag::set_thread_name(name);
    inside = name_of_this_thread();
  });
  t.join();
  return inside;
}

TEST(ThreadName, NamesTheCallingThreadOnly) {
  const std::string before = name_of_this_thread();
  EXPECT_EQ(named_in_a_thread("dagd-ingest"), "dagd-ingest");
  EXPECT_EQ(name_of_this_thread(), before);
}

TEST(ThreadName, CutsLongNamesToWhatLinuxKeeps) {
  EXPECT_EQ(named_in_a_thread("a-name-much-longer-than-fifteen-bytes"), "a-name-much-lon");
}

}  // namespace
