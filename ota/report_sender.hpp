// Sends the state store's outbox to the hub: oldest first, in batches (at most 100 reports and
// 512 KiB a request), each report with its id "<device id>:<seq>", deleting what the hub
// acknowledged. A report the hub already has is acknowledged again (the hub counts it once), so
// a batch whose answer was lost is simply sent again.
#pragma once

#include <cstdint>
#include <optional>

#include "ota/hub_client.hpp"
#include "platform/error.hpp"
#include "storage/state_store.hpp"

namespace eddy::ota {

struct FlushResult {
  std::int64_t sent = 0;     // reports acknowledged by the hub in this flush
  std::int64_t dropped = 0;  // reports the hub refused one by one as malformed (400/413): dropped with an event
  std::int64_t waiting = 0;  // reports still in the outbox
  std::optional<Error> error;  // why the flush stopped before the outbox was empty
};

inline constexpr int kMaxReportsPerRequest = 100;
inline constexpr std::size_t kMaxReportBytesPerRequest = 512 << 10;

// Send until the outbox is empty or the hub fails. Records the outcome in the store's facts
// (hub_last_report_at, hub_last_report_result) for `eddy status`.
//
// When the hub refuses a batch as malformed (400 or 413), the reports of that batch are sent
// one at a time; a single report it refuses is dropped with an event naming it and the hub's
// reason, so that one report the hub cannot take never blocks the ones behind it.
FlushResult flush_outbox(storage::StateStore& store, const HubClient& hub);

}  // namespace eddy::ota
