// Helpers the backends share: variable-name tables with overrides, boot-order lists.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/bootenv/bootloader.hpp"
#include "platform/error.hpp"

namespace eddy::bootenv::detail {

using Env = std::map<std::string, std::string>;

// A variable or bootname a boot script can use safely: letters, digits, '_', '.', '-'.
bool valid_name(std::string_view name);

// Start from `defaults` (role -> variable name) and apply `overrides`; an unknown role or an
// unsafe name is Errc::invalid_argument naming the role and listing the known ones.
Expected<std::map<std::string, std::string>> resolve_names(std::string_view backend,
                                                           std::map<std::string, std::string> defaults,
                                                           const std::map<std::string, std::string>& overrides);

std::vector<std::string> split_words(std::string_view text);
std::string join_words(const std::vector<std::string>& words);

// Parse an unsigned number in `base`; nullopt when it is not one.
std::optional<long> parse_number(std::string_view text, int base);

// Bootnames of the two slots and the order list's view of them.
struct Bootnames {
  std::string a, b;
  const std::string& of(Slot slot) const { return slot == Slot::a ? a : b; }
  std::optional<Slot> slot_of(std::string_view bootname) const;
};

// The slots (ours) in an order list, in order, and the entries that are not ours (a rescue
// slot, say), which rewrites keep at the end.
struct Order {
  std::vector<Slot> slots;
  std::vector<std::string> others;
  bool contains(Slot slot) const;
  // `first` (if any), then `second` (if any), then the others.
  std::string with(std::optional<Slot> first, std::optional<Slot> second, const Bootnames& names) const;
};
Order parse_order(std::string_view value, const Bootnames& names);

// Order-based schemes (RAUC's, U-Boot and GRUB alike): two slots in the order list mean a
// trial of the first is armed; one means committed.
std::optional<Slot> pending_trial(const Order& order);
// Arming a trial of `slot` needs the other slot in the order list to fall back to, and `slot`
// must not be the committed one. `where` names the environment, `order_var` the variable.
Status check_trial_allowed(const Order& order, std::string_view order_text, Slot slot, std::string_view where,
                           std::string_view order_var);

}  // namespace eddy::bootenv::detail
