#include "ota/model.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include "platform/byte_size.hpp"

namespace eddy::ota {
namespace {

using namespace std::string_literals;

// ---------------------------------------------------------------------------------------------
// Small text helpers.

std::string quote(std::string_view s) { return "`" + std::string(s) + "`"; }

std::string join(std::span<const std::string_view> items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += sep;
    out += items[i];
  }
  return out;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string normalized_key(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '-' && c != '_') out += lower(c);
  }
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitution = diagonal + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitution});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The closest candidate to a misspelt word: same letters ignoring case, '-' and '_'
// ("max_failure_rate" -> "maxFailureRate"), or within a small edit distance.
std::optional<std::string_view> did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
  const std::string norm = normalized_key(word);
  for (auto c : candidates) {
    if (normalized_key(c) == norm) return c;
  }
  const std::size_t limit = word.size() <= 3 ? 1 : 2;
  std::optional<std::string_view> best;
  std::size_t best_distance = limit + 1;
  for (auto c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Reading YAML with locations.

// One value of the document with where it was written: the line of its key (or of the item, in
// a list) and its path from the root, such as "spec.analysis.probes[1].http.url".
struct Value {
  YAML::Node node;
  YAML::Mark mark;
  std::string path;
};

class Reader {
 public:
  explicit Reader(std::string_view file) : file_(file) {}

  [[nodiscard]] Error error(const YAML::Mark& mark, std::string_view message) const {
    std::string text(file_);
    if (!mark.is_null()) text += ":" + std::to_string(mark.line + 1);
    text += ": ";
    text += message;
    return Error{Errc::invalid_argument, std::move(text)};
  }
  [[nodiscard]] Error error(const Value& v, std::string_view message) const {
    return error(v.mark, v.path.empty() ? std::string(message) : v.path + ": " + std::string(message));
  }

 private:
  std::string_view file_;
};

std::string_view type_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "a single value";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

// A mapping whose keys were checked against the keys allowed at its place.
class MapView {
 public:
  static Expected<MapView> open(const Reader& r, const Value& v, std::initializer_list<std::string_view> allowed) {
    if (!v.node.IsMap()) {
      return std::unexpected(
          r.error(v, "expected a mapping (keys " + join(allowed, ", ") + "), got " + std::string(type_name(v.node))));
    }
    MapView view(r, v);
    std::map<std::string, YAML::Mark, std::less<>> seen;
    for (auto it = v.node.begin(); it != v.node.end(); ++it) {
      const YAML::Node key = it->first;  // a copy: `it->` yields a temporary
      if (!key.IsScalar())
        return std::unexpected(r.error(
            key.Mark(), "a key " + (v.path.empty() ? "at the top level"s : "in " + v.path) + " is not a plain name"));
      const std::string& name = key.Scalar();
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        std::string message = "unknown key " + quote(name);
        if (auto suggestion = did_you_mean(name, allowed)) {
          message += " (did you mean " + quote(*suggestion) + "?)";
        } else {
          message +=
              (v.path.empty() ? " at the top level"s : " in " + v.path) + " (allowed: " + join(allowed, ", ") + ")";
        }
        return std::unexpected(r.error(key.Mark(), message));
      }
      if (auto [prev, inserted] = seen.emplace(name, key.Mark()); !inserted) {
        return std::unexpected(r.error(key.Mark(), "key " + quote(name) + " appears twice in " + v.path +
                                                       " (first on line " + std::to_string(prev->second.line + 1) +
                                                       "): keep one"));
      }
      view.entries_.emplace(name, Value{it->second, key.Mark(), child_path(v.path, name)});
    }
    return view;
  }

  // The value of an optional key; a key written without a value counts as absent.
  [[nodiscard]] std::optional<Value> get(std::string_view key) const {
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.node.IsNull()) return std::nullopt;
    return it->second;
  }

  // Whether the key is written at all, with or without a value.
  [[nodiscard]] bool has(std::string_view key) const { return entries_.contains(key); }

  [[nodiscard]] Expected<Value> require(std::string_view key) const {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      return std::unexpected(reader_->error(self_, "missing required key " + quote(key)));
    }
    if (it->second.node.IsNull()) {
      return std::unexpected(reader_->error(it->second, "needs a value"));
    }
    return it->second;
  }

  static std::string child_path(std::string_view parent, std::string_view key) {
    return parent.empty() ? std::string(key) : std::string(parent) + "." + std::string(key);
  }

 private:
  MapView(const Reader& r, Value self) : reader_(&r), self_(std::move(self)) {}

  const Reader* reader_;
  Value self_;
  std::map<std::string, Value, std::less<>> entries_;
};

Value item(const Value& list, const YAML::Node& node, std::size_t index) {
  const YAML::Mark mark = node.Mark().is_null() ? list.mark : node.Mark();
  return Value{node, mark, list.path + "[" + std::to_string(index) + "]"};
}

Expected<std::string> text(const Reader& r, const Value& v) {
  if (!v.node.IsScalar()) {
    return std::unexpected(r.error(v, "expected a single value, got " + std::string(type_name(v.node))));
  }
  return v.node.Scalar();
}

Expected<std::string> non_empty_text(const Reader& r, const Value& v) {
  auto t = text(r, v);
  if (t && t->empty()) return std::unexpected(r.error(v, "must not be empty"));
  return t;
}

// A plain (unquoted) YAML scalar: quoting a number makes it a string, which a strict schema refuses.
Expected<std::string> plain_number_text(const Reader& r, const Value& v, std::string_view example) {
  auto t = text(r, v);
  if (!t) return t;
  if (v.node.Tag() != "?") {
    return std::unexpected(r.error(
        v, "expected a number, got the string \"" + *t + "\": write it without quotes, e.g. " + std::string(example)));
  }
  return t;
}

template <typename Int>
Expected<Int> integer(const Reader& r, const Value& v, Int min, Int max, std::string_view example) {
  auto t = plain_number_text(r, v, example);
  if (!t) return std::unexpected(t.error());
  Int value{};
  const char* begin = t->data();
  const char* end = begin + t->size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::result_out_of_range) {
    return std::unexpected(
        r.error(v, quote(*t) + " is out of range (" + std::to_string(min) + ".." + std::to_string(max) + ")"));
  }
  if (ec != std::errc{} || ptr != end) {
    return std::unexpected(r.error(v, "expected a whole number, got " + quote(*t)));
  }
  if (value < min || value > max) {
    return std::unexpected(
        r.error(v, quote(*t) + " is out of range (" + std::to_string(min) + ".." + std::to_string(max) + ")"));
  }
  return value;
}

