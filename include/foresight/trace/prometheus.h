#pragma once
// Usage history from a Prometheus server, as a trace: one PromQL query per resource run over a
// time range through the HTTP API (/api/v1/query_range), the answers joined on their label sets,
// one series per label set. `foresight import prometheus` writes the result as a generic CSV with
// an id column (reader.h), which every other command then reads: one reader, and the figures of
// a backtest come from a file anyone can keep and re-run.

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "foresight/core/resource.h"
#include "foresight/core/result.h"
#include "foresight/trace/reader.h"

namespace foresight::trace {

struct PrometheusQuery {
  std::string url;                    // http(s)://host:port[/path prefix]
  std::int64_t start = 0, end = 0;    // Unix seconds, inclusive
  std::int64_t step_seconds = 300;
  std::array<std::string, kResourceCount> promql;  // "" = the resource is not imported
  std::string bearer_token;           // sent as Authorization: Bearer, when not empty
  int timeout_seconds = 60;           // per HTTP request
  bool allow_partial = false;         // import an answer Prometheus warns is incomplete
};

// The queries of a preset, `{step}` already replaced by the step (e.g. "300s"):
//   foresight  the gauges this project's agent exports (foresight_resource_*), per instance and
//              workload, averaged over each step;
//   cadvisor   the kubelet's cAdvisor container metrics, per namespace, pod and container: cpu
//              and filesystem bytes as rates over each step, the working set averaged over it.
//              No network: cAdvisor counts it per pod, not per container.
Result<std::array<std::string, kResourceCount>> presetQueries(std::string_view preset,
                                                              std::int64_t step_seconds);
// `{step}` in a query replaced by the step as a PromQL duration.
std::string withStep(std::string_view promql, std::int64_t step_seconds);

// The cAdvisor history of some containers of some pods of one namespace, per container name the
// most any of those pods used at each step, as `foresight recommend` reads the metrics API: cpu
// in cores (a rate over `rate_window_seconds`), memory the working set. Series ids are the
// container names. The names are matched exactly (quoted and regex-escaped here).
// With `max_cpus` > 0, cpu is demand, as collect::cpuDemand has it: usage plus the CFS throttled
// seconds per second, at most `max_cpus`, never below usage.
std::array<std::string, kResourceCount> podContainerQueries(const std::string& ns,
                                                            const std::vector<std::string>& pods,
                                                            const std::vector<std::string>& containers,
                                                            std::int64_t rate_window_seconds,
                                                            double max_cpus = 0);

// Each container's CFS throttled seconds per second in namespace `ns` (cAdvisor's counter as a
// rate over `rate_window_seconds`), summed per scrape job and the most of any job, by pod and
// container, the pause container left out: an instant query (readInstant).
std::string namespaceThrottlingQuery(const std::string& ns, std::int64_t rate_window_seconds);

// One series of a query_range answer: its id (the label values in label-name order joined by
// '/', __name__ left out; commas and line breaks become '_'; "_" for an empty label set) and its
// samples. Values that are not finite or are negative are dropped and counted in `dropped`.
struct PromSeries {
  std::string id;
  std::string labels;  // the label set in PromQL's form, {name="value",...}, for messages
  std::vector<std::int64_t> time;
  std::vector<double> value;
};
struct QueryRangeAnswer {
  std::vector<PromSeries> series;
  std::vector<std::string> warnings;  // the answer's `warnings`: it may be incomplete
};
Result<QueryRangeAnswer> parseQueryRange(std::string_view body, std::size_t& dropped);

// Windows of at most `max_points` steps covering [start, end], so that no query asks Prometheus
// for more points per series than it answers (11,000).
std::vector<std::pair<std::int64_t, std::int64_t>> queryWindows(std::int64_t start, std::int64_t end,
                                                                std::int64_t step_seconds,
                                                                std::int64_t max_points = 10000);

// Runs the queries and joins their answers into one raw series per id, on the step grid from
// `start`; a series none of whose samples could be kept is left out. Errors name the server,
// the resource and the query; an answer with warnings is an error unless `allow_partial`, and so
// are two label sets of one query that give the same id.
Result<std::vector<RawSeries>> readPrometheus(const PrometheusQuery& q);

// What an instant query (/api/v1/query at `time`, Unix seconds) answers: each series' labels and
// value (e.g. the pods a ReplicaSet owned, a container's throttled seconds per second). `server`
// gives the url, token, timeout and allow_partial (an answer Prometheus warns about is an error
// without it).
struct InstantSample {
  std::map<std::string, std::string> labels;
  double value = 0;  // NaN where Prometheus gave none it could read
};
Result<std::vector<InstantSample>> readInstant(const PrometheusQuery& server, const std::string& promql,
                                               std::int64_t time);
// readInstant's reading of an answer (HTTP `http_status`, `body`); errors start with `what`.
Result<std::vector<InstantSample>> parseInstant(std::string_view body, int http_status, bool allow_partial,
                                                const std::string& what);

// A PromQL string literal for `s`; a regex literal matching exactly one of `names` (RE2, which
// PromQL anchors), e.g. for a label matcher `pod=~...`.
std::string promString(std::string_view s);
std::string promAnyOf(const std::vector<std::string>& names);

// Writes series as a generic CSV with an id column (`id,timestamp,<resources>`), written to a
// temporary file and renamed. Only the resources in `resources` are written.
Status writeIdCsv(const std::vector<RawSeries>& series, const std::array<bool, kResourceCount>& resources,
                  const std::filesystem::path& file);

}  // namespace foresight::trace
