#include "fleet/config.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <set>
#include <yaml-cpp/yaml.h>

#include "fleet/tokens.hpp"
#include "ota/trust.hpp"
#include "platform/duration.hpp"
#include "platform/fs.hpp"

namespace eddy::fleet {

namespace {

namespace stdfs = std::filesystem;

struct Section {
  std::string_view name;  // as users write the path: "source", "webhooks[]"
  std::vector<std::string_view> keys;
};

const Section top_section{"", {"listen", "tls", "source", "data_dir", "devices", "operators", "tick", "webhooks",
                               "log_level"}};
const Section tls_section{"tls", {"cert", "key"}};
const Section source_section{"source", {"url", "branch", "interval", "allowed_signers"}};
const Section devices_section{"devices", {"tokens"}};
const Section operators_section{"operators", {"tokens"}};
const Section webhook_section{"webhooks[]", {"url", "events"}};
const std::array<const Section*, 6> sections{&top_section,     &tls_section,       &source_section,
                                             &devices_section, &operators_section, &webhook_section};

std::string list_text(const std::vector<std::string_view>& words) {
  std::string out;
  for (auto w : words) out += (out.empty() ? "" : ", ") + std::string(w);
  return out;
}

// Where a misplaced key belongs, or the keys this section knows.
std::string hint_for(std::string_view key, const Section& section) {
  for (const auto* other : sections) {
    if (other == &section) continue;
    if (std::find(other->keys.begin(), other->keys.end(), key) != other->keys.end())
      return other->name.empty() ? " (it belongs at the top level)" : " (it belongs under `" + std::string(other->name) + "`)";
  }
  return " (known keys: " + list_text(section.keys) + ")";
}

class Parser {
 public:
  explicit Parser(stdfs::path file) : file_(std::move(file)) {
    std::error_code ec;
    auto absolute = stdfs::absolute(file_, ec);
    base_ = ec ? file_.parent_path() : absolute.parent_path();
  }

  Expected<HubConfig> parse(std::string_view text);

 private:
  std::unexpected<Error> fail(const YAML::Node& node, const std::string& message) const {
    auto mark = node.Mark();
    std::string where = file_.string();
    if (mark.line >= 0) where += ":" + std::to_string(mark.line + 1);
    return make_error(Errc::invalid_argument, where + ": " + message);
  }

  static std::string describe(const YAML::Node& node) {
    if (node.IsScalar()) return "`" + node.Scalar() + "`";
    if (node.IsSequence()) return "a list";
    if (node.IsMap()) return "a mapping";
    return "nothing";
  }

  using Entries = std::vector<std::pair<std::string, YAML::Node>>;

  Expected<Entries> entries(const YAML::Node& node, const Section& section, const std::string& what) const {
    if (!node.IsMap()) return fail(node, what + " must be a mapping of keys, got " + describe(node));
    Entries out;
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) return fail(it->first, "keys of " + what + " must be plain words");
      std::string key = it->first.Scalar();
      if (!seen.insert(key).second) return fail(it->first, "key `" + key + "` appears twice in " + what);
      if (std::find(section.keys.begin(), section.keys.end(), key) == section.keys.end())
        return fail(it->first, "unknown key `" + key + "` in " + what + hint_for(key, section));
      out.emplace_back(key, it->second);
    }
    return out;
  }

  Expected<std::string> text(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) return fail(node, "`" + key + "` must be a text value, got " + describe(node));
    if (node.Scalar().empty()) return fail(node, "`" + key + "` must not be empty");
    return node.Scalar();
  }

  Expected<stdfs::path> path(const YAML::Node& node, const std::string& key) const {
    auto t = text(node, key);
    if (!t) return std::unexpected(t.error());
    stdfs::path p(*t);
    return (p.is_absolute() ? p : base_ / p).lexically_normal();
  }

  Expected<std::chrono::milliseconds> duration(const YAML::Node& node, const std::string& key) const {
    auto t = text(node, key);
    if (!t) return std::unexpected(t.error());
    auto d = parse_duration(*t);
    if (!d) return fail(node, key + ": " + d.error().message);
    if (d->count() <= 0) return fail(node, key + " must be longer than 0s");
    return *d;
  }

  // A section whose only key is `tokens` (devices, operators).
  Expected<stdfs::path> tokens_file(const YAML::Node& node, const Section& section) const {
    auto items = entries(node, section, "`" + std::string(section.name) + "`");
    if (!items) return std::unexpected(items.error());
    if (items->empty())
      return fail(node, "`" + std::string(section.name) + "` has no `tokens` (the file of \"<name> <token>\" lines)");
    return path(items->front().second, std::string(section.name) + ".tokens");
  }

  Status parse_tls(const YAML::Node& node, HubConfig& config) const;
  Status parse_source(const YAML::Node& node, HubConfig& config) const;
  Status parse_webhooks(const YAML::Node& node, HubConfig& config) const;

  stdfs::path file_;
  stdfs::path base_;
};

