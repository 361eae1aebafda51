#include "ota/app_installer.hpp"
#include "platform/unique_fd.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <system_error>
#include <utility>

#include "platform/fs.hpp"
#include "platform/log.hpp"

namespace eddy::ota {

namespace {

namespace stdfs = std::filesystem;

// What one tar entry costs besides its data: a header block, an inode.
constexpr std::uint64_t kEntryCost = 512;
// Links followed while checking where a symlink resolves (the kernel's own limit).
constexpr int kMaxLinkHops = 40;

struct ArchiveReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Path components, without empty ones and ".".
std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (!part.empty() && part != ".") parts.emplace_back(part);
    start = end + 1;
  }
  return parts;
}

std::string join_path(const std::vector<std::string>& parts, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count && i < parts.size(); ++i) {
    if (!out.empty()) out += '/';
    out += parts[i];
  }
  return out;
}

std::string join_path(const std::vector<std::string>& parts) { return join_path(parts, parts.size()); }

Error unsafe(std::string_view entry, std::string_view why) {
  return Error{Errc::unsafe_path,
               "entry " + in_quotes(entry) + ": " + std::string(why) +
                   "; the bundle is refused (build it from a folder of plain files, folders and relative links inside it)"};
}

Status validate_version(std::string_view version) {
  bool ok = !version.empty() && version.size() <= 128 && version.front() != '.';
  for (char c : version) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '+' || c == '-' || c == '~';
    if (!allowed) ok = false;
  }
  if (!ok)
    return make_error(Errc::invalid_argument,
                      "version " + in_quotes(version) +
                          " cannot name a folder: use up to 128 letters, digits and . _ + - ~, not "
                          "starting with a dot");
  return {};
}

std::string describe_type(mode_t type) {
  switch (type) {
    case AE_IFCHR: return "a character device";
    case AE_IFBLK: return "a block device";
    case AE_IFIFO: return "a FIFO";
    case AE_IFSOCK: return "a socket";
    default: return "an entry of unknown type " + std::to_string(type);
  }
}

// Unpacks one bundle into an empty folder. Every file operation goes through descriptors of
// folders it created itself, opened with O_NOFOLLOW, so no entry can reach outside the folder
// through a link, whatever order the entries come in.
class Unpacker {
 public:
  Unpacker(stdfs::path root, std::uint64_t max_bytes, ByteStream& stream)
      : root_(std::move(root)), max_bytes_(max_bytes), stream_(stream), buffer_(64 * 1024) {}

  Status run() {
    root_fd_ = UniqueFd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (root_fd_.get() < 0) return std::unexpected(errno_error(errno, "open folder", root_.string()));

    std::unique_ptr<archive, ArchiveReadFree> a(archive_read_new());
    if (!a) return make_error(Errc::internal, "libarchive: cannot allocate a reader");
    archive_read_support_filter_zstd(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open(a.get(), this, nullptr, &Unpacker::read_callback, nullptr) != ARCHIVE_OK)
      return std::unexpected(archive_failure(a.get(), "open bundle"));

    for (;;) {
      archive_entry* entry = nullptr;
      int r = archive_read_next_header(a.get(), &entry);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return std::unexpected(archive_failure(a.get(), "read bundle"));
      if (!zstd_checked_) {
        if (auto s = check_zstd(a.get()); !s) return s;
      }
      if (auto s = unpack_entry(a.get(), entry); !s) return s;
    }
    if (!zstd_checked_) {
      if (auto s = check_zstd(a.get()); !s) return s;
    }
    // The tar ends before the stream does (padding, trailing frames): read on, so that a check
    // made at the end of the stream (the payload's SHA-256) runs before anything is trusted.
    while (!stream_end_) {
      auto n = stream_.read(buffer_.data(), buffer_.size());
      if (!n) return std::unexpected(n.error().with_context("read bundle"));
      if (*n == 0) stream_end_ = true;
    }
    if (auto s = check_links(); !s) return s;
    return finish_folders();
  }

 private:
  static la_ssize_t read_callback(archive* a, void* self_ptr, const void** buffer) {
    auto* self = static_cast<Unpacker*>(self_ptr);
    *buffer = self->buffer_.data();
    if (self->stream_end_) return 0;
    auto n = self->stream_.read(self->buffer_.data(), self->buffer_.size());
    if (!n) {
      self->stream_error_ = n.error();
      archive_set_error(a, EIO, "payload stream failed");
      return -1;
    }
    if (*n == 0) self->stream_end_ = true;
    return static_cast<la_ssize_t>(*n);
  }