Expected<bool> boolean(const Reader& r, const Value& v) {
  auto t = text(r, v);
  if (!t) return std::unexpected(t.error());
  if (v.node.Tag() == "?") {
    if (*t == "true" || *t == "True" || *t == "TRUE") return true;
    if (*t == "false" || *t == "False" || *t == "FALSE") return false;
  }
  return std::unexpected(r.error(v, "expected true or false, got " + quote(*t)));
}

Expected<std::chrono::milliseconds> duration(const Reader& r, const Value& v, bool allow_zero) {
  auto t = text(r, v);
  if (!t) return std::unexpected(t.error());
  auto d = parse_duration(*t);
  if (!d) return std::unexpected(r.error(v, d.error().message));
  if (!allow_zero && d->count() == 0) return std::unexpected(r.error(v, "must be longer than zero"));
  return d;
}

Expected<std::chrono::seconds> duration_seconds(const Reader& r, const Value& v, bool allow_zero) {
  auto d = duration(r, v, allow_zero);
  if (!d) return std::unexpected(d.error());
  if (d->count() % 1000 != 0) {
    return std::unexpected(r.error(v, "must be whole seconds, got " + quote(v.node.Scalar())));
  }
  return std::chrono::duration_cast<std::chrono::seconds>(*d);
}

Expected<std::vector<std::string>> string_list(const Reader& r, const Value& v, std::string_view example) {
  if (!v.node.IsSequence()) {
    return std::unexpected(r.error(
        v, "expected a list of strings such as " + std::string(example) + ", got " + std::string(type_name(v.node))));
  }
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.node.size(); ++i) {
    const Value element = item(v, v.node[i], i);
    auto t = text(r, element);
    if (!t) return std::unexpected(t.error());
    out.push_back(std::move(*t));
  }
  return out;
}

// A command: a non-empty list of strings whose first element (the program) is not empty.
Expected<std::vector<std::string>> command(const Reader& r, const Value& v) {
  auto argv = string_list(r, v, "[bin/selftest, --quick]");
  if (!argv) return argv;
  if (argv->empty() || argv->front().empty()) {
    return std::unexpected(r.error(v, "a command needs at least a program, e.g. [bin/selftest]"));
  }
  return argv;
}

// Names, targets and versions become directory and file names on the device.
Status check_name(const Reader& r, const Value& v, const std::string& s, bool allow_plus) {
  auto ok_first = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  auto ok = [&](char c) { return ok_first(c) || c == '.' || c == '_' || c == '-' || (allow_plus && c == '+'); };
  if (s.empty() || s.size() > 128 || !ok_first(s.front()) || !std::all_of(s.begin(), s.end(), ok)) {
    return std::unexpected(r.error(v, quote(s) + " is not a valid name: use up to 128 letters, digits, '.', '_', '-'" +
                                          (allow_plus ? ", '+'"s : ""s) + ", starting with a letter or digit"));
  }
  return {};
}

Expected<std::string> name_field(const Reader& r, const Value& v, bool allow_plus = false) {
  auto t = text(r, v);
  if (!t) return t;
  if (auto ok = check_name(r, v, *t, allow_plus); !ok) return std::unexpected(ok.error());
  return t;
}

bool has_control_or_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

Expected<std::string> http_url(const Reader& r, const Value& v) {
  auto t = text(r, v);
  if (!t) return t;
  std::string_view rest;
  if (t->starts_with("http://")) {
    rest = std::string_view(*t).substr(7);
  } else if (t->starts_with("https://")) {
    rest = std::string_view(*t).substr(8);
  }
  const std::string_view host = rest.substr(0, rest.find_first_of("/?#"));
  if (host.empty() || has_control_or_space(*t)) {
    return std::unexpected(r.error(v, quote(*t) + " is not an http:// or https:// URL"));
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// The document frame shared by both kinds.

constexpr std::string_view kApiVersion = "eddy/v1";

struct Frame {
  MapView top;
  std::string name;
  int name_line = 0;
  Value spec;
};

Expected<YAML::Node> load_document(const Reader& r, std::string_view yaml) {
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(yaml));
    if (docs.empty() || docs.front().IsNull()) {
      return std::unexpected(
          r.error(YAML::Mark::null_mark(), "the file is empty: expected apiVersion, kind, metadata and spec"));
    }
    if (docs.size() > 1) {
      const YAML::Mark second = docs[1].Mark();
      return std::unexpected(r.error(second, "a second YAML document (after `---`): keep one document per file"));
    }
    return docs.front();
  } catch (const YAML::Exception& e) {
    return std::unexpected(r.error(e.mark, "invalid YAML: " + e.msg));
  } catch (const std::exception& e) {
    return std::unexpected(r.error(YAML::Mark::null_mark(), "invalid YAML: "s + e.what()));
  }
}

Expected<Frame> read_frame(const Reader& r, std::string_view yaml, std::string_view kind) {
  auto doc = load_document(r, yaml);
  if (!doc) return std::unexpected(doc.error());
  if (!doc->IsMap()) {
    return std::unexpected(r.error(doc->Mark(), "expected a mapping with apiVersion, kind, metadata and spec, got " +
                                                    std::string(type_name(*doc))));
  }
  // A file of another apiVersion may well have keys this version does not know: say so first.
  for (auto it = doc->begin(); it != doc->end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == "apiVersion" && it->second.IsScalar() &&
        it->second.Scalar() != kApiVersion) {
      return std::unexpected(r.error(it->first.Mark(), "apiVersion: " + quote(it->second.Scalar()) +
                                                           " is not supported: write `apiVersion: eddy/v1` (or update "
                                                           "eddy if the file was written for a newer version)"));
    }
  }
  // Missing top-level keys are reported at line 1, wherever the mapping starts after comments.
  const Value root{*doc, YAML::Mark(), ""};
  auto top = MapView::open(r, root, {"apiVersion", "kind", "metadata", "spec"});
  if (!top) return std::unexpected(top.error());
  auto require = [&](std::string_view key) { return top->require(key); };

  auto api = require("apiVersion");
  if (!api) return std::unexpected(api.error());
  auto api_text = text(r, *api);
  if (!api_text) return std::unexpected(api_text.error());
  auto kind_value = require("kind");
  if (!kind_value) return std::unexpected(kind_value.error());
  auto kind_text = text(r, *kind_value);
  if (!kind_text) return std::unexpected(kind_text.error());
  if (*kind_text != kind) {
    return std::unexpected(r.error(*kind_value, quote(*kind_text) + " where a " + std::string(kind) +
                                                    " was expected: this file is read as `kind: " + std::string(kind) +
                                                    "`"));
  }

  auto metadata = require("metadata");
  if (!metadata) return std::unexpected(metadata.error());
  auto meta = MapView::open(r, *metadata, {"name"});
  if (!meta) return std::unexpected(meta.error());
  auto name_value = meta->require("name");
  if (!name_value) return std::unexpected(name_value.error());
  auto name = name_field(r, *name_value);
  if (!name) return std::unexpected(name.error());

  auto spec = require("spec");
  if (!spec) return std::unexpected(spec.error());
  return Frame{std::move(*top), std::move(*name), name_value->mark.line + 1, std::move(*spec)};
}

