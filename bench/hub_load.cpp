// eddy-hub under load: simulated devices that speak the real device protocol (fleet/API.md:
// POST /v1/devices/{id}/sync and /reports, each device with its own token, keep-alive
// connections, plain HTTP or TLS) against a real eddy-hub process that follows a real signed
// fleet repository (tests/support's Fleet and HubProcess), on loopback. Three scenarios:
//
//   blast     1,000 devices (--devices) polling the hub every second; a rollout with steps
//             [1, 5, 25, 100] of a bad release: every device the hub admits installs it and
//             reports `rolled-back` a few seconds later. Counts the devices that were ever
//             admitted and that reported installing, and the time from the first failing report
//             to the halt (the client's clock, and the hub's own events and database).
//   capacity  10,000 devices (--devices) over --connections keep-alive connections, one report
//             in flight on each, for --seconds: first one report per request, then batches of
//             100 (a device's outbox). Every acknowledgement is checked against the ids sent,
//             and after the run (the hub killed with SIGKILL) every acknowledged id must be in
//             the hub's database, counted once; duplicates sent again must count once. The same
//             load against the bare platform/http_server answering 200 is the reference.
//   memory    100,000 devices (--devices) synced once each: the hub's resident memory before
//             and after, and the director's tick time at that size.
//
//   hub_load [--scenario blast|capacity|memory|all] [--devices N] [--connections C]
//            [--threads T] [--seconds S] [--tick 5s] [--tls]
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/load_client.hpp"
#include "fleet/store.hpp"
#include "ota/assignment.hpp"
#include "platform/http_server.hpp"
#include "tests/support/fleet.hpp"
#include "tests/support/hub.hpp"
#include "tests/support/loop_thread.hpp"
#include "tests/support/support.hpp"
#include "tests/support/tls_servers.hpp"

namespace eddy::bench {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

struct Options {
  std::string scenario = "all";
  int devices = 0;  // 0: the scenario's own default
  int connections = 128;
  int threads = 2;
  int seconds = 20;
  std::string tick = "5s";
  bool tls = false;
};

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

std::string device_id(int i) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "bench-%06d", i);
  return buffer;
}

std::string device_token(int i) { return "token-" + device_id(i) + "-0123456789abcdef"; }

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// VmRSS / VmHWM of a process, in KiB.
std::map<std::string, long> proc_status(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::map<std::string, long> out;
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    if (key == "VmRSS" || key == "VmHWM" || key == "RssAnon" || key == "RssFile") out[key] = std::stol(line.substr(colon + 1));
  }
  return out;
}

// CPU seconds (user + system) in a /proc/.../stat line, and the name between its parentheses;
// nullopt when the file could not be read (a thread that ended).
std::optional<std::pair<std::string, double>> stat_cpu_seconds(const stdfs::path& stat) {
  std::ifstream in(stat);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));  // after "pid (comm) "
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i)
    if (i >= 14) ticks += std::stod(field);  // utime, stime
  return std::pair{text.substr(open + 1, close - open - 1), ticks / static_cast<double>(::sysconf(_SC_CLK_TCK))};
}

// CPU seconds (user + system) a process has used.
double process_cpu_seconds(pid_t pid) {
  auto cpu = stat_cpu_seconds("/proc/" + std::to_string(pid) + "/stat");
  return cpu ? cpu->second : 0;
}

// CPU seconds (user + system) of each thread of a process so far, summed by thread name
// (/proc/PID/task/TID/stat). The main thread, which keeps the executable's name, is eddy-hub's
// loop that owns the store: it is called "store" here.
std::map<std::string, double> threads_cpu_seconds(pid_t pid) {
  std::map<std::string, double> out;
  std::error_code ec;
  for (const auto& task : stdfs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    auto cpu = stat_cpu_seconds(task.path() / "stat");
    if (!cpu) continue;  // the thread ended
    out[task.path().filename() == std::to_string(pid) ? "store" : cpu->first] += cpu->second;
  }
  return out;
}

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// A report as eddyd's outbox sends it (fleet/API.md), written without a JSON library: the
// generator must leave the CPU to the hub.
void append_report(std::string& out, const std::string& device, std::int64_t seq, const std::string& commit,
                   std::string_view release, std::string_view version, std::string_view from, std::string_view to,
                   std::string_view outcome, bool probe_ok) {
  out += R"({"id":")" + device + ":" + std::to_string(seq) + R"(","time":)" + std::to_string(unix_now());
  out += R"(,"kind":"transition","target":"app","rollout":"app","release":")";
  out.append(release).append(R"(","version":")").append(version).append(R"(","commit":")").append(commit);
  out.append(R"(","generation":1,"from":")").append(from).append(R"(","to":")").append(to);
  out.append(R"(","outcome":")").append(outcome).append(R"(","message":")");
  out.append(probe_ok ? "probe health passed" : "probe health failed 3 times (threshold 2)");
  out.append(R"(","probes":[{"name":"health","iteration":3,"ok":)").append(probe_ok ? "true" : "false");
  out.append(R"(,"detail":")").append(probe_ok ? "HTTP 200" : "HTTP 500").append(R"("}]})");
}

void append_number(std::string& out, std::int64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, end);
}

std::string sync_body(const std::string& commit, std::string_view release, std::string_view version,
                      std::string_view state) {
  std::string out = R"({"labels":{"site":"bench","hw":"pi4"},"commit":")" + commit + R"(","targets":{"app":{)";
  out.append(R"("version":")").append(version).append(R"(","release":")").append(release);
  out.append(R"(","state":")").append(state).append(R"("}}})");
  return out;
}

// ---------------------------------------------------------------------------------------------
// The fleet and the hub.

