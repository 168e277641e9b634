#include "dag/notify/mime.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "dag/common/encoding.hpp"
#include "dag/notify/email.hpp"

namespace dag::notify::mime {
namespace {

std::vector<std::string> crlf_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find("\r\n", pos);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(pos, end - pos));
    pos = end + 2;
  }
  return out;
}

// Decodes what encode_words made (the test's own minimal RFC 2047 "B" decoder).
std::string decode_words(std::string_view text) {
  std::string out;
  std::size_t pos = 0;
  while ((pos = text.find("=?UTF-8?B?", pos)) != std::string_view::npos) {
    const auto start = pos + 10;
    const auto end = text.find("?=", start);
    out += base64_decode(text.substr(start, end - start)).value();
    pos = end + 2;
  }
  return out;
}

TEST(Mime, PlainHeaderText) {
  EXPECT_TRUE(is_plain_header_text("You've lost power! (Home)"));
  EXPECT_FALSE(is_plain_header_text("Hütte"));
  EXPECT_FALSE(is_plain_header_text("a\r\nBcc: x@y.z"));
  EXPECT_FALSE(is_plain_header_text("tab\there"));
  EXPECT_FALSE(is_plain_header_text("=?UTF-8?B?eA==?="));
}

TEST(Mime, EncodedWordsKeepCharactersWhole) {
  const std::string text = "Strøm er borte på hytta ☃☃☃☃☃☃☃☃☃☃☃☃☃☃☃☃☃☃☃☃ 🐶🐶🐶🐶🐶🐶🐶🐶🐶🐶";
  const std::string encoded = encode_words(text, "\r\n ");
  EXPECT_EQ(decode_words(encoded), text);
  for (const auto& line : crlf_lines(encoded)) {
    std::string word = line;
    if (!word.empty() && word.front() == ' ') word.erase(0, 1);
    EXPECT_LE(word.size(), 75U) << word;
    // Each word decodes to whole UTF-8 characters on its own.
    const auto decoded = decode_words(word);
    ASSERT_FALSE(decoded.empty());
    EXPECT_NE(static_cast<unsigned char>(decoded.front()) & 0xC0, 0x80) << word;
  }
  EXPECT_EQ(http_header_text("Hütte"), "=?UTF-8?B?SMO8dHRl?=");
  EXPECT_EQ(http_header_text("Home"), "Home");
  EXPECT_EQ(http_header_text("a\r\nX-Evil: 1").find('\n'), std::string::npos);
}

TEST(Mime, SubjectHeader) {
  EXPECT_EQ(unstructured_header("Subject", "You've lost power! (Home)"),
            "Subject: You've lost power! (Home)\r\n");
  const auto folded = unstructured_header(
      "Subject",
      "Updates on 4 more of your dags: 2 lost power, 1 lost contact, 1 came back, "
      "1 reported a low battery");
  for (const auto& line : crlf_lines(folded)) EXPECT_LE(line.size(), 78U) << folded;
  EXPECT_NE(folded.find("\r\n "), std::string::npos);
  const auto utf8 = unstructured_header("Subject", "You've lost power! (Hütte)");
  EXPECT_TRUE(utf8.starts_with("Subject: =?UTF-8?B?")) << utf8;
  EXPECT_EQ(decode_words(utf8), "You've lost power! (Hütte)");
  // A name with CR/LF cannot start a header line.
  const auto evil = unstructured_header("Subject", "x\r\nBcc: victim@example.com");
  for (const auto& line : crlf_lines(evil)) {
    EXPECT_TRUE(line.starts_with("Subject:") || line.starts_with(" ")) << line;
  }
  EXPECT_EQ(decode_words(evil), "x\r\nBcc: victim@example.com");
}

TEST(Mime, QuotedPrintable) {
  EXPECT_EQ(quoted_printable("Hello\nWorld"), "Hello\r\nWorld\r\n");
  EXPECT_EQ(quoted_printable("a=b"), "a=3Db\r\n");
  EXPECT_EQ(quoted_printable("Hütte"), "H=C3=BCtte\r\n");
  EXPECT_EQ(quoted_printable("trailing \nspace\t"), "trailing=20\r\nspace=09\r\n");
  EXPECT_EQ(quoted_printable("-- \n"), "--=20\r\n");
  EXPECT_EQ(quoted_printable(".\n.x"), "=2E\r\n=2Ex\r\n");
  EXPECT_EQ(quoted_printable("a\r\nb"), "a\r\nb\r\n");
  EXPECT_EQ(quoted_printable("lone\rcr"), "lone=0Dcr\r\n");
  const std::string long_line(500, 'x');
  const auto encoded = quoted_printable(long_line + "\n" + std::string(200, '\xC3'));
  std::string joined;
  for (const auto& line : crlf_lines(encoded)) {
    EXPECT_LE(line.size(), 76U);
    joined += line;
  }
  // No "=XX" is cut by a soft break.
  EXPECT_EQ(encoded.find("=\r\nC3"), std::string::npos);
  EXPECT_EQ(encoded.find("=C\r\n"), std::string::npos);
}

