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

TEST(Validate, Urls) {
  for (const char* ok :
       {"https://example.com", "http://example.com/hook", "HTTPS://ntfy.sh/my-topic",
        "https://hooks.example.com:8443/a/b?c=d&e=f#frag", "http://127.0.0.1:8080/x",
        "http://[::1]:8080/x", "https://[2001:db8::1]/", "http://home_assistant.local/api",
        "https://xn--htte-0ra.example/"}) {
    EXPECT_FALSE(url_error(ok)) << ok << ": " << *url_error(ok);
  }
  for (const char* bad : {"",
                          "example.com",
                          "ftp://example.com/",
                          "file:///etc/passwd",
                          "javascript:alert(1)",
                          "https://",
                          "https:///path",
                          "https://user:pw@example.com/",
                          "https://user@example.com",
                          "https://exa mple.com/",
                          "https://example.com/a b",
                          "https://example.com/\r\nX: y",
                          "https://example.com:0/",
                          "https://example.com:65536/",
                          "https://example.com:/",
                          "https://example.com:80a/",
                          "https://[::1/",
                          "https://[]/",
                          "https://[::1]x/",
                          "https://ex!ample.com/",
                          "https://.example.com/",
                          "https://a..b/",
                          "https://hütte.example/"}) {
    EXPECT_TRUE(url_error(bad)) << bad;
  }
  EXPECT_TRUE(url_error("https://example.com/\x01"));
  EXPECT_FALSE(url_error("https://example.com/" + std::string(492, 'a')));  // 512 bytes
  EXPECT_TRUE(url_error("https://example.com/" + std::string(493, 'a')));
}

}  // namespace
}  // namespace dag::validate