// A signed fleet repository with app-1.0 (healthy) and app-2.0 (its health probe fails), and a
// rollout `app` of `release` to the devices labelled site=bench.
struct BenchFleet {
  BenchFleet(const stdfs::path& dir, const std::string& release, const std::string& rollout_spec) : fleet(dir) {
    for (const char* version : {"1.0", "2.0"}) {
      testing::AppBundle bundle{version, std::string(version) == "1.0", 18080, {}};
      fleet.add_bundle("app", bundle);
      fleet.add_release("app", bundle);
    }
    fleet.repo().write("rollouts/app.yaml", "apiVersion: eddy/v1\nkind: Rollout\nmetadata: {name: app}\nspec:\n"
                                            "  release: " + release + "\n  selector: {matchLabels: {site: bench}}\n" +
                                                rollout_spec);
    commit = fleet.repo().commit("roll out " + release);
  }
  testing::Fleet fleet;
  std::string commit;
};

// eddy-hub with `devices` device tokens, started and serving the fleet's commit.
class BenchHub {
 public:
  BenchHub(const stdfs::path& dir, BenchFleet& fleet, int devices, const Options& options)
      : hub_(dir / "hub", fleet.fleet.repo().url(), fleet.fleet.allowed_signers()) {
    std::string tokens = "# <device-id> <token>\n";
    for (int i = 0; i < devices; ++i) tokens += device_id(i) + " " + device_token(i) + "\n";
    testing::write_file(hub_.device_tokens_file().string() + ".new", tokens);
    stdfs::rename(hub_.device_tokens_file().string() + ".new", hub_.device_tokens_file());
    std::string extra = "log_level: notice\n";
    if (options.tls) {
      pki_.emplace(dir / "pki");
      extra += "tls: {cert: " + pki_->server.cert.string() + ", key: " + pki_->server.key.string() + "}\n";
      hub_.set_ca_file(pki_->ca.cert);
    }
    hub_.write_config(options.tick, "1s", extra);
    hub_.start();
    auto url = http::parse_url(hub_.url());
    if (!url) fail(url.error().message);
    url_ = *url;
    const bool serving = testing::wait_until([&] {
      auto status = hub_.request("GET", "/v1/rollouts/app", hub_.operator_token());
      return status.status == 200 && status.json.value("commit", "") == fleet.commit;
    });
    if (!serving) fail("eddy-hub did not take the fleet commit; its log:\n" + hub_.log());
  }

  testing::HubProcess& process() { return hub_; }
  const http::Url& url() const { return url_; }
  stdfs::path ca_file() const { return pki_ ? pki_->ca.cert : stdfs::path(); }
  std::map<std::string, long> memory() const { return proc_status(hub_.pid()); }

  // A value of GET /metrics.
  double metric(const std::string& name) {
    auto reply = hub_.request("GET", "/metrics", "");
    std::istringstream in(reply.body);
    std::string line;
    while (std::getline(in, line))
      if (line.starts_with(name + " ")) return std::stod(line.substr(name.size() + 1));
    fail("GET /metrics has no " + name);
  }

 private:
  testing::HubProcess hub_;
  std::optional<testing::TestPki> pki_;
  http::Url url_;
};

// ---------------------------------------------------------------------------------------------
// Closed-loop load: each connection keeps one request in flight.

class Workload {
 public:
  virtual ~Workload() = default;
  // The next request on connection `c`, written into `out` (its capacity kept from request to
  // request: the generator leaves the CPU to the server); false when it has nothing more to send.
  virtual bool next(std::size_t c, std::string& out) = 0;
  // The answer to it: false counts the request as failed.
  virtual bool done(std::size_t c, const Reply& reply) = 0;
  // The connection broke with the request in flight.
  virtual void lost(std::size_t) {}
};

struct LoadResult {
  std::uint64_t requests = 0, failed = 0;
  double seconds = 0;
  double server_cpu_seconds = -1;  // the server's CPU time during the run, when measured
  double client_cpu_seconds = 0;   // this program's
  std::map<std::string, double> server_threads_cpu_seconds;  // by thread name, when measured
  std::vector<double> latency_ms;  // sorted
  std::string first_error;
};

