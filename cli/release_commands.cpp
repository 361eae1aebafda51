#include "cli/release_commands.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/daemon_commands.hpp"
#include "ota/delta.hpp"

namespace eddy::cli {

CLI::App* add_release_commands(CLI::App& app, ReleaseOptions& options) {
  auto* release = app.add_subcommand("release",
                                     "Author releases on files, without a daemon (run it where "
                                     "releases are built).");
  release->require_subcommand(1);
  auto* delta = release->add_subcommand(
      "delta",
      "Make a delta from an earlier root filesystem image to a new one (a zstd frame with the earlier image as "
      "its prefix, what `zstd --patch-from` makes), and print the release's `deltas:` entry for it. Devices "
      "whose active slot holds the earlier image download the delta instead of the full image.");
  delta->add_option("--base", options.base, "the earlier image, as devices have it in their active slot")
      ->type_name("OLD.img")
      ->required();
  delta->add_option("--image", options.image, "the new image (uncompressed)")->type_name("NEW.img")->required();
  delta->add_option("--out", options.out, "where to write the delta (replaced atomically)")
      ->type_name("DELTA.zst")
      ->required();
  delta
      ->add_option("--url", options.url,
                   "where devices will download the delta from: printed as `url:` instead of `path:`")
      ->type_name("URL");
  delta->add_option("--level", options.level, "zstd compression level, 1 to 22 (default 19)")
      ->type_name("N")
      ->check(CLI::Range(1, 22));
  delta->add_flag("--json", options.json, "print the entry and the sizes as JSON");
  return delta;
}

int run_release_delta(const ReleaseOptions& options) {
  auto info = ota::make_delta(options.base, options.image, options.out, options.level);
  if (!info) {
    std::cerr << "eddy release delta: " << info.error().message << "\n";
    return info.error().code == Errc::invalid_argument || info.error().code == Errc::not_found ? exit_usage
                                                                                               : exit_failure;
  }
  const bool by_url = !options.url.empty();
  const std::string& where = by_url ? options.url : options.out;
  const double percent =
      100.0 * static_cast<double>(info->delta_size) / static_cast<double>(std::max<std::uint64_t>(1, info->image_size));
  if (options.json) {
    nlohmann::json entry{{"from_sha256", info->base_sha256},
                         {"from_size", info->base_size},
                         {"image_sha256", info->image_sha256},
                         {by_url ? "url" : "path", where},
                         {"sha256", info->delta_sha256},
                         {"size", info->delta_size}};
    nlohmann::json out{{"deltas", nlohmann::json::array({entry})},
                       {"image", {{"sha256", info->image_sha256}, {"size", info->image_size}}},
                       {"level", info->level},
                       {"window_log", info->window_log},
                       {"long_distance_matching", info->long_distance_matching}};
    std::cout << out.dump(2) << "\n";
    return exit_ok;
  }
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%.2f", percent);
  std::cout << "# delta from " << options.base << " to " << options.image << ": " << info->delta_size << " bytes, "
            << ratio << "% of the image (" << info->image_size << " bytes, sha256 " << info->image_sha256
            << "); zstd level " << info->level << ", window 2^" << info->window_log << "\n"
            << "deltas:\n"
            << "  - from_sha256: " << info->base_sha256 << "\n"
            << "    from_size: " << info->base_size << "\n"
            << "    image_sha256: " << info->image_sha256 << "\n"
            << "    " << (by_url ? "url" : "path") << ": " << nlohmann::json(where).dump() << "\n"
            << "    sha256: " << info->delta_sha256 << "\n"
            << "    size: " << info->delta_size << "\n";
  return exit_ok;
}

}  // namespace eddy::cli
