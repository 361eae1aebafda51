#include "platform/fs.hpp"
#include "platform/unique_fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace eddy::fs {

Status sync_directory(const stdfs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(errno_error(errno, "open directory", dir.string()));
  if (::fsync(fd.get()) != 0) return std::unexpected(errno_error(errno, "fsync directory", dir.string()));
  return {};
}

Status write_all(int fd, const char* data, std::size_t size, const stdfs::path& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_error(errno, "write", path.string()));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return {};
}

Status write_file_atomic(const stdfs::path& path, std::string_view content, unsigned mode) {
  stdfs::path tmp = path;
  tmp += ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (fd.get() < 0) return std::unexpected(errno_error(errno, "create", tmp.string()));
  const char* data = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd.get(), data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::unlink(tmp.c_str());
      return std::unexpected(errno_error(err, "write", tmp.string()));
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(errno_error(err, "fsync", tmp.string()));
  }
  ::close(fd.release());
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(errno_error(err, "rename onto", path.string()));
  }
  return sync_directory(path.parent_path().empty() ? stdfs::path(".") : path.parent_path());
}

Expected<std::string> read_file(const stdfs::path& path, std::size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::unexpected(errno_error(errno, "open", path.string()));
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_error(errno, "read", path.string()));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      return make_error(Errc::too_large, "read " + path.string() + ": larger than " +
                                             std::to_string(max_bytes) + " bytes");
    }
  }
  return out;
}

Status replace_symlink(const stdfs::path& link, const stdfs::path& target) {
  stdfs::path tmp = link;
  tmp += ".tmp";
  ::unlink(tmp.c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0)
    return std::unexpected(errno_error(errno, "create symlink", tmp.string()));
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(errno_error(err, "rename symlink onto", link.string()));
  }
  return sync_directory(link.parent_path().empty() ? stdfs::path(".") : link.parent_path());
}

Status create_directories(const stdfs::path& dir, unsigned mode) {
  std::error_code ec;
  stdfs::create_directories(dir, ec);
  if (ec) return std::unexpected(errno_error(ec.value(), "create directory", dir.string()));
  ::chmod(dir.c_str(), mode);
  return {};
}

Status remove_all(const stdfs::path& path) {
  std::error_code ec;
  stdfs::remove_all(path, ec);
  if (ec) return std::unexpected(errno_error(ec.value(), "remove", path.string()));
  return {};
}

}  // namespace eddy::fs