  // A libarchive failure; the stream's own error (digest, size, network) wins over what
  // libarchive made of it.
  Error archive_failure(archive* a, std::string_view what) const {
    if (stream_error_) return stream_error_->with_context("read bundle");
    const char* message = archive_error_string(a);
    return Error{Errc::invalid_argument,
                 std::string(what) + ": not a valid zstd-compressed tar: " +
                     (message ? message : "unknown libarchive error") +
                     " (build bundles with `tar -c ... | zstd`)"};
  }

  Status check_zstd(archive* a) {
    zstd_checked_ = true;
    int count = archive_filter_count(a);
    for (int i = 0; i < count; ++i)
      if (archive_filter_code(a, i) == ARCHIVE_FILTER_ZSTD) return {};
    return make_error(Errc::invalid_argument,
                      "bundle is not zstd-compressed (payloads of type app are .tar.zst; build "
                      "them with `tar -c ... | zstd`)");
  }

  std::string disk_path(const std::string& rel) const { return (root_ / rel).string(); }

  Status count(std::string_view entry, std::uint64_t bytes) {
    if (bytes > max_bytes_ || unpacked_ > max_bytes_ - bytes)
      return make_error(Errc::too_large,
                        "bundle expands past the limit of " + std::to_string(max_bytes_) +
                            " bytes at entry " + in_quotes(entry) +
                            " (a compression bomb, or a bundle larger than this app allows)");
    unpacked_ += bytes;
    return {};
  }