// Each of `threads` threads owns every threads-th connection; it sends one request on each of
// them, then reads the answers, until the workload runs dry or `limit` passes.
LoadResult run_closed_loop(const http::Url& url, const stdfs::path& ca_file, std::size_t connections, int threads,
                           Workload& work, std::chrono::seconds limit,
                           const std::function<double()>& server_cpu = {},
                           const std::function<std::map<std::string, double>()>& server_threads_cpu = {}) {
  std::vector<LoadResult> results(static_cast<std::size_t>(threads));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<std::int64_t> deadline{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      LoadResult& r = results[static_cast<std::size_t>(t)];
      auto note = [&r](const std::string& what) {
        ++r.failed;
        if (r.first_error.empty()) r.first_error = what;
      };
      std::vector<std::size_t> ids;
      std::vector<std::unique_ptr<KeepAliveConnection>> conns;
      for (std::size_t c = static_cast<std::size_t>(t); c < connections; c += static_cast<std::size_t>(threads)) {
        auto conn = KeepAliveConnection::open(url, ca_file);
        if (!conn) {
          note("connect: " + conn.error().message);
          continue;
        }
        ids.push_back(c);
        conns.push_back(std::move(*conn));
      }
      ++ready;
      while (!go.load()) std::this_thread::yield();
      std::vector<Clock::time_point> sent(conns.size());
      std::vector<std::string> requests(conns.size());
      std::vector<char> in_flight(conns.size());
      for (;;) {
        if (Clock::now().time_since_epoch().count() > deadline.load()) break;
        bool any = false;
        for (std::size_t i = 0; i < conns.size(); ++i) {
          in_flight[i] = 0;
          if (!conns[i]) continue;
          if (!work.next(ids[i], requests[i])) continue;
          sent[i] = Clock::now();
          if (auto st = conns[i]->send(requests[i]); !st) {
            note("send: " + st.error().message);
            work.lost(ids[i]);
            conns[i].reset();
            continue;
          }
          in_flight[i] = 1;
          any = true;
        }
        if (!any) break;
        for (std::size_t i = 0; i < conns.size(); ++i) {
          if (!in_flight[i]) continue;
          auto reply = conns[i]->read();
          if (!reply) {
            note("read: " + reply.error().message);
            work.lost(ids[i]);
            conns[i].reset();
            continue;
          }
          r.latency_ms.push_back(ms_between(sent[i], Clock::now()));
          if (!work.done(ids[i], *reply)) {
            note("HTTP " + std::to_string(reply->status) + ": " + reply->body.substr(0, 300));
            continue;
          }
          ++r.requests;
        }
      }
    });
  }
  while (ready.load() < threads) std::this_thread::sleep_for(1ms);  // connected (TLS: handshakes done)
  const double client_cpu = process_cpu_seconds(::getpid());
  const double server_cpu_at_start = server_cpu ? server_cpu() : 0;
  const auto threads_at_start = server_threads_cpu ? server_threads_cpu() : std::map<std::string, double>{};
  const auto start = Clock::now();
  deadline = (start + limit).time_since_epoch().count();
  go = true;
  for (auto& t : pool) t.join();
  LoadResult total;
  total.seconds = seconds_since(start);
  total.client_cpu_seconds = process_cpu_seconds(::getpid()) - client_cpu;
  if (server_cpu) total.server_cpu_seconds = server_cpu() - server_cpu_at_start;
  if (server_threads_cpu) {
    for (const auto& [name, seconds] : server_threads_cpu()) {
      auto before = threads_at_start.find(name);
      total.server_threads_cpu_seconds[name] = seconds - (before == threads_at_start.end() ? 0 : before->second);
    }
  }
  for (auto& r : results) {
    total.requests += r.requests;
    total.failed += r.failed;
    if (total.first_error.empty()) total.first_error = r.first_error;
    total.latency_ms.insert(total.latency_ms.end(), r.latency_ms.begin(), r.latency_ms.end());
  }
  std::sort(total.latency_ms.begin(), total.latency_ms.end());
  return total;
}

// Every device once: POST /v1/devices/{id}/sync, running `version` of app (committed).
// Connection c syncs devices c, c + C, ...
class SyncOnce final : public Workload {
 public:
  SyncOnce(const http::Url& url, int devices, std::size_t connections, std::string commit,
           std::string version = "1.0")
      : url_(url), devices_(devices), connections_(connections), next_(connections), commit_(std::move(commit)),
        version_(std::move(version)) {
    for (std::size_t c = 0; c < connections; ++c) next_[c] = static_cast<int>(c);
  }
  bool next(std::size_t c, std::string& out) override {
    const int d = next_[c];
    if (d >= devices_) return false;
    next_[c] += static_cast<int>(connections_);
    out = render_request("POST", url_, "/v1/devices/" + device_id(d) + "/sync", device_token(d),
                         sync_body(commit_, "app-" + version_, version_, "committed"));
    return true;
  }
  bool done(std::size_t, const Reply& reply) override {
    return reply.status == 200 && reply.body.find("\"rollouts\"") != std::string::npos;
  }

 private:
  http::Url url_;
  int devices_;
  std::size_t connections_;
  std::vector<int> next_;
  std::string commit_, version_;
};

// Reports of a healthy device during an update (activating -> probing, a passing probe), `batch`
// a request, ids <device>:<seq> continuing each device's sequence in `acked`. Connection c
// reports for devices c, c + C, ... in turn. With `verify`, an answer must acknowledge exactly
// the ids sent, and only then do they count as acknowledged.
class Reports final : public Workload {
 public:
  struct Ledger {
    std::vector<std::int64_t> acked;  // per device: every id <device>:1..acked was acknowledged
    std::vector<char> unsure;         // per device: a request was lost in flight (its ids may be stored)
    explicit Ledger(int devices) : acked(static_cast<std::size_t>(devices)), unsure(static_cast<std::size_t>(devices)) {}
    std::int64_t total() const {
      std::int64_t n = 0;
      for (auto a : acked) n += a;
      return n;
    }
  };

  Reports(const http::Url& url, int devices, std::size_t connections, int batch, std::string commit, Ledger& ledger,
          bool verify)
      : url_(url), devices_(devices), connections_(connections), batch_(batch), commit_(std::move(commit)),
        ledger_(ledger), verify_(verify), cursor_(connections), pending_(connections), bodies_(connections),
        expected_(connections) {
    for (std::size_t c = 0; c < connections; ++c) cursor_[c] = static_cast<int>(c);
    // The bytes that are the same in every request: each device's request head up to the body's
    // length, and a report after its id and time (append_report's, cut after "time":<t>).
    heads_.reserve(static_cast<std::size_t>(devices));
    for (int d = 0; d < devices; ++d) {
      std::string head = render_request("POST", url_, "/v1/devices/" + device_id(d) + "/reports", device_token(d), "x");
      head.resize(head.rfind("Content-Length: ") + std::string_view("Content-Length: ").size());
      heads_.push_back(std::move(head));
    }
    std::string report;
    append_report(report, "d", 1, commit_, "app-1.0", "1.0", "activating", "probing", "", true);
    report_tail_ = report.substr(report.find(",\"kind\""));
  }

