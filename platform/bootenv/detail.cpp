#include "platform/bootenv/detail.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace eddy::bootenv::detail {

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

Expected<std::map<std::string, std::string>> resolve_names(std::string_view backend,
                                                           std::map<std::string, std::string> defaults,
                                                           const std::map<std::string, std::string>& overrides) {
  for (const auto& [role, name] : overrides) {
    auto it = defaults.find(role);
    if (it == defaults.end()) {
      std::string known;
      for (const auto& [r, n] : defaults) known += (known.empty() ? "" : ", ") + r;
      return make_error(Errc::invalid_argument,
                        std::string(backend) + ": unknown variable role `" + role + "` (known roles: " + known + ")");
    }
    if (!valid_name(name))
      return make_error(Errc::invalid_argument, std::string(backend) + ": variable name `" + name + "` for role `" +
                                                    role +
                                                    "` is not usable in a boot script (letters, digits, _ . - only)");
    it->second = name;
  }
  return defaults;
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    std::size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::optional<long> parse_number(std::string_view text, int base) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  if (base == 16 && text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  if (text.empty()) return std::nullopt;
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

std::optional<Slot> Bootnames::slot_of(std::string_view bootname) const {
  if (bootname == a) return Slot::a;
  if (bootname == b) return Slot::b;
  return std::nullopt;
}

bool Order::contains(Slot slot) const { return std::find(slots.begin(), slots.end(), slot) != slots.end(); }

std::string Order::with(std::optional<Slot> first, std::optional<Slot> second, const Bootnames& names) const {
  std::vector<std::string> words;
  if (first) words.push_back(names.of(*first));
  if (second && second != first) words.push_back(names.of(*second));
  words.insert(words.end(), others.begin(), others.end());
  return join_words(words);
}

Order parse_order(std::string_view value, const Bootnames& names) {
  Order order;
  for (auto& word : split_words(value)) {
    auto slot = names.slot_of(word);
    if (slot) {
      if (!order.contains(*slot)) order.slots.push_back(*slot);
    } else {
      order.others.push_back(word);
    }
  }
  return order;
}

std::optional<Slot> pending_trial(const Order& order) {
  if (order.slots.size() == 2) return order.slots.front();
  return std::nullopt;
}

Status check_trial_allowed(const Order& order, std::string_view order_text, Slot slot, std::string_view where,
                           std::string_view order_var) {
  Slot fallback = other(slot);
  if (order.slots.size() == 1 && order.slots.front() == slot)
    return make_error(Errc::conflict, std::string(where) + ": slot " + std::string(slot_name(slot)) +
                                          " is the committed slot, not a trial");
  if (!order.contains(fallback))
    return make_error(Errc::conflict, std::string(where) + ": cannot arm a trial of slot " +
                                          std::string(slot_name(slot)) + ": slot " + std::string(slot_name(fallback)) +
                                          " is not in " + std::string(order_var) + "=" + std::string(order_text) +
                                          ", so there would be nothing to fall back to");
  return {};
}

}  // namespace eddy::bootenv::detail
