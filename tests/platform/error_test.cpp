#include "platform/error.hpp"

#include <gtest/gtest.h>

namespace {

using eddy::Errc;

TEST(ErrcNamesTest, EveryCodeRoundTripsByName) {
  for (int i = 0; i <= static_cast<int>(Errc::internal); ++i) {
    auto code = static_cast<Errc>(i);
    EXPECT_EQ(eddy::errc_from_name(eddy::errc_name(code)), code) << eddy::errc_name(code);
  }
  EXPECT_FALSE(eddy::errc_from_name("unknown"));
  EXPECT_FALSE(eddy::errc_from_name(""));
}

}  // namespace
