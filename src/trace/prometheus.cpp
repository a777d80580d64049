#include "foresight/trace/prometheus.h"

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "foresight/core/files.h"
#include "foresight/core/log.h"

namespace foresight::trace {
namespace {

using json = nlohmann::json;

constexpr std::array<std::string_view, kResourceCount> kForesightPreset = {
    "avg by (instance, workload) (avg_over_time(foresight_resource_cpu[{step}]))",
    "avg by (instance, workload) (avg_over_time(foresight_resource_memory[{step}]))",
    "avg by (instance, workload) (avg_over_time(foresight_resource_disk_io[{step}]))",
    "avg by (instance, workload) (avg_over_time(foresight_resource_network[{step}]))"};
constexpr std::array<std::string_view, kResourceCount> kCadvisorPreset = {
    R"(sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[{step}])))",
    R"(sum by (namespace, pod, container) (avg_over_time(container_memory_working_set_bytes{container!="",container!="POD"}[{step}])))",
    // Two sums added, not one rate over a name regex: rate() drops the metric name, and the reads
    // and writes of a container would then collide as one label set.
    R"(sum by (namespace, pod, container) (rate(container_fs_reads_bytes_total{container!="",container!="POD"}[{step}])))"
    R"( + sum by (namespace, pod, container) (rate(container_fs_writes_bytes_total{container!="",container!="POD"}[{step}])))",
    ""};

double parseSampleValue(const json& v) {
  // Prometheus sends sample values as strings ("0.5", "NaN", "+Inf").
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    char* end = nullptr;
    const double x = std::strtod(s.c_str(), &end);
    return end != s.c_str() && *end == '\0' ? x : NAN;
  }
  return v.is_number() ? v.get<double>() : NAN;
}

std::string seriesIdOf(const json& metric) {
  std::map<std::string, std::string> labels;  // sorted by name
  for (auto it = metric.begin(); it != metric.end(); ++it)
    if (it.key() != "__name__" && it.value().is_string()) labels[it.key()] = it.value().get<std::string>();
  if (labels.empty()) return "_";
  std::string id;
  for (const auto& [k, v] : labels) id += (id.empty() ? "" : "/") + v;
  for (char& c : id)
    if (c == ',' || c == '\n' || c == '\r') c = '_';
  return id;
}

struct Endpoint {
  std::string base;    // scheme://host[:port]
  std::string prefix;  // path before /api/v1, may be empty
};

Result<Endpoint> splitUrl(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos || (url.compare(0, scheme, "http") != 0 && url.compare(0, scheme, "https") != 0))
    return fail(ErrorCode::kInvalidArgument, "'{}': expected an http:// or https:// URL", url);
  const auto slash = url.find('/', scheme + 3);
  Endpoint e;
  e.base = url.substr(0, slash);
  if (slash != std::string::npos) e.prefix = url.substr(slash);
  while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
  return e;
}

}  // namespace

std::string withStep(std::string_view promql, std::int64_t step_seconds) {
  std::string out(promql);
  const std::string step = fmt::format("{}s", step_seconds);
  for (std::size_t at; (at = out.find("{step}")) != std::string::npos;) out.replace(at, 6, step);
  return out;
}

Result<std::array<std::string, kResourceCount>> presetQueries(std::string_view preset,
                                                              std::int64_t step_seconds) {
  const std::array<std::string_view, kResourceCount>* p = nullptr;
  if (preset == "foresight") p = &kForesightPreset;
  if (preset == "cadvisor") p = &kCadvisorPreset;
  if (!p) return fail(ErrorCode::kInvalidArgument, "unknown preset '{}' (known: foresight, cadvisor)", preset);
  std::array<std::string, kResourceCount> out;
  for (std::size_t r = 0; r < kResourceCount; ++r) out[r] = withStep((*p)[r], step_seconds);
  return out;
}

Result<std::vector<PromSeries>> parseQueryRange(std::string_view body, std::size_t& dropped) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    return fail(ErrorCode::kParse, "not a Prometheus API answer ({}): '{}'", e.what(), body.substr(0, 120));
  }
  if (j.value("status", "") != "success") {
    return fail(ErrorCode::kInvalidArgument, "Prometheus refused the query: {}: {}", j.value("errorType", "error"),
                j.value("error", body.substr(0, 200)));
  }
  const json& data = j.value("data", json::object());
  if (data.value("resultType", "") != "matrix")
    return fail(ErrorCode::kParse, "expected a range query's matrix, got resultType '{}'", data.value("resultType", ""));
  std::vector<PromSeries> out;
  for (const json& s : data.value("result", json::array())) {
    PromSeries p;
    p.id = seriesIdOf(s.value("metric", json::object()));
    for (const json& pair : s.value("values", json::array())) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number())
        return fail(ErrorCode::kParse, "series '{}': a sample is not [time, \"value\"]: {}", p.id, pair.dump());
      const double v = parseSampleValue(pair[1]);
      if (!std::isfinite(v) || v < 0) {
        ++dropped;
        continue;
      }
      p.time.push_back(static_cast<std::int64_t>(std::llround(pair[0].get<double>())));
      p.value.push_back(v);
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<std::pair<std::int64_t, std::int64_t>> queryWindows(std::int64_t start, std::int64_t end,
                                                                std::int64_t step, std::int64_t max_points) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  for (std::int64_t a = start; a <= end; a += step * max_points)
    out.emplace_back(a, std::min(end, a + step * (max_points - 1)));
  return out;
}

