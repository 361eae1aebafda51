#include "daemon/worker_protocol.hpp"

#include <gtest/gtest.h>

namespace {

using eddy::Errc;
using nlohmann::json;
namespace wp = eddy::daemon::worker_protocol;

wp::Job sample_job() {
  wp::Job job;
  job.version = "0.1.0";
  job.kind = "rollback";
  job.target = "sensor-app";
  job.start_apps = true;
  job.config_file = "/etc/eddy/eddyd.yaml";
  job.config = "device: {id: pi-0042}\n";
  job.eddyd_pid = 812;
  return job;
}

TEST(WorkerProtocolTest, JobRoundTrips) {
  auto job = wp::job_from_json(json::parse(wp::to_line(wp::job_json(sample_job()))));
  ASSERT_TRUE(job) << job.error().message;
  EXPECT_EQ(job->version, "0.1.0");
  EXPECT_EQ(job->kind, "rollback");
  EXPECT_EQ(job->target, "sensor-app");
  EXPECT_TRUE(job->start_apps);
  EXPECT_EQ(job->config_file, "/etc/eddy/eddyd.yaml");
  EXPECT_EQ(job->config, "device: {id: pi-0042}\n");
  EXPECT_EQ(job->eddyd_pid, 812);
}

TEST(WorkerProtocolTest, MalformedJobsNameWhatIsWrong) {
  struct Case {
    std::string name;
    std::function<void(json&)> spoil;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"not an object", [](json& j) { j = json::array(); }, "not a JSON object"},
      {"no config", [](json& j) { j.erase("config"); }, "\"config\""},
      {"version not a string", [](json& j) { j["version"] = 1; }, "\"version\""},
      {"unknown job", [](json& j) { j["job"] = "format-disk"; }, "unknown job \"format-disk\""},
      {"start_apps not a bool", [](json& j) { j["start_apps"] = "yes"; }, "\"start_apps\""},
      {"no pid", [](json& j) { j["eddyd_pid"] = 0; }, "\"eddyd_pid\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    json j = wp::job_json(sample_job());
    c.spoil(j);
    auto job = wp::job_from_json(j);
    ASSERT_FALSE(job);
    EXPECT_EQ(job.error().code, Errc::invalid_argument);
    EXPECT_NE(job.error().message.find(c.expect), std::string::npos) << job.error().message;
  }
}

eddy::tls::SavedSession sample_session() {
  eddy::tls::SavedSession s;
  s.host = "hub.example";
  s.port = 8443;
  s.ca_file = "/etc/eddy/hub-ca.pem";
  s.ca_stamp = "1234:5678";
  s.client_cert = "";
  s.data = std::string("\x00\x01secret\xfe\xff", 10);
  return s;
}

TEST(WorkerProtocolTest, TheHubSessionTravelsWithTheJobAndBack) {
  auto without = wp::job_from_json(wp::job_json(sample_job()));
  ASSERT_TRUE(without);
  EXPECT_FALSE(without->hub_session);

  auto job = sample_job();
  job.hub_session = sample_session();
  auto sent = wp::to_line(wp::job_json(job));
  auto back = wp::job_from_json(json::parse(sent));
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->hub_session);
  EXPECT_TRUE(back->hub_session->same_peer(sample_session()));
  EXPECT_EQ(back->hub_session->data, sample_session().data);

  auto alone = wp::session_from_json(json::parse(wp::to_line(wp::session_json(sample_session()))));
  ASSERT_TRUE(alone) << alone.error().message;
  EXPECT_EQ(alone->data, sample_session().data);
}

TEST(WorkerProtocolTest, AMalformedSessionIsRefusedWithoutShowingIt) {
  struct Case {
    std::string name;
    std::function<void(json&)> spoil;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"not an object", [](json& s) { s = "secret"; }, "not a JSON object"},
      {"no host", [](json& s) { s.erase("host"); }, "\"host\""},
      {"port out of range", [](json& s) { s["port"] = 70000; }, "\"port\""},
      {"data not hex", [](json& s) { s["data"] = "secret!!"; }, "\"data\""},
      {"data empty", [](json& s) { s["data"] = ""; }, "\"data\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    json j = wp::job_json(sample_job());
    j["hub_tls_session"] = wp::session_json(sample_session());
    c.spoil(j["hub_tls_session"]);
    auto job = wp::job_from_json(j);
    ASSERT_FALSE(job);
    EXPECT_EQ(job.error().code, Errc::invalid_argument);
    EXPECT_NE(job.error().message.find(c.expect), std::string::npos) << job.error().message;
    EXPECT_EQ(job.error().message.find("secret"), std::string::npos) << job.error().message;
  }
  // A job malformed elsewhere shows itself, but not the session it carries.
  json j = wp::job_json(sample_job());
  j["hub_tls_session"] = wp::session_json(sample_session());
  j.erase("config");
  auto job = wp::job_from_json(j);
  ASSERT_FALSE(job);
  EXPECT_EQ(job.error().message.find(j["hub_tls_session"]["data"].get<std::string>()), std::string::npos)
      << job.error().message;
  EXPECT_NE(job.error().message.find("not shown"), std::string::npos) << job.error().message;
}

TEST(WorkerProtocolTest, ErrorsKeepTheirCode) {
  auto e = wp::error_from_json(wp::error_json({Errc::key_not_allowed, "key not allowed for namespace git"}));
  EXPECT_EQ(e.code, Errc::key_not_allowed);
  EXPECT_EQ(e.message, "key not allowed for namespace git");
  for (const json& bad : {json{{"code", "no-such-code"}, {"message", "x"}}, json{{"code", "io"}}, json("io")}) {
    auto malformed = wp::error_from_json(bad);
    EXPECT_EQ(malformed.code, Errc::internal) << bad;
    EXPECT_NE(malformed.message.find("malformed"), std::string::npos) << malformed.message;
  }
}

TEST(WorkerProtocolTest, PollResults) {
  auto r = wp::poll_result_from_json({{"outcome", "not-admitted"},
                                      {"commit", "1a2b3c4"},
                                      {"message", "not this device's turn yet"},
                                      {"poll_failed", false},
                                      {"next_step_at", 1764000600}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->reply,
            (json{{"outcome", "not-admitted"}, {"commit", "1a2b3c4"}, {"message", "not this device's turn yet"}}));
  EXPECT_FALSE(r->poll_failed);
  EXPECT_EQ(r->next_step_at, 1764000600);

  r = wp::poll_result_from_json(
      {{"outcome", "failed"}, {"commit", ""}, {"message", "fetch"}, {"poll_failed", true}, {"next_step_at", nullptr}});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->poll_failed);
  EXPECT_FALSE(r->next_step_at);

  auto bad = wp::poll_result_from_json({{"outcome", "updated"}, {"commit", "c"}, {"message", "m"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("poll_failed"), std::string::npos);
}

TEST(WorkerProtocolTest, LinesSurviveInvalidUtf8) {
  // A commit message or a probe's output may hold anything; a line must still be written.
  std::string line = wp::to_line({{"activity", std::string("verifying \xff\xfe commit")}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_FALSE(json::parse(line, nullptr, false).is_discarded()) << line;
}

}  // namespace
