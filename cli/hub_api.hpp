// The operator side of eddy-hub's HTTP API (fleet/API.md): where the hub is, the operator
// token, and one request at a time. Used by `eddy rollout …` and `eddy fleet …`.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "platform/error.hpp"

namespace eddy::cli {

// What the command line said; empty fields fall back to the environment, then to cli.yaml.
struct HubFlags {
  std::string url;         // --hub
  std::string token_file;  // --token-file
  std::string ca_file;     // --ca-file
  std::string timeout;     // --timeout, a duration ("10s")
};

// Where the hub is and how to talk to it, after the fallbacks.
struct HubSettings {
  std::string url;                // without a trailing '/'
  std::string token;              // the operator token (never printed)
  std::string token_source;       // "--token-file /path", "$EDDY_TOKEN", ... for messages
  std::filesystem::path ca_file;  // empty: the system's CA certificates
  std::chrono::milliseconds timeout{10000};
};

// Reads an environment variable; tests pass their own.
using Environment = std::function<std::optional<std::string>(const char* name)>;
Environment process_environment();

// The optional file `$XDG_CONFIG_HOME/eddy/cli.yaml` (else `~/.config/eddy/cli.yaml`); empty
// when neither variable is set. Its one section is the same as eddyd.yaml's:
//   hub: {url: https://hub.example.com:8443, token_file: ~/.config/eddy/token, ca_file: hub-ca.pem}
// Relative paths are relative to the file's folder; a leading "~/" is $HOME.
std::filesystem::path default_cli_config(const Environment& env);

// The order, per setting: the flag, then the environment ($EDDY_HUB; $EDDY_TOKEN_FILE, then
// $EDDY_TOKEN holding the token itself; $EDDY_CA_FILE), then cli.yaml. A missing URL or token,
// an unreadable or empty token file, a missing CA file, a malformed cli.yaml or a bad
// duration is Errc::invalid_argument (or not_found) naming what to give.
Expected<HubSettings> resolve_hub_settings(const HubFlags& flags, const Environment& env,
                                           const std::filesystem::path& cli_config);

// The hub's answer to a request it received: its HTTP status and its JSON body (null when the
// body was not JSON; `raw` keeps the first bytes then).
struct HubReply {
  int status = 0;
  nlohmann::json body;
  std::string raw;
  bool ok() const { return status / 100 == 2 && !body.is_discarded() && !body.is_null(); }
  // The hub's `{"error": "..."}` message, or a description of what came instead.
  std::string error_message() const;
};

// One request to `settings.url + path` with the operator token. An Error means the hub could
// not be reached (resolve, connect, TLS, no answer in time: Errc::network or timeout) or the
// request could not be made (bad URL: invalid_argument); any HTTP answer is a HubReply.
Expected<HubReply> hub_request(const HubSettings& settings, std::string_view method, std::string_view path);

// Percent-encodes everything but RFC 3986's unreserved characters, for one path segment.
std::string encode_path_segment(std::string_view text);
// For a query value: as encode_path_segment, but '=' and ',' stay (a selector "k=v,k2=v2").
std::string encode_query_value(std::string_view text);

// A label selector as users type it, "site=berlin,hw=pi4": non-empty keys, one '=' each.
// Errc::invalid_argument names the bad part.
Status check_selector(std::string_view selector);

}  // namespace eddy::cli
