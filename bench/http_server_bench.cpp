// Load generator for platform/http_server on loopback: N keep-alive connections x M requests
// of a ~300-byte JSON POST (a device report) against a server whose handler answers 200 at
// once; prints requests/s and p50/p99 latency, plain and TLS (certificate by the openssl CLI),
// then runs `wrk` on the plain server as a reference when it is installed.
//
//   http_server_bench [--connections N] [--requests M] [--threads T] [--seconds S]
//
// Each client thread owns N/T connections (blocking sockets through the project's http
// transport) and keeps one request in flight on each: it sends on all of them, then reads the
// answers, so N requests are in flight. Latency is from a request's send to its response's end.
#include <http_parser.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "platform/event_loop.hpp"
#include "platform/http_client.hpp"
#include "platform/http_server.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Settings {
  int connections = 64;
  int requests = 500;  // per connection
  int threads = 2;
  int seconds = 20;    // bound on each run
};

const std::string report_body =
    R"({"device":"pi-000123","report_id":"4f1c2a9e-7b3d-4c55-9a61-2e8f0d3b7c41","release":"sensor-app",)"
    R"("version":"1.4.2","state":"healthy","probes":[{"name":"http","ok":true,"ms":12},)"
    R"({"name":"tcp","ok":true,"ms":1}],"events":[{"at":"2026-11-26T10:00:00Z","kind":"installed"},)"
    R"({"at":"2026-11-26T10:00:05Z","kind":"committed"}],"uptime":86400,"seq":4711})";

// Reads one response at a time off a transport with http-parser.
class ResponseReader {
 public:
  ResponseReader() {
    http_parser_settings_init(&settings_);
    settings_.on_message_complete = [](http_parser* p) {
      static_cast<ResponseReader*>(p->data)->complete_ = true;
      http_parser_pause(p, 1);
      return 0;
    };
    reset();
  }
  void reset() {
    http_parser_init(&parser_, HTTP_RESPONSE);
    parser_.data = this;
    complete_ = false;
  }
  // False on error or a status other than 200.
  bool read(eddy::http::Transport& transport) {
    reset();
    while (!complete_) {
      if (begin_ == end_) {
        auto n = transport.read_some(buffer_, sizeof buffer_, 10s);
        if (!n || *n == 0) return false;
        begin_ = 0;
        end_ = *n;
      }
      std::size_t used = http_parser_execute(&parser_, &settings_, buffer_ + begin_, end_ - begin_);
      begin_ += used;
      auto err = HTTP_PARSER_ERRNO(&parser_);
      if (err != HPE_OK && err != HPE_PAUSED) return false;
    }
    return parser_.status_code == 200;
  }

 private:
  http_parser parser_;
  http_parser_settings settings_;
  bool complete_ = false;
  char buffer_[16384];
  std::size_t begin_ = 0, end_ = 0;
};

struct Result {
  std::uint64_t ok = 0, failed = 0;
  std::vector<double> latencies_us;
  double seconds = 0, connect_ms_avg = 0;
};

Result run_load(const std::string& base_url, const Settings& s, const std::filesystem::path& ca_file) {
  auto url = eddy::http::parse_url(base_url + "/v1/reports");
  if (!url) {
    std::fprintf(stderr, "%s\n", url.error().message.c_str());
    std::exit(1);
  }
  std::string request = "POST " + url->target + " HTTP/1.1\r\nHost: " + url->host +
                        "\r\nContent-Type: application/json\r\nAuthorization: Bearer "
                        "device-token-0123456789abcdef\r\nContent-Length: " +
                        std::to_string(report_body.size()) + "\r\n\r\n" + report_body;
  eddy::http::RequestOptions options;
  options.ca_file = ca_file;

  std::vector<Result> results(static_cast<std::size_t>(s.threads));
  std::atomic<int> connected{0};
  std::atomic<bool> go{false};
  Clock::time_point start_time;
  auto deadline = Clock::now() + std::chrono::seconds(s.seconds) + 30s;  // reset at go
  std::atomic<std::int64_t> deadline_ns{deadline.time_since_epoch().count()};
  std::vector<std::thread> threads;
  for (int t = 0; t < s.threads; ++t) {
    threads.emplace_back([&, t] {
      Result& r = results[static_cast<std::size_t>(t)];
      int mine = s.connections / s.threads + (t < s.connections % s.threads ? 1 : 0);
      std::vector<std::unique_ptr<eddy::http::Transport>> conns;
      std::vector<ResponseReader> readers(static_cast<std::size_t>(mine));
      double connect_ms = 0;
      for (int c = 0; c < mine; ++c) {
        auto began = Clock::now();
        auto transport = eddy::http::connect(*url, 10s, options);
        connect_ms += std::chrono::duration<double, std::milli>(Clock::now() - began).count();
        if (!transport) {
          std::fprintf(stderr, "connect: %s\n", transport.error().message.c_str());
          ++r.failed;
          continue;
        }
        conns.push_back(std::move(*transport));
      }
      r.connect_ms_avg = conns.empty() ? 0 : connect_ms / static_cast<double>(conns.size());
      ++connected;
      while (!go.load()) std::this_thread::yield();
      std::vector<Clock::time_point> sent(conns.size());
      r.latencies_us.reserve(conns.size() * static_cast<std::size_t>(s.requests));
      for (int i = 0; i < s.requests; ++i) {
        if (Clock::now().time_since_epoch().count() > deadline_ns.load()) break;
        for (std::size_t c = 0; c < conns.size(); ++c) {
          if (!conns[c]) continue;
          sent[c] = Clock::now();
          if (!conns[c]->write_all(request, 10s)) {
            conns[c].reset();
            ++r.failed;
          }
        }
        for (std::size_t c = 0; c < conns.size(); ++c) {
          if (!conns[c]) continue;
          if (!readers[c].read(*conns[c])) {
            conns[c].reset();
            ++r.failed;
            continue;
          }
          ++r.ok;
          r.latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent[c]).count());
        }
      }
    });
  }
  while (connected.load() < s.threads) std::this_thread::sleep_for(1ms);
  start_time = Clock::now();
  deadline_ns = (start_time + std::chrono::seconds(s.seconds)).time_since_epoch().count();
  go = true;
  for (auto& t : threads) t.join();
  Result total;
  total.seconds = std::chrono::duration<double>(Clock::now() - start_time).count();
  for (auto& r : results) {
    total.ok += r.ok;
    total.failed += r.failed;
    total.connect_ms_avg += r.connect_ms_avg / static_cast<double>(results.size());
    total.latencies_us.insert(total.latencies_us.end(), r.latencies_us.begin(), r.latencies_us.end());
  }
  std::sort(total.latencies_us.begin(), total.latencies_us.end());
  return total;
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto index = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