// ---------------------------------------------------------------------------------------------
// Release.

constexpr std::array<std::string_view, 9> kContainerKeys = {"image",   "source",  "command", "ports", "env",
                                                                    "volumes", "restart", "memory",  "strategy"};

// name@sha256:<64 lowercase hex>; the name part as a registry reference allows it.
Expected<std::string> image_reference(const Reader& r, const Value& v) {
  auto t = non_empty_text(r, v);
  if (!t) return t;
  const auto at = t->find('@');
  auto hex_ok = [](std::string_view h) {
    return h.size() == 64 && std::all_of(h.begin(), h.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  };
  const std::string_view name = std::string_view(*t).substr(0, at);
  const bool name_ok = !name.empty() && !has_control_or_space(name) && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/' || c == ':';
  });
  if (at == std::string::npos || !name_ok || !std::string_view(*t).substr(at + 1).starts_with("sha256:") ||
      !hex_ok(std::string_view(*t).substr(at + 8))) {
    return std::unexpected(r.error(v, quote(*t) + " does not name an image by digest: write name@sha256:<64 hex digits> "
                                          "(a tag alone can change under the release; `podman images --digests` "
                                          "shows the digest)"));
  }
  return t;
}

Expected<std::uint16_t> port_number(const Reader& r, const Value& v) {
  return integer<std::uint16_t>(r, v, 1, 65535, "8080");
}

Expected<std::vector<ContainerPort>> read_ports(const Reader& r, const Value& v) {
  if (!v.node.IsSequence())
    return std::unexpected(r.error(v, "expected a list of ports such as [{host: 8080, container: 80, candidate: 18080}], got " +
                                          std::string(type_name(v.node))));
  std::vector<ContainerPort> out;
  std::map<std::string, std::string> used;  // "port/protocol" on the host -> where, for duplicates
  for (std::size_t i = 0; i < v.node.size(); ++i) {
    const Value element = item(v, v.node[i], i);
    auto m = MapView::open(r, element, {"host", "container", "candidate", "ip", "protocol"});
    if (!m) return std::unexpected(m.error());
    ContainerPort port;
    for (auto [key, field] : {std::pair{"host", &port.host}, std::pair{"container", &port.container}}) {
      auto value = m->require(key);
      if (!value) return std::unexpected(value.error());
      auto n = port_number(r, *value);
      if (!n) return std::unexpected(n.error());
      *field = *n;
    }
    if (auto c = m->get("candidate")) {
      auto n = port_number(r, *c);
      if (!n) return std::unexpected(n.error());
      port.candidate = *n;
    }
    if (auto ip = m->get("ip")) {
      auto t = non_empty_text(r, *ip);
      if (!t) return std::unexpected(t.error());
      const bool ok = std::all_of(t->begin(), t->end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.' || c == ':';
      });
      if (!ok) return std::unexpected(r.error(*ip, quote(*t) + " is not an IP address (write e.g. 127.0.0.1 or 0.0.0.0)"));
      port.ip = std::move(*t);
    }
    if (auto proto = m->get("protocol")) {
      auto t = text(r, *proto);
      if (!t) return std::unexpected(t.error());
      if (*t != "tcp" && *t != "udp") return std::unexpected(r.error(*proto, "unknown protocol " + quote(*t) + ": write tcp or udp"));
      port.protocol = std::move(*t);
    }
    if (port.candidate == port.host)
      return std::unexpected(r.error(element, "candidate port " + std::to_string(port.host) +
                                                  " is the same as the host port: pick another one"));
    for (std::uint16_t p : {port.host, port.candidate}) {
      if (p == 0) continue;
      const std::string key = std::to_string(p) + "/" + port.protocol;
      if (auto [it, inserted] = used.emplace(key, element.path); !inserted)
        return std::unexpected(r.error(element, "host port " + key + " is used twice (also by " + it->second +
                                                    "): give each port and candidate its own number"));
    }
    out.push_back(std::move(port));
  }
  return out;
}

