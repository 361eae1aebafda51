#include "fleet/hub.hpp"

#include "fleet/thread_name.hpp"

#include "platform/fs.hpp"
#include "platform/log.hpp"
#include "platform/systemd.hpp"
#include "storage/state_store.hpp"

namespace eddy::fleet {

namespace {

std::string short_id(std::string_view id) { return std::string(id.substr(0, 7)); }

}  // namespace

Hub::Hub(EventLoop& loop, HubOptions options) : loop_(loop), options_(std::move(options)) {}

Expected<std::unique_ptr<Hub>> Hub::start(EventLoop& loop, HubOptions options) {
  std::unique_ptr<Hub> hub(new Hub(loop, std::move(options)));
  Hub& h = *hub;
  const HubConfig& config = h.options_.config;
  if (!h.options_.clock) h.options_.clock = [] { return storage::unix_now(); };

  if (auto st = fs::create_directories(config.data_dir, 0750); !st) return std::unexpected(st.error());
  auto store = SqliteStore::open(config.data_dir / "hub.db");
  if (!store) return std::unexpected(store.error());
  h.store_ = std::move(*store);
  if (auto st = h.store_->sync_in_background(loop); !st) return std::unexpected(st.error());
  auto device_tokens = TokenFile::load(config.device_tokens);
  if (!device_tokens) return std::unexpected(device_tokens.error().with_context("devices.tokens"));
  h.device_tokens_ = std::make_unique<TokenFile>(std::move(*device_tokens));
  auto operator_tokens = TokenFile::load(config.operator_tokens);
  if (!operator_tokens) return std::unexpected(operator_tokens.error().with_context("operators.tokens"));
  h.operator_tokens_ = std::make_unique<TokenFile>(std::move(*operator_tokens));

  h.director_ = std::make_unique<Director>(*h.store_, h.options_.clock);
  h.options_.webhooks.hooks = config.webhooks;
  h.webhooks_ = std::make_unique<WebhookSender>(h.options_.webhooks);
  h.director_->set_webhook_listener([sender = h.webhooks_.get()](const WebhookEvent& e) { sender->send(e); });

  auto accepted = h.store_->get("accepted_commit");
  if (!accepted) return std::unexpected(accepted.error());
  auto refused = h.store_->get("refused_commit");
  if (!refused) return std::unexpected(refused.error());
  auto follower = Follower::open(
      FollowerOptions{config.source_url, config.source_branch, config.allowed_signers, config.data_dir / "repo.git"},
      accepted->value_or(""), refused->value_or(""));
  if (!follower) return std::unexpected(follower.error());
  h.follower_ = std::move(*follower);
  if (!h.follower_->last_accepted().empty()) {
    // Serve the rollouts of the commit accepted before the restart at once, without the network.
    auto fleet = h.follower_->reload_accepted();
    if (!fleet) {
      log::error("cannot read the accepted fleet commit back: " + fleet.error().message +
                 "; the hub serves no rollout until the next poll accepts a commit");
    } else if (auto st = h.director_->set_fleet(fleet->commit.id, fleet->commit.time, std::move(fleet->fleet)); !st) {
      return std::unexpected(st.error());
    }
  }

  h.api_ = std::make_unique<HubApi>(loop, *h.director_, *h.device_tokens_, *h.operator_tokens_);
  h.api_->set_verdict_listener([&h] { h.request_tick(); });
  http::ServerOptions server_options;
  server_options.listen = config.listen;
  server_options.tls_cert = config.tls_cert;
  server_options.tls_key = config.tls_key;
  server_options.max_body = 1 << 20;
  h.server_loop_ = std::make_unique<EventLoop>();
  h.api_->answer_on(*h.server_loop_);
  auto server = http::Server::start(
      *h.server_loop_, server_options,
      [api = h.api_.get()](http::ServerRequest request, std::function<void(http::ServerResponse)> respond) {
        api->handle(std::move(request), std::move(respond));
      });
  if (!server) return std::unexpected(server.error());
  h.server_ = std::move(*server);
  if (auto st = fs::write_file_atomic(config.data_dir / "url", h.url() + "\n"); !st)
    return std::unexpected(st.error().with_context("write the hub's URL"));

  h.tick_timer_ = loop.every(config.tick, [&h, alive = h.alive_] {
    if (*alive) (void)h.director_->tick();
  });
  loop.post([&h, alive = h.alive_] {
    if (*alive) (void)h.director_->tick();
  });
  h.server_thread_ = std::thread([&h] {
    name_this_thread("hub-http");
    h.server_loop_->run();
  });
  h.follower_thread_ = std::thread([&h] {
    name_this_thread("hub-follow");
    h.follow();
  });
  log::notice("eddy-hub listening on " + h.url() + ", following " + config.source_url + " (" + config.source_branch +
              ")" + (h.director_->commit().empty() ? "" : " from commit " + short_id(h.director_->commit())));
  return hub;
}

Hub::~Hub() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (follower_thread_.joinable()) follower_thread_.join();
  *alive_ = false;
  tick_timer_.cancel();
  // The server's thread calls into api_: it stops before anything it uses goes.
  if (server_thread_.joinable()) {
    server_loop_->stop();
    server_thread_.join();
  }
  server_.reset();
}

