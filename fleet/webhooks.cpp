#include "fleet/webhooks.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "fleet/thread_name.hpp"
#include "platform/http_client.hpp"
#include "platform/log.hpp"

namespace eddy::fleet {

std::string webhook_body(const WebhookEvent& e) {
  return nlohmann::json{{"event", e.kind},           {"rollout", e.rollout}, {"release", e.release},
                        {"generation", e.generation}, {"step", e.step},       {"percent", percent_json(e.percent)},
                        {"at", e.at},                 {"message", e.message}, {"value", e.value},
                        {"threshold", e.threshold}}
      .dump();
}

WebhookSender::WebhookSender(WebhookOptions options) : options_(std::move(options)) {
  if (!options_.hooks.empty())
    thread_ = std::thread([this] {
      name_this_thread("hub-webhooks");
      run();
    });
}

WebhookSender::~WebhookSender() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!queue_.empty())
    log::warning("webhooks: " + std::to_string(queue_.size()) + " deliveries not sent at shutdown");
}

void WebhookSender::send(const WebhookEvent& event) {
  if (options_.hooks.empty()) return;
  const std::string body = webhook_body(event);
  {
    std::lock_guard lock(mutex_);
    for (const auto& hook : options_.hooks) {
      if (std::find(hook.events.begin(), hook.events.end(), event.kind) == hook.events.end()) continue;
      if (queue_.size() >= options_.max_queue) {
        log::error("webhooks: queue full (" + std::to_string(options_.max_queue) + "): dropped a " + queue_.front().kind +
                   " event for " + queue_.front().url);
        queue_.pop_front();
        ++stats_.dropped;
      }
      queue_.push_back(Delivery{hook.url, body, event.kind, 0, std::chrono::steady_clock::now()});
    }
  }
  wake_.notify_all();
}

WebhookStats WebhookSender::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void WebhookSender::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (queue_.empty()) {
      wake_.wait(lock);
      continue;
    }
    auto next = std::min_element(queue_.begin(), queue_.end(),
                                 [](const Delivery& a, const Delivery& b) { return a.due < b.due; });
    if (next->due > std::chrono::steady_clock::now()) {
      wake_.wait_until(lock, next->due);
      continue;
    }
    Delivery delivery = std::move(*next);
    queue_.erase(next);
    lock.unlock();

    http::RequestOptions request;
    request.method = "POST";
    request.headers = {{"Content-Type", "application/json"}, {"User-Agent", "eddy-hub"}};
    request.body = delivery.body;
    request.timeout = options_.timeout;
    auto response = http::request(delivery.url, request);
    const bool ok = response && response->status >= 200 && response->status < 300;
    const std::string why = !response ? response.error().message
                                      : "HTTP " + std::to_string(response ? response->status : 0);

    lock.lock();
    ++stats_.attempts;
    ++delivery.attempts;
    if (ok) {
      ++stats_.delivered;
      continue;
    }
    if (delivery.attempts >= options_.max_attempts) {
      ++stats_.failed;
      log::error("webhook " + delivery.url + ": " + delivery.kind + " event not delivered after " +
                 std::to_string(delivery.attempts) + " attempts; last: " + why);
      continue;
    }
    std::chrono::milliseconds backoff = options_.first_backoff * (std::int64_t{1} << std::min(delivery.attempts - 1, 20));
    backoff = std::min(backoff, options_.max_backoff);
    log::warning("webhook " + delivery.url + ": " + why + "; retrying in " + std::to_string(backoff.count()) + " ms");
    delivery.due = std::chrono::steady_clock::now() + backoff;
    queue_.push_back(std::move(delivery));
  }
}

}  // namespace eddy::fleet
