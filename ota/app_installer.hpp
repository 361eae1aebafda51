// Installer for payloads of type `app`: a .tar.zst bundle unpacked into its own version folder
// (dir/versions/<version>/) and switched on by pointing the `dir/current` symlink at it.
//
// The bundle streams once (ByteStream → zstd → tar → files, through libarchive); nothing of it
// is held whole in memory. Every entry is checked before it touches the disk: a bundle can only
// create regular files, folders and links that stay inside its own version folder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ota/byte_stream.hpp"
#include "platform/error.hpp"

namespace eddy::ota {

struct AppTarget {
  std::string name;                       // the app name (release spec.target)
  std::filesystem::path dir;              // dir/versions/<version>/ and dir/current -> versions/<version>
  std::vector<std::string> run;           // supervised by eddyd, cwd = dir/current (may be empty)
  std::vector<std::string> restart;       // or a command that restarts an externally managed service
  // A bundle that expands past this is refused. Counted: the declared size of every file plus
  // 512 bytes for each entry (a bundle of millions of empty files costs inodes too).
  std::uint64_t max_unpacked_bytes = 1ull << 30;
  int keep_versions = 2;                  // versions kept on disk (current + previous); older ones are pruned
};

class AppInstaller {
 public:
  explicit AppInstaller(AppTarget target);

  // Unpack into dir/versions/.staging-<version>/, fsync files and folders, then rename to
  // dir/versions/<version>/ and fsync versions/. Refusals (Errc::unsafe_path, naming the entry):
  // absolute paths, any ".." component, symlinks or hard links whose target resolves outside
  // the version folder, entries written through a symlink, device nodes, FIFOs, sockets.
  // Errc::too_large past max_unpacked_bytes; Errc::no_space on ENOSPC (naming the file);
  // Errc::invalid_argument for data that is not a zstd-compressed tar. Errors of the ByteStream
  // pass through with their code. The stream is read to its end before success.
  // On any failure the staging folder is removed and nothing else changes. Staging the current
  // version is Errc::conflict; staging a version that exists but is not current replaces it
  // only once the new copy is complete.
  // File modes keep their permission bits (setuid, setgid and sticky bits are dropped);
  // ownership and timestamps are not restored.
  Status stage(std::string_view version, ByteStream& compressed);
  bool is_staged(std::string_view version) const;

  // Remove a staging folder or a staged-but-never-activated version (recovery after a crash).
  // Missing folders are not an error; the current version is Errc::conflict.
  Status discard(std::string_view version);

  // Atomically point dir/current at versions/<version> (a new link renamed over the old one,
  // so `current` never disappears). Errc::not_found if not staged.
  Status activate(std::string_view version);

  std::optional<std::string> current_version() const;   // from the current link; nullopt if none
  std::vector<std::string> versions() const;            // folders in versions/ (not staging), sorted

  // Remove versions not in `keep`, oldest first (by mtime), until at most keep_versions remain;
  // never removes the current one or one in keep. Leftover .staging-* folders are removed.
  Status prune(const std::set<std::string>& keep);

  const AppTarget& target() const { return target_; }

 private:
  std::filesystem::path versions_dir() const { return target_.dir / "versions"; }
  std::filesystem::path current_link() const { return target_.dir / "current"; }
  // Move a folder in versions/ aside under a dot-name (so a crash never leaves a half-removed
  // folder under a version's name), sync versions/, then delete it.
  Status remove_folder(const std::string& name);

  AppTarget target_;
};

}  // namespace eddy::ota
