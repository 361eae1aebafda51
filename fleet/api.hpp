// The hub's HTTP API (fleet/API.md): device sync and reports, the operator routes, /metrics
// and the web page, mapped onto the Director. Transport-free: handle() takes a parsed request
// and answers it through a callback, so the same code serves plain HTTP and HTTPS
// (fleet/hub.hpp wires it to platform/http_server).
//
// Two threads: handle() runs on the server's thread, where a device's route, token and JSON
// body are checked and parsed (what costs CPU without touching the store); what needs the
// Director (a device's writes, the operator routes, /metrics) is posted to `loop`, the thread
// that owns the Director and its store. A device's requests come one at a time on its
// connection and are posted in the order they arrive, so its reports are stored in order.
//
// Group commit: what devices write (syncs and report batches) is not committed one request at
// a time (each commit waits for the disk). The requests that arrive while the loop is busy are
// applied together in one transaction, each in a savepoint of its own (a request that fails
// undoes only its own writes), and each is answered only once that transaction has committed:
// nothing is acknowledged before it is durable, and a crash before the commit acknowledges
// nothing of the group.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "fleet/director.hpp"
#include "fleet/tokens.hpp"
#include "platform/event_loop.hpp"
#include "platform/http_server.hpp"

namespace eddy::fleet {

// The web view (fleet/web/index.html), compiled in by cmake/EmbedFile.cmake.
std::string_view web_page();

// At most this many reports in one request (devices send their outbox in batches).
inline constexpr std::size_t max_reports_per_request = 100;

class HubApi {
 public:
  using Respond = std::function<void(http::ServerResponse)>;

  HubApi(EventLoop& loop, Director& director, TokenFile& device_tokens, TokenFile& operator_tokens);
  ~HubApi();
  HubApi(const HubApi&) = delete;
  HubApi& operator=(const HubApi&) = delete;

  // Answer `request` through `respond`: at once (a refusal, the web page), from the loop's
  // thread (operator routes, /metrics), or, for a device's sync or reports, after the group
  // commit that holds its writes. Any one thread at a time (the server's); `respond` may be
  // called from the loop's thread.
  void handle(http::ServerRequest request, Respond respond);

  // Called after a report batch that brought a verdict (an outcome) was committed, so the
  // director can look again before its next tick.
  void set_verdict_listener(std::function<void()> listener) { on_verdict_ = std::move(listener); }

  // Hand the answers to device writes over to `loop` (the server's), one post a group commit,
  // instead of answering each from the store's thread (each answer a post of its own there).
  // Before the server starts.
  void answer_on(EventLoop& loop) { answer_loop_ = &loop; }

  std::uint64_t reports_total() const { return reports_total_; }
  std::uint64_t reports_duplicate_total() const { return reports_duplicate_total_; }

 private:
  // What a device request did inside the group's transaction: its answer, and what to do once
  // the transaction has committed (count, wake the director).
  struct Applied {
    http::ServerResponse response;
    std::function<void()> on_commit;
  };
  // A device request waiting for the next group commit.
  struct Write {
    std::function<Applied()> apply;
    Respond respond;
  };

  // Answer with what `answer` returns on the loop's thread (the Director's). Any thread.
  void on_loop(std::function<http::ServerResponse()> answer, Respond respond);
  // An operator's route (/v1/rollouts..., /v1/devices, /v1/events), its token checked: on the
  // loop's thread.
  http::ServerResponse operator_route(const http::ServerRequest& request, const std::vector<std::string>& parts,
                                      const std::string& operator_name);
  void sync(const http::ServerRequest& request, const std::string& device, Respond respond);
  void reports(const http::ServerRequest& request, const std::string& device, Respond respond);
  // Queue `apply` for the next group commit on the loop. Any thread.
  void enqueue(std::function<Applied()> apply, Respond respond);
  void commit_group();
  http::ServerResponse rollouts();
  http::ServerResponse rollout(const std::string& name);
  http::ServerResponse command(const std::string& name, const std::string& verb, const std::string& by);
  http::ServerResponse devices(const http::ServerRequest& request);
  http::ServerResponse events(const http::ServerRequest& request);
  http::ServerResponse metrics();

  EventLoop& loop_;
  EventLoop* answer_loop_ = nullptr;  // answer_on()
  Director& director_;
  TokenFile& device_tokens_;
  TokenFile& operator_tokens_;
  std::function<void()> on_verdict_;
  std::uint64_t reports_total_ = 0;  // these two: loop thread
  std::uint64_t reports_duplicate_total_ = 0;
  std::mutex group_mutex_;
  std::vector<Write> group_;  // waiting for commit_group(), which is posted once; group_mutex_
  // For what is posted to the loop (checked there): false once this is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace eddy::fleet
