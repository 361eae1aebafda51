#include "ota/sha256.hpp"

#include <gtest/gtest.h>

#include <string>

namespace eddy::ota {
namespace {

// FIPS 180-2 test vectors (appendix B), plus the empty message.
TEST(Sha256, MatchesTheStandardsVectors) {
  EXPECT_EQ(Sha256::hex_of("").value(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::hex_of("abc").value(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256::hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").value(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

// One million 'a', fed in pieces of every size from 1 to 997 bytes so that updates start and
// end at every offset within the 64-byte block.
TEST(Sha256, GivesTheSameDigestForAnySplitOfTheInput) {
  const std::string million(1'000'000, 'a');
  Sha256 sha;
  std::size_t at = 0;
  for (std::size_t piece = 1; at < million.size(); piece = piece % 997 + 1) {
    std::size_t n = std::min(piece, million.size() - at);
    sha.update(million.data() + at, n);
    at += n;
  }
  auto digest = sha.finish_hex();
  ASSERT_TRUE(digest) << digest.error().message;
  EXPECT_EQ(*digest, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(Sha256::hex_of(million).value(), *digest);
}

TEST(Sha256, RefusesToFinishTwiceOrUpdateAfterFinishing) {
  Sha256 sha;
  sha.update("abc", 3);
  ASSERT_TRUE(sha.finish_hex());
  auto again = sha.finish_hex();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::internal);

  Sha256 late;
  ASSERT_TRUE(late.finish_hex());
  late.update("abc", 3);
  auto after = late.finish_hex();
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, Errc::internal);
  EXPECT_NE(after.error().message.find("update after finish_hex"), std::string::npos) << after.error().message;
}

TEST(Sha256, MovesWithItsState) {
  Sha256 first;
  first.update("ab", 2);
  Sha256 second(std::move(first));
  second.update("c", 1);
  EXPECT_EQ(second.finish_hex().value(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace eddy::ota
