// The outbox flush against a hub on loopback: order, batches, acknowledgements, and the hub
// going away, losing an answer, or refusing a report, with nothing lost and nothing doubled.
#include "ota/report_sender.hpp"

#include <gtest/gtest.h>

#include "tests/support/scripted_hub.hpp"
#include "tests/support/support.hpp"

namespace eddy::ota {
namespace {

using eddy::testing::ScriptedHub;
using eddy::testing::TempDir;
using eddy::testing::write_file;
using nlohmann::json;
using namespace std::chrono_literals;

class ReportSenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_ / "token", "tok-1\n");
    hub_.set_token("dev-1", "tok-1");
    auto store = storage::StateStore::open(dir_ / "eddy.db");
    ASSERT_TRUE(store) << store.error().message;
    store_.emplace(std::move(*store));
    store_->enable_outbox();
  }
  HubClient client(std::chrono::milliseconds timeout = 5s) {
    HubOptions options;
    options.url = hub_.url();
    options.token_file = dir_ / "token";
    options.timeout = timeout;
    return std::move(*HubClient::create(options, "dev-1"));
  }
  void queue(int from, int to) {
    for (int i = from; i < to; ++i) ASSERT_TRUE(store_->record_event("info", "report " + std::to_string(i)));
  }
  // The messages the hub stored, in arrival order, and a check that ids only grow.
  std::vector<std::string> arrived() {
    std::vector<std::string> out;
    std::int64_t last = 0;
    for (const auto& r : hub_.reports()) {
      const std::string id = r["id"];
      EXPECT_TRUE(id.starts_with("dev-1:")) << id;
      auto seq = std::stoll(id.substr(6));
      EXPECT_GT(seq, last) << "out of order: " << id;
      last = seq;
      out.push_back(r["message"]);
    }
    return out;
  }
  static std::vector<std::string> expected(int from, int to) {
    std::vector<std::string> out;
    for (int i = from; i < to; ++i) out.push_back("report " + std::to_string(i));
    return out;
  }

  TempDir dir_;
  ScriptedHub hub_;
  std::optional<storage::StateStore> store_;
};

TEST_F(ReportSenderTest, SendsOldestFirstAtMostAHundredARequestAndDeletesWhatWasAcknowledged) {
  queue(0, 250);
  auto result = flush_outbox(*store_, client());
  EXPECT_FALSE(result.error) << result.error->message;
  EXPECT_EQ(result.sent, 250);
  EXPECT_EQ(result.waiting, 0);
  EXPECT_EQ(hub_.batch_sizes(), (std::vector<std::size_t>{100, 100, 50}));
  EXPECT_EQ(arrived(), expected(0, 250));
  EXPECT_EQ(store_->outbox_size().value_or(-1), 0);
  EXPECT_EQ(store_->get("hub_last_report_result")->value_or(""), "ok: sent 250, 0 waiting");
  // Nothing waiting: nothing sent.
  const int posts = hub_.report_posts();
  EXPECT_EQ(flush_outbox(*store_, client()).sent, 0);
  EXPECT_EQ(hub_.report_posts(), posts);
}

TEST_F(ReportSenderTest, HubAwayThenBackLosesNothingAndDoublesNothing) {
  queue(0, 10);
  ASSERT_FALSE(flush_outbox(*store_, client()).error);
  hub_.stop();
  queue(10, 40);
  auto away = flush_outbox(*store_, client());
  ASSERT_TRUE(away.error);
  EXPECT_EQ(away.error->code, Errc::network);
  EXPECT_EQ(away.waiting, 30);
  EXPECT_TRUE(store_->get("hub_last_report_result")->value_or("").starts_with("failed: ")) ;
  queue(40, 45);
  hub_.start();
  auto back = flush_outbox(*store_, client());
  EXPECT_FALSE(back.error) << back.error->message;
  EXPECT_EQ(back.sent, 35);
  EXPECT_EQ(arrived(), expected(0, 45));
  EXPECT_EQ(hub_.duplicates(), 0);
}

TEST_F(ReportSenderTest, LostAcknowledgementIsSentAgainAndCountedOnce) {
  queue(0, 10);
  hub_.hold_report_answers(1);  // the hub stores the batch; its answer never reaches the device
  auto lost = flush_outbox(*store_, client(300ms));
  ASSERT_TRUE(lost.error);
  EXPECT_EQ(lost.error->code, Errc::timeout);
  EXPECT_EQ(lost.waiting, 10);
  hub_.release_held();
  auto again = flush_outbox(*store_, client());
  EXPECT_FALSE(again.error) << again.error->message;
  EXPECT_EQ(again.sent, 10);
  EXPECT_EQ(arrived(), expected(0, 10));  // stored once each
  EXPECT_EQ(hub_.duplicates(), 10);       // the hub saw the batch twice
  EXPECT_EQ(store_->outbox_size().value_or(-1), 0);
}

TEST_F(ReportSenderTest, ReportTheHubRefusesIsDroppedWithAnEventAndTheOthersGoOn) {
  queue(0, 3);
  ASSERT_TRUE(store_->record_event("info", "poison"));
  queue(3, 6);
  hub_.refuse_reports_containing("poison");
  auto result = flush_outbox(*store_, client());
  EXPECT_FALSE(result.error) << result.error->message;
  EXPECT_EQ(result.sent, 6);
  EXPECT_EQ(result.dropped, 1);
  EXPECT_EQ(arrived(), expected(0, 6));
  // The drop is in the device's history and waits in the outbox for the next flush.
  auto history = store_->history(1);
  ASSERT_TRUE(history);
  EXPECT_TRUE(history->back().message.starts_with("report dev-1:")) << history->back().message;
  EXPECT_NE(history->back().message.find("is malformed"), std::string::npos) << history->back().message;
  EXPECT_EQ(result.waiting, 1);
  hub_.refuse_reports_containing("");
  ASSERT_FALSE(flush_outbox(*store_, client()).error);
  EXPECT_EQ(hub_.reports().back()["message"], history->back().message);
}

TEST_F(ReportSenderTest, RefusedTokenStopsTheFlushAndKeepsEveryReport) {
  queue(0, 5);
  write_file(dir_ / "token", "revoked\n");
  auto result = flush_outbox(*store_, client());
  ASSERT_TRUE(result.error);
  EXPECT_EQ(result.error->code, Errc::unauthorized);
  EXPECT_EQ(result.waiting, 5);
  EXPECT_TRUE(hub_.reports().empty());
}

TEST_F(ReportSenderTest, LargeReportsGoInSmallerBatches) {
  auto u = store_->begin_update("c1", "probing", "activated", storage::UpdateSubject{"app", "app-2", "2", "cd", "1", "r", 1});
  ASSERT_TRUE(u);
  for (int i = 0; i < 150; ++i) ASSERT_TRUE(store_->record_probe(u->id, i, "health", false, std::string(6000, 'x'), 1));
  auto result = flush_outbox(*store_, client());
  EXPECT_FALSE(result.error) << result.error->message;
  EXPECT_EQ(result.sent, 151);
  std::size_t total = 0;
  for (auto size : hub_.batch_sizes()) {
    EXPECT_LT(size, 100u);
    total += size;
  }
  EXPECT_EQ(total, 151u);
}

}  // namespace
}  // namespace eddy::ota