Status Parser::parse_tls(const YAML::Node& node, HubConfig& config) const {
  auto items = entries(node, tls_section, "`tls`");
  if (!items) return std::unexpected(items.error());
  for (const auto& [key, value] : *items) {
    auto p = path(value, "tls." + key);
    if (!p) return std::unexpected(p.error());
    (key == "cert" ? config.tls_cert : config.tls_key) = *p;
  }
  if (config.tls_cert.empty() || config.tls_key.empty())
    return fail(node, "`tls` needs both `cert` and `key` (PEM files), or leave `tls` out for plain HTTP on loopback");
  return {};
}

Status Parser::parse_source(const YAML::Node& node, HubConfig& config) const {
  auto items = entries(node, source_section, "`source`");
  if (!items) return std::unexpected(items.error());
  for (const auto& [key, value] : *items) {
    if (key == "url") {
      auto url = text(value, "source.url");
      if (!url) return std::unexpected(url.error());
      static constexpr std::array<std::string_view, 6> schemes{"file://", "git://",  "http://",
                                                               "https://", "ssh://", "git+ssh://"};
      if (std::none_of(schemes.begin(), schemes.end(), [&](auto s) { return url->starts_with(s); }))
        return fail(value, "source.url `" + *url +
                               "` must start with file://, git://, http://, https:// or ssh:// "
                               "(write ssh://git@host/path.git rather than git@host:path.git)");
      config.source_url = *url;
    } else if (key == "branch") {
      auto branch = text(value, "source.branch");
      if (!branch) return std::unexpected(branch.error());
      config.source_branch = *branch;
    } else if (key == "interval") {
      auto interval = duration(value, "source.interval");
      if (!interval) return std::unexpected(interval.error());
      config.source_interval = *interval;
    } else if (key == "allowed_signers") {
      auto p = path(value, "source.allowed_signers");
      if (!p) return std::unexpected(p.error());
      config.allowed_signers = *p;
    }
  }
  if (config.source_url.empty()) return fail(node, "`source` has no `url` (the fleet repository to follow)");
  if (config.allowed_signers.empty())
    return fail(node, "`source` has no `allowed_signers` (the file of keys whose signed commits are accepted)");
  return {};
}

Status Parser::parse_webhooks(const YAML::Node& node, HubConfig& config) const {
  if (node.IsNull()) return {};
  if (!node.IsSequence())
    return fail(node, "`webhooks` must be a list like [{url: \"https://chat.example.com/hook\", events: [halt]}], got " +
                          describe(node));
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node hook = node[i];
    const std::string where = "webhooks[" + std::to_string(i) + "]";
    auto items = entries(hook, webhook_section, "`" + where + "`");
    if (!items) return std::unexpected(items.error());
    WebhookConfig webhook;
    bool have_events = false;
    for (const auto& [key, value] : *items) {
      if (key == "url") {
        auto url = text(value, where + ".url");
        if (!url) return std::unexpected(url.error());
        if (!url->starts_with("https://") && !url->starts_with("http://"))
          return fail(value, where + ".url `" + *url + "` must start with https:// or http://");
        webhook.url = *url;
      } else if (key == "events") {
        have_events = true;
        if (!value.IsSequence() || value.size() == 0)
          return fail(value, where + ".events must be a non-empty list of step, halt, complete, rollback; got " +
                                 describe(value));
        for (const auto& kind : value) {
          auto name = text(kind, where + ".events");
          if (!name) return std::unexpected(name.error());
          if (std::find(std::begin(webhook_kinds), std::end(webhook_kinds), *name) == std::end(webhook_kinds))
            return fail(kind, where + ".events: unknown event `" + *name + "` (one of: step, halt, complete, rollback)");
          if (std::find(webhook.events.begin(), webhook.events.end(), *name) == webhook.events.end())
            webhook.events.push_back(*name);
        }
      }
    }
    if (webhook.url.empty()) return fail(hook, "`" + where + "` has no `url`");
    if (!have_events) webhook.events.assign(std::begin(webhook_kinds), std::end(webhook_kinds));
    config.webhooks.push_back(std::move(webhook));
  }
  return {};
}

