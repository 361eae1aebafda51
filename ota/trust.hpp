// Trust: a fleet-repository commit is accepted only if its SSH signature verifies against an
// allowed_signers file, with the semantics of `git verify-commit` under gpg.format=ssh (git's
// gpg-interface.c running `ssh-keygen -Y find-principals` then `-Y verify -n git`, both with
// -Overify-time set to the committer timestamp). Implemented in-process (ota/sshsig.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ota/sshsig.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

// One line of an allowed_signers file (ssh-keygen(1) "ALLOWED SIGNERS"):
//   principals [options] keytype base64-key [comment]
struct AllowedSigner {
  std::size_t line = 0;                     // 1-based line number in the file
  std::string principals;                   // comma-separated patterns, as written (quotes removed)
  bool cert_authority = false;              // `cert-authority`: the key is a CA for certificates
  std::optional<std::string> namespaces;    // `namespaces="git,file"`: pattern list
  std::optional<std::int64_t> valid_after;  // `valid-after=`: Unix seconds
  std::optional<std::int64_t> valid_before; // `valid-before=`: Unix seconds
  sshsig::PublicKey key;
};

class AllowedSigners {
 public:
  // Parse Git/OpenSSH allowed_signers text; `origin` (usually the file path) is used in
  // messages ("/etc/eddy/allowed_signers:3: bad options: unknown option `foo`"). Comments (#)
  // and blank lines are allowed. Unlike ssh-keygen, which skips a malformed line with a
  // warning, any malformed line refuses the whole file (Errc::invalid_argument): a device
  // must not silently run with fewer signers than its operator wrote.
  [[nodiscard]] static Expected<AllowedSigners> parse(std::string_view text, std::string origin);
  [[nodiscard]] static Expected<AllowedSigners> load(const std::filesystem::path& file);

  std::size_t size() const { return entries_.size(); }
  const std::vector<AllowedSigner>& entries() const { return entries_; }
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
  std::vector<AllowedSigner> entries_;
};

struct SignerIdentity {
  std::string principal;    // the principal (pattern) of the matching allowed_signers entry
  std::string key_type;     // "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"
  std::string fingerprint;  // "SHA256:..." as ssh-keygen -l prints it
};

// A raw commit split the way git splits it before verifying (commit.c,
// parse_buffer_signed_by_header): `payload` is the commit without its `gpgsig` header and
// continuation lines (and without other `gpgsig-*` headers); `signature` is the gpgsig value
// with the continuation-line spaces removed. signature is empty for an unsigned commit.
struct SignedPayload {
  std::string payload;
  std::string signature;
};
SignedPayload split_signed_commit(std::string_view raw_commit);

// raw_commit: the commit object exactly as `git cat-file commit <id>` prints it (header lines
// including a multi-line `gpgsig` header, blank line, message). commit_id is for messages only.
// Refusals: Errc::unsigned_commit, unknown_key, bad_signature, key_not_allowed (namespaces=,
// valid-after=, valid-before=, certificate validity or principals), unsupported (OpenPGP/X.509
// signatures; DSA and FIDO "sk-" keys and their certificates). OpenSSH user certificates of
// ed25519/ecdsa/rsa keys are verified against `cert-authority` entries as ssh-keygen does.
// The verify time is the committer timestamp, as git passes it with -Overify-time.
[[nodiscard]] Expected<SignerIdentity> verify_commit(std::string_view raw_commit, const AllowedSigners& signers,
                                                     std::string_view commit_id);

// The core of verify_commit, for any Git object signed the same way (annotated tags put the
// signature at the end of the payload instead; the caller splits it). `what` names the object
// in messages ("commit 1a2b3c4"); `verify_time` is the committer/tagger time in Unix seconds.
[[nodiscard]] Expected<SignerIdentity> verify_ssh_signature(std::string_view payload, std::string_view signature,
                                                            const AllowedSigners& signers,
                                                            std::int64_t verify_time, std::string_view what);

// OpenSSH's match_pattern_list: comma-separated glob patterns (`*`, `?`), `!` negates.
// Returns 1 on a positive match, -1 if a negated pattern matched, 0 otherwise.
int match_pattern_list(std::string_view string, std::string_view patterns);

// OpenSSH's parse_absolute_time: YYYYMMDD[HHMM[SS]] in local time, or UTC with a `Z`/`UTC`
// suffix. Errc::invalid_argument for anything else.
Expected<std::int64_t> parse_absolute_time(std::string_view text);

}  // namespace eddy::ota
