// eddy-hub's wiring: the store, the director ticking on the event loop, the HTTP(S) server
// answering the API, the follower of the fleet repository on a thread of its own (a fetch
// never stalls the API), and the webhook sender. Everything that touches the store runs on the
// event loop's thread. The HTTP(S) server runs on a loop and thread of its own: reading,
// TLS, HTTP parsing, token checks, JSON parsing and writing answers happen there, beside the
// store's thread (on a machine with more than one core, the two work at once).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "fleet/api.hpp"
#include "fleet/config.hpp"
#include "fleet/director.hpp"
#include "fleet/follower.hpp"
#include "fleet/store.hpp"
#include "fleet/tokens.hpp"
#include "fleet/webhooks.hpp"
#include "platform/event_loop.hpp"
#include "platform/http_server.hpp"

namespace eddy::fleet {

struct HubOptions {
  HubConfig config;
  Clock clock;  // unix seconds; empty: the system clock
  WebhookOptions webhooks;  // hooks are taken from config.webhooks
};

class Hub {
 public:
  // Open the store and the repository, restore the accepted fleet, listen, and start following.
  // Call on the loop's thread or before the loop runs. When it returns the port is bound and
  // <data_dir>/url holds the hub's base URL ("http://127.0.0.1:PORT").
  static Expected<std::unique_ptr<Hub>> start(EventLoop& loop, HubOptions options);
  // Stops following (joins the thread), the timers and the server. Call on the loop's thread,
  // or once the loop no longer runs.
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  std::uint16_t port() const { return server_->port(); }
  std::string url() const;
  Director& director() { return *director_; }
  const WebhookSender& webhooks() const { return *webhooks_; }
  // Poll the fleet repository now (instead of at the next interval). Thread-safe.
  void poll_now();

 private:
  Hub(EventLoop& loop, HubOptions options);
  void follow();  // the follower thread
  void apply(FollowResult result, std::promise<bool>& done);
  void request_tick();

  EventLoop& loop_;
  HubOptions options_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<TokenFile> device_tokens_, operator_tokens_;
  std::unique_ptr<Director> director_;
  std::unique_ptr<HubApi> api_;
  std::unique_ptr<WebhookSender> webhooks_;
  std::unique_ptr<Follower> follower_;
  std::unique_ptr<EventLoop> server_loop_;  // before server_: the server is destroyed first
  std::unique_ptr<http::Server> server_;
  std::thread server_thread_;  // runs server_loop_
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // loop-thread lambdas check it
  TimerHandle tick_timer_;
  bool tick_pending_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool poll_requested_ = false;
  std::thread follower_thread_;
};

}  // namespace eddy::fleet