std::string Hub::url() const {
  const std::string& listen = options_.config.listen;
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "*" || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  if (host.find(':') != std::string::npos && !host.starts_with('[')) host = "[" + host + "]";
  return std::string(options_.config.tls_cert.empty() ? "http" : "https") + "://" + host + ":" +
         std::to_string(port());
}

void Hub::poll_now() {
  {
    std::lock_guard lock(mutex_);
    poll_requested_ = true;
  }
  wake_.notify_all();
}

void Hub::request_tick() {
  if (tick_pending_) return;
  tick_pending_ = true;
  loop_.post([this, alive = alive_] {
    if (!*alive) return;
    tick_pending_ = false;
    (void)director_->tick();
  });
}

void Hub::follow() {
  for (;;) {
    FollowResult result = follower_->poll();
    if (result.kind == FollowResult::Kind::fetch_failed) {
      log::warning("fetch of the fleet repository failed: " + result.error->message + "; retrying at the next poll");
    } else if (result.kind != FollowResult::Kind::unchanged) {
      // Recorded on the loop's thread (the store's); the follower learns the outcome only once
      // it is recorded, so a result that could not be is judged again at the next poll.
      auto done = std::make_shared<std::promise<bool>>();
      auto future = done->get_future();
      const auto kind = result.kind;
      const std::string commit = result.commit;
      loop_.post([this, alive = alive_, done, r = std::move(result)]() mutable {
        if (!*alive) return done->set_value(false);
        apply(std::move(r), *done);
      });
      while (future.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      if (future.get()) {
        if (kind == FollowResult::Kind::accepted) follower_->mark_accepted(commit);
        else follower_->mark_refused(commit);
      }
    }
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, options_.config.source_interval, [&] { return stopping_ || poll_requested_; });
    if (stopping_) return;
    poll_requested_ = false;
  }
}

void Hub::apply(FollowResult result, std::promise<bool>& done) {
  const std::string id = short_id(result.commit);
  if (result.kind == FollowResult::Kind::refused) {
    const Error& why = *result.error;
    const std::string message = "commit " + id + " refused (" + std::string(why.category()) + "): " + why.message +
                                "; the hub stays on " +
                                (director_->commit().empty() ? "no commit" : "commit " + short_id(director_->commit()));
    log::warning(message);
    auto st = store_->transaction([&]() -> Status {
      if (auto s = store_->put("refused_commit", result.commit); !s) return s;
      return director_->record_hub_event("refused", message);
    });
    if (!st) log::error("cannot record the refusal: " + st.error().message);
    done.set_value(st.has_value());
    return;
  }
  auto& accepted = *result.accepted;
  const std::size_t rollouts = accepted.fleet.rollouts.size();
  auto st = store_->transaction([&]() -> Status {
    if (auto s = store_->put("accepted_commit", result.commit); !s) return s;
    if (auto s = store_->put("refused_commit", ""); !s) return s;
    if (auto s = director_->record_hub_event("accepted", "accepted commit " + id + " \"" + accepted.commit.summary +
                                                             "\" signed by " + accepted.signer.principal);
        !s)
      return s;
    return director_->set_fleet(result.commit, accepted.commit.time, std::move(accepted.fleet));
  });
  if (!st) {
    log::error("cannot record accepted commit " + id + ": " + st.error().message);
    done.set_value(false);
    return;
  }
  log::notice("accepted commit " + id + " signed by " + accepted.signer.principal + ": " + std::to_string(rollouts) +
              " rollouts");
  (void)systemd::notify_status("following commit " + id + ", " + std::to_string(rollouts) + " rollouts");
  done.set_value(true);
  (void)director_->tick();
}

}  // namespace eddy::fleet
