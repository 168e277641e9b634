#include "dag/common/validate.hpp"

#include <gtest/gtest.h>

namespace dag::validate {
namespace {

TEST(Validate, Emails) {
  for (const char* ok : {"alice@example.com", "a.b+tag@mail.example.co.uk", "x@a-b.io"}) {
    EXPECT_FALSE(email_error(ok)) << ok << ": " << *email_error(ok);
  }
  for (const char* bad :
       {"", "alice", "@example.com", "alice@", "alice@localhost", "al ice@example.com",
        "alice@exa mple.com", "<alice@example.com>", "alice@example..com", ".alice@example.com",
        "alice@-example.com", "a\nb@example.com", "alice@example.com\r\nBcc: x@y.z"}) {
    EXPECT_TRUE(email_error(bad)) << bad;
  }
  EXPECT_TRUE(email_error(std::string(65, 'a') + "@example.com"));
  EXPECT_TRUE(email_error("a@" + std::string(250, 'b') + ".com"));
}

TEST(Validate, DisplayNames) {
  EXPECT_FALSE(display_name_error("Freezer ring", 64));
  EXPECT_FALSE(display_name_error("Hütte am Sée ☃", 64));
  EXPECT_FALSE(display_name_error("<img src=x onerror=alert(1)>", 64));  // text, escaped later
  EXPECT_FALSE(display_name_error(std::string(64, 'x'), 64));
  EXPECT_TRUE(display_name_error(std::string(65, 'x'), 64));
  EXPECT_FALSE(display_name_error("☃☃☃", 3));  // characters, not bytes
  EXPECT_TRUE(display_name_error("", 64));
  EXPECT_TRUE(display_name_error("   ", 64));
  EXPECT_TRUE(display_name_error("tab\there", 64));
  EXPECT_TRUE(display_name_error("\xff\xfe", 64));
  EXPECT_TRUE(display_name_error("\xc0\xaf", 64));  // overlong
}

}  // namespace
}  // namespace dag::validate
