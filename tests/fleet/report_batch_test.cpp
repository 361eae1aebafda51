// fleet/report_batch.cpp: a report batch read by the SAX parser into Reports, every field; unknown
// keys of any shape skipped; every malformed input refused with a message that names the field.
#include "fleet/report_batch.hpp"

#include <gtest/gtest.h>

#include <string>

namespace eddy::fleet {
namespace {

TEST(ReportBatch, ReadsEveryFieldAndSkipsUnknownKeys) {
  const std::string body = R"({"device": {"a": [1, {"b": null}]}, "reports": [
    {"id": "d:1", "time": 1700000000, "kind": "transition", "target": "app", "rollout": "r", "release": "app-1.0",
     "version": "1.0", "commit": "abc", "generation": 3, "from": "activating", "to": "probing", "outcome": "",
     "level": "info", "message": "m", "extra": {"x": [[], {}]},
     "probes": [{"name": "health", "iteration": 2, "ok": true, "detail": "HTTP 200", "more": [1]},
                {"name": "port", "ok": false}]},
    {"id": "d:2", "kind": "event", "probes": null, "time": null, "message": null}
  ], "after": 1.5})";
  auto batch = parse_report_batch(body, 100);
  ASSERT_TRUE(batch) << batch.error().message;
  ASSERT_EQ(batch->size(), 2u);
  const Report& r = (*batch)[0];
  EXPECT_EQ(r.id, "d:1");
  EXPECT_EQ(r.time, 1700000000);
  EXPECT_EQ(r.kind, "transition");
  EXPECT_EQ(r.target, "app");
  EXPECT_EQ(r.rollout, "r");
  EXPECT_EQ(r.release, "app-1.0");
  EXPECT_EQ(r.version, "1.0");
  EXPECT_EQ(r.commit, "abc");
  EXPECT_EQ(r.generation, 3);
  EXPECT_EQ(r.from, "activating");
  EXPECT_EQ(r.to, "probing");
  EXPECT_EQ(r.level, "info");
  EXPECT_EQ(r.message, "m");
  ASSERT_EQ(r.probes.size(), 2u);
  EXPECT_EQ(r.probes[0].name, "health");
  EXPECT_EQ(r.probes[0].iteration, 2);
  EXPECT_TRUE(r.probes[0].ok);
  EXPECT_EQ(r.probes[0].detail, "HTTP 200");
  EXPECT_EQ(r.probes[1].name, "port");
  EXPECT_FALSE(r.probes[1].ok);
  const Report& e = (*batch)[1];
  EXPECT_EQ(e.id, "d:2");
  EXPECT_EQ(e.kind, "event");
  EXPECT_EQ(e.time, 0);
  EXPECT_TRUE(e.probes.empty());
  EXPECT_TRUE(e.message.empty());

  auto empty = parse_report_batch(R"({"reports": []})", 100);
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->empty());
}