void print(const char* name, const Result& r, const Settings& s) {
  std::printf("%-6s %d connections x %d requests (%d client threads): %llu ok, %llu failed in %.2f s: "
              "%.0f requests/s, latency p50 %.2f ms, p99 %.2f ms; connect%s %.2f ms each\n",
              name, s.connections, s.requests, s.threads, static_cast<unsigned long long>(r.ok),
              static_cast<unsigned long long>(r.failed), r.seconds, static_cast<double>(r.ok) / r.seconds,
              percentile(r.latencies_us, 0.50) / 1000, percentile(r.latencies_us, 0.99) / 1000,
              std::string(name) == "tls" ? "+handshake" : "", r.connect_ms_avg);
  std::fflush(stdout);
}

int shell(const std::string& command) { return std::system(command.c_str()); }

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    int value = std::atoi(argv[i + 1]);
    if (value <= 0) {
      std::fprintf(stderr, "%s: a positive number, please\n", argv[i]);
      return 2;
    }
    if (flag == "--connections") s.connections = value;
    else if (flag == "--requests") s.requests = value;
    else if (flag == "--threads") s.threads = value;
    else if (flag == "--seconds") s.seconds = value;
    else {
      std::fprintf(stderr, "usage: %s [--connections N] [--requests M] [--threads T] [--seconds S]\n", argv[0]);
      return 2;
    }
  }
  s.threads = std::min(s.threads, s.connections);

  char dir_template[] = "/tmp/eddy-http-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return 1;
  std::filesystem::path dir = dir_template;
  std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  if (shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 "
            "-addext subjectAltName=IP:127.0.0.1 -keyout " + key + " -out " + cert + " 2>/dev/null") != 0) {
    std::fprintf(stderr, "openssl could not make a certificate\n");
    return 1;
  }

  eddy::EventLoop loop;
  auto handler = [](eddy::http::ServerRequest request, std::function<void(eddy::http::ServerResponse)> respond) {
    eddy::http::ServerResponse response;
    response.headers["Content-Type"] = "application/json";
    response.body = request.body.empty() ? "{}" : R"({"accepted":true})";
    respond(std::move(response));
  };
  auto plain = eddy::http::Server::start(loop, {}, handler);
  eddy::http::ServerOptions tls_options;
  tls_options.tls_cert = cert;
  tls_options.tls_key = key;
  auto secure = eddy::http::Server::start(loop, tls_options, handler);
  if (!plain || !secure) {
    std::fprintf(stderr, "server: %s\n", (!plain ? plain.error() : secure.error()).message.c_str());
    return 1;
  }
  std::thread server_thread([&] { loop.run(); });  // the server: one thread, as in the hub

  std::string plain_url = "http://127.0.0.1:" + std::to_string((*plain)->port());
  std::string tls_url = "https://127.0.0.1:" + std::to_string((*secure)->port());
  print("plain", run_load(plain_url, s, cert), s);
  print("tls", run_load(tls_url, s, cert), s);

  if (shell("command -v wrk >/dev/null") == 0) {
    std::string script = (dir / "post.lua").string();
    FILE* f = std::fopen(script.c_str(), "w");
    std::string lua = "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[" +
                      report_body + "]]\n";
    std::fwrite(lua.data(), 1, lua.size(), f);
    std::fclose(f);
    std::string command = "wrk -t" + std::to_string(s.threads) + " -c" + std::to_string(s.connections) +
                          " -d5s --latency -s " + script + " " + plain_url + "/v1/reports";
    std::printf("reference: %s\n", command.c_str());
    std::fflush(stdout);
    shell(command + " | grep -E 'Requests/sec|50%|99%|requests in|Socket errors|Non-2xx'");
  }

  loop.post([&] {
    plain->reset();
    secure->reset();
    loop.stop();
  });
  server_thread.join();
  std::filesystem::remove_all(dir);
  return 0;
}
