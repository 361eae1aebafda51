#include "ota/hub_token.hpp"

#include <algorithm>
#include <cctype>

#include "platform/fs.hpp"

namespace eddy::ota {

namespace {
constexpr std::size_t kMaxTokenFile = 64 << 10;
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
}  // namespace

Expected<std::string> read_token(const std::filesystem::path& file) {
  auto content = fs::read_file(file, kMaxTokenFile);
  if (!content) return std::unexpected(content.error());
  std::string token = *content;
  auto first = std::find_if_not(token.begin(), token.end(), is_space);
  auto last = std::find_if_not(token.rbegin(), token.rend(), is_space).base();
  token = first < last ? std::string(first, last) : std::string();
  if (token.empty())
    return make_error(Errc::invalid_argument,
                      "token file " + file.string() + " is empty: write this device's hub token into it");
  if (std::any_of(token.begin(), token.end(),
                  [](char c) { return is_space(c) || std::iscntrl(static_cast<unsigned char>(c)); }))
    return make_error(Errc::invalid_argument, "token file " + file.string() +
                                                  " holds more than one word: it must hold only this device's token");
  return token;
}

}  // namespace eddy::ota
