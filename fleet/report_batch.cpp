#include "fleet/report_batch.hpp"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace eddy::fleet {

namespace {

using json = nlohmann::json;

constexpr std::size_t max_field_size = 4096;

enum class Type { text, integer, probes };

// A key of a report or of a probe result, and where its value goes.
struct Key {
  const char* name;
  Type type;
  std::string Report::*text = nullptr;
  std::int64_t Report::*integer = nullptr;
};

constexpr Key report_keys[] = {
    {"id", Type::text, &Report::id},
    {"time", Type::integer, nullptr, &Report::time},
    {"kind", Type::text, &Report::kind},
    {"target", Type::text, &Report::target},
    {"rollout", Type::text, &Report::rollout},
    {"release", Type::text, &Report::release},
    {"version", Type::text, &Report::version},
    {"commit", Type::text, &Report::commit},
    {"generation", Type::integer, nullptr, &Report::generation},
    {"from", Type::text, &Report::from},
    {"to", Type::text, &Report::to},
    {"outcome", Type::text, &Report::outcome},
    {"level", Type::text, &Report::level},
    {"message", Type::text, &Report::message},
    {"probes", Type::probes},
};

enum class ProbeKey { name, iteration, ok, detail };
constexpr std::pair<const char*, ProbeKey> probe_keys[] = {
    {"name", ProbeKey::name}, {"iteration", ProbeKey::iteration}, {"ok", ProbeKey::ok}, {"detail", ProbeKey::detail}};

// The SAX handler: a small stack of where the parser is (the batch object, its `reports` list, a
// report, its `probes` list, a probe result); values of unknown keys are skipped whatever their
// shape. A handler that returns false stops the parse with error_ set.
class BatchReader {
 public:
  explicit BatchReader(std::size_t max_reports) : max_reports_(max_reports) {}

  std::optional<Error> error;
  std::vector<Report> reports;
  bool saw_reports = false;

  bool null() { return scalar(Scalar::null, {}, 0, false); }
  bool boolean(bool value) { return scalar(Scalar::boolean, {}, 0, value); }
  bool number_integer(json::number_integer_t value) { return scalar(Scalar::integer, {}, value, false); }
  bool number_unsigned(json::number_unsigned_t value) {
    if (value > static_cast<json::number_unsigned_t>(std::numeric_limits<std::int64_t>::max()))
      return scalar(Scalar::other, {}, 0, false);
    return scalar(Scalar::integer, {}, static_cast<std::int64_t>(value), false);
  }
  bool number_float(json::number_float_t, const json::string_t&) { return scalar(Scalar::other, {}, 0, false); }
  bool string(json::string_t& value) { return scalar(Scalar::text, &value, 0, false); }
  bool binary(json::binary_t&) { return scalar(Scalar::other, {}, 0, false); }

  bool start_object(std::size_t) { return start(true); }
  bool start_array(std::size_t) { return start(false); }
  bool end_object() { return end(); }
  bool end_array() { return end(); }

  bool key(json::string_t& name) {
    if (skip_) return true;
    key_index_ = -1;
    switch (where_.back()) {
      case Where::batch:
        key_index_ = name == "reports" ? 0 : -1;
        break;
      case Where::report:
        for (std::size_t i = 0; i < std::size(report_keys); ++i)
          if (name == report_keys[i].name) key_index_ = static_cast<int>(i);
        break;
      case Where::probe:
        for (std::size_t i = 0; i < std::size(probe_keys); ++i)
          if (name == probe_keys[i].first) key_index_ = static_cast<int>(i);
        break;
      default:
        break;
    }
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    if (!error) error = Error{Errc::invalid_argument, "the request body is not valid JSON (send Content-Type: application/json)"};
    return false;
  }

 private:
  enum class Where { batch, reports, report, probes, probe };
  enum class Scalar { null, boolean, integer, text, other };

  std::string report_path() const { return "reports[" + std::to_string(reports.size() - 1) + "]"; }
  std::string probe_path() const {
    return report_path() + ".probes[" + std::to_string(reports.back().probes.size() - 1) + "]";
  }
  std::string field(const std::string& path, const char* key) const { return "`" + path + "." + key + "`"; }

