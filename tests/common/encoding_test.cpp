#include "dag/common/encoding.hpp"

#include <gtest/gtest.h>

#include <set>

namespace dag {
namespace {

TEST(Base64, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64_encode(std::string_view{""}), "");
  EXPECT_EQ(base64_encode(std::string_view{"f"}), "Zg==");
  EXPECT_EQ(base64_encode(std::string_view{"fo"}), "Zm8=");
  EXPECT_EQ(base64_encode(std::string_view{"foo"}), "Zm9v");
  EXPECT_EQ(base64_encode(std::string_view{"foobar"}), "Zm9vYmFy");
}

TEST(Base64, DecodesWithAndWithoutPaddingAndIgnoresLineBreaks) {
  EXPECT_EQ(*base64_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(*base64_decode("Zg=="), "f");
  EXPECT_EQ(*base64_decode("Zg"), "f");
  EXPECT_EQ(*base64_decode("Zm8"), "fo");
  EXPECT_EQ(*base64_decode(" Zm9v\nYmFy\r\n"), "foobar");
}

TEST(Base64, RejectsGarbage) {
  EXPECT_EQ(base64_decode("Zm9v!mFy").error().code, Errc::parse);
  EXPECT_EQ(base64_decode("Z").error().code, Errc::parse);
  EXPECT_EQ(base64_decode("Zm9v=YmFy").error().code, Errc::parse);
}

TEST(Base64, RoundTripsBinary) {
  std::vector<std::uint8_t> bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<std::uint8_t>(i));
  auto decoded = base64_decode(base64_encode(bytes));
  ASSERT_TRUE(decoded);
  ASSERT_EQ(decoded->size(), 256U);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(static_cast<std::uint8_t>((*decoded)[i]), i);
}

TEST(Uuid, IsVersion4CanonicalAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto u = new_uuid();
    ASSERT_TRUE(u);
    ASSERT_TRUE(is_uuid(*u)) << *u;
    EXPECT_EQ((*u)[14], '4');
    EXPECT_NE(std::string("89ab").find((*u)[19]), std::string::npos);
    seen.insert(*u);
  }
  EXPECT_EQ(seen.size(), 1000U);
}

TEST(Uuid, RecognisesOnlyCanonicalForm) {
  EXPECT_TRUE(is_uuid("123e4567-e89b-42d3-a456-426614174000"));
  EXPECT_FALSE(is_uuid("123e4567e89b42d3a456426614174000"));
  EXPECT_FALSE(is_uuid("123e4567-e89b-42d3-a456-42661417400g"));
  EXPECT_FALSE(is_uuid(""));
}

}  // namespace
}  // namespace dag

namespace dag {
namespace {

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Base64Url, NoPaddingAndUrlAlphabet) {
  EXPECT_EQ(base64url_encode(std::string("\xfb\xff\xfe", 3)), "-__-");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode(""), "");
}

}  // namespace
}  // namespace dag
