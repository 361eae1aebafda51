// Eddy's side of bench/slot_install.sh: a zstd-compressed root filesystem image from a file into
// a slot through the code path the update worker uses (VerifyingStream over the compressed bytes
// against the release's sha256 and size, then write_slot_image: decode, SHA-256 of the image,
// write, read-back verification beside it, fdatasync). Wall time and peak memory are measured outside
// (/usr/bin/time -v) so that they count the same things as for the other tools.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "ota/payload.hpp"
#include "ota/slot_writer.hpp"
#include "platform/unique_fd.hpp"

namespace {

// The compressed payload read from a file, as a download or Git blob would deliver it.
class FileStream final : public eddy::ota::ByteStream {
 public:
  FileStream(eddy::UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  eddy::Expected<std::size_t> read(char* buffer, std::size_t size) override {
    for (;;) {
      ssize_t n = ::read(fd_.get(), buffer, size);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return std::unexpected(eddy::errno_error(errno, "read", path_));
    }
  }

 private:
  eddy::UniqueFd fd_;
  std::string path_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a zstd image into a slot the way eddy's update worker does (bench/slot_install.sh)"};
  std::string image, slot, sha256, image_sha256;
  app.add_option("image", image, "the compressed image (.zst)")->required()->check(CLI::ExistingFile);
  app.add_option("--slot", slot, "the slot: a block device or a file standing in for one")->required();
  app.add_option("--sha256", sha256, "the release's sha256 of the compressed image")->required();
  app.add_option("--image-sha256", image_sha256, "the sha256 of the decompressed image")->required();
  CLI11_PARSE(app, argc, argv);

  eddy::UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    std::fprintf(stderr, "slot_install_bench: open %s: %s\n", image.c_str(), std::strerror(errno));
    return 1;
  }
  const auto size = std::filesystem::file_size(image);
  eddy::ota::VerifyingStream compressed(std::make_unique<FileStream>(std::move(fd), image), sha256, size,
                                        "bench image " + image);
  eddy::ota::SlotWriteOptions options;
  options.slot_name = "rootfs.b";
  options.expected_image_sha256 = image_sha256;
  // The last report of each phase carries its duration: printed to tell decoding, writing and the
  // read-back beside them from the read-back's tail (the last chunks, after fdatasync).
  std::chrono::milliseconds writing{0}, verifying{0};
  options.progress = [&](const eddy::ota::SlotWriteProgress& p) {
    (p.phase == eddy::ota::SlotWriteProgress::Phase::writing ? writing : verifying) = p.elapsed;
  };
  const auto started = std::chrono::steady_clock::now();
  auto result = eddy::ota::write_slot_image(compressed, slot, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!result) {
    std::fprintf(stderr, "slot_install_bench: %s\n", result.error().message.c_str());
    return 1;
  }
  std::printf("eddy: %llu compressed bytes, %llu image bytes, sha256 %s, %.3f s (writing, with the read-back beside "
              "it, %.3f s; the read-back's tail after fdatasync %.3f s)\n",
              static_cast<unsigned long long>(result->compressed_bytes),
              static_cast<unsigned long long>(result->image_bytes), result->image_sha256.c_str(), seconds,
              static_cast<double>(writing.count()) / 1000, static_cast<double>(verifying.count()) / 1000);
  return 0;
}