Expected<ContainerSettings> read_container(const Reader& r, const MapView& m, const Value& payload, bool has_bytes) {
  ContainerSettings c;
  auto image = m.require("image");
  if (!image) return std::unexpected(image.error());
  auto ref = image_reference(r, *image);
  if (!ref) return std::unexpected(ref.error());
  c.image = std::move(*ref);
  if (auto source = m.get("source")) {
    auto t = text(r, *source);
    if (!t) return std::unexpected(t.error());
    if (*t == "archive") c.source = ImageSource::archive;
    else if (*t == "registry") c.source = ImageSource::registry;
    else return std::unexpected(r.error(*source, "unknown image source " + quote(*t) + ": write archive or registry"));
    if (c.source == ImageSource::registry && has_bytes)
      return std::unexpected(r.error(*source, "an image pulled from a registry has no path, url, sha256 or size "
                                              "(its digest guards it): remove them, or write source: archive"));
  } else if (!has_bytes) {
    return std::unexpected(r.error(payload, "missing `path` or `url` of the image archive (or write source: registry "
                                            "to pull " + c.image + ")"));
  }
  if (auto cmd = m.get("command")) {
    auto argv = command(r, *cmd);
    if (!argv) return std::unexpected(argv.error());
    c.command = std::move(*argv);
  }
  if (auto ports = m.get("ports")) {
    auto p = read_ports(r, *ports);
    if (!p) return std::unexpected(p.error());
    c.ports = std::move(*p);
  }
  if (auto env = m.get("env")) {
    if (!env->node.IsMap())
      return std::unexpected(r.error(*env, "expected a mapping of variables such as {LOG_LEVEL: info}, got " +
                                               std::string(type_name(env->node))));
    for (auto it = env->node.begin(); it != env->node.end(); ++it) {
      const YAML::Node key = it->first;
      const Value value{it->second, key.Mark(), MapView::child_path(env->path, key.Scalar())};
      const std::string& name = key.Scalar();
      const bool ok = !name.empty() && !(name[0] >= '0' && name[0] <= '9') && std::all_of(name.begin(), name.end(), [](char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
      });
      if (!key.IsScalar() || !ok)
        return std::unexpected(r.error(key.Mark(), quote(key.Scalar()) + " is not a variable name: use letters, digits and '_'"));
      auto t = text(r, value);
      if (!t) return std::unexpected(t.error());
      if (!c.env.emplace(name, *t).second)
        return std::unexpected(r.error(key.Mark(), "variable " + quote(name) + " appears twice: keep one"));
    }
  }
  if (auto volumes = m.get("volumes")) {
    auto list = string_list(r, *volumes, "[\"web-data:/var/lib/web\"]");
    if (!list) return std::unexpected(list.error());
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto& vol = (*list)[i];
      const auto colon = vol.find(':');
      if (colon == std::string::npos || colon == 0 || vol.size() <= colon + 1 || vol[colon + 1] != '/' || has_control_or_space(vol))
        return std::unexpected(r.error(item(*volumes, volumes->node[i], i),
                                       quote(vol) + " is not a volume: write source:/path/in/container[:ro]"));
    }
    c.volumes = std::move(*list);
  }
  if (auto restart = m.get("restart")) {
    auto t = text(r, *restart);
    if (!t) return std::unexpected(t.error());
    if (*t != "no" && *t != "always" && *t != "on-failure" && *t != "unless-stopped")
      return std::unexpected(r.error(*restart, "unknown restart policy " + quote(*t) + ": write no, always, on-failure or unless-stopped"));
    c.restart = std::move(*t);
  }
  if (auto memory = m.get("memory")) {
    auto t = text(r, *memory);
    if (!t) return std::unexpected(t.error());
    auto bytes = parse_byte_size(*t);
    if (!bytes) return std::unexpected(r.error(*memory, bytes.error().message));
    if (*bytes < (6u << 20)) return std::unexpected(r.error(*memory, "a memory limit below 6MiB cannot start a container"));
    c.memory_bytes = *bytes;
  }
  if (auto strategy = m.get("strategy")) {
    auto t = text(r, *strategy);
    if (!t) return std::unexpected(t.error());
    if (*t == "hand-over") c.strategy = SwapStrategy::hand_over;
    else if (*t == "stop-then-start") c.strategy = SwapStrategy::stop_then_start;
    else if (*t == "download-then-stop") c.strategy = SwapStrategy::download_then_stop;
    else return std::unexpected(r.error(*strategy, "unknown strategy " + quote(*t) + ": write hand-over, stop-then-start or download-then-stop"));
  }
  if (c.strategy == SwapStrategy::hand_over) {
    for (std::size_t i = 0; i < c.ports.size(); ++i) {
      if (c.ports[i].candidate == 0)
        return std::unexpected(r.error(item(*m.get("ports"), m.get("ports")->node[i], i),
                                       "strategy hand-over starts the new container beside the old one: give this port a "
                                       "`candidate` host port for it (or use strategy stop-then-start)"));
    }
  }
  return c;
}