  // Open the folder made of the first `depth` components, creating missing ones when `create`.
  Expected<UniqueFd> open_folder(const std::vector<std::string>& parts, std::size_t depth,
                           std::string_view entry, bool create) {
    UniqueFd current(::dup(root_fd_.get()));
    if (current.get() < 0) return std::unexpected(errno_error(errno, "dup", root_.string()));
    for (std::size_t i = 0; i < depth; ++i) {
      const std::string rel = join_path(parts, i + 1);
      const char* name = parts[i].c_str();
      int fd = ::openat(current.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && create) {
        if (::mkdirat(current.get(), name, 0755) != 0 && errno != EEXIST)
          return std::unexpected(errno_error(errno, "create folder", disk_path(rel)));
        dirs_.emplace(rel, 0755);
        fd = ::openat(current.get(), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0) {
        if (errno == ELOOP || errno == ENOTDIR)
          return std::unexpected(unsafe(entry, "its parent " + in_quotes(rel) +
                                                   " is a link or a file, and a bundle may not "
                                                   "write through links"));
        return std::unexpected(errno_error(errno, "open folder", disk_path(rel)));
      }
      current = UniqueFd(fd);
    }
    return current;
  }

  // Make room for a non-folder at `leaf` (tar lets a later entry replace an earlier one).
  Status clear_leaf(int parent, const std::string& leaf, const std::string& rel,
                    std::string_view entry) {
    struct stat st {};
    if (::fstatat(parent, leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return {};
      return std::unexpected(errno_error(errno, "stat", disk_path(rel)));
    }
    if (S_ISDIR(st.st_mode))
      return std::unexpected(unsafe(entry, "replaces the folder " + in_quotes(rel) + " with a non-folder"));
    if (::unlinkat(parent, leaf.c_str(), 0) != 0)
      return std::unexpected(errno_error(errno, "remove", disk_path(rel)));
    return {};
  }

  Status unpack_entry(archive* a, archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (!raw) raw = archive_entry_pathname_utf8(e);
    if (!raw)
      return make_error(Errc::invalid_argument,
                        "bundle holds an entry whose name cannot be read (bad character encoding)");
    const std::string name(raw);
    if (name.empty()) return std::unexpected(unsafe(name, "empty name"));
    if (name.front() == '/') return std::unexpected(unsafe(name, "absolute path"));
    auto parts = split_path(name);
    for (const auto& p : parts)
      if (p == "..") return std::unexpected(unsafe(name, "a \"..\" component leaves the version folder"));
    if (auto s = count(name, kEntryCost); !s) return s;

    const mode_t type = archive_entry_filetype(e);
    const char* hardlink = archive_entry_hardlink(e);
    if (parts.empty()) {
      // "./": the version folder itself; its mode is ours to choose, not the bundle's.
      if (hardlink || type != AE_IFDIR)
        return std::unexpected(unsafe(name, "names the version folder itself but is not a folder"));
      return {};
    }
    const unsigned mode = static_cast<unsigned>(archive_entry_perm(e)) & 0777u;
    if (hardlink) return unpack_hardlink(name, parts, hardlink);
    switch (type) {
      case AE_IFDIR: return unpack_folder(name, parts, mode);
      case AE_IFREG: return unpack_file(a, e, name, parts, mode);
      case AE_IFLNK: return unpack_symlink(name, parts, archive_entry_symlink(e));
      default:
        return std::unexpected(unsafe(name, "is " + describe_type(type) +
                                                ", and a bundle may hold only files, folders and links"));
    }
  }

  Status unpack_folder(const std::string& name, const std::vector<std::string>& parts, unsigned mode) {
    auto parent = open_folder(parts, parts.size() - 1, name, true);
    if (!parent) return std::unexpected(parent.error());
    const std::string rel = join_path(parts);
    struct stat st {};
    if (::fstatat(parent->get(), parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (!S_ISDIR(st.st_mode))
        return std::unexpected(unsafe(name, "replaces the file or link " + in_quotes(rel) + " with a folder"));
    } else if (errno != ENOENT) {
      return std::unexpected(errno_error(errno, "stat", disk_path(rel)));
    } else if (::mkdirat(parent->get(), parts.back().c_str(), 0755) != 0) {
      return std::unexpected(errno_error(errno, "create folder", disk_path(rel)));
    }
    dirs_[rel] = mode;  // applied at the end: a read-only folder must still take its entries
    return {};
  }

  Status unpack_file(archive* a, archive_entry* e, const std::string& name,
                     const std::vector<std::string>& parts, unsigned mode) {
    const la_int64_t declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (declared < 0) return make_error(Errc::invalid_argument, "entry " + in_quotes(name) + ": negative size");
    if (auto s = count(name, static_cast<std::uint64_t>(declared)); !s) return s;

    auto parent = open_folder(parts, parts.size() - 1, name, true);
    if (!parent) return std::unexpected(parent.error());
    const std::string rel = join_path(parts);
    const std::string& leaf = parts.back();
    if (auto s = clear_leaf(parent->get(), leaf, rel, name); !s) return s;
    UniqueFd fd(::openat(parent->get(), leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd.get() < 0) return std::unexpected(errno_error(errno, "create", disk_path(rel)));

    std::uint64_t data_bytes = 0;
    for (;;) {
      const void* block = nullptr;
      std::size_t size = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(a, &block, &size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
        return std::unexpected(archive_failure(a, "read entry " + in_quotes(name)));
      data_bytes += size;
      if (data_bytes > static_cast<std::uint64_t>(declared))
        return make_error(Errc::invalid_argument,
                          "entry " + in_quotes(name) + ": more data than its declared size");
      const char* p = static_cast<const char*>(block);
      while (size > 0) {
        ssize_t n = ::pwrite(fd.get(), p, size, offset);
        if (n < 0) {
          if (errno == EINTR) continue;
          return std::unexpected(errno_error(errno, "write", disk_path(rel)));
        }
        p += n;
        size -= static_cast<std::size_t>(n);
        offset += n;
      }
    }
    // Sparse entries end in a hole that no block covers.
    if (::ftruncate(fd.get(), declared) != 0)
      return std::unexpected(errno_error(errno, "truncate", disk_path(rel)));
    if (::fchmod(fd.get(), mode) != 0) return std::unexpected(errno_error(errno, "chmod", disk_path(rel)));
    if (::fsync(fd.get()) != 0) return std::unexpected(errno_error(errno, "fsync", disk_path(rel)));
    if (fd.close() != 0) return std::unexpected(errno_error(errno, "close", disk_path(rel)));
    return {};
  }

  Status unpack_symlink(const std::string& name, const std::vector<std::string>& parts,
                        const char* raw_target) {
    const std::string target = raw_target ? raw_target : "";
    if (target.empty()) return std::unexpected(unsafe(name, "symlink with an empty target"));
    if (target.front() == '/')
      return std::unexpected(unsafe(name, "symlink to the absolute path " + in_quotes(target) +
                                              "; links must be relative and stay inside the version folder"));
    // Where the link points, read as plain text from the link's own folder; links through other
    // links are followed once everything is on disk (check_links).
    std::vector<std::string> where(parts.begin(), parts.end() - 1);
    for (const auto& p : split_path(target)) {
      if (p != "..") {
        where.push_back(p);
      } else if (where.empty()) {
        return std::unexpected(unsafe(name, "symlink target " + in_quotes(target) +
                                                " resolves outside the version folder"));
      } else {
        where.pop_back();
      }
    }
    auto parent = open_folder(parts, parts.size() - 1, name, true);
    if (!parent) return std::unexpected(parent.error());
    const std::string rel = join_path(parts);
    if (auto s = clear_leaf(parent->get(), parts.back(), rel, name); !s) return s;
    if (::symlinkat(target.c_str(), parent->get(), parts.back().c_str()) != 0)
      return std::unexpected(errno_error(errno, "create symlink", disk_path(rel)));
    links_.emplace_back(rel, name);
    return {};
  }

  Status unpack_hardlink(const std::string& name, const std::vector<std::string>& parts,
                         const std::string& target) {
    if (target.empty()) return std::unexpected(unsafe(name, "hard link with an empty target"));
    if (target.front() == '/')
      return std::unexpected(unsafe(name, "hard link to " + in_quotes(target) + " outside the version folder"));
    auto target_parts = split_path(target);
    for (const auto& p : target_parts)
      if (p == "..")
        return std::unexpected(unsafe(name, "hard link to " + in_quotes(target) + " outside the version folder"));
    if (target_parts.empty())
      return std::unexpected(unsafe(name, "hard link to the version folder itself"));
    const std::string rel = join_path(parts);
    const std::string target_rel = join_path(target_parts);
    if (rel == target_rel) return {};

    auto source_parent = open_folder(target_parts, target_parts.size() - 1, name, false);
    if (!source_parent) {
      if (source_parent.error().code == Errc::not_found)
        return make_error(Errc::invalid_argument, "entry " + in_quotes(name) + ": hard link to " +
                                                      in_quotes(target) + ", which is not an earlier file of the bundle");
      return std::unexpected(source_parent.error());
    }
    struct stat st {};
    if (::fstatat(source_parent->get(), target_parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT)
        return make_error(Errc::invalid_argument, "entry " + in_quotes(name) + ": hard link to " +
                                                      in_quotes(target) + ", which is not an earlier file of the bundle");
      return std::unexpected(errno_error(errno, "stat", disk_path(target_rel)));
    }
    if (!S_ISREG(st.st_mode))
      return std::unexpected(unsafe(name, "hard link to " + in_quotes(target) + ", which is not a regular file"));

    auto parent = open_folder(parts, parts.size() - 1, name, true);
    if (!parent) return std::unexpected(parent.error());
    if (auto s = clear_leaf(parent->get(), parts.back(), rel, name); !s) return s;
    if (::linkat(source_parent->get(), target_parts.back().c_str(), parent->get(), parts.back().c_str(), 0) != 0)
      return std::unexpected(errno_error(errno, "create hard link", disk_path(rel)));
    return {};
  }

  // Follow a symlink of the bundle through the links now on disk; false when it leaves the folder.
  bool stays_inside(const std::string& rel) const {
    auto link_parts = split_path(rel);
    std::vector<std::string> where(link_parts.begin(), link_parts.end() - 1);
    std::deque<std::string> unresolved;
    int hops = 0;
    auto expand = [&](const std::string& path) -> bool {
      char buf[PATH_MAX];
      ssize_t n = ::readlinkat(root_fd_.get(), path.c_str(), buf, sizeof buf - 1);
      if (n <= 0 || buf[0] == '/') return false;
      auto target = split_path(std::string_view(buf, static_cast<std::size_t>(n)));
      unresolved.insert(unresolved.begin(), target.begin(), target.end());
      return ++hops <= kMaxLinkHops;
    };
    if (!expand(rel)) return false;
    while (!unresolved.empty()) {
      std::string part = std::move(unresolved.front());
      unresolved.pop_front();
      if (part == "..") {
        if (where.empty()) return false;
        where.pop_back();
        continue;
      }
      where.push_back(std::move(part));
      const std::string path = join_path(where);
      struct stat st {};
      if (::fstatat(root_fd_.get(), path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISLNK(st.st_mode)) {
        where.pop_back();
        if (!expand(path)) return false;
      }
    }
    return true;
  }

  Status check_links() const {
    for (const auto& [rel, name] : links_) {
      struct stat st {};
      if (::fstatat(root_fd_.get(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISLNK(st.st_mode))
        continue;  // replaced by a later entry
      if (!stays_inside(rel))
        return std::unexpected(unsafe(name, "symlink resolves outside the version folder through "
                                            "other links of the bundle (or loops)"));
    }
    return {};
  }

  // Give folders their modes, then make every entry durable: folders deepest first, the root last.
  Status finish_folders() {
    std::vector<std::string> order;
    for (const auto& [rel, mode] : dirs_) {
      if (::fchmodat(root_fd_.get(), rel.c_str(), mode, 0) != 0)
        return std::unexpected(errno_error(errno, "chmod", disk_path(rel)));
      order.push_back(rel);
    }
    std::stable_sort(order.begin(), order.end(), [](const std::string& x, const std::string& y) {
      return std::count(x.begin(), x.end(), '/') > std::count(y.begin(), y.end(), '/');
    });
    for (const auto& rel : order) {
      UniqueFd fd(::openat(root_fd_.get(), rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (fd.get() < 0) return std::unexpected(errno_error(errno, "open folder", disk_path(rel)));
      if (::fsync(fd.get()) != 0) return std::unexpected(errno_error(errno, "fsync folder", disk_path(rel)));
    }
    if (::fsync(root_fd_.get()) != 0) return std::unexpected(errno_error(errno, "fsync folder", root_.string()));
    return {};
  }

  stdfs::path root_;
  std::uint64_t max_bytes_;
  ByteStream& stream_;
  std::vector<char> buffer_;
  UniqueFd root_fd_;
  std::optional<Error> stream_error_;
  bool stream_end_ = false;
  bool zstd_checked_ = false;
  std::uint64_t unpacked_ = 0;
  std::map<std::string, unsigned> dirs_;                    // relative path → mode
  std::vector<std::pair<std::string, std::string>> links_;  // relative path, entry name
};

}  // namespace

AppInstaller::AppInstaller(AppTarget target) : target_(std::move(target)) {}

Status AppInstaller::stage(std::string_view version, ByteStream& compressed) {
  const std::string context = "stage app " + target_.name + " version " + std::string(version);
  if (auto s = validate_version(version); !s) return std::unexpected(s.error().with_context(context));
  if (current_version() == version)
    return make_error(Errc::conflict, context + ": it is the current version of " +
                                          target_.dir.string() +
                                          "; a running version is never unpacked over (release a "
                                          "new version number instead)");
  const stdfs::path versions = versions_dir();
  if (auto s = fs::create_directories(versions); !s) return std::unexpected(s.error().with_context(context));
  const stdfs::path staging = versions / (".staging-" + std::string(version));
  if (auto s = fs::remove_all(staging); !s) return std::unexpected(s.error().with_context(context));
  if (::mkdir(staging.c_str(), 0755) != 0)
    return std::unexpected(errno_error(errno, "create folder", staging.string()).with_context(context));
  ::chmod(staging.c_str(), 0755);  // not the umask's choice: the app may run as another user

  auto fail = [&](const Error& error) -> Status {
    std::error_code ec;
    stdfs::remove_all(staging, ec);
    if (ec) log::warning(context + ": cannot remove " + staging.string() + ": " + ec.message());
    return std::unexpected(error.with_context(context));
  };

  {
    Unpacker unpacker(staging, target_.max_unpacked_bytes, compressed);
    if (auto s = unpacker.run(); !s) return fail(s.error());
  }
  const std::string name(version);
  const stdfs::path final_dir = versions / name;
  // A folder of this version that is not current (an earlier attempt) gives way to the new copy,
  // moved aside first so that it can come back if the new one cannot take its place.
  const stdfs::path aside = versions / (".removing-" + name);
  if (auto s = fs::remove_all(aside); !s) return fail(s.error());
  bool moved_aside = ::rename(final_dir.c_str(), aside.c_str()) == 0;
  if (!moved_aside && errno != ENOENT) return fail(errno_error(errno, "rename away", final_dir.string()));
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) {
    Error error = errno_error(errno, "rename to", final_dir.string());
    if (moved_aside) ::rename(aside.c_str(), final_dir.c_str());
    return fail(error);
  }
  // prune goes by this time: when the version arrived, not what the bundle's entries say.
  ::utimensat(AT_FDCWD, final_dir.c_str(), nullptr, AT_SYMLINK_NOFOLLOW);
  if (auto s = fs::sync_directory(versions); !s) return std::unexpected(s.error().with_context(context));
  if (moved_aside) {
    if (auto s = fs::remove_all(aside); !s)
      log::warning(context + ": cannot remove the replaced copy " + aside.string() + ": " + s.error().message);
  }
  log::info("app " + target_.name + ": staged version " + name + " in " + final_dir.string());
  return {};
}

bool AppInstaller::is_staged(std::string_view version) const {
  if (!validate_version(version)) return false;
  struct stat st {};
  const stdfs::path dir = versions_dir() / std::string(version);
  return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Status AppInstaller::remove_folder(const std::string& name) {
  const stdfs::path versions = versions_dir();
  const stdfs::path dir = versions / name;
  const stdfs::path trash = versions / (".removing-" + name);
  if (auto s = fs::remove_all(trash); !s) return s;
  if (::rename(dir.c_str(), trash.c_str()) != 0) {
    if (errno == ENOENT) return {};
    return std::unexpected(errno_error(errno, "rename away", dir.string()));
  }
  if (auto s = fs::sync_directory(versions); !s) return s;
  return fs::remove_all(trash);
}

Status AppInstaller::discard(std::string_view version) {
  const std::string context = "discard app " + target_.name + " version " + std::string(version);
  if (auto s = validate_version(version); !s) return std::unexpected(s.error().with_context(context));
  if (current_version() == version)
    return make_error(Errc::conflict, context + ": it is the current version; activate another one first");
  const std::string name(version);
  if (auto s = fs::remove_all(versions_dir() / (".staging-" + name)); !s)
    return std::unexpected(s.error().with_context(context));
  if (auto s = remove_folder(name); !s) return std::unexpected(s.error().with_context(context));
  return {};
}

Status AppInstaller::activate(std::string_view version) {
  const std::string context = "activate app " + target_.name + " version " + std::string(version);
  if (auto s = validate_version(version); !s) return std::unexpected(s.error().with_context(context));
  if (!is_staged(version))
    return make_error(Errc::not_found, context + ": not staged (no folder " +
                                           (versions_dir() / std::string(version)).string() +
                                           "); stage it first");
  if (auto s = fs::replace_symlink(current_link(), stdfs::path("versions") / std::string(version)); !s)
    return std::unexpected(s.error().with_context(context));
  log::info("app " + target_.name + ": current is now version " + std::string(version));
  return {};
}

std::optional<std::string> AppInstaller::current_version() const {
  std::error_code ec;
  stdfs::path target = stdfs::read_symlink(current_link(), ec);
  if (ec) return std::nullopt;
  std::string name = target.filename().string();
  if (name.empty()) name = target.parent_path().filename().string();
  if (name.empty()) return std::nullopt;
  return name;
}

std::vector<std::string> AppInstaller::versions() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (stdfs::directory_iterator it(versions_dir(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.front() == '.') continue;
    std::error_code type_ec;
    if (it->symlink_status(type_ec).type() == stdfs::file_type::directory) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status AppInstaller::prune(const std::set<std::string>& keep) {
  const std::string context = "prune app " + target_.name;
  const stdfs::path folder = versions_dir();
  // Leftovers of interrupted stagings and removals.
  std::vector<stdfs::path> leftovers;
  std::error_code ec;
  for (stdfs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with(".staging-") || name.starts_with(".removing-")) leftovers.push_back(it->path());
  }
  for (const auto& path : leftovers) {
    if (auto s = fs::remove_all(path); !s) return std::unexpected(s.error().with_context(context));
    log::info("app " + target_.name + ": removed leftover " + path.string());
  }

  const auto all = versions();
  const auto current = current_version();
  const std::size_t limit = static_cast<std::size_t>(std::max(1, target_.keep_versions));
  struct Candidate {
    struct timespec mtime;
    std::string name;
  };
  std::vector<Candidate> candidates;
  for (const auto& name : all) {
    if (name == current || keep.contains(name)) continue;
    struct stat st {};
    const stdfs::path dir = folder / name;
    if (::lstat(dir.c_str(), &st) != 0) continue;
    candidates.push_back(Candidate{st.st_mtim, name});
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& x, const Candidate& y) {
    if (x.mtime.tv_sec != y.mtime.tv_sec) return x.mtime.tv_sec < y.mtime.tv_sec;
    if (x.mtime.tv_nsec != y.mtime.tv_nsec) return x.mtime.tv_nsec < y.mtime.tv_nsec;
    return x.name < y.name;
  });
  std::size_t remaining = all.size();
  for (const auto& candidate : candidates) {
    if (remaining <= limit) break;
    if (auto s = remove_folder(candidate.name); !s) return std::unexpected(s.error().with_context(context));
    log::info("app " + target_.name + ": pruned version " + candidate.name);
    --remaining;
  }
  return {};
}

}  // namespace eddy::ota
