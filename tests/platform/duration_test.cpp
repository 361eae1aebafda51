#include "platform/duration.hpp"

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;

TEST(Duration, ParsesUnitsAndCombinations) {
  EXPECT_EQ(eddy::parse_duration("500ms"), 500ms);
  EXPECT_EQ(eddy::parse_duration("5s"), 5s);
  EXPECT_EQ(eddy::parse_duration("10m"), 10min);
  EXPECT_EQ(eddy::parse_duration("2h"), 2h);
  EXPECT_EQ(eddy::parse_duration("1h30m"), 90min);
  EXPECT_EQ(eddy::parse_duration("1d"), 24h);
  EXPECT_EQ(eddy::parse_duration("1m30s250ms"), 90250ms);
  EXPECT_EQ(eddy::parse_duration("0s"), 0ms);
}

TEST(Duration, RefusesWhatIsNotADuration) {
  for (const char* bad : {"", "60", "5x", "s", "-5s", "1.5s", "30m1h", "5s5s", "5 s", "1h30", "99999999999999999999h"}) {
    auto parsed = eddy::parse_duration(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code, eddy::Errc::invalid_argument);
    EXPECT_NE(parsed.error().message.find(std::string("`") + bad + "`"), std::string::npos) << parsed.error().message;
  }
}

TEST(Duration, FormatsWhatItParses) {
  EXPECT_EQ(eddy::format_duration(90min), "1h30m");
  EXPECT_EQ(eddy::format_duration(500ms), "500ms");
  EXPECT_EQ(eddy::format_duration(0ms), "0s");
  for (std::chrono::milliseconds d : {1ms, 61000ms, 90000000ms, 3723004ms}) EXPECT_EQ(eddy::parse_duration(eddy::format_duration(d)), d);
}

}  // namespace