bool is_sha256_text(std::string_view t) {
  return t.size() == 64 && std::all_of(t.begin(), t.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// path | url, sha256 and size of bytes as stored (a payload, or one of its deltas), from `m` at `v`.
Status read_stored_bytes(const Reader& r, const MapView& m, const Value& v, std::string& out_path, std::string& out_url,
                         std::string& out_sha256, std::uint64_t& out_size) {
  auto path = m.get("path");
  auto url = m.get("url");
  if (path && url) return std::unexpected(r.error(*url, "the payload has both `path` and `url`: keep one"));
  if (!path && !url) return std::unexpected(r.error(v, "missing `path` (in the repository) or `url` (to download)"));
  if (path) {
    auto t = non_empty_text(r, *path);
    if (!t) return std::unexpected(t.error());
    bool safe = !t->starts_with('/') && t->find('\\') == std::string::npos && !has_control_or_space(*t);
    std::string_view rest = *t;
    while (safe) {
      const auto slash = rest.find('/');
      const auto segment = rest.substr(0, slash);
      if (segment.empty() || segment == "." || segment == "..") safe = false;
      if (slash == std::string_view::npos) break;
      rest = rest.substr(slash + 1);
    }
    if (!safe) {
      return std::unexpected(
          r.error(*path, quote(*t) + " is not a safe path in the repository: write a relative path "
                                     "such as payloads/app-1.0.tar.zst, without '..', '.', '//' or a leading '/'"));
    }
    out_path = std::move(*t);
  } else {
    auto t = http_url(r, *url);
    if (!t) return std::unexpected(t.error());
    out_url = std::move(*t);
  }

  auto sha = m.require("sha256");
  if (!sha) return std::unexpected(sha.error());
  auto sha_text = text(r, *sha);
  if (!sha_text) return std::unexpected(sha_text.error());
  if (!is_sha256_text(*sha_text)) {
    return std::unexpected(r.error(*sha, quote(*sha_text) + " is not a SHA-256: write 64 lowercase hexadecimal digits "
                                                            "(the output of `sha256sum` on the payload as stored)"));
  }
  out_sha256 = std::move(*sha_text);

  auto size = m.require("size");
  if (!size) return std::unexpected(size.error());
  if (size->node.IsScalar() && size->node.Scalar().starts_with('-')) {
    return std::unexpected(r.error(*size, "must not be negative, got " + quote(size->node.Scalar())));
  }
  auto size_value = integer<std::uint64_t>(r, *size, 0, std::numeric_limits<std::uint64_t>::max(), "size: 48211");
  if (!size_value) return std::unexpected(size_value.error());
  out_size = *size_value;
  return {};
}

Expected<std::vector<DeltaSpec>> read_deltas(const Reader& r, const Value& v) {
  if (!v.node.IsSequence())
    return std::unexpected(r.error(v, "expected a list of deltas ({from_sha256, from_size, image_sha256, path, sha256, "
                                      "size}, as `eddy release delta` prints them), got " +
                                      std::string(type_name(v.node))));
  std::vector<DeltaSpec> out;
  for (std::size_t i = 0; i < v.node.size(); ++i) {
    const Value element = item(v, v.node[i], i);
    auto m = MapView::open(r, element, {"from_sha256", "from_size", "image_sha256", "path", "url", "sha256", "size"});
    if (!m) return std::unexpected(m.error());
    DeltaSpec d;
    if (auto st = read_stored_bytes(r, *m, element, d.path, d.url, d.sha256, d.size); !st)
      return std::unexpected(st.error());
    // from_sha256 / from_size: the base image; image_sha256: the image rebuilt from it.
    auto image_digest = [&](const char* key, const char* of, std::string& digest) -> Status {
      auto value = m->require(key);
      if (!value) return std::unexpected(value.error());
      auto sha_text = text(r, *value);
      if (!sha_text) return std::unexpected(sha_text.error());
      if (!is_sha256_text(*sha_text))
        return std::unexpected(r.error(*value, quote(*sha_text) + " is not a SHA-256: write 64 lowercase hexadecimal "
                                                                  "digits (of " + of + ")"));
      digest = std::move(*sha_text);
      return {};
    };
    if (auto st = image_digest("from_sha256", "the base image", d.from_sha256); !st) return std::unexpected(st.error());
    if (auto st = image_digest("image_sha256", "the image the delta rebuilds", d.image_sha256); !st)
      return std::unexpected(st.error());
    auto from_size = m->require("from_size");
    if (!from_size) return std::unexpected(from_size.error());
    auto size_value =
        integer<std::uint64_t>(r, *from_size, 1, std::numeric_limits<std::uint64_t>::max(), "from_size: 268435456");
    if (!size_value) return std::unexpected(size_value.error());
    d.from_size = *size_value;
    for (const auto& other : out)
      if (other.from_sha256 == d.from_sha256 && other.from_size == d.from_size)
        return std::unexpected(r.error(element, "a second delta from the same base image: keep one"));
    out.push_back(std::move(d));
  }
  return out;
}

Expected<PayloadSpec> read_payload(const Reader& r, const Value& v, const std::string& target) {
  auto m = MapView::open(r, v, {"type", "path", "url", "sha256", "size", "image", "source", "command", "ports", "env",
                                "volumes", "restart", "memory", "strategy", "deltas"});
  if (!m) return std::unexpected(m.error());
  PayloadSpec p;

  auto type = m->require("type");
  if (!type) return std::unexpected(type.error());
  auto type_text = text(r, *type);
  if (!type_text) return std::unexpected(type_text.error());
  if (*type_text != "app" && *type_text != "rootfs" && *type_text != "container") {
    return std::unexpected(
        r.error(*type, "unknown payload type " + quote(*type_text) + ": write app, rootfs or container"));
  }
  if ((*type_text == "rootfs") != (target == "rootfs")) {
    return std::unexpected(
        r.error(*type, "payload type " + quote(*type_text) + " does not go with target " + quote(target) +
                           ": a rootfs payload has target `rootfs`, and target `rootfs` takes a rootfs payload"));
  }
  p.type = std::move(*type_text);

  auto path = m->get("path");
  auto url = m->get("url");
  if (p.type == "container") {
    auto c = read_container(r, *m, v, path || url || m->has("sha256") || m->has("size"));
    if (!c) return std::unexpected(c.error());
    p.container = std::move(*c);
    if (p.container.source == ImageSource::registry) return p;
  } else {
    for (auto key : kContainerKeys) {
      if (m->has(key))
        return std::unexpected(r.error(v, quote(key) + " belongs to payloads of type container, not " + quote(p.type)));
    }
  }
  if (auto st = read_stored_bytes(r, *m, v, p.path, p.url, p.sha256, p.size); !st) return std::unexpected(st.error());
  if (auto deltas = m->get("deltas")) {
    if (p.type != "rootfs")
      return std::unexpected(r.error(*deltas, "deltas belong to payloads of type rootfs, not " + quote(p.type)));
    auto list = read_deltas(r, *deltas);
    if (!list) return std::unexpected(list.error());
    p.deltas = std::move(*list);
  }
  return p;
}

Expected<std::map<std::string, std::vector<std::string>>> read_compatible(const Reader& r, const Value& v) {
  if (!v.node.IsMap()) {
    return std::unexpected(r.error(v, "expected a mapping of labels to allowed values, e.g. {hw: [pi4, pi5]}, got " +
                                          std::string(type_name(v.node))));
  }
  std::map<std::string, std::vector<std::string>> out;
  for (auto it = v.node.begin(); it != v.node.end(); ++it) {
    const YAML::Node key = it->first;  // a copy: `it->` yields a temporary
    if (!key.IsScalar() || key.Scalar().empty())
      return std::unexpected(r.error(key.Mark(), v.path + ": a label name must be a plain, non-empty name"));
    const Value label{it->second, key.Mark(), MapView::child_path(v.path, key.Scalar())};
    if (out.contains(key.Scalar())) return std::unexpected(r.error(label, "appears twice: keep one"));
    std::vector<std::string> values;
    if (label.node.IsScalar()) {
      values.push_back(label.node.Scalar());
    } else {
      auto list = string_list(r, label, "[pi4, pi5]");
      if (!list) return std::unexpected(list.error());
      values = std::move(*list);
    }
    if (values.empty()) return std::unexpected(r.error(label, "lists no values, so no device could ever match"));
    out.emplace(key.Scalar(), std::move(values));
  }
  return out;
}

Status check_address(const Reader& r, const Value& v, const std::string& address) {
  const auto colon = address.rfind(':');
  bool ok = colon != std::string::npos && colon > 0;
  if (ok) {
    const std::string_view host = std::string_view(address).substr(0, colon);
    const std::string_view port = std::string_view(address).substr(colon + 1);
    int number = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    ok = ec == std::errc{} && ptr == port.data() + port.size() && number >= 1 && number <= 65535 &&
         !has_control_or_space(host);
    if (host.starts_with('[') != host.ends_with(']')) ok = false;
    if (!host.starts_with('[') && host.find(':') != std::string_view::npos) ok = false;
  }
  if (!ok) {
    return std::unexpected(
        r.error(v, quote(address) + " is not host:port: write e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""));
  }
  return {};
}

Expected<Probe> read_probe(const Reader& r, const Value& v) {
  auto m = MapView::open(r, v, {"name", "http", "tcp", "exec"});
  if (!m) return std::unexpected(m.error());
  Probe probe;
  auto name = m->require("name");
  if (!name) return std::unexpected(name.error());
  auto name_text = non_empty_text(r, *name);
  if (!name_text) return std::unexpected(name_text.error());
  probe.name = std::move(*name_text);

  for (std::string_view kind : {"http", "tcp", "exec"}) {
    if (m->has(kind) && !m->get(kind)) return std::unexpected(m->require(kind).error());  // written without a value
  }
  const auto http = m->get("http");
  const auto tcp = m->get("tcp");
  const auto exec = m->get("exec");
  const int kinds = int{http.has_value()} + int{tcp.has_value()} + int{exec.has_value()};
  if (kinds != 1) {
    return std::unexpected(r.error(
        v, "probe " + quote(probe.name) + " needs exactly one of http, tcp and exec, has " + std::to_string(kinds)));
  }
  if (http) {
    auto hm = MapView::open(r, *http, {"url", "status", "body", "timeout"});
    if (!hm) return std::unexpected(hm.error());
    HttpProbe h;
    auto url = hm->require("url");
    if (!url) return std::unexpected(url.error());
    auto url_text = http_url(r, *url);
    if (!url_text) return std::unexpected(url_text.error());
    h.url = std::move(*url_text);
    if (auto s = hm->get("status")) {
      auto status = integer<int>(r, *s, 100, 599, "status: 200");
      if (!status) return std::unexpected(status.error());
      h.status = *status;
    }
    if (auto b = hm->get("body")) {
      auto body = text(r, *b);
      if (!body) return std::unexpected(body.error());
      h.body_contains = std::move(*body);
    }
    if (auto t = hm->get("timeout")) {
      auto d = duration(r, *t, false);
      if (!d) return std::unexpected(d.error());
      h.timeout = *d;
    }
    probe.check = std::move(h);
  } else if (tcp) {
    auto tm = MapView::open(r, *tcp, {"address", "timeout"});
    if (!tm) return std::unexpected(tm.error());
    TcpProbe t;
    auto address = tm->require("address");
    if (!address) return std::unexpected(address.error());
    auto address_text = text(r, *address);
    if (!address_text) return std::unexpected(address_text.error());
    if (auto ok = check_address(r, *address, *address_text); !ok) return std::unexpected(ok.error());
    t.address = std::move(*address_text);
    if (auto to = tm->get("timeout")) {
      auto d = duration(r, *to, false);
      if (!d) return std::unexpected(d.error());
      t.timeout = *d;
    }
    probe.check = std::move(t);
  } else {
    auto em = MapView::open(r, *exec, {"command", "timeout"});
    if (!em) return std::unexpected(em.error());
    ExecProbe e;
    auto cmd = em->require("command");
    if (!cmd) return std::unexpected(cmd.error());
    auto argv = command(r, *cmd);
    if (!argv) return std::unexpected(argv.error());
    e.command = std::move(*argv);
    if (auto to = em->get("timeout")) {
      auto d = duration(r, *to, false);
      if (!d) return std::unexpected(d.error());
      e.timeout = *d;
    }
    probe.check = std::move(e);
  }
  return probe;
}

Expected<Analysis> read_analysis(const Reader& r, const Value& v) {
  auto m = MapView::open(r, v, {"interval", "iterations", "threshold", "probes"});
  if (!m) return std::unexpected(m.error());
  Analysis a;
  if (auto i = m->get("interval")) {
    auto d = duration(r, *i, false);
    if (!d) return std::unexpected(d.error());
    a.interval = *d;
  }
  if (auto i = m->get("iterations")) {
    auto n = integer<int>(r, *i, 1, 1'000'000, "iterations: 6");
    if (!n) return std::unexpected(n.error());
    a.iterations = *n;
  }
  if (auto t = m->get("threshold")) {
    auto n = integer<int>(r, *t, 0, 1'000'000, "threshold: 2");
    if (!n) return std::unexpected(n.error());
    a.threshold = *n;
  }
  if (auto p = m->get("probes")) {
    if (!p->node.IsSequence()) {
      return std::unexpected(r.error(*p, "expected a list of probes, got " + std::string(type_name(p->node))));
    }
    std::map<std::string, int> names;  // name -> line
    for (std::size_t i = 0; i < p->node.size(); ++i) {
      const Value element = item(*p, p->node[i], i);
      auto probe = read_probe(r, element);
      if (!probe) return std::unexpected(probe.error());
      if (auto [prev, inserted] = names.emplace(probe->name, element.mark.line + 1); !inserted) {
        return std::unexpected(r.error(element, "probe name " + quote(probe->name) + " is also used on line " +
                                                    std::to_string(prev->second) + ": give each probe its own name"));
      }
      a.probes.push_back(std::move(*probe));
    }
  }
  return a;
}

Expected<Hooks> read_hooks(const Reader& r, const Value& v) {
  auto m = MapView::open(r, v, {"pre-activate", "post-activate", "pre-commit", "rollback", "timeout"});
  if (!m) return std::unexpected(m.error());
  Hooks h;
  const std::pair<std::string_view, std::vector<std::vector<std::string>>*> lists[] = {
      {"pre-activate", &h.pre_activate},
      {"post-activate", &h.post_activate},
      {"pre-commit", &h.pre_commit},
      {"rollback", &h.rollback},
  };
  for (const auto& [key, out] : lists) {
    auto list = m->get(key);
    if (!list) continue;
    if (!list->node.IsSequence()) {
      return std::unexpected(r.error(*list, "expected a list of commands, e.g. [[bin/migrate, --fast]], got " +
                                                std::string(type_name(list->node))));
    }
    for (std::size_t i = 0; i < list->node.size(); ++i) {
      const Value element = item(*list, list->node[i], i);
      if (element.node.IsScalar()) {
        return std::unexpected(r.error(element, "a command is a list of strings: write [[" + element.node.Scalar() +
                                                    "]] for the hook list, not [" + element.node.Scalar() + "]"));
      }
      auto argv = command(r, element);
      if (!argv) return std::unexpected(argv.error());
      out->push_back(std::move(*argv));
    }
  }
  if (auto t = m->get("timeout")) {
    auto d = duration(r, *t, false);
    if (!d) return std::unexpected(d.error());
    h.timeout = *d;
  }
  return h;
}

struct ParsedRelease {
  Release release;
  int name_line = 0;
};

Expected<ParsedRelease> read_release(std::string_view yaml, std::string_view file) {
  const Reader r(file);
  auto frame = read_frame(r, yaml, "Release");
  if (!frame) return std::unexpected(frame.error());
  auto spec = MapView::open(r, frame->spec,
                            {"target", "version", "payload", "compatible", "analysis", "hooks", "allowDowngrade"});
  if (!spec) return std::unexpected(spec.error());

  Release rel;
  rel.file = std::string(file);
  rel.name = frame->name;

  auto target = spec->require("target");
  if (!target) return std::unexpected(target.error());
  auto target_text = name_field(r, *target);
  if (!target_text) return std::unexpected(target_text.error());
  rel.target = std::move(*target_text);

  auto version = spec->require("version");
  if (!version) return std::unexpected(version.error());
  auto version_text = name_field(r, *version, true);
  if (!version_text) return std::unexpected(version_text.error());
  rel.version = std::move(*version_text);

  auto payload = spec->require("payload");
  if (!payload) return std::unexpected(payload.error());
  auto p = read_payload(r, *payload, rel.target);
  if (!p) return std::unexpected(p.error());
  rel.payload = std::move(*p);

  if (auto c = spec->get("compatible")) {
    auto compatible = read_compatible(r, *c);
    if (!compatible) return std::unexpected(compatible.error());
    rel.compatible = std::move(*compatible);
  }
  if (auto a = spec->get("analysis")) {
    auto analysis = read_analysis(r, *a);
    if (!analysis) return std::unexpected(analysis.error());
    rel.analysis = std::move(*analysis);
  }
  if (auto h = spec->get("hooks")) {
    auto hooks = read_hooks(r, *h);
    if (!hooks) return std::unexpected(hooks.error());
    rel.hooks = std::move(*hooks);
  }
  if (auto d = spec->get("allowDowngrade")) {
    auto b = boolean(r, *d);
    if (!b) return std::unexpected(b.error());
    rel.allow_downgrade = *b;
  }
  return ParsedRelease{std::move(rel), frame->name_line};
}

// ---------------------------------------------------------------------------------------------
// Rollout.

// A number of percent, "10" or "10%", as written in steps.
Expected<double> percent_number(std::string_view s) {
  if (s.ends_with('%')) s.remove_suffix(1);
  double value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value, std::chars_format::fixed);
  if (s.empty() || ec != std::errc{} || ptr != s.data() + s.size() || !std::isfinite(value)) {
    return make_error(Errc::invalid_argument, "expected a number of percent");
  }
  return value;
}

Expected<std::vector<double>> read_steps(const Reader& r, const Value& v) {
  if (!v.node.IsSequence()) {
    return std::unexpected(
        r.error(v, "expected a list of percentages such as [1, 10, 50, 100], got " + std::string(type_name(v.node))));
  }
  if (v.node.size() == 0) return std::unexpected(r.error(v, "needs at least one step, e.g. [100]"));
  std::vector<double> steps;
  for (std::size_t i = 0; i < v.node.size(); ++i) {
    const Value element = item(v, v.node[i], i);
    auto t = text(r, element);
    if (!t) return std::unexpected(t.error());
    if (!t->ends_with('%') && element.node.Tag() != "?") {
      return std::unexpected(
          r.error(element, "expected a number of percent, got the string \"" + *t + "\": write it without quotes"));
    }
    auto pct = percent_number(*t);
    if (!pct || *pct <= 0 || *pct > 100) {
      return std::unexpected(
          r.error(element, "bad percentage " + quote(*t) + ": each step is a percent above 0 and at most 100"));
    }
    if (!steps.empty() && *pct <= steps.back()) {
      return std::unexpected(
          r.error(element, "step " + quote(*t) + " does not widen the previous one: steps must increase"));
    }
    steps.push_back(*pct);
  }
  return steps;
}

struct ParsedRollout {
  Rollout rollout;
  int name_line = 0;
};

Expected<ParsedRollout> read_rollout(std::string_view yaml, std::string_view file) {
  const Reader r(file);
  auto frame = read_frame(r, yaml, "Rollout");
  if (!frame) return std::unexpected(frame.error());
  auto spec = MapView::open(
      r, frame->spec,
      {"release", "selector", "steps", "bake", "minDevices", "maxFailureRate", "onFailure", "progressDeadline"});
  if (!spec) return std::unexpected(spec.error());

  Rollout ro;
  ro.file = std::string(file);
  ro.name = frame->name;

  auto release = spec->require("release");
  if (!release) return std::unexpected(release.error());
  auto release_text = name_field(r, *release);
  if (!release_text) return std::unexpected(release_text.error());
  ro.release = std::move(*release_text);
  ro.release_line = release->mark.line + 1;

  if (auto s = spec->get("selector")) {
    auto selector = MapView::open(r, *s, {"matchLabels"});
    if (!selector) return std::unexpected(selector.error());
    if (auto labels = selector->get("matchLabels")) {
      if (!labels->node.IsMap()) {
        return std::unexpected(r.error(
            *labels, "expected a mapping of labels, e.g. {site: berlin}, got " + std::string(type_name(labels->node))));
      }
      for (auto it = labels->node.begin(); it != labels->node.end(); ++it) {
        if (!it->first.IsScalar() || it->first.Scalar().empty()) {
          return std::unexpected(
              r.error(it->first.Mark(), labels->path + ": a label name must be a plain, non-empty name"));
        }
        const Value label{it->second, it->first.Mark(), MapView::child_path(labels->path, it->first.Scalar())};
        auto value = text(r, label);
        if (!value) return std::unexpected(value.error());
        if (!ro.match_labels.emplace(it->first.Scalar(), std::move(*value)).second) {
          return std::unexpected(r.error(label, "appears twice: keep one"));
        }
      }
    }
  }

  auto steps = spec->require("steps");
  if (!steps) return std::unexpected(steps.error());
  auto step_values = read_steps(r, *steps);
  if (!step_values) return std::unexpected(step_values.error());
  ro.steps = std::move(*step_values);

  if (auto b = spec->get("bake")) {
    auto d = duration_seconds(r, *b, true);
    if (!d) return std::unexpected(d.error());
    ro.bake = *d;
  }
  if (auto m = spec->get("minDevices")) {
    auto n = integer<int>(r, *m, 1, std::numeric_limits<int>::max(), "minDevices: 3");
    if (!n) return std::unexpected(n.error());
    ro.min_devices = *n;
  }
  if (auto f = spec->get("maxFailureRate")) {
    auto t = text(r, *f);
    if (!t) return std::unexpected(t.error());
    if (!t->ends_with('%')) {
      return std::unexpected(r.error(*f, "bad percentage " + quote(*t) +
                                             ": write it with a percent sign, e.g. `5%` "
                                             "(a bare number could mean a fraction or a percent)"));
    }
    auto rate = parse_percentage(*t);
    if (!rate) return std::unexpected(r.error(*f, rate.error().message));
    ro.max_failure_rate = *rate;
  }
  if (auto o = spec->get("onFailure")) {
    auto t = text(r, *o);
    if (!t) return std::unexpected(t.error());
    if (*t == "rollback") {
      ro.on_failure = OnFailure::rollback;
    } else if (*t == "pause") {
      ro.on_failure = OnFailure::pause;
    } else {
      return std::unexpected(r.error(*o, "unknown action " + quote(*t) + ": write rollback or pause"));
    }
  }
  if (auto p = spec->get("progressDeadline")) {
    auto d = duration_seconds(r, *p, false);
    if (!d) return std::unexpected(d.error());
    ro.progress_deadline = *d;
  }
  return ParsedRollout{std::move(ro), frame->name_line};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Public API.

Expected<double> parse_percentage(std::string_view text) {
  auto bad = [&] {
    return make_error(Errc::invalid_argument,
                      "bad percentage " + quote(text) + ": write a number from 0 to 100 followed by `%`, e.g. `5%`");
  };
  if (!text.ends_with('%')) return bad();
  auto pct = percent_number(text);
  if (!pct || *pct < 0 || *pct > 100) return bad();
  return *pct / 100.0;
}

Expected<Release> parse_release(std::string_view yaml, std::string_view file) {
  auto parsed = read_release(yaml, file);
  if (!parsed) return std::unexpected(parsed.error());
  return std::move(parsed->release);
}

Expected<Rollout> parse_rollout(std::string_view yaml, std::string_view file) {
  auto parsed = read_rollout(yaml, file);
  if (!parsed) return std::unexpected(parsed.error());
  return std::move(parsed->rollout);
}

Expected<Fleet> parse_fleet(const std::map<std::string, std::string>& files) {
  std::vector<std::string> problems;
  Fleet fleet;
  std::map<std::string, std::string> release_where;  // name -> "file:line"
  std::map<std::string, std::string> rollout_where;
  std::vector<std::string> rollout_names;

  for (const auto& [path, content] : files) {
    const bool yaml = path.ends_with(".yaml") || path.ends_with(".yml");
    if (yaml && path.starts_with("releases/")) {
      auto parsed = read_release(content, path);
      if (!parsed) {
        problems.push_back(parsed.error().message);
        continue;
      }
      const std::string where = path + ":" + std::to_string(parsed->name_line);
      const std::string name = parsed->release.name;
      if (auto [prev, inserted] = release_where.emplace(name, where); !inserted) {
        problems.push_back(where + ": release name " + quote(name) + " is also used by " + prev->second +
                           ": give each release its own metadata.name");
        continue;
      }
      fleet.releases.emplace(name, std::move(parsed->release));
    } else if (yaml && path.starts_with("rollouts/")) {
      auto parsed = read_rollout(content, path);
      if (!parsed) {
        problems.push_back(parsed.error().message);
        continue;
      }
      const std::string where = path + ":" + std::to_string(parsed->name_line);
      if (auto [prev, inserted] = rollout_where.emplace(parsed->rollout.name, where); !inserted) {
        problems.push_back(where + ": rollout name " + quote(parsed->rollout.name) + " is also used by " +
                           prev->second + ": give each rollout its own metadata.name");
        continue;
      }
      fleet.rollouts.push_back(std::move(parsed->rollout));
    }
  }

  // A rollout may only name a release that parsed; one that failed to parse is already reported.
  std::vector<std::string_view> release_names;
  for (const auto& [name, rel] : fleet.releases) release_names.push_back(name);
  for (const auto& ro : fleet.rollouts) {
    if (fleet.releases.contains(ro.release)) continue;
    const bool a_release_failed =
        std::any_of(problems.begin(), problems.end(), [](const std::string& p) { return p.starts_with("releases/"); });
    std::string message =
        ro.file + ":" + std::to_string(ro.release_line) + ": release " + quote(ro.release) + " does not exist";
    if (auto suggestion = did_you_mean(ro.release, release_names)) {
      message += " (did you mean " + quote(*suggestion) + "?)";
    } else if (a_release_failed) {
      message += " (or its file has an error listed here)";
    } else {
      message += ": no releases/*.yaml has metadata.name " + quote(ro.release);
    }
    problems.push_back(std::move(message));
  }

  if (problems.size() == 1) return make_error(Errc::invalid_argument, problems.front());
  if (!problems.empty()) {
    std::string message = std::to_string(problems.size()) + " problems in the fleet repository:";
    for (const auto& p : problems) message += "\n" + p;
    return make_error(Errc::invalid_argument, std::move(message));
  }
  return fleet;
}

std::string_view strategy_name(SwapStrategy strategy) {
  switch (strategy) {
    case SwapStrategy::hand_over: return "hand-over";
    case SwapStrategy::stop_then_start: return "stop-then-start";
    case SwapStrategy::download_then_stop: return "download-then-stop";
  }
  return "hand-over";
}

}  // namespace eddy::ota
