#include "daemon/control_server.hpp"

#include <atomic>
#include <exception>
#include <list>
#include <thread>

#include "platform/log.hpp"
#include "platform/unix_socket_server.hpp"

namespace eddy::daemon {

namespace {

constexpr std::size_t max_request_bytes = 64 * 1024;
constexpr int max_history_limit = 10000;

std::string dump(const nlohmann::json& value) {
  // Invalid UTF-8 (a commit message, a probe's output) must not make the reply throw.
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct Request {
  std::string command;
  int limit = 50;
  std::string target;
};

Expected<Request> parse_request(const std::string& line) {
  auto json = nlohmann::json::parse(line, nullptr, false);
  if (json.is_discarded())
    return make_error(Errc::invalid_argument, "request is not valid JSON; send one object per line, like "
                                              "{\"command\":\"status\"}");
  if (!json.is_object())
    return make_error(Errc::invalid_argument, "request must be a JSON object, like {\"command\":\"status\"}");
  auto command = json.find("command");
  if (command == json.end() || !command->is_string())
    return make_error(Errc::invalid_argument, "request has no \"command\" string (status, history, check, rollback)");
  Request request;
  request.command = command->get<std::string>();
  std::vector<std::string> allowed{"command"};
  if (request.command == "history") {
    allowed.push_back("limit");
    if (auto limit = json.find("limit"); limit != json.end()) {
      if (!limit->is_number_integer() || limit->get<std::int64_t>() < 1 ||
          limit->get<std::int64_t>() > max_history_limit)
        return make_error(Errc::invalid_argument,
                          "history: \"limit\" must be a whole number from 1 to " + std::to_string(max_history_limit));
      request.limit = limit->get<int>();
    }
  } else if (request.command == "rollback") {
    allowed.push_back("target");
    if (auto target = json.find("target"); target != json.end() && !target->is_null()) {
      if (!target->is_string()) return make_error(Errc::invalid_argument, "rollback: \"target\" must be a string");
      request.target = target->get<std::string>();
    }
  } else if (request.command != "status" && request.command != "check") {
    return make_error(Errc::invalid_argument, "unknown command \"" + request.command +
                                                  "\" (known: status, history, check, rollback)");
  }
  for (const auto& [key, value] : json.items())
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      return make_error(Errc::invalid_argument, request.command + ": unknown field \"" + key + "\"");
  return request;
}

}  // namespace

std::string ok_response(const nlohmann::json& result) { return dump({{"ok", true}, {"result", result}}); }

std::string error_response(const Error& error) {
  return dump({{"ok", false}, {"error", {{"code", std::string(errc_name(error.code))}, {"message", error.message}}}});
}

struct ControlServer::State {
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };

  ControlHandler& handler;
  ControlServerOptions options;
  std::unique_ptr<UnixSocketServer> server;
  std::list<Worker> workers;  // touched on the loop thread only (and by the destructor)

  State(ControlHandler& h, ControlServerOptions o) : handler(h), options(std::move(o)) {}

  void reap() {
    for (auto it = workers.begin(); it != workers.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = workers.erase(it);
      } else {
        ++it;
      }
    }
  }

  void handle(const std::string& line, UnixSocketServer::Reply reply) {
    auto request = parse_request(line);
    if (!request) return reply(error_response(request.error()));
    const auto& command = request->command;
    try {
      if (command == "status") return reply(ok_response(handler.status()));
      if (command == "history") return reply(ok_response(handler.history(request->limit)));
    } catch (const std::exception& e) {
      log::error("bug: control command " + command + " threw: " + e.what());
      return reply(error_response({Errc::internal, command + " failed: " + e.what()}));
    }
    // check and rollback block: they run on a thread of their own and reply from there.
    reap();
    if (workers.size() >= static_cast<std::size_t>(options.max_blocking_calls))
      return reply(error_response({Errc::conflict, command + ": " + std::to_string(workers.size()) +
                                                       " check/rollback requests are already running; retry later"}));
    auto done = std::make_shared<std::atomic<bool>>(false);
    auto& handler_ref = handler;
    std::thread thread([&handler_ref, request = *request, reply = std::move(reply), done] {
      try {
        auto result = request.command == "check" ? handler_ref.check() : handler_ref.rollback(request.target);
        reply(result ? ok_response(*result) : error_response(result.error()));
      } catch (const std::exception& e) {
        log::error("bug: control command " + request.command + " threw: " + e.what());
        reply(error_response({Errc::internal, request.command + " failed: " + e.what()}));
      }
      done->store(true);
    });
    workers.push_back({std::move(thread), std::move(done)});
  }
};

ControlServer::ControlServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

Expected<std::unique_ptr<ControlServer>> ControlServer::start(EventLoop& loop, ControlServerOptions options,
                                                              ControlHandler& handler) {
  auto state = std::make_unique<State>(handler, options);
  UnixSocketOptions socket_options;
  socket_options.path = options.socket;
  socket_options.group = options.group;
  socket_options.mode = options.mode;
  socket_options.max_request = max_request_bytes;
  socket_options.oversized_reply =
      error_response({Errc::too_large, "request is larger than " + std::to_string(max_request_bytes / 1024) +
                                           " KiB; requests are one short JSON object per line"});
  auto* raw = state.get();
  auto server = UnixSocketServer::listen(loop, std::move(socket_options),
                                         [raw](std::string line, UnixSocketServer::Reply reply) {
                                           raw->handle(line, std::move(reply));
                                         });
  if (!server) return std::unexpected(server.error());
  state->server = std::move(*server);
  return std::make_unique<ControlServer>(std::move(state));
}

ControlServer::~ControlServer() {
  state_->server.reset();
  for (auto& worker : state_->workers) worker.thread.join();
}

}  // namespace eddy::daemon
