#include "ota/report_sender.hpp"

#include <map>
#include <string>
#include <vector>

#include "ota/hub_status.hpp"
#include "platform/log.hpp"

namespace eddy::ota {

namespace {

struct Batch {
  nlohmann::json reports = nlohmann::json::array();
  std::map<std::string, std::int64_t> seq_by_id;
};

// The next batch from the oldest reports: at most `max_count`, and within the byte budget
// (always at least one report, which the store keeps small).
Expected<Batch> next_batch(storage::StateStore& store, const std::string& device_id, int max_count,
                           std::int64_t last_seq) {
  auto oldest = store.outbox_oldest(max_count, last_seq);
  if (!oldest) return std::unexpected(oldest.error());
  Batch batch;
  std::size_t bytes = 0;
  for (const auto& r : *oldest) {
    if (!batch.seq_by_id.empty() && bytes + r.body.size() > kMaxReportBytesPerRequest) break;
    nlohmann::json report;
    try {
      report = nlohmann::json::parse(r.body);
    } catch (const nlohmann::json::exception& e) {
      // Only this code writes the outbox; a row that does not parse is damage on disk.
      report = {{"time", 0}, {"kind", "event"}, {"level", "error"},
                {"message", "report " + std::to_string(r.seq) + " was damaged in the outbox: " + e.what()}};
    }
    const std::string id = device_id + ":" + std::to_string(r.seq);
    report["id"] = id;
    bytes += r.body.size() + id.size() + 10;
    batch.reports.push_back(std::move(report));
    batch.seq_by_id.emplace(id, r.seq);
  }
  return batch;
}

// Delete what was acknowledged (ids this batch did not send are ignored); how many.
Expected<std::int64_t> remove_acknowledged(storage::StateStore& store, const Batch& batch,
                                           const std::vector<std::string>& acknowledged) {
  std::vector<std::int64_t> seqs;
  for (const auto& id : acknowledged) {
    if (auto it = batch.seq_by_id.find(id); it != batch.seq_by_id.end()) seqs.push_back(it->second);
  }
  if (auto st = store.outbox_remove(seqs); !st) return std::unexpected(st.error());
  return static_cast<std::int64_t>(seqs.size());
}

}  // namespace

FlushResult flush_outbox(storage::StateStore& store, const HubClient& hub) {
  FlushResult result;
  int single_left = 0;  // after a refused batch: send this many one at a time
  // What is waiting now; reports queued meanwhile (the events of dropped reports among them)
  // wait for the next flush, so a hub that refuses everything cannot keep this loop going.
  auto last_seq = store.outbox_last_seq();
  if (!last_seq) result.error = last_seq.error();
  while (last_seq) {
    auto batch = next_batch(store, hub.device_id(), single_left > 0 ? 1 : kMaxReportsPerRequest, *last_seq);
    if (!batch) {
      result.error = batch.error();
      break;
    }
    if (batch->seq_by_id.empty()) break;
    auto acknowledged = hub.post_reports(batch->reports);
    if (!acknowledged) {
      const bool refused = acknowledged.error().code == Errc::invalid_argument;
      if (refused && batch->seq_by_id.size() > 1) {
        single_left = static_cast<int>(batch->seq_by_id.size());
        continue;
      }
      if (refused) {
        const auto& [id, seq] = *batch->seq_by_id.begin();
        std::string message = "report " + id + " dropped: " + acknowledged.error().message;
        log::warning(message);
        if (auto st = store.outbox_remove({seq}); !st) {
          result.error = st.error();
          break;
        }
        (void)store.record_event("warning", message);
        ++result.dropped;
        --single_left;
        continue;
      }
      result.error = acknowledged.error();
      break;
    }
    auto removed = remove_acknowledged(store, *batch, *acknowledged);
    if (!removed) {
      result.error = removed.error();
      break;
    }
    result.sent += *removed;
    if (single_left > 0) --single_left;
    if (*removed == 0) {
      result.error = Error{Errc::network, "hub " + hub.options().url + " acknowledged none of the " +
                                              std::to_string(batch->seq_by_id.size()) +
                                              " reports sent; they stay in the outbox"};
      break;
    }
  }
  auto waiting = store.outbox_size();
  result.waiting = waiting ? *waiting : 0;
  (void)store.put(kHubLastReportAt, std::to_string(storage::unix_now()));
  std::string summary = "sent " + std::to_string(result.sent) + ", " + std::to_string(result.waiting) + " waiting";
  if (result.dropped > 0) summary += ", " + std::to_string(result.dropped) + " refused by the hub and dropped";
  (void)store.put(kHubLastReportResult, result.error ? "failed: " + result.error->message + " (" + summary + ")"
                                                          : "ok: " + summary);
  return result;
}

}  // namespace eddy::ota
