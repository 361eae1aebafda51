#include "cli/hub_api.hpp"

#include <yaml-cpp/yaml.h>
#include <cstdlib>
#include <set>

#include "platform/duration.hpp"
#include "platform/fs.hpp"
#include "platform/http_client.hpp"

namespace eddy::cli {

namespace {

namespace stdfs = std::filesystem;

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

std::optional<std::string> non_empty(const Environment& env, const char* name) {
  auto value = env(name);
  if (!value || value->empty()) return std::nullopt;
  return value;
}

stdfs::path expand_home(const std::string& path, const Environment& env, const stdfs::path& base) {
  if (path.starts_with("~/")) {
    if (auto home = non_empty(env, "HOME")) return stdfs::path(*home) / path.substr(2);
  }
  stdfs::path p(path);
  return p.is_absolute() || base.empty() ? p : (base / p).lexically_normal();
}

// cli.yaml's settings; every field empty when the file does not exist.
struct CliConfig {
  std::string url;
  stdfs::path token_file;
  stdfs::path ca_file;
};

Expected<CliConfig> load_cli_config(const stdfs::path& file, const Environment& env) {
  CliConfig config;
  std::error_code ec;
  if (file.empty() || !stdfs::exists(file, ec)) return config;
  auto text = fs::read_file(file, 1 << 20);
  if (!text) return std::unexpected(text.error().with_context("eddy configuration"));
  auto at = [&](const YAML::Node& node) {
    auto mark = node.Mark();
    return file.string() + (mark.line >= 0 ? ":" + std::to_string(mark.line + 1) : std::string());
  };
  auto fail = [&](const YAML::Node& node, const std::string& message) {
    return make_error(Errc::invalid_argument, at(node) + ": " + message);
  };
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return make_error(Errc::invalid_argument,
                      file.string() + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  if (root.IsNull()) return config;
  if (!root.IsMap()) return fail(root, "must be a mapping with the key `hub`");
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.IsScalar() ? it->first.Scalar() : std::string();
    if (key != "hub")
      return fail(it->first,
                  "unknown key `" + key + "` (the file has one section, `hub`, with url, token_file, ca_file)");
    const YAML::Node hub = it->second;  // a copy: it->second lives in the iterator's proxy
    if (!hub.IsMap()) return fail(hub, "`hub` must be a mapping with url, token_file, ca_file");
    std::set<std::string> seen;
    for (auto h = hub.begin(); h != hub.end(); ++h) {
      const std::string name = h->first.IsScalar() ? h->first.Scalar() : std::string();
      if (name != "url" && name != "token_file" && name != "ca_file")
        return fail(h->first, "unknown key `" + name + "` in hub (known keys: url, token_file, ca_file)");
      if (!seen.insert(name).second) return fail(h->first, "key `" + name + "` appears twice in hub");
      if (!h->second.IsScalar() || h->second.Scalar().empty())
        return fail(h->second, "`hub." + name + "` must be a non-empty text value");
      const std::string& value = h->second.Scalar();
      if (name == "url")
        config.url = value;
      else if (name == "token_file")
        config.token_file = expand_home(value, env, file.parent_path());
      else
        config.ca_file = expand_home(value, env, file.parent_path());
    }
  }
  return config;
}

Expected<std::string> read_token(const stdfs::path& file, const std::string& source) {
  auto text = fs::read_file(file, 64 * 1024);
  if (!text)
    return make_error(text.error().code == Errc::not_found ? Errc::not_found : Errc::invalid_argument,
                      "cannot read the operator token from " + source + ": " + text.error().message);
  auto token = trim(*text);
  if (token.empty())
    return make_error(Errc::invalid_argument,
                      "the operator token file " + file.string() + " (" + source +
                          ") is empty: put the token of a line of the hub's operators.tokens in it");
  if (token.find_first_of(" \t\r\n") != std::string::npos)
    return make_error(Errc::invalid_argument, "the operator token file " + file.string() + " (" + source +
                                                  ") holds more than one word: it must hold the token alone, "
                                                  "not the `<name> <token>` line of operators.tokens");
  return token;
}

bool unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string percent_encode(std::string_view text, std::string_view keep) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    if (unreserved(c) || keep.find(c) != std::string_view::npos) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += digits[byte >> 4];
      out += digits[byte & 0xF];
    }
  }
  return out;
}

}  // namespace

Environment process_environment() {
  return [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    if (!value) return std::nullopt;
    return std::string(value);
  };
}

stdfs::path default_cli_config(const Environment& env) {
  if (auto xdg = non_empty(env, "XDG_CONFIG_HOME")) return stdfs::path(*xdg) / "eddy" / "cli.yaml";
  if (auto home = non_empty(env, "HOME")) return stdfs::path(*home) / ".config" / "eddy" / "cli.yaml";
  return {};
}