TEST(ReportBatch, MalformedInputIsRefusedNamingTheField) {
  const std::string ok = R"("id": "d:1", "kind": "transition")";
  struct Case {
    const char* what;
    std::string body;
    std::string names;
  };
  const std::string long_text(4097, 'x');
  const Case cases[] = {
      {"not JSON", R"({"reports": [)", "not valid JSON"},
      {"trailing bytes", R"({"reports": []} x)", "not valid JSON"},
      {"empty body", "", "not valid JSON"},
      {"a list at the top", "[]", "must be a JSON object"},
      {"a number at the top", "5", "must be a JSON object"},
      {"no reports", R"({"x": 1})", "missing field `reports`"},
      {"reports null", R"({"reports": null})", "missing field `reports`"},
      {"reports an object", R"({"reports": {}})", "missing field `reports`"},
      {"a report not an object", R"({"reports": [{)" + ok + R"(}, 7]})", "`reports[1]` must be an object"},
      {"a report a list", R"({"reports": [[]]})", "`reports[0]` must be an object"},
      {"no id", R"({"reports": [{"kind": "event"}]})", "missing field `reports[0].id`"},
      {"null id", R"({"reports": [{"id": null, "kind": "event"}]})", "missing field `reports[0].id`"},
      {"empty id", R"({"reports": [{"id": "", "kind": "event"}]})", "`reports[0].id` must hold 1 to 200"},
      {"long id", R"({"reports": [{"id": ")" + std::string(201, 'i') + R"(", "kind": "event"}]})",
       "`reports[0].id` must hold 1 to 200"},
      {"id a number", R"({"reports": [{"id": 5, "kind": "event"}]})", "`reports[0].id` must be a string"},
      {"id an object", R"({"reports": [{"id": {}, "kind": "event"}]})", "`reports[0].id` must be a string"},
      {"no kind", R"({"reports": [{"id": "d:1"}]})", "missing field `reports[0].kind`"},
      {"bad kind", R"({"reports": [{"id": "d:1", "kind": "gossip"}]})", "`reports[0].kind` must be \"transition\""},
      {"time a float", R"({"reports": [{)" + ok + R"(, "time": 1.5}]})", "`reports[0].time` must be a whole number"},
      {"time a string", R"({"reports": [{)" + ok + R"(, "time": "1"}]})", "`reports[0].time` must be a whole number"},
      {"time too large", R"({"reports": [{)" + ok + R"(, "time": 18446744073709551615}]})",
       "`reports[0].time` must be a whole number"},
      {"negative generation", R"({"reports": [{)" + ok + R"(, "generation": -1}]})",
       "`reports[0].generation` must not be negative"},
      {"message too long", R"({"reports": [{)" + ok + R"(, "message": ")" + long_text + R"("}]})",
       "`reports[0].message` is longer than 4096 bytes"},
      {"message a bool", R"({"reports": [{)" + ok + R"(, "message": true}]})", "`reports[0].message` must be a string"},
      {"probes an object", R"({"reports": [{)" + ok + R"(, "probes": {}}]})", "`reports[0].probes` must be a list"},
      {"probes a string", R"({"reports": [{)" + ok + R"(, "probes": "x"}]})", "`reports[0].probes` must be a list"},
      {"probe not an object", R"({"reports": [{)" + ok + R"(, "probes": [3]}]})",
       "`reports[0].probes[0]` must be an object"},
      {"probe without name", R"({"reports": [{)" + ok + R"(, "probes": [{"ok": true}]}]})",
       "missing field `reports[0].probes[0].name`"},
      {"probe without ok", R"({"reports": [{)" + ok + R"(, "probes": [{"name": "h"}]}]})",
       "`reports[0].probes[0].ok` must be true or false"},
      {"probe ok a string", R"({"reports": [{)" + ok + R"(, "probes": [{"name": "h", "ok": "yes"}]}]})",
       "`reports[0].probes[0].ok` must be true or false"},
      {"probe iteration a string",
       R"({"reports": [{)" + ok + R"(, "probes": [{"name": "h", "ok": true, "iteration": "2"}]}]})",
       "`reports[0].probes[0].iteration` must be a whole number"},
      {"probe detail too long",
       R"({"reports": [{)" + ok + R"(, "probes": [{"name": "h", "ok": true, "detail": ")" + long_text + R"("}]}]})",
       "`reports[0].probes[0].detail` is longer than 4096 bytes"},
      {"second probe bad", R"({"reports": [{)" + ok + R"(, "probes": [{"name": "h", "ok": true}, {"name": 1}]}]})",
       "`reports[0].probes[1].name` must be a string"},
  };
  for (const auto& c : cases) {
    auto batch = parse_report_batch(c.body, 100);
    ASSERT_FALSE(batch) << c.what;
    EXPECT_EQ(batch.error().code, Errc::invalid_argument) << c.what;
    EXPECT_NE(batch.error().message.find(c.names), std::string::npos) << c.what << ": " << batch.error().message;
  }
}

TEST(ReportBatch, MoreThanTheLimitIsRefused) {
  std::string body = R"({"reports": [)";
  for (int i = 0; i < 4; ++i) body += std::string(i ? "," : "") + R"({"id": "d:)" + std::to_string(i) + R"(", "kind": "event"})";
  body += "]}";
  ASSERT_TRUE(parse_report_batch(body, 4));
  auto refused = parse_report_batch(body, 3);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::invalid_argument);
  EXPECT_NE(refused.error().message.find("at most 3"), std::string::npos) << refused.error().message;
}

}  // namespace
}  // namespace eddy::fleet
