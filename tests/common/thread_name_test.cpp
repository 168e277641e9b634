#include "dag/common/thread_name.hpp"

#include <gtest/gtest.h>
#include <pthread.h>

#include <array>
#include <string>
#include <thread>

namespace {

std::string name_of_this_thread() {
  std::array<char, 16> buf{};
  if (pthread_getname_np(pthread_self(), buf.data(), buf.size()) != 0) return "?";
  return buf.data();
}

TEST(ThreadName, NamesTheCallingThreadOnly) {
  const std::string before = name_of_this_thread();
  std::string inside;
  std::thread t([&] {
    dag::set_thread_name("dagd-ingest");
    inside = name_of_this_thread();
  });
  t.join();
  EXPECT_EQ(inside, "dagd-ingest");
  EXPECT_EQ(name_of_this_thread(), before);
}

TEST(ThreadName, CutsLongNamesToWhatLinuxKeeps) {
  std::string inside;
  std::thread t([&] {
    dag::set_thread_name("a-name-much-longer-than-fifteen-bytes");
    inside = name_of_this_thread();
  });
  t.join();
  EXPECT_EQ(inside, "a-name-much-lon");
}

}  // namespace
