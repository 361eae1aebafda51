#include "ota/trust.hpp"

#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>

#include "platform/fs.hpp"

namespace eddy::ota {
namespace {

constexpr std::string_view kSshSignatureBegin = "-----BEGIN SSH SIGNATURE-----";
constexpr std::string_view kGitNamespace = "git";

bool ieq_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    auto a = static_cast<unsigned char>(text[i]);
    auto b = static_cast<unsigned char>(prefix[i]);
    if (std::tolower(a) != std::tolower(b)) return false;
  }
  return true;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

// OpenSSH's match_pattern: `*` matches any run, `?` any one character.
bool match_pattern(std::string_view s, std::string_view p) {
  std::size_t si = 0, pi = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++si;
      ++pi;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

// Times are std::int64_t Unix seconds and the calendar is std::chrono's, not time_t's:
// time_t has 32 bits on 32-bit Debian (armhf, bookworm), and a key may be valid past 2038.
std::string format_utc(std::int64_t t) {
  using namespace std::chrono;
  sys_seconds at{seconds{t}};
  auto day = floor<days>(at);
  year_month_day ymd{day};
  hh_mm_ss hms{at - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:%02d:%02d UTC", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

// timegm() without time_t: the seconds of a civil UTC time, normalised as timegm does
// (31 February is 3 March).
std::int64_t civil_utc_seconds(const std::tm& tm) {
  using namespace std::chrono;
  auto month_start = sys_days{year{tm.tm_year + 1900} / month{static_cast<unsigned>(tm.tm_mon + 1)} / 1};
  auto day = month_start + days{tm.tm_mday - 1};
  return duration_cast<seconds>(day.time_since_epoch()).count() + tm.tm_hour * 3600LL + tm.tm_min * 60LL + tm.tm_sec;
}

// mktime() of a standard-time civil time (tm_isdst 0), past what a 32-bit time_t holds too:
// there the zone's standard offset of the same date in 2037 serves (the tz database
// extends a zone's last rule unchanged into the future).
std::optional<std::int64_t> civil_local_seconds(std::tm tm) {
  std::tm probe = tm;
  std::time_t local = std::mktime(&probe);
  if (local != static_cast<std::time_t>(-1)) return static_cast<std::int64_t>(local);
  if (sizeof(std::time_t) >= 8 || tm.tm_year + 1900 < 2038) return std::nullopt;
  probe = tm;
  probe.tm_year = 2037 - 1900;
  local = std::mktime(&probe);
  if (local == static_cast<std::time_t>(-1)) return std::nullopt;
  probe = tm;
  probe.tm_year = 2037 - 1900;
  std::int64_t offset = civil_utc_seconds(probe) - static_cast<std::int64_t>(local);
  return civil_utc_seconds(tm) - offset;
}

// ---- allowed_signers line parsing (sshsig.c parse_principals_key_and_options) ----

// sshkey_read: "keytype base64 [comment]". Returns the key or why not.
Expected<sshsig::PublicKey> read_key(std::string_view text) {
  auto bad = [](std::string reason) { return make_error(Errc::invalid_argument, std::move(reason)); };
  std::size_t type_end = text.find_first_of(" \t");
  if (type_end == std::string_view::npos) {
    if (sshsig::is_known_key_type(text)) return bad(std::string(text) + " key without its base64 data");
    return bad("missing key");
  }
  std::string_view type = text.substr(0, type_end);
  if (!sshsig::is_known_key_type(type)) return bad("unknown key type `" + std::string(type) + "`");
  std::size_t data_begin = text.find_first_not_of(" \t", type_end);
  if (data_begin == std::string_view::npos) return bad(std::string(type) + " key without its base64 data");
  std::size_t data_end = text.find_first_of(" \t", data_begin);
  auto blob = sshsig::base64_decode(text.substr(data_begin, data_end == std::string_view::npos
                                                                ? std::string_view::npos
                                                                : data_end - data_begin));
  if (!blob) return bad("invalid " + std::string(type) + " key: not valid base64");
  auto key = sshsig::parse_public_key(*blob);
  if (!key) return bad("invalid " + std::string(type) + " key: " + key.error().message);
  if (key->type != type)
    return bad("key type `" + std::string(type) + "` does not match the key data (" + key->type + ")");
  return key;
}

// opt_dequote: a double-quoted value, `\"` escapes a quote.
Expected<std::string> dequote(std::string_view& opts) {
  if (opts.empty() || opts[0] != '"') return make_error(Errc::invalid_argument, "missing start quote");
  std::string out;
  std::size_t i = 1;
  for (; i < opts.size() && opts[i] != '"'; ++i) {
    if (opts[i] == '\\' && i + 1 < opts.size() && opts[i + 1] == '"') ++i;
    out.push_back(opts[i]);
  }
  if (i >= opts.size()) return make_error(Errc::invalid_argument, "missing end quote");
  opts.remove_prefix(i + 1);
  return out;
}

// opt_match: `name=` (case-insensitive), consumed on a match.
bool opt_match(std::string_view& opts, std::string_view name) {
  if (!ieq_prefix(opts, name) || opts.size() <= name.size() || opts[name.size()] != '=') return false;
  opts.remove_prefix(name.size() + 1);
  return true;
}

// sshsigopt_parse. Errors name the problem; the caller adds file:line.
Status parse_options(std::string_view opts, AllowedSigner& entry) {
  auto bad = [](std::string reason) { return make_error(Errc::invalid_argument, "bad options: " + reason); };
  while (!opts.empty() && !is_space(opts[0])) {
    std::string_view option_start = opts;
    if (ieq_prefix(opts, "cert-authority")) {
      opts.remove_prefix(std::string_view("cert-authority").size());
      entry.cert_authority = true;
    } else if (opt_match(opts, "namespaces")) {
      if (entry.namespaces) return bad("multiple \"namespaces\" clauses");
      auto value = dequote(opts);
      if (!value) return bad("namespaces: " + value.error().message + " (write namespaces=\"git\")");
      entry.namespaces = std::move(*value);
    } else if (opt_match(opts, "valid-after") || opt_match(opts, "valid-before")) {
      bool after = ieq_prefix(option_start, "valid-after");
      std::string_view name = after ? "valid-after" : "valid-before";
      auto& slot = after ? entry.valid_after : entry.valid_before;
      if (slot) return bad("multiple \"" + std::string(name) + "\" clauses");
      auto value = dequote(opts);
      if (!value) return bad(std::string(name) + ": " + value.error().message + " (write " + std::string(name) + "=\"YYYYMMDD\")");
      auto t = parse_absolute_time(*value);
      if (!t || *t == 0)
        return bad("invalid \"" + std::string(name) + "\" time `" + *value +
                   "` (expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, with Z for UTC)");
      slot = *t;
    }
    if (opts.empty() || is_space(opts[0])) break;
    if (opts[0] != ',') {
      auto name = option_start.substr(0, option_start.find_first_of(",= \t"));
      return bad("unknown option `" + std::string(name) +
                 "` (allowed: cert-authority, namespaces=, valid-after=, valid-before=)");
    }
    opts.remove_prefix(1);
    if (opts.empty()) return bad("unexpected end of options after `,`");
  }
  if (entry.valid_after && entry.valid_before && *entry.valid_before <= *entry.valid_after)
    return bad("\"valid-before\" time is before \"valid-after\"");
  return {};
}

// One non-comment line. Errors carry the reason only.
Expected<AllowedSigner> parse_line(std::string_view line) {
  auto bad = [](std::string reason) { return make_error(Errc::invalid_argument, std::move(reason)); };
  AllowedSigner entry;
  // strdelimw: the principals token ends at whitespace; a double quote starts a quoted part
  // that ends the token at its closing quote.
  std::size_t delim = line.find_first_of(" \t\"");
  if (delim == std::string_view::npos)
    return bad("missing key (expected `principals [options] keytype base64-key`)");
  std::string_view rest;
  if (line[delim] == '"') {
    std::size_t close = line.find('"', delim + 1);
    if (close == std::string_view::npos) return bad("unterminated quote in principals");
    entry.principals = std::string(line.substr(0, delim)) + std::string(line.substr(delim + 1, close - delim - 1));
    rest = line.substr(close + 1);
  } else {
    entry.principals = std::string(line.substr(0, delim));
    rest = line.substr(delim + 1);
  }
  while (!rest.empty() && is_space(rest[0])) rest.remove_prefix(1);
  if (entry.principals.empty()) return bad("empty principals");

  std::string_view options;
  auto key = read_key(rest);
  if (!key) {
    // No key first: an options field, then the key (sshkey_advance_past_options).
    auto first_error = key.error();
    bool quoted = false;
    std::size_t i = 0;
    for (; i < rest.size() && (quoted || !is_space(rest[i])); ++i) {
      if (rest[i] == '\\' && i + 1 < rest.size() && rest[i + 1] == '"') ++i;
      else if (rest[i] == '"') quoted = !quoted;
    }
    if (quoted) return bad("invalid options: unterminated quote");
    options = rest.substr(0, i);
    std::string_view key_text = rest.substr(i);
    while (!key_text.empty() && is_space(key_text[0])) key_text.remove_prefix(1);
    // What reads as a key type rather than options is better reported as the key's own error.
    const bool looks_like_options = ieq_prefix(options, "cert-authority") || ieq_prefix(options, "namespaces=") ||
                                    ieq_prefix(options, "valid-after=") || ieq_prefix(options, "valid-before=") ||
                                    options.find('=') != std::string_view::npos;
    if (key_text.empty()) {
      if (rest.empty()) return bad("missing key (expected `principals [options] keytype base64-key`)");
      if (!looks_like_options) return std::unexpected(first_error);
      return bad("missing key after options `" + std::string(options) + "`");
    }
    key = read_key(key_text);
    if (!key) {
      if (!looks_like_options) return std::unexpected(first_error);
      return std::unexpected(key.error());
    }
  }
  entry.key = std::move(*key);
  if (auto st = parse_options(options, entry); !st) return std::unexpected(st.error());
  return entry;
}

// The committer timestamp git passes as -Overify-time (parse_payload_metadata).
Expected<std::int64_t> committer_time(std::string_view payload) {
  std::size_t pos = 0;
  while (pos < payload.size()) {
    std::size_t nl = payload.find('\n', pos);
    std::string_view line = payload.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (line.empty()) break;  // end of headers
    if (line.starts_with("committer ")) {
      auto lt = line.find('<');
      auto gt = line.find('>', lt == std::string_view::npos ? 0 : lt);
      if (lt == std::string_view::npos || gt == std::string_view::npos)
        return make_error(Errc::bad_signature, "malformed committer line");
      std::string_view date = line.substr(gt + 1);
      while (!date.empty() && date[0] == ' ') date.remove_prefix(1);
      std::uint64_t t = 0;
      auto [end, ec] = std::from_chars(date.data(), date.data() + date.size(), t);
      // Without a date git passes no verify-time and ssh-keygen uses the current time.
      if (ec == std::errc::invalid_argument || t == 0) return static_cast<std::int64_t>(std::time(nullptr));
      if (ec != std::errc() || t > static_cast<std::uint64_t>(INT64_MAX))
        return make_error(Errc::bad_signature, "committer timestamp out of range");
      return static_cast<std::int64_t>(t);
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return make_error(Errc::bad_signature, "commit has no committer line");
}

// Why an entry's validity window excludes verify_time, or empty if it does not.
std::string time_refusal(const AllowedSigner& e, std::int64_t verify_time) {
  if (e.valid_after && verify_time < *e.valid_after)
    return "valid-after=" + format_utc(*e.valid_after) + " is later than the committer time " + format_utc(verify_time);
  if (e.valid_before && verify_time > *e.valid_before)
    return "valid-before=" + format_utc(*e.valid_before) + " is earlier than the committer time " + format_utc(verify_time);
  return {};
}

// The principals find-principals prints: split at commas, stopping at an empty one.
std::vector<std::string_view> split_principals(std::string_view principals) {
  std::vector<std::string_view> out;
  while (!principals.empty()) {
    auto comma = principals.find(',');
    std::string_view p = principals.substr(0, comma);
    if (p.empty()) break;
    out.push_back(p);
    principals = comma == std::string_view::npos ? std::string_view{} : principals.substr(comma + 1);
  }
  return out;
}

std::string format_cert_time(std::uint64_t t) {
  return t > static_cast<std::uint64_t>(INT64_MAX) ? "forever" : format_utc(static_cast<std::int64_t>(t));
}

// sshkey_cert_check_authority for a user certificate with a required principal list; `name`,
// when given, must be one of the certificate's principals exactly. Empty when it passes.
std::string cert_refusal(const sshsig::Certificate& cert, std::int64_t verify_time,
                         std::optional<std::string_view> name) {
  if (cert.type != sshsig::Certificate::user) return "certificate `" + cert.key_id + "` is not a user certificate";
  auto t = static_cast<std::uint64_t>(verify_time < 0 ? 0 : verify_time);
  if (t < cert.valid_after)
    return "certificate `" + cert.key_id + "` is not yet valid at the committer time " + format_utc(verify_time) +
           " (valid from " + format_cert_time(cert.valid_after) + ")";
  if (t >= cert.valid_before)
    return "certificate `" + cert.key_id + "` had expired at the committer time " + format_utc(verify_time) +
           " (valid before " + format_cert_time(cert.valid_before) + ")";
  if (cert.principals.empty()) return "certificate `" + cert.key_id + "` lacks a principal list";
  if (name) {
    for (const auto& p : cert.principals)
      if (p == *name) return {};
    return "`" + std::string(*name) + "` is not a principal of certificate `" + cert.key_id + "`";
  }
  return {};
}

}  // namespace

int match_pattern_list(std::string_view string, std::string_view patterns) {
  bool positive = false;
  std::size_t i = 0;
  while (i < patterns.size()) {
    bool negated = patterns[i] == '!';
    if (negated) ++i;
    std::size_t comma = patterns.find(',', i);
    std::string_view sub = patterns.substr(i, comma == std::string_view::npos ? std::string_view::npos : comma - i);
    i = comma == std::string_view::npos ? patterns.size() : comma + 1;
    if (sub.size() >= 1023) return 0;  // OpenSSH's fixed buffer: too long never matches
    if (match_pattern(string, sub)) {
      if (negated) return -1;
      positive = true;
    }
  }
  return positive ? 1 : 0;
}

Expected<std::int64_t> parse_absolute_time(std::string_view text) {
  auto bad = [&] { return make_error(Errc::invalid_argument, "invalid time `" + std::string(text) + "`"); };
  std::string_view s = text;
  bool utc = false;
  if (s.size() > 1 && (s.back() == 'Z' || s.back() == 'z')) {
    utc = true;
    s.remove_suffix(1);
  } else if (s.size() > 3 && ieq_prefix(s.substr(s.size() - 3), "UTC")) {
    utc = true;
    s.remove_suffix(3);
  }
  if (s.size() != 8 && s.size() != 12 && s.size() != 14) return bad();
  for (char c : s)
    if (c < '0' || c > '9') return bad();
  auto num = [&](std::size_t at, std::size_t len) {
    int v = 0;
    for (std::size_t i = at; i < at + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  if (s.size() >= 12) {
    tm.tm_hour = num(8, 2);
    tm.tm_min = num(10, 2);
  }
  if (s.size() == 14) tm.tm_sec = num(12, 2);
  // strptime's ranges.
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 61)
    return bad();
  tm.tm_isdst = 0;  // OpenSSH zeroes the struct tm; mktime then reads it as standard time
  std::optional<std::int64_t> t = utc ? civil_utc_seconds(tm) : civil_local_seconds(tm);
  if (!t || *t < 0) return bad();
  return *t;
}

Expected<AllowedSigners> AllowedSigners::parse(std::string_view text, std::string origin) {
  AllowedSigners out;
  out.origin_ = std::move(origin);
  std::size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    ++line_no;
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.find('\0') != std::string_view::npos)
      return make_error(Errc::invalid_argument, out.origin_ + ":" + std::to_string(line_no) + ": NUL byte in line");
    while (!line.empty() && (line.back() == '\r' || is_space(line.back()))) line.remove_suffix(1);
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    auto entry = parse_line(line);
    if (!entry)
      return make_error(Errc::invalid_argument, out.origin_ + ":" + std::to_string(line_no) + ": " +
                                                    entry.error().message);
    entry->line = line_no;
    out.entries_.push_back(std::move(*entry));
  }
  return out;
}

Expected<AllowedSigners> AllowedSigners::load(const std::filesystem::path& file) {
  auto text = fs::read_file(file, 4u << 20);
  if (!text) return std::unexpected(text.error().with_context("read allowed signers " + file.string()));
  return parse(*text, file.string());
}

SignedPayload split_signed_commit(std::string_view raw) {
  // commit.c parse_buffer_signed_by_header, for SHA-1 repositories (header `gpgsig`).
  SignedPayload out;
  bool in_signature = false, other_signature = false;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    std::size_t nl = raw.find('\n', pos);
    std::size_t next = nl == std::string_view::npos ? raw.size() : nl + 1;
    std::string_view line = raw.substr(pos, next - pos);
    std::optional<std::string_view> sig;
    if (in_signature && line[0] == ' ') {
      sig = line.substr(1);
    } else if (line.starts_with("gpgsig ")) {
      sig = line.substr(7);
      other_signature = false;
    } else if (line.starts_with("gpgsig")) {
      other_signature = true;
    } else if (other_signature && line[0] != ' ') {
      other_signature = false;
    }
    if (sig) {
      out.signature.append(*sig);
      in_signature = true;
    } else {
      if (line[0] == '\n') {  // end of headers: the rest is the message
        next = raw.size();
        line = raw.substr(pos);
      }
      if (!other_signature) out.payload.append(line);
      in_signature = false;
    }
    pos = next;
  }
  return out;
}

Expected<SignerIdentity> verify_ssh_signature(std::string_view payload, std::string_view signature,
                                              const AllowedSigners& signers, std::int64_t verify_time,
                                              std::string_view what) {
  const std::string subject(what);
  const std::string& file = signers.origin();
  auto sig = sshsig::parse_armored(signature);
  if (!sig)
    return make_error(Errc::bad_signature, subject + ": malformed SSH signature (" + sig.error().message +
                                               "); re-sign it with `git commit -S` (gpg.format=ssh)");
  const sshsig::PublicKey& key = sig->key;
  const std::string fp = key.fingerprint();
  if (key.kind == sshsig::KeyKind::certificate)
    return make_error(Errc::unsupported, subject + ": signed with a " + key.type + " certificate (" + fp +
                                             "), a type Eddy does not verify; use an ssh-ed25519, ecdsa or "
                                             "ssh-rsa key or certificate");
  const sshsig::Certificate* cert = key.cert ? &*key.cert : nullptr;
  std::string signer = key.type + " key " + fp;
  if (cert)
    signer = key.type + " certificate `" + cert->key_id + "` (key " + fp + ", CA " +
             cert->signature_key->fingerprint() + ")";

  // A plain key matches plain entries with the same key; a certificate matches the
  // cert-authority entries of its CA (sshsig.c check_allowed_keys_line).
  auto key_matches = [&](const AllowedSigner& e) {
    return cert ? e.cert_authority && cert->signature_key->same_key(e.key)
                : !e.cert_authority && e.key.same_key(key);
  };
  auto at = [&](const AllowedSigner& e) { return file + ":" + std::to_string(e.line) + ": "; };

  // `ssh-keygen -Y find-principals`: the first matching entry whose validity window holds the
  // verify time. For a certificate, the entry's patterns select the certificate's principals.
  // Namespaces are not looked at in this step.
  const AllowedSigner* found = nullptr;
  std::vector<std::string> found_principals;
  std::string refusal;
  for (const auto& e : signers.entries()) {
    if (!key_matches(e)) continue;
    std::vector<std::string> principals;
    if (cert) {
      std::string why;
      for (auto pattern : split_principals(e.principals)) {
        if (auto r = cert_refusal(*cert, verify_time, std::nullopt); !r.empty()) {
          why = r;
          continue;
        }
        for (const auto& p : cert->principals)
          if (match_pattern(p, pattern)) principals.push_back(p);
      }
      if (principals.empty()) {
        if (refusal.empty())
          refusal = at(e) + (why.empty() ? "no principal of the certificate matches `" + e.principals + "`" : why);
        continue;
      }
    } else {
      for (auto p : split_principals(e.principals)) principals.emplace_back(p);
    }
    if (auto why = time_refusal(e, verify_time); !why.empty()) {
      if (refusal.empty()) refusal = at(e) + why;
      continue;
    }
    found = &e;
    found_principals = std::move(principals);
    break;
  }
  if (found == nullptr && !refusal.empty())
    return make_error(Errc::key_not_allowed, subject + ": signed by " + signer + ", which " + file +
                                                 " does not allow for this commit: " + refusal +
                                                 "; re-sign with a valid key or change the entry");
  if (found == nullptr)
    return make_error(Errc::unknown_key,
                      subject + ": signed by " + signer + ", which is not in " + file + "; add the signer's " +
                          (cert ? "CA there as a cert-authority" : "public key there") +
                          " if they are trusted, or re-sign the commit with a listed key");

  // `ssh-keygen -Y verify -n git`: the signature itself, then the allowed-keys check for each
  // principal find-principals printed, until one passes.
  if (auto st = sshsig::verify(*sig, payload, kGitNamespace); !st) {
    if (st.error().code == Errc::unsupported)
      return make_error(Errc::unsupported, subject + ": " + st.error().message + " (" + signer + ", " + at(*found) +
                                               "listed); use an ssh-ed25519, ecdsa or ssh-rsa key");
    const bool wrong_use = st.error().message.starts_with("signature namespace");
    return make_error(Errc::bad_signature,
                      subject + ": bad signature by " + signer + ": " + st.error().message +
                          (wrong_use ? "; the signature was made for another use than a Git commit, re-sign the "
                                       "commit with `git commit -S`"
                                     : "; the commit or its signature was altered after signing, do not deploy it"));
  }

  for (const auto& principal : found_principals) {
    for (const auto& e : signers.entries()) {
      if (match_pattern_list(principal, e.principals) != 1 || !key_matches(e)) continue;
      if (cert) {
        if (auto why = cert_refusal(*cert, verify_time, principal); !why.empty()) {
          if (refusal.empty()) refusal = at(e) + why;
          continue;
        }
      }
      if (e.namespaces && match_pattern_list(kGitNamespace, *e.namespaces) != 1) {
        if (refusal.empty())
          refusal = at(e) + "namespaces=\"" + *e.namespaces + "\" does not include `git`; add git to the option "
                    "or remove it";
        continue;
      }
      if (auto why = time_refusal(e, verify_time); !why.empty()) {
        if (refusal.empty()) refusal = at(e) + why;
        continue;
      }
      return SignerIdentity{principal, key.type, fp};
    }
  }
  if (refusal.empty()) refusal = at(*found) + "no entry lists principal `" + found->principals + "` with this key";
  return make_error(Errc::key_not_allowed,
                    subject + ": " + signer + " is not allowed to sign Git commits: " + refusal);
}

Expected<SignerIdentity> verify_commit(std::string_view raw_commit, const AllowedSigners& signers,
                                       std::string_view commit_id) {
  const std::string subject = "commit " + std::string(commit_id.substr(0, 7));
  auto split = split_signed_commit(raw_commit);
  if (split.signature.empty())
    return make_error(Errc::unsigned_commit,
                      subject + ": not signed; sign fleet commits with `git commit -S` (gpg.format=ssh)");
  std::string_view sig = split.signature;
  if (sig.starts_with("-----BEGIN PGP SIGNATURE-----") || sig.starts_with("-----BEGIN PGP MESSAGE-----"))
    return make_error(Errc::unsupported, subject + ": signed with OpenPGP (gpg); fleet commits must be signed with "
                                                   "an SSH key listed in " + signers.origin() +
                                                   " (git config gpg.format ssh)");
  if (sig.starts_with("-----BEGIN SIGNED MESSAGE-----"))
    return make_error(Errc::unsupported, subject + ": signed with X.509 (gpgsm); fleet commits must be signed with "
                                                   "an SSH key listed in " + signers.origin() +
                                                   " (git config gpg.format ssh)");
  if (!sig.starts_with(kSshSignatureBegin))
    return make_error(Errc::bad_signature, subject + ": signature in an unknown format; re-sign it with "
                                                     "`git commit -S` (gpg.format=ssh)");
  auto when = committer_time(split.payload);
  if (!when) return std::unexpected(when.error().with_context(subject));
  return verify_ssh_signature(split.payload, split.signature, signers, *when, subject);
}

}  // namespace eddy::ota