Result<std::vector<RawSeries>> readPrometheus(const PrometheusQuery& q) {
  if (q.step_seconds <= 0) return fail(ErrorCode::kInvalidArgument, "step must be positive, got {}", q.step_seconds);
  if (q.end < q.start)
    return fail(ErrorCode::kInvalidArgument, "the range ends ({}) before it starts ({})", q.end, q.start);
  auto ep = splitUrl(q.url);
  if (!ep) return tl::unexpected(ep.error());
  httplib::Client cli(ep->base);
  cli.set_connection_timeout(10);
  cli.set_read_timeout(q.timeout_seconds);
  httplib::Headers headers = {{"Accept", "application/json"}};
  if (!q.bearer_token.empty()) headers.emplace("Authorization", "Bearer " + q.bearer_token);

  const auto steps = static_cast<std::size_t>((q.end - q.start) / q.step_seconds) + 1;
  // Per id, per step of the grid from start: the value of each resource (NaN: none).
  std::unordered_map<std::string, std::size_t> index_of;
  std::vector<std::string> ids;
  std::vector<std::vector<std::array<double, kResourceCount>>> grid;
  std::size_t dropped = 0, off_grid = 0;
  for (Resource r : kAllResources) {
    const std::string& promql = q.promql[index(r)];
    if (promql.empty()) continue;
    std::size_t answered = 0;
    for (auto [a, b] : queryWindows(q.start, q.end, q.step_seconds)) {
      httplib::Params params = {{"query", promql},
                                {"start", std::to_string(a)},
                                {"end", std::to_string(b)},
                                {"step", std::to_string(q.step_seconds)}};
      auto res = cli.Post(ep->prefix + "/api/v1/query_range", headers, params);
      if (!res)
        return fail(ErrorCode::kUnavailable, "{}: {} query: no answer ({} error)", q.url, name(r),
                    httplib::to_string(res.error()));
      auto series = parseQueryRange(res->body, dropped);
      if (!series)
        return fail(series.error().code, "{}: {} query '{}' (HTTP {}): {}", q.url, name(r), promql, res->status,
                    series.error().message);
      for (auto& s : *series) {
        auto [it, added] = index_of.try_emplace(s.id, ids.size());
        if (added) {
          ids.push_back(s.id);
          grid.emplace_back(steps, std::array<double, kResourceCount>{NAN, NAN, NAN, NAN});
        }
        auto& rows = grid[it->second];
        for (std::size_t i = 0; i < s.time.size(); ++i) {
          const std::int64_t d = s.time[i] - q.start;
          if (d < 0 || d % q.step_seconds != 0 || static_cast<std::size_t>(d / q.step_seconds) >= steps) {
            ++off_grid;  // query_range answers on the grid; anything else is not ours to place
            continue;
          }
          rows[static_cast<std::size_t>(d / q.step_seconds)][index(r)] = s.value[i];
          ++answered;
        }
      }
    }
    spdlog::info("prometheus: {}: {} samples", name(r), answered);
  }
  if (dropped) spdlog::warn("prometheus: {} samples were NaN, infinite or negative and are left out", dropped);
  if (off_grid) spdlog::warn("prometheus: {} samples off the step grid are left out", off_grid);

  std::vector<RawSeries> out;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    RawSeries s;
    s.id = ids[k];
    s.file = q.url;
    std::array<bool, kResourceCount> has{};
    for (const auto& row : grid[k])
      for (std::size_t r = 0; r < kResourceCount; ++r) has[r] = has[r] || !std::isnan(row[r]);
    for (std::size_t i = 0; i < steps; ++i) {
      const auto& row = grid[k][i];
      if (std::all_of(row.begin(), row.end(), [](double v) { return std::isnan(v); })) continue;
      s.time.push_back(q.start + static_cast<std::int64_t>(i) * q.step_seconds);
      for (std::size_t r = 0; r < kResourceCount; ++r)
        if (has[r]) s.value[r].push_back(row[r]);
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const RawSeries& a, const RawSeries& b) { return a.id < b.id; });
  return out;
}

Status writeIdCsv(const std::vector<RawSeries>& series, const std::array<bool, kResourceCount>& resources,
                  const std::filesystem::path& file) {
  std::string text = "id,timestamp";
  for (Resource r : kAllResources)
    if (resources[index(r)]) text += fmt::format(",{}", name(r));
  text += '\n';
  for (const auto& s : series) {
    for (std::size_t i = 0; i < s.time.size(); ++i) {
      text += fmt::format("{},{}", s.id, s.time[i]);
      for (Resource r : kAllResources) {
        if (!resources[index(r)]) continue;
        const auto& v = s.value[index(r)];
        text += ',';
        if (i < v.size() && !std::isnan(v[i])) text += fmt::format("{}", v[i]);  // shortest exact form
      }
      text += '\n';
    }
  }
  return writeFileAtomically(file, text);
}

}  // namespace foresight::trace