Expected<HubConfig> Parser::parse(std::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    std::string where = file_.string();
    if (e.mark.line >= 0) where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    return make_error(Errc::invalid_argument, where + ": not valid YAML: " + e.msg);
  }
  if (!root.IsDefined() || root.IsNull())
    return make_error(Errc::invalid_argument,
                      file_.string() + ": the configuration is empty (it needs at least listen, source, devices and "
                                       "operators; see DESIGN.md, \"Hub configuration\")");
  HubConfig config;
  config.file = file_;
  auto items = entries(root, top_section, "the configuration");
  if (!items) return std::unexpected(items.error());
  const YAML::Node* listen_node = nullptr;
  for (const auto& [key, value] : *items) {
    Status status;
    if (key == "listen") {
      auto listen = text(value, "listen");
      if (!listen) return std::unexpected(listen.error());
      config.listen = *listen;
      listen_node = &value;
    } else if (key == "tls") {
      if (!value.IsNull()) status = parse_tls(value, config);
    } else if (key == "source") {
      status = parse_source(value, config);
    } else if (key == "data_dir") {
      auto p = path(value, "data_dir");
      if (!p) return std::unexpected(p.error());
      config.data_dir = *p;
    } else if (key == "devices" || key == "operators") {
      auto p = tokens_file(value, key == "devices" ? devices_section : operators_section);
      if (!p) return std::unexpected(p.error());
      (key == "devices" ? config.device_tokens : config.operator_tokens) = *p;
    } else if (key == "tick") {
      auto tick = duration(value, "tick");
      if (!tick) return std::unexpected(tick.error());
      config.tick = *tick;
    } else if (key == "webhooks") {
      status = parse_webhooks(value, config);
    } else if (key == "log_level") {
      auto level = text(value, "log_level");
      if (!level) return std::unexpected(level.error());
      static constexpr std::array<std::string_view, 5> levels{"error", "warning", "notice", "info", "debug"};
      if (std::find(levels.begin(), levels.end(), *level) == levels.end())
        return fail(value, "unknown log_level `" + *level + "` (one of: error, warning, notice, info, debug)");
      config.log_level = *level;
    }
    if (!status) return std::unexpected(status.error());
  }
  if (config.listen.empty())
    return fail(root, "there is no `listen` (the address to serve on, like \"127.0.0.1:8080\", or \"0.0.0.0:8443\" "
                      "with `tls`)");
  if (config.source_url.empty())
    return fail(root, "there is no `source` section (the signed fleet repository to follow: url, allowed_signers)");
  if (config.device_tokens.empty())
    return fail(root, "there is no `devices: {tokens: FILE}` (the devices' tokens, one \"<device-id> <token>\" a line)");
  if (config.operator_tokens.empty())
    return fail(root, "there is no `operators: {tokens: FILE}` (the operators' tokens, one \"<name> <token>\" a line)");
  if (config.tls_cert.empty() && !is_loopback_listen(config.listen))
    return fail(*listen_node, "listen `" + config.listen +
                                  "` is not a loopback address, and without `tls` the hub would take device and "
                                  "operator tokens in clear text over the network: add `tls: {cert, key}`, or listen "
                                  "on 127.0.0.1 behind a TLS proxy");
  return config;
}

void check_readable(const stdfs::path& file, const std::string& key, std::vector<Error>& problems) {
  if (auto content = fs::read_file(file, 16u << 20); !content) problems.push_back(content.error().with_context(key));
}

}  // namespace

bool is_loopback_listen(std::string_view listen) {
  auto colon = listen.rfind(':');
  std::string host(listen.substr(0, colon == std::string_view::npos ? listen.size() : colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

Expected<HubConfig> parse_hub_config(std::string_view yaml, const std::filesystem::path& file) {
  try {
    return Parser(file).parse(yaml);
  } catch (const YAML::Exception& e) {
    // yaml-cpp reports some problems only while nodes are walked.
    return make_error(Errc::invalid_argument, file.string() + ": not valid YAML: " + e.msg);
  }
}

Expected<HubConfig> load_hub_config(const std::filesystem::path& file) {
  auto text = fs::read_file(file, 4u << 20);
  if (!text) return std::unexpected(text.error().with_context("read configuration"));
  return parse_hub_config(*text, file);
}

Status check_hub_config(const HubConfig& config) {
  std::vector<Error> problems;
  if (auto signers = ota::AllowedSigners::load(config.allowed_signers); !signers)
    problems.push_back(signers.error().with_context("source.allowed_signers"));
  else if (signers->size() == 0)
    problems.push_back({Errc::invalid_argument, "source.allowed_signers " + config.allowed_signers.string() +
                                                    " lists no key: no commit could ever be accepted"});
  for (auto [file, key] : {std::pair{&config.device_tokens, "devices.tokens"},
                           std::pair{&config.operator_tokens, "operators.tokens"}}) {
    auto tokens = TokenFile::load(*file);
    if (!tokens) problems.push_back(tokens.error().with_context(key));
  }
  if (!config.tls_cert.empty()) {
    check_readable(config.tls_cert, "tls.cert", problems);
    check_readable(config.tls_key, "tls.key", problems);
  }
  if (auto made = fs::create_directories(config.data_dir, 0750); !made)
    problems.push_back(made.error().with_context("data_dir"));
  else if (::access(config.data_dir.c_str(), W_OK | X_OK) != 0)
    problems.push_back(errno_error(errno, "data_dir: cannot write to", config.data_dir.string()));

  if (problems.empty()) return {};
  if (problems.size() == 1) return std::unexpected(problems[0].with_context(config.file.string()));
  std::string message = config.file.string() + ": " + std::to_string(problems.size()) + " problems:";
  for (const auto& problem : problems) message += "\n  - " + problem.message;
  return make_error(problems[0].code, std::move(message));
}

}  // namespace eddy::fleet
