// A device's report batch (fleet/API.md, "POST /v1/devices/{id}/reports") read from the request's
// bytes straight into Reports by nlohmann's SAX parser: no JSON tree is built for the batch (the
// tree cost eddy-hub about a tenth of its CPU a report). Unknown keys are skipped; errors are
// Errc::invalid_argument and name the field ("`reports[3].probes[0].ok` must be true or false").
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "fleet/store.hpp"
#include "platform/error.hpp"

namespace eddy::fleet {

// `{"reports": [...]}` with at most `max_reports` reports, oldest first.
Expected<std::vector<Report>> parse_report_batch(std::string_view body, std::size_t max_reports);

}  // namespace eddy::fleet