Expected<HubSettings> resolve_hub_settings(const HubFlags& flags, const Environment& env,
                                           const stdfs::path& cli_config) {
  auto config = load_cli_config(cli_config, env);
  if (!config) return std::unexpected(config.error());
  HubSettings settings;

  if (!flags.url.empty())
    settings.url = flags.url;
  else if (auto url = non_empty(env, "EDDY_HUB"))
    settings.url = *url;
  else
    settings.url = config->url;
  if (settings.url.empty())
    return make_error(Errc::invalid_argument,
                      "no hub given: pass --hub https://HOST:PORT, set $EDDY_HUB, or write `hub: {url: ...}` into " +
                          (cli_config.empty() ? std::string("~/.config/eddy/cli.yaml") : cli_config.string()));
  while (settings.url.size() > 1 && settings.url.back() == '/') settings.url.pop_back();
  auto parsed = http::parse_url(settings.url);
  if (!parsed) return make_error(Errc::invalid_argument, "hub URL " + settings.url + ": " + parsed.error().message);
  if (parsed->target.find('?') != std::string::npos)
    return make_error(Errc::invalid_argument, "hub URL " + settings.url + ": must not have a query (`?...`)");

  if (!flags.token_file.empty()) {
    auto token = read_token(flags.token_file, "--token-file " + flags.token_file);
    if (!token) return std::unexpected(token.error());
    settings.token = *token;
    settings.token_source = "--token-file " + flags.token_file;
  } else if (auto file = non_empty(env, "EDDY_TOKEN_FILE")) {
    auto token = read_token(*file, "$EDDY_TOKEN_FILE " + *file);
    if (!token) return std::unexpected(token.error());
    settings.token = *token;
    settings.token_source = "$EDDY_TOKEN_FILE " + *file;
  } else if (auto token = non_empty(env, "EDDY_TOKEN")) {
    settings.token = trim(*token);
    settings.token_source = "$EDDY_TOKEN";
  } else if (!config->token_file.empty()) {
    auto from_config = read_token(config->token_file, "hub.token_file of " + cli_config.string());
    if (!from_config) return std::unexpected(from_config.error());
    settings.token = *from_config;
    settings.token_source = config->token_file.string() + " (hub.token_file of " + cli_config.string() + ")";
  }
  if (settings.token.empty())
    return make_error(Errc::invalid_argument,
                      "no operator token given: pass --token-file FILE, set $EDDY_TOKEN_FILE or $EDDY_TOKEN, or write "
                      "`hub: {token_file: ...}` into " +
                          (cli_config.empty() ? std::string("~/.config/eddy/cli.yaml") : cli_config.string()) +
                          " (the token is that of a line of the hub's operators.tokens)");

  if (!flags.ca_file.empty())
    settings.ca_file = flags.ca_file;
  else if (auto ca = non_empty(env, "EDDY_CA_FILE"))
    settings.ca_file = *ca;
  else
    settings.ca_file = config->ca_file;
  if (!settings.ca_file.empty()) {
    std::error_code ec;
    if (!stdfs::is_regular_file(settings.ca_file, ec))
      return make_error(Errc::not_found, "the CA file " + settings.ca_file.string() +
                                             " does not exist or is not a file: give the PEM file of the "
                                             "certificate authority that signed the hub's certificate");
  }

  if (!flags.timeout.empty()) {
    auto timeout = parse_duration(flags.timeout);
    if (!timeout) return std::unexpected(timeout.error().with_context("--timeout"));
    if (timeout->count() <= 0) return make_error(Errc::invalid_argument, "--timeout must be longer than 0s");
    settings.timeout = *timeout;
  }
  return settings;
}

std::string HubReply::error_message() const {
  if (body.is_object() && body.contains("error") && body["error"].is_string()) return body["error"].get<std::string>();
  std::string shown = raw.substr(0, 200);
  for (char& c : shown)
    if (c == '\n' || c == '\r') c = ' ';
  if (body.is_discarded() || body.is_null())
    return "HTTP " + std::to_string(status) + ", and the body is not the hub's JSON" +
           (shown.empty() ? std::string(" (empty)") : ": " + shown) + " (is this URL an eddy-hub?)";
  return "HTTP " + std::to_string(status) + ": " + shown;
}

Expected<HubReply> hub_request(const HubSettings& settings, std::string_view method, std::string_view path) {
  http::RequestOptions options;
  options.method = std::string(method);
  options.headers["Authorization"] = "Bearer " + settings.token;
  options.headers["Accept"] = "application/json";
  if (method == "POST") {
    options.headers["Content-Type"] = "application/json";
    options.body = "{}";
  }
  options.timeout = settings.timeout;
  options.max_body = 256u << 20;  // a fleet's device list can be large
  if (!settings.ca_file.empty()) options.ca_file = settings.ca_file;
  auto response = http::request(settings.url + std::string(path), options);
  if (!response) return std::unexpected(response.error());
  HubReply reply;
  reply.status = response->status;
  reply.raw = std::move(response->body);
  reply.body = nlohmann::json::parse(reply.raw, nullptr, false);
  return reply;
}

std::string encode_path_segment(std::string_view text) { return percent_encode(text, ""); }

std::string encode_query_value(std::string_view text) { return percent_encode(text, "=,"); }

Status check_selector(std::string_view selector) {
  if (selector.empty()) return {};
  std::size_t start = 0;
  while (start <= selector.size()) {
    auto end = selector.find(',', start);
    if (end == std::string_view::npos) end = selector.size();
    auto part = selector.substr(start, end - start);
    auto eq = part.find('=');
    if (part.empty() || eq == std::string_view::npos || eq == 0 || part.find('=', eq + 1) != std::string_view::npos)
      return make_error(Errc::invalid_argument, "selector `" + std::string(selector) + "`: `" + std::string(part) +
                                                    "` is not KEY=VALUE (write labels as site=berlin,hw=pi4)");
    start = end + 1;
  }
  return {};
}

}  // namespace eddy::cli
