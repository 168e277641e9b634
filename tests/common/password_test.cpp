#include "dag/common/password.hpp"

#include <gtest/gtest.h>

namespace dag::password {
namespace {

TEST(Password, HashIsArgon2idAndVerifies) {
  auto h = hash("correct horse battery");
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->starts_with("$argon2id$v=19$")) << *h;
  EXPECT_TRUE(verify(*h, "correct horse battery"));
  EXPECT_FALSE(verify(*h, "correct horse batterx"));
  EXPECT_FALSE(verify(*h, ""));
  EXPECT_FALSE(needs_rehash(*h));
  // Salted: the same password hashes differently.
  EXPECT_NE(*hash("correct horse battery"), *h);
}

TEST(Password, BadInputIsRefusedNotTruncated) {
  EXPECT_EQ(hash("short").error().code, Errc::invalid_argument);
  EXPECT_EQ(hash(std::string(kMaxPasswordBytes + 1, 'a')).error().code, Errc::invalid_argument);
  EXPECT_FALSE(verify("", "anything long"));
  EXPECT_FALSE(verify("$argon2id$garbage", "anything long"));
  EXPECT_FALSE(verify("plain text password", "plain text password"));
  EXPECT_TRUE(needs_rehash("$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA"));
}

}  // namespace
}  // namespace dag::password