  bool next(std::size_t c, std::string& out) override {
    const int d = cursor_[c];
    cursor_[c] += static_cast<int>(connections_);
    if (cursor_[c] >= devices_) cursor_[c] = static_cast<int>(c);
    pending_[c] = d;
    const std::string_view id = std::string_view(heads_[static_cast<std::size_t>(d)]).substr(
        std::string_view("POST /v1/devices/").size(), device_id(0).size());
    std::string& body = bodies_[c];
    body.assign(R"({"reports":[)");
    const std::int64_t first = ledger_.acked[static_cast<std::size_t>(d)] + 1;
    const std::int64_t now = unix_now();
    for (int i = 0; i < batch_; ++i) {
      if (i) body += ',';
      body.append(R"({"id":")").append(id).append(":");
      append_number(body, first + i);
      body.append(R"(","time":)");
      append_number(body, now);
      body.append(report_tail_);
    }
    body += "]}";
    out.assign(heads_[static_cast<std::size_t>(d)]);
    append_number(out, static_cast<std::int64_t>(body.size()));
    out.append("\r\n\r\n").append(body);
    if (verify_) {  // the answer the hub gives when it acknowledges exactly these ids
      std::string& expected = expected_[c];
      expected.assign(R"({"acknowledged":[)");
      for (int i = 0; i < batch_; ++i) {
        if (i) expected += ',';
        expected.append("\"").append(id).append(":");
        append_number(expected, first + i);
        expected += '"';
      }
      expected.append("]}\n");
    }
    return true;
  }

  bool done(std::size_t c, const Reply& reply) override {
    const auto d = static_cast<std::size_t>(pending_[c]);
    if (reply.status != 200) return false;
    // Bytes as expected: checked without a JSON parse. Anything else (another spelling of the
    // same JSON) is parsed and checked id by id.
    if (verify_ && reply.body != expected_[c]) {
      auto body = json::parse(reply.body, nullptr, false);
      if (body.is_discarded() || !body.contains("acknowledged") || !body["acknowledged"].is_array() ||
          body["acknowledged"].size() != static_cast<std::size_t>(batch_))
        return false;
      const std::string prefix = device_id(pending_[c]) + ":";
      for (int i = 0; i < batch_; ++i)
        if (body["acknowledged"][static_cast<std::size_t>(i)] != prefix + std::to_string(ledger_.acked[d] + 1 + i))
          return false;
    }
    ledger_.acked[d] += batch_;
    return true;
  }

  void lost(std::size_t c) override { ledger_.unsure[static_cast<std::size_t>(pending_[c])] = 1; }

 private:
  http::Url url_;
  int devices_;
  std::size_t connections_;
  int batch_;
  std::string commit_;
  Ledger& ledger_;
  bool verify_;
  std::vector<int> cursor_, pending_;
  std::vector<std::string> heads_;  // per device
  std::string report_tail_;
  std::vector<std::string> bodies_, expected_;  // per connection, reused
};