  bool fail(std::string message) {
    error = Error{Errc::invalid_argument, std::move(message)};
    return false;
  }
  bool not_an_object(const std::string& path) { return fail("`" + path + "` must be an object"); }

  bool wrong_type() {
    if (where_.back() == Where::probe) {
      const auto [name, which] = probe_keys[static_cast<std::size_t>(key_index_)];
      const std::string f = field(probe_path(), name);
      if (which == ProbeKey::ok) return fail(f + " must be true or false");
      if (which == ProbeKey::iteration) return fail(f + " must be a whole number");
      return fail(f + " must be a string");
    }
    const Key& k = report_keys[static_cast<std::size_t>(key_index_)];
    const std::string f = field(report_path(), k.name);
    if (k.type == Type::integer) return fail(f + " must be a whole number");
    if (k.type == Type::probes) return fail(f + " must be a list");
    return fail(f + " must be a string");
  }

  bool start(bool object) {
    if (skip_) {
      ++skip_;
      return true;
    }
    if (where_.empty()) {
      if (!object) return fail("the request body must be a JSON object");
      where_.push_back(Where::batch);
      return true;
    }
    switch (where_.back()) {
      case Where::batch:
        if (key_index_ < 0) break;  // skipped
        if (object) return fail(missing_reports());
        saw_reports = true;
        reports.clear();  // a key given twice: the last one counts, as JSON readers do
        where_.push_back(Where::reports);
        return true;
      case Where::reports:
        if (reports.size() >= max_reports_)
          return fail("`reports` holds more than " + std::to_string(max_reports_) + " reports; send at most " +
                      std::to_string(max_reports_) + " a request");
        reports.emplace_back();
        if (!object) return not_an_object(report_path());
        has_id_ = has_kind_ = false;
        where_.push_back(Where::report);
        key_index_ = -1;
        return true;
      case Where::report:
        if (key_index_ < 0) break;
        if (!object && report_keys[static_cast<std::size_t>(key_index_)].type == Type::probes) {
          reports.back().probes.clear();
          where_.push_back(Where::probes);
          return true;
        }
        return wrong_type();
      case Where::probes:
        reports.back().probes.emplace_back();
        if (!object) return not_an_object(probe_path());
        has_name_ = has_ok_ = false;
        where_.push_back(Where::probe);
        key_index_ = -1;
        return true;
      case Where::probe:
        if (key_index_ < 0) break;
        return wrong_type();
    }
    skip_ = 1;  // the value of an unknown key
    return true;
  }

  bool end() {
    if (skip_) {
      --skip_;
      return true;
    }
    const Where done = where_.back();
    where_.pop_back();
    key_index_ = -1;
    if (done == Where::report) return check_report();
    if (done == Where::probe) return check_probe();
    return true;
  }

  bool scalar(Scalar type, json::string_t* text, std::int64_t integer, bool flag) {
    if (skip_) return true;
    if (where_.empty()) return fail("the request body must be a JSON object");
    switch (where_.back()) {
      case Where::batch:
        if (key_index_ >= 0) return fail(missing_reports());
        return true;
      case Where::reports:
      case Where::probes:
        return start(false);  // an element that is not an object: refused as a list there would be
      case Where::report:
        return report_value(type, text, integer);
      case Where::probe:
        return probe_value(type, text, integer, flag);
    }
    return true;
  }