TEST(Mime, Mailboxes) {
  auto m = parse_mailbox("detectordag <dag@example.com>");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->display_name, "detectordag");
  EXPECT_EQ(m->address, "dag@example.com");
  m = parse_mailbox("dag@example.com");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->display_name, "");
  const std::string quoted = R"("Dag, the \"watcher\"" <dag@example.com>)";
  m = parse_mailbox(quoted);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->display_name, "Dag, the \"watcher\"");
  EXPECT_EQ(format_mailbox(*m), quoted);
  EXPECT_EQ(format_mailbox({"detectordag", "dag@example.com"}), "detectordag <dag@example.com>");
  EXPECT_EQ(format_mailbox({"", "dag@example.com"}), "dag@example.com");
  EXPECT_EQ(format_mailbox({"Hütte", "dag@example.com"}), "=?UTF-8?B?SMO8dHRl?= <dag@example.com>");
  for (const char* bad :
       {"dag@example.com\r\nBcc: x@y.z", "x <dag@example.com>\nBcc: y@z.z", "<dag@example.com",
        "dag@example.com>", "x <dag@example.com> y", "nobody", "x <>", "a\x00b@example.com"}) {
    EXPECT_FALSE(parse_mailbox(bad)) << bad;
  }
  EXPECT_FALSE(parse_mailbox(std::string_view{"a\0b@example.com", 15}));
}

TEST(Mime, Escapes) {
  EXPECT_EQ(json_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(json_escape("\xff"), "\xEF\xBF\xBD");  // replaced, not thrown
  EXPECT_EQ(form_encode("You've lost power! (Hütte) a+b=c&d"),
            "You%27ve+lost+power%21+%28H%C3%BCtte%29+a%2Bb%3Dc%26d");
  EXPECT_EQ(hex("\x01\xab"), "01ab");
}

TEST(Email, MessageIds) {
  EXPECT_EQ(message_id("n.42-7", "example.com"), "<dag.n.42-7@example.com>");
  EXPECT_EQ(message_id("n.42-7", "example.com"), message_id("n.42-7", "example.com"));
  const auto hashed = message_id("a key with spaces>", "example.com");
  EXPECT_TRUE(hashed.starts_with("<dag.")) << hashed;
  EXPECT_EQ(hashed.size(), std::string("<dag.@example.com>").size() + 32) << hashed;
  EXPECT_EQ(hashed, message_id("a key with spaces>", "example.com"));
  EXPECT_NE(message_id("", "example.com"), message_id("", "example.com"));
  EXPECT_EQ(message_id("k", ""), "<dag.k@detectordag.invalid>");
}

TEST(Email, ComposedMessage) {
  RenderedEmail content{"Your power's back! (Hütte)", "Hello\nLine two: 100% = done.\n",
                        "<p>" + std::string(3000, 'x') + "</p>"};
  const auto message =
      compose_message({"detectordag", "dag@example.com"}, {"", "alice@example.com"}, content,
                      "<dag.k1@example.com>", 1'795'560'096'123);
  const auto lines = crlf_lines(message);
  for (const auto& line : lines) {
    EXPECT_LE(line.size(), 998U);
    EXPECT_EQ(line.find('\n'), std::string::npos);
    EXPECT_EQ(line.find('\r'), std::string::npos);
  }
  const auto has = [&](std::string_view l) {
    return std::find(lines.begin(), lines.end(), l) != lines.end();
  };
  EXPECT_TRUE(has("Date: Tue, 24 Nov 2026 22:41:36 +0000"));
  EXPECT_TRUE(has("From: detectordag <dag@example.com>"));
  EXPECT_TRUE(has("To: alice@example.com"));
  EXPECT_TRUE(has("Message-ID: <dag.k1@example.com>"));
  EXPECT_TRUE(has("MIME-Version: 1.0"));
  EXPECT_TRUE(has("Auto-Submitted: auto-generated"));
  EXPECT_TRUE(has("Content-Type: text/plain; charset=utf-8"));
  EXPECT_TRUE(has("Content-Type: text/html; charset=utf-8"));
  EXPECT_TRUE(has("Line two: 100% =3D done."));
  EXPECT_NE(message.find("Subject: =?UTF-8?B?"), std::string::npos);
  EXPECT_NE(message.find("Content-Type: multipart/alternative; boundary=\"=_dag_"),
            std::string::npos);
  EXPECT_TRUE(message.ends_with("--\r\n"));
  // The same key and time make the same bytes (a retry is the same message).
  EXPECT_EQ(message, compose_message({"detectordag", "dag@example.com"}, {"", "alice@example.com"},
                                     content, "<dag.k1@example.com>", 1'795'560'096'123));
}

}  // namespace
}  // namespace dag::notify::mime