void print_load(const char* what, const LoadResult& r, int per_request) {
  const double rate = static_cast<double>(r.requests) / r.seconds;
  std::printf("  %-34s %9llu requests in %5.1f s, %llu failed: %8.0f requests/s = %8.0f reports/s; "
              "latency p50 %6.2f ms, p99 %7.2f ms, max %7.1f ms\n",
              what, static_cast<unsigned long long>(r.requests), r.seconds, static_cast<unsigned long long>(r.failed),
              rate, rate * per_request, percentile(r.latency_ms, 0.50), percentile(r.latency_ms, 0.99),
              r.latency_ms.empty() ? 0 : r.latency_ms.back());
  if (r.server_cpu_seconds >= 0 && r.requests > 0) {
    const double per_report_us = r.server_cpu_seconds * 1e6 / (static_cast<double>(r.requests) * per_request);
    std::printf("    server CPU: %.1f s of %.1f s (%.0f%% of a core), %.1f us a report: %.0f reports/s for "
                "each core it gets; load generator CPU %.1f s\n",
                r.server_cpu_seconds, r.seconds, 100 * r.server_cpu_seconds / r.seconds, per_report_us,
                1e6 / per_report_us, r.client_cpu_seconds);
    if (!r.server_threads_cpu_seconds.empty()) {
      // Each thread's share, the store's first: the thread that bounds the rate one report a request.
      std::string line = "    server threads, CPU a report:";
      auto add = [&](const std::string& name, double seconds) {
        char text[96];
        std::snprintf(text, sizeof text, " %s %.1f us (%.0f%% of a core),", name.c_str(),
                      seconds * 1e6 / (static_cast<double>(r.requests) * per_request), 100 * seconds / r.seconds);
        line += text;
      };
      if (auto store = r.server_threads_cpu_seconds.find("store"); store != r.server_threads_cpu_seconds.end())
        add(store->first, store->second);
      for (const auto& [name, seconds] : r.server_threads_cpu_seconds)
        if (name != "store" && seconds > 0) add(name, seconds);  // the idle ones left out
      line.pop_back();
      std::printf("%s\n", line.c_str());
    }
  }
  if (!r.first_error.empty()) std::printf("    first failure: %s\n", r.first_error.c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------------
// Blast radius.

struct SimDevice {
  int index = 0;
  std::string id, token;
  std::unique_ptr<KeepAliveConnection> conn;
  Clock::time_point next_sync;
  enum class Phase { running_old, probing_new, rolled_back } phase = Phase::running_old;
  Clock::time_point probe_ends;
  std::int64_t seq = 0;
  bool admitted_ever = false, reported_installing = false;
};

void run_blast(const Options& o, const stdfs::path& dir) {
  const int devices = o.devices ? o.devices : 1000;
  const auto poll = 1s;          // each device syncs every second
  const auto analysis = 3s;      // the bad release fails its health analysis 3 s after it starts
  std::printf("\n## blast radius: %d devices, steps [1, 5, 25, 100], every admitted device fails%s\n", devices,
              o.tls ? " (TLS)" : "");
  BenchFleet fleet(dir / "fleet", "app-2.0",
                   "  steps: [1, 5, 25, 100]\n  bake: 30s\n  minDevices: 5\n  maxFailureRate: 10%\n"
                   "  onFailure: rollback\n  progressDeadline: 10m\n");
  BenchHub hub(dir, fleet, devices, o);
  int first_step = 0;
  for (int i = 0; i < devices; ++i)
    if (ota::place_in_line(device_id(i), "app") < 1.0) ++first_step;

  std::vector<SimDevice> sims(static_cast<std::size_t>(devices));
  std::mt19937 random(42);
  const auto start = Clock::now();
  for (int i = 0; i < devices; ++i) {
    auto& s = sims[static_cast<std::size_t>(i)];
    s.index = i;
    s.id = device_id(i);
    s.token = device_token(i);
    s.next_sync = start + std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 999)(random));
  }

  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::mutex error_mutex;
  std::string first_error;
  // One exchange on the device's own connection; a broken connection is opened again, as a
  // device would at its next poll.
  auto exchange = [&](SimDevice& s, const std::string& path, const std::string& body) -> std::optional<Reply> {
    auto note = [&](const std::string& what) {
      ++errors;
      std::lock_guard lock(error_mutex);
      if (first_error.empty()) first_error = s.id + " " + path + ": " + what;
      return std::nullopt;
    };
    if (!s.conn) {
      auto conn = KeepAliveConnection::open(hub.url(), hub.ca_file());
      if (!conn) return note("connect: " + conn.error().message);
      s.conn = std::move(*conn);
    }
    auto reply = s.conn->exchange(render_request("POST", hub.url(), "/v1/devices/" + s.id + path, s.token, body));
    if (!reply) {
      s.conn.reset();
      return note(reply.error().message);
    }
    if (reply->status != 200) return note("HTTP " + std::to_string(reply->status) + " " + reply->body);
    return std::move(*reply);
  };
  std::mutex mutex;  // guards first_fail_*
  std::optional<Clock::time_point> first_fail_sent, first_fail_acked;
  std::atomic<int> reports_sent{0}, syncs{0};
  auto post_reports = [&](SimDevice& s, const std::vector<std::array<std::string_view, 4>>& transitions,
                          bool probe_ok) -> bool {
    std::string body = R"({"reports":[)";
    for (std::size_t i = 0; i < transitions.size(); ++i) {
      if (i) body += ',';
      const auto& t = transitions[i];
      append_report(body, s.id, ++s.seq, fleet.commit, "app-2.0", "2.0", t[0], t[1], t[2], probe_ok);
    }
    body += "]}";
    if (!exchange(s, "/reports", body)) {
      s.seq -= static_cast<std::int64_t>(transitions.size());  // the outbox sends them again
      return false;
    }
    reports_sent += static_cast<int>(transitions.size());
    return true;
  };

  auto device_thread = [&](int t) {
    while (!stop.load()) {
      auto soonest = Clock::now() + 50ms;
      for (std::size_t i = static_cast<std::size_t>(t); i < sims.size(); i += static_cast<std::size_t>(o.threads)) {
        auto& s = sims[i];
        auto now = Clock::now();
        if (s.phase == SimDevice::Phase::probing_new && now >= s.probe_ends) {
          const auto sent = Clock::now();
          const bool ok = post_reports(s,
                                       {{"probing", "rolling-back", "", ""},
                                        {"rolling-back", "rolled-back", "rolled-back", ""}},
                                       false);
          if (ok) {
            std::lock_guard lock(mutex);
            if (!first_fail_sent) {
              first_fail_sent = sent;
              first_fail_acked = Clock::now();
            }
            s.phase = SimDevice::Phase::rolled_back;
          }
        }
        if (now >= s.next_sync) {
          s.next_sync += poll;
          std::string body = s.phase == SimDevice::Phase::probing_new
                                 ? sync_body(fleet.commit, "app-2.0", "2.0", "probing")
                                 : sync_body(fleet.commit, "app-1.0", "1.0",
                                             s.phase == SimDevice::Phase::rolled_back ? "rolled-back" : "committed");
          auto reply = exchange(s, "/sync", body);
          if (!reply) continue;
          ++syncs;
          json answer = json::parse(reply->body, nullptr, false);
          if (!answer.is_object()) continue;
          const auto& gate = answer["rollouts"]["app"];
          if (gate.value("release", "") == "app-2.0" && gate.value("admitted", false) &&
              s.phase == SimDevice::Phase::running_old) {
            // What eddyd reports on its way from an admitted release to probing it.
            s.admitted_ever = true;
            const bool ok = post_reports(s,
                                         {{"verified", "admitted", "", ""},
                                          {"admitted", "downloading", "", ""},
                                          {"downloading", "staged", "", ""},
                                          {"staged", "activating", "", ""},
                                          {"activating", "probing", "", ""}},
                                         true);
            if (ok) {
              s.reported_installing = true;
              s.phase = SimDevice::Phase::probing_new;
              s.probe_ends = Clock::now() + analysis;
            }
          }
        }
        soonest = std::min({soonest, s.next_sync,
                            s.phase == SimDevice::Phase::probing_new ? s.probe_ends : soonest});
      }
      std::this_thread::sleep_until(soonest);
    }
  };

  // The operator's view, every 5 ms: when the rollout halts, and how far it ever got.
  std::mutex watch_mutex;  // guards what the watcher saw
  std::optional<Clock::time_point> halted_seen;
  int max_step = 0, max_admitted = 0;
  std::string halt_verdict;
  std::thread watcher([&] {
    auto conn = KeepAliveConnection::open(hub.url(), hub.ca_file());
    if (!conn) return;
    const std::string request =
        render_request("GET", hub.url(), "/v1/rollouts/app", hub.process().operator_token(), "");
    while (!stop.load()) {
      auto reply = (*conn)->exchange(request);
      if (!reply) return;
      auto status = json::parse(reply->body, nullptr, false);
      if (status.is_object()) {
        std::lock_guard lock(watch_mutex);
        max_step = std::max(max_step, status.value("step", 0));
        max_admitted = std::max(max_admitted, status.value("admitted", 0));
        if (!halted_seen && status.value("state", "") == "rolled-back") {
          halted_seen = Clock::now();
          halt_verdict = status["last_verdict"].value("message", "");
        }
      }
      std::this_thread::sleep_for(5ms);
    }
  });

  std::vector<std::thread> pool;
  for (int t = 0; t < o.threads; ++t) pool.emplace_back(device_thread, t);
  // Run until the halt has been seen for 5 s (every device synced several times since), or 120 s.
  testing::wait_until(
      [&] {
        std::lock_guard lock(watch_mutex);
        return halted_seen && Clock::now() - *halted_seen > 5s;
      },
      120s);
  stop = true;
  for (auto& t : pool) t.join();
  watcher.join();

  int admitted = 0, installing = 0;
  for (const auto& s : sims) {
    admitted += s.admitted_ever;
    installing += s.reported_installing;
  }
  std::printf("  devices whose place in line is in the first step (1%%): %d; minDevices 5\n", first_step);
  std::printf("  devices ever answered admitted: true for app-2.0: %d of %d\n", admitted, devices);
  std::printf("  devices that reported installing app-2.0 (admitted -> downloading): %d\n", installing);
  std::printf("  rollout status seen by the operator: highest step index %d, most admitted %d\n", max_step, max_admitted);
  const double ran = seconds_since(start);
  std::printf("  %d syncs in %.1f s: %.0f a second, each device every %.1f s (it asks every %lld s)\n", syncs.load(), ran,
              syncs.load() / ran, devices * ran / std::max(1, syncs.load()), static_cast<long long>(poll.count()));
  std::printf("  request errors: %d%s%s; reports sent: %d\n", errors.load(), first_error.empty() ? "" : ", the first: ",
              first_error.c_str(), reports_sent.load());
  if (!halted_seen || !first_fail_sent) {
    std::printf("  the rollout did not halt within 120 s\n");
  } else {
    std::printf("  first failing report sent -> halt seen by the operator: %.0f ms (acknowledged after %.0f ms); "
                "the hub's tick is %s\n",
                ms_between(*first_fail_sent, *halted_seen), ms_between(*first_fail_sent, *first_fail_acked),
                o.tick.c_str());
    std::printf("  halt verdict: %s\n", halt_verdict.c_str());
  }

  // The hub's own record: events, and its database once it is stopped.
  auto events = hub.process().request("GET", "/v1/events?since=0", hub.process().operator_token());
  std::int64_t halt_at = 0;
  for (const auto& e : events.json["events"]) {
    if (e.value("kind", "") == "halt" && !halt_at) halt_at = e.value("at", std::int64_t{0});
  }
  if (!hub.process().stop()) fail("eddy-hub did not stop");
  auto store = fleet::SqliteStore::open(hub.process().data_dir() / "hub.db");
  if (!store) fail(store.error().message);
  auto& db = (*store)->database();
  auto first_failure = db.query_integer("SELECT MIN(received_at) FROM reports WHERE outcome = 'rolled-back'");
  auto installed = db.query_integer(
      "SELECT COUNT(DISTINCT device) FROM reports WHERE release = 'app-2.0' AND to_state = 'downloading'");
  auto admissions = db.query_integer("SELECT COUNT(*) FROM admissions WHERE rollout = 'app'");
  if (!first_failure || !installed || !admissions) fail("cannot read the hub's database");
  std::printf("  hub database: %lld devices admitted, %lld reported downloading app-2.0; first rolled-back report "
              "received at %lld, halt event at %lld: %lld s apart (unix seconds)\n",
              static_cast<long long>(admissions->value_or(-1)), static_cast<long long>(installed->value_or(-1)),
              static_cast<long long>(first_failure->value_or(0)), static_cast<long long>(halt_at),
              static_cast<long long>(halt_at - first_failure->value_or(0)));
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------------
// Capacity.

// The bare platform/http_server answering 200 at once: what the transport alone costs.
class BareServer {
 public:
  BareServer(const Options& o, const stdfs::path& dir) {
    http::ServerOptions options;
    if (o.tls) {
      pki_.emplace(dir / "bare-pki");
      options.tls_cert = pki_->server.cert;
      options.tls_key = pki_->server.key;
    }
    auto server = loop_.call([&] {
      return http::Server::start(loop_.loop(), options, [](http::ServerRequest, std::function<void(http::ServerResponse)> respond) {
        respond(http::ServerResponse{200, {{"Content-Type", "application/json"}}, "{\"acknowledged\":[]}\n"});
      });
    });
    if (!server) fail(server.error().message);
    server_ = std::move(*server);
    auto url = http::parse_url(std::string(o.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(server_->port()));
    if (!url) fail(url.error().message);
    url_ = *url;
  }
  ~BareServer() {
    loop_.call([&] {
      server_.reset();
      return 0;
    });
  }
  const http::Url& url() const { return url_; }
  stdfs::path ca_file() const { return pki_ ? pki_->ca.cert : stdfs::path(); }
  // CPU time of the server's (loop) thread.
  double cpu_seconds() { return loop_.call([] { return thread_cpu_seconds(); }); }

 private:
  std::optional<testing::TestPki> pki_;
  testing::LoopThread loop_;
  std::unique_ptr<http::Server> server_;
  http::Url url_;
};

void run_capacity(const Options& o, const stdfs::path& dir) {
  const int devices = o.devices ? o.devices : 10000;
  const auto connections = static_cast<std::size_t>(std::min(o.connections, devices));
  const auto limit = std::chrono::seconds(o.seconds);
  std::printf("\n## capacity: %d devices, %zu keep-alive connections, %d client threads, %d s a run%s\n", devices,
              connections, o.threads, o.seconds, o.tls ? " (TLS)" : "");
  BenchFleet fleet(dir / "fleet", "app-1.0",
                   "  steps: [1, 5, 25, 100]\n  bake: 1h\n  minDevices: 5\n  maxFailureRate: 10%\n");
  BenchHub hub(dir, fleet, devices, o);

  const pid_t pid = hub.process().pid();
  auto measured = [&](Workload& work, std::chrono::seconds run_limit) {
    return run_closed_loop(hub.url(), hub.ca_file(), connections, o.threads, work, run_limit,
                           [pid] { return process_cpu_seconds(pid); }, [pid] { return threads_cpu_seconds(pid); });
  };
  SyncOnce syncs(hub.url(), devices, connections, fleet.commit);
  print_load("hub: sync every device once", measured(syncs, 600s), 1);

  Reports::Ledger ledger(devices);
  std::vector<std::pair<int, LoadResult>> hub_runs;
  for (int batch : {1, 100}) {
    Reports load(hub.url(), devices, connections, batch, fleet.commit, ledger, true);
    hub_runs.emplace_back(batch, measured(load, limit));
    print_load(batch == 1 ? "hub: 1 report a request" : "hub: 100 reports a request", hub_runs.back().second, batch);
  }

  // Duplicates: the first reports of the first 100 devices again, as an outbox whose answer was
  // lost sends them; they are acknowledged and counted once.
  const double total_before = hub.metric("eddy_hub_reports_total");
  int resent = 0;
  {
    auto conn = KeepAliveConnection::open(hub.url(), hub.ca_file());
    if (!conn) fail("connect: " + conn.error().message);
    for (int d = 0; d < std::min(devices, 100); ++d) {
      if (ledger.acked[static_cast<std::size_t>(d)] == 0) continue;
      std::string body = R"({"reports":[)";
      append_report(body, device_id(d), 1, fleet.commit, "app-1.0", "1.0", "activating", "probing", "", true);
      body += "]}";
      auto reply = (*conn)->exchange(render_request("POST", hub.url(), "/v1/devices/" + device_id(d) + "/reports",
                                                    device_token(d), body));
      if (!reply || reply->status != 200 || reply->body.find(device_id(d) + ":1\"") == std::string::npos)
        fail("a duplicate report was not acknowledged");
      ++resent;
    }
  }
  const double total_after = hub.metric("eddy_hub_reports_total");
  const double duplicates = hub.metric("eddy_hub_reports_duplicate_total");
  const auto memory = hub.memory();

  // Nothing acknowledged may be missing after a kill: every id 1..acked of each device is stored.
  hub.process().kill9();
  auto store = fleet::SqliteStore::open(hub.process().data_dir() / "hub.db");
  if (!store) fail(store.error().message);
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> stored;  // device -> count, highest seq
  auto st = (*store)->database().query(
      "SELECT device, COUNT(*), MAX(CAST(substr(id, instr(id, ':') + 1) AS INTEGER)) FROM reports GROUP BY device", {},
      [&](const storage::Row& row) { stored[row.text(0)] = {row.integer(1), row.integer(2)}; });
  if (!st) fail(st.error().message);
  std::int64_t missing = 0, extra = 0, unsure = 0;
  for (int d = 0; d < devices; ++d) {
    const auto acked = ledger.acked[static_cast<std::size_t>(d)];
    const auto [count, highest] = stored[device_id(d)];
    if (ledger.unsure[static_cast<std::size_t>(d)]) {
      ++unsure;  // a request lost in flight may or may not have been stored
      if (count < acked) missing += acked - count;
      continue;
    }
    if (count < acked) missing += acked - count;
    if (count > acked || highest != count) extra += std::abs(count - acked);
  }
  std::printf("  acknowledged reports: %lld; hub database after SIGKILL: %lld missing, %lld stored but not "
              "acknowledged (%lld devices had a request lost in flight)\n",
              static_cast<long long>(ledger.total()), static_cast<long long>(missing), static_cast<long long>(extra),
              static_cast<long long>(unsure));
  std::printf("  %d reports sent again: eddy_hub_reports_total %.0f -> %.0f, eddy_hub_reports_duplicate_total %.0f\n",
              resent, total_before, total_after, duplicates);
  std::printf("  hub memory after the runs: VmRSS %ld KiB, VmHWM %ld KiB\n", memory.at("VmRSS"), memory.at("VmHWM"));

  // The reference: the same connections and requests against the bare server.
  BareServer bare(o, dir);
  for (int batch : {1, 100}) {
    Reports::Ledger scratch(devices);
    Reports load(bare.url(), devices, connections, batch, fleet.commit, scratch, false);
    auto r = run_closed_loop(bare.url(), bare.ca_file(), connections, o.threads, load, limit,
                             [&bare] { return bare.cpu_seconds(); });
    r.client_cpu_seconds -= r.server_cpu_seconds;  // the bare server runs in this process
    print_load(batch == 1 ? "bare server: 1 report a request" : "bare server: 100 reports a request", r, batch);
    const auto& mine = hub_runs[batch == 1 ? 0 : 1].second;
    std::printf("    hub / bare server (requests/s): %.2f\n",
                (static_cast<double>(mine.requests) / mine.seconds) / (static_cast<double>(r.requests) / r.seconds));
  }
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------------
// Memory.

void run_memory(const Options& o, const stdfs::path& dir) {
  const int devices = o.devices ? o.devices : 100000;
  const auto connections = static_cast<std::size_t>(std::min(o.connections, devices));
  std::printf("\n## memory: %d devices synced once each%s\n", devices, o.tls ? " (TLS)" : "");
  BenchFleet fleet(dir / "fleet", "app-1.0",
                   "  steps: [1, 5, 25, 100]\n  bake: 1h\n  minDevices: 5\n  maxFailureRate: 10%\n");
  BenchHub hub(dir, fleet, devices, o);
  auto& process = hub.process();
  // After a change, wait for two ticks: the second one looked at all of it.
  auto ticked = [&] {
    const double first = hub.metric("eddy_hub_director_ticks_total");
    if (!testing::wait_until([&] { return hub.metric("eddy_hub_director_ticks_total") >= first + 2; }, 120s))
      fail("the director did not tick");
    return hub.metric("eddy_hub_director_tick_seconds") * 1000;
  };
  auto status_ms = [&] {
    const auto began = Clock::now();
    auto status = process.request("GET", "/v1/rollouts/app", process.operator_token());
    if (status.status != 200) fail("GET /v1/rollouts/app: " + status.body);
    return seconds_since(began) * 1000;
  };
  auto show = [&](const char* when, double tick_ms) {
    const auto m = hub.memory();
    auto status = process.request("GET", "/v1/rollouts/app", process.operator_token());
    std::printf("  %-52s VmRSS %7ld KiB (anonymous %7ld KiB), VmHWM %7ld KiB; tick %7.1f ms, GET rollout %6.1f ms; "
                "admitted %d, succeeded %d\n",
                when, m.at("VmRSS"), m.at("RssAnon"), m.at("VmHWM"), tick_ms, status_ms(),
                status.json.value("admitted", 0), status.json["devices"].value("succeeded", 0));
    std::fflush(stdout);
    return m.at("VmRSS");
  };

  const long before = show("started, no device known:", ticked());
  SyncOnce first(hub.url(), devices, connections, fleet.commit, "0.9");
  print_load("sync every device once (running app 0.9)", run_closed_loop(hub.url(), hub.ca_file(), connections,
                                                                         o.threads, first, 1800s), 1);
  const long known = show("every device known, step 1 (1%):", ticked());
  auto promoted = process.request("POST", "/v1/rollouts/app/promote", process.operator_token());
  if (promoted.status != 200) fail("promote: " + promoted.body);
  show("promoted to 100%, every device admitted:", ticked());
  SyncOnce again(hub.url(), devices, connections, fleet.commit, "1.0");
  print_load("sync every device again (running app 1.0)", run_closed_loop(hub.url(), hub.ca_file(), connections,
                                                                          o.threads, again, 1800s), 1);
  const long all = show("every device runs the release (a verdict each):", ticked());
  std::printf("  memory per 100,000 known devices: %.1f MiB (synced once), %.1f MiB (admitted, with verdicts)\n",
              static_cast<double>(known - before) / 1024 * 100000 / devices,
              static_cast<double>(all - before) / 1024 * 100000 / devices);
  const auto db = process.data_dir() / "hub.db";
  const auto wal = process.data_dir() / "hub.db-wal";
  std::printf("  hub.db: %.1f MiB, its write-ahead log %.1f MiB\n", static_cast<double>(stdfs::file_size(db)) / (1 << 20),
              stdfs::exists(wal) ? static_cast<double>(stdfs::file_size(wal)) / (1 << 20) : 0.0);
  std::fflush(stdout);
}

}  // namespace
}  // namespace eddy::bench

int main(int argc, char** argv) {
  eddy::bench::Options o;
  CLI::App app{"eddy-hub under load: simulated devices against a real eddy-hub (see bench/RESULTS.md, \"Hub\")."};
  app.add_option("--scenario", o.scenario, "blast, capacity, memory or all")
      ->check(CLI::IsMember({"blast", "capacity", "memory", "all"}));
  app.add_option("--devices", o.devices, "simulated devices (default: 1,000 / 10,000 / 100,000)")->check(CLI::PositiveNumber);
  app.add_option("--connections", o.connections, "keep-alive connections of the capacity and memory runs")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "client threads")->check(CLI::PositiveNumber);
  app.add_option("--seconds", o.seconds, "length of each capacity run")->check(CLI::PositiveNumber);
  app.add_option("--tick", o.tick, "the hub's director tick");
  app.add_flag("--tls", o.tls, "HTTPS between devices and hub (and to the reference server)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Every simulated device of the blast run holds its own connection.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  ::signal(SIGPIPE, SIG_IGN);
  try {
    eddy::testing::TempDir dir;
    std::printf("# eddy-hub load (%s)\n", o.scenario.c_str());
    if (o.scenario == "blast" || o.scenario == "all") eddy::bench::run_blast(o, dir / "blast");
    if (o.scenario == "capacity" || o.scenario == "all") eddy::bench::run_capacity(o, dir / "capacity");
    if (o.scenario == "memory" || o.scenario == "all") eddy::bench::run_memory(o, dir / "memory");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hub_load: %s\n", e.what());
    return 1;
  }
  return 0;
}
