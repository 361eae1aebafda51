// Webhook alerts (fleet/API.md, "Webhooks"): each event goes to every configured URL whose
// `events` include its kind, as a JSON POST from a thread of its own, so neither the director
// nor the HTTP loop ever waits on a slow or dead endpoint. A delivery that fails (no answer,
// or a status other than 2xx) is retried with exponential backoff up to max_attempts times,
// then dropped with an error in the log; the queue is bounded (the oldest delivery is dropped
// when it is full). Deliveries live in memory: a hub restart drops the ones pending.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fleet/config.hpp"
#include "fleet/director.hpp"

namespace eddy::fleet {

struct WebhookOptions {
  std::vector<WebhookConfig> hooks;
  int max_attempts = 6;
  std::chrono::milliseconds first_backoff{1000};  // doubles after each failed attempt
  std::chrono::milliseconds max_backoff{60000};
  std::chrono::milliseconds timeout{10000};  // of one attempt
  std::size_t max_queue = 1000;
};

struct WebhookStats {
  std::uint64_t delivered = 0, failed = 0, dropped = 0, attempts = 0;
};

// The JSON body of an event.
std::string webhook_body(const WebhookEvent& event);

class WebhookSender {
 public:
  explicit WebhookSender(WebhookOptions options);
  ~WebhookSender();  // stops the thread; pending deliveries are dropped (logged)
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  // Queue the event for every hook that wants its kind. Never blocks on the network.
  void send(const WebhookEvent& event);
  WebhookStats stats() const;

 private:
  struct Delivery {
    std::string url, body, kind;
    int attempts = 0;
    std::chrono::steady_clock::time_point due;
  };
  void run();

  WebhookOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Delivery> queue_;
  WebhookStats stats_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace eddy::fleet
