#include "dag/common/result.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace dag {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return fail(Errc::invalid_argument, "not positive");
  return v;
}

TEST(Result, CarriesValue) {
  auto r = parse_positive(4);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 4);
  EXPECT_EQ(r.value_or(9), 4);
}

TEST(Result, CarriesErrorWithCodeAndMessage) {
  auto r = parse_positive(-1);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_EQ(r.error().message, "not positive");
  EXPECT_EQ(r.value_or(9), 9);
}

TEST(Result, VoidSuccessAndFailure) {
  Result<void> good = ok();
  EXPECT_TRUE(good);
  Result<void> bad = fail(Errc::io, "disk");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::io);
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(Result, OtherLayersUseTheirOwnErrorType) {
  enum class LayerErrc { bad };
  struct LayerError {
    LayerErrc code;
  };
  Expected<std::string, LayerError> r = Unexpected{LayerError{LayerErrc::bad}};
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, LayerErrc::bad);
}

TEST(Result, ErrcNamesAreStable) {
  EXPECT_STREQ(to_string(Errc::config), "config");
  EXPECT_STREQ(to_string(Errc::not_found), "not_found");
  EXPECT_STREQ(to_string(Errc::timeout), "timeout");
}

}  // namespace
}  // namespace dag
