// File-system operations with the durability the update engine relies on: a file is replaced
// whole or not at all, and a rename is made durable by syncing its directory.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::fs {

namespace stdfs = std::filesystem;

// Write `content` to `path` atomically: temp file in the same folder, fsync, rename, fsync dir.
Status write_file_atomic(const stdfs::path& path, std::string_view content, unsigned mode = 0644);

// Write all `size` bytes of `data` to `fd` (retrying short writes and EINTR); an error names
// `path`.
Status write_all(int fd, const char* data, std::size_t size, const stdfs::path& path);

Expected<std::string> read_file(const stdfs::path& path, std::size_t max_bytes = 64u << 20);

// fsync a directory so that renames and creations inside it survive a power cut.
Status sync_directory(const stdfs::path& dir);

// Point the symlink `link` at `target` atomically (create link.tmp, rename over link, fsync dir).
Status replace_symlink(const stdfs::path& link, const stdfs::path& target);

// Create a directory and its parents with the given mode.
Status create_directories(const stdfs::path& dir, unsigned mode = 0755);

// Remove a tree; a missing path is not an error.
Status remove_all(const stdfs::path& path);

}  // namespace eddy::fs
