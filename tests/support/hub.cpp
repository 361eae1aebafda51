#include "tests/support/hub.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

#include "platform/http_client.hpp"
#include "platform/process.hpp"

namespace eddy::testing {

stdfs::path eddy_hub_path() { return EDDY_TEST_EDDY_HUB; }

HubProcess::HubProcess(const stdfs::path& dir, std::string source_url, stdfs::path allowed_signers)
    : dir_(dir), config_(dir / "hub.yaml"), device_tokens_(dir / "device-tokens"),
      operator_tokens_(dir / "operator-tokens"), source_url_(std::move(source_url)),
      allowed_signers_(std::move(allowed_signers)) {
  stdfs::create_directories(dir_);
  write_device_tokens();
  write_file(operator_tokens_, "operator " + operator_token_ + "\n");
}

HubProcess::~HubProcess() {
  if (pid_ > 0 && !stop()) kill9();
}

void HubProcess::write_device_tokens() {
  std::string text = "# <device-id> <token>\n";
  for (const auto& [id, token] : devices_) text += id + " " + token + "\n";
  // Replaced whole, as an operator's editor would: the hub never sees half a file.
  write_file(device_tokens_.string() + ".tmp", text);
  stdfs::rename(device_tokens_.string() + ".tmp", device_tokens_);
}

std::string HubProcess::device_token(const std::string& id) {
  auto it = devices_.find(id);
  if (it != devices_.end()) return it->second;
  std::string token = "device-token-" + id + "-0123456789";
  devices_.emplace(id, token);
  write_device_tokens();
  return token;
}

void HubProcess::revoke_device(const std::string& id) {
  devices_.erase(id);
  write_device_tokens();
}

void HubProcess::write_config(const std::string& tick, const std::string& interval, const std::string& extra,
                              const std::string& listen) {
  write_file(config_, "listen: \"" + listen + "\"\n"
                      "source: {url: \"" + source_url_ + "\", branch: main, interval: " + interval +
                      ", allowed_signers: " + allowed_signers_.string() + "}\n"
                      "data_dir: " + data_dir().string() + "\n"
                      "devices: {tokens: " + device_tokens_.string() + "}\n"
                      "operators: {tokens: " + operator_tokens_.string() + "}\n"
                      "tick: " + tick + "\n" + extra);
}

void HubProcess::start(const std::map<std::string, std::string>& env) {
  if (!stdfs::exists(config_)) write_config();
  stdfs::remove(data_dir() / "url");
  int log_fd = ::open((dir_ / "eddy-hub.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open eddy-hub.log");
  auto pid = process::spawn(with_emulator({eddy_hub_path().string(), "--config", config_.string()}), dir_, env, log_fd);
  ::close(log_fd);
  if (!pid) throw std::runtime_error("cannot start eddy-hub: " + pid.error().message);
  pid_ = *pid;
  bool ready = wait_until([&] {
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return stdfs::exists(data_dir() / "url");
  });
  if (!ready || pid_ < 0) throw std::runtime_error("eddy-hub did not start; log:\n" + log());
  url_ = read_file(data_dir() / "url");
  while (!url_.empty() && url_.back() == '\n') url_.pop_back();
}

std::optional<int> HubProcess::stop() {
  if (pid_ <= 0) return 0;
  ::kill(pid_, SIGTERM);
  int status = 0;
  bool exited = wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, std::chrono::seconds(30));
  if (!exited) return std::nullopt;
  pid_ = -1;
  return status;
}

void HubProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string HubProcess::log() const {
  try {
    return read_file(dir_ / "eddy-hub.log");
  } catch (...) {
    return {};
  }
}

HubProcess::Reply HubProcess::request(const std::string& method, const std::string& target, const std::string& token,
                                      const std::string& body) const {
  http::RequestOptions options;
  options.method = method;
  if (!token.empty()) options.headers["Authorization"] = "Bearer " + token;
  if (!body.empty()) options.headers["Content-Type"] = "application/json";
  options.body = body;
  if (!ca_file_.empty()) options.ca_file = ca_file_;
  auto response = http::request(url_ + target, options);
  if (!response) throw std::runtime_error(method + " " + url_ + target + ": " + response.error().message);
  Reply reply{response->status, nlohmann::json::parse(response->body, nullptr, false), response->body};
  if (reply.json.is_discarded()) reply.json = nullptr;
  return reply;
}

}  // namespace eddy::testing