  bool report_value(Scalar type, json::string_t* text, std::int64_t integer) {
    if (key_index_ < 0) return true;
    const Key& k = report_keys[static_cast<std::size_t>(key_index_)];
    Report& r = reports.back();
    if (type == Scalar::null) {  // as if the key were not there
      if (k.text) (r.*k.text).clear();
      if (k.integer) r.*k.integer = 0;
      if (k.type == Type::probes) r.probes.clear();
      if (k.text == &Report::id) has_id_ = false;
      if (k.text == &Report::kind) has_kind_ = false;
      return true;
    }
    if (k.type == Type::integer && type == Scalar::integer) {
      r.*k.integer = integer;
      return true;
    }
    if (k.type == Type::text && type == Scalar::text) {
      if (text->size() > max_field_size)
        return fail(field(report_path(), k.name) + " is longer than " + std::to_string(max_field_size) + " bytes");
      r.*k.text = std::move(*text);
      if (k.text == &Report::id) has_id_ = true;
      if (k.text == &Report::kind) has_kind_ = true;
      return true;
    }
    return wrong_type();
  }

  bool probe_value(Scalar type, json::string_t* text, std::int64_t integer, bool flag) {
    if (key_index_ < 0) return true;
    ProbeResult& p = reports.back().probes.back();
    const auto [name, which] = probe_keys[static_cast<std::size_t>(key_index_)];
    switch (which) {
      case ProbeKey::ok:
        if (type != Scalar::boolean) return wrong_type();
        p.ok = flag;
        has_ok_ = true;
        return true;
      case ProbeKey::iteration:
        if (type == Scalar::null) p.iteration = 0;
        else if (type == Scalar::integer) p.iteration = integer;
        else return wrong_type();
        return true;
      case ProbeKey::name:
      case ProbeKey::detail: {
        std::string& out = which == ProbeKey::name ? p.name : p.detail;
        if (type == Scalar::null) {
          out.clear();
          if (which == ProbeKey::name) has_name_ = false;
          return true;
        }
        if (type != Scalar::text) return wrong_type();
        if (text->size() > max_field_size)
          return fail(field(probe_path(), name) + " is longer than " + std::to_string(max_field_size) + " bytes");
        out = std::move(*text);
        if (which == ProbeKey::name) has_name_ = true;
        return true;
      }
    }
    return true;
  }

  // What the tree-walking reader checked once a report was read, in the same order.
  bool check_report() {
    const Report& r = reports.back();
    if (!has_id_) return fail("missing field " + field(report_path(), "id") + " (a string)");
    if (r.id.empty() || r.id.size() > 200) return fail(field(report_path(), "id") + " must hold 1 to 200 characters");
    if (!has_kind_) return fail("missing field " + field(report_path(), "kind") + " (a string)");
    if (r.kind != "transition" && r.kind != "event")
      return fail(field(report_path(), "kind") + " must be \"transition\" or \"event\", got \"" + r.kind + "\"");
    if (r.generation < 0) return fail(field(report_path(), "generation") + " must not be negative");
    return true;
  }

  bool check_probe() {
    if (!has_name_) return fail("missing field " + field(probe_path(), "name") + " (a string)");
    if (!has_ok_) return fail(field(probe_path(), "ok") + " must be true or false");
    return true;
  }

  static std::string missing_reports() { return "missing field `reports` (a list of reports, oldest first)"; }

  std::size_t max_reports_;
  std::vector<Where> where_;
  int key_index_ = -1;  // the current object's key: an index into report_keys or probe_keys; -1 unknown
  int skip_ = 0;        // depth inside a skipped value
  bool has_id_ = false, has_kind_ = false, has_name_ = false, has_ok_ = false;
};

}  // namespace

Expected<std::vector<Report>> parse_report_batch(std::string_view body, std::size_t max_reports) {
  BatchReader reader(max_reports);
  bool parsed = false;
  try {
    parsed = json::sax_parse(body.begin(), body.end(), &reader);
  } catch (const std::exception& e) {  // the parser reports through parse_error; this is belt and braces
    return make_error(Errc::invalid_argument, std::string("the request body could not be read as JSON: ") + e.what());
  }
  if (reader.error) return std::unexpected(std::move(*reader.error));
  if (!parsed) return make_error(Errc::invalid_argument, "the request body is not valid JSON (send Content-Type: application/json)");
  if (!reader.saw_reports) return make_error(Errc::invalid_argument, "missing field `reports` (a list of reports, oldest first)");
  return std::move(reader.reports);
}

}  // namespace eddy::fleet
