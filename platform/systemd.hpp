// systemd's service notification protocol (sd_notify(3)), spoken directly: one datagram of
// "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET ('@' = abstract namespace).
// Every call is a no-op returning success when $NOTIFY_SOCKET is unset (not run by systemd).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "platform/error.hpp"

namespace eddy::systemd {

// Send a raw notification, e.g. "READY=1\nSTATUS=idle".
Status notify(std::string_view state);

Status notify_ready();                        // READY=1 (Type=notify: start-up finished)
Status notify_status(std::string_view text);  // STATUS=<text> (shown by systemctl status; newlines become spaces)
Status notify_watchdog();                     // WATCHDOG=1 (ping; WatchdogSec=)
Status notify_stopping();                     // STOPPING=1

// The watchdog period from $WATCHDOG_USEC, when the watchdog is enabled for this process
// ($WATCHDOG_PID, when set, must be our pid). Ping at half of it.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace eddy::systemd
