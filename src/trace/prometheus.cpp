#include "foresight/trace/prometheus.h"

#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
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
// A container's series are summed within each scrape job and the jobs' sums maxed: a cluster that
// scrapes cAdvisor twice (the kubelet's /metrics/cadvisor and a cAdvisor DaemonSet) would
// otherwise count every container twice.
constexpr std::array<std::string_view, kResourceCount> kCadvisorPreset = {
    R"(max by (namespace, pod, container) (sum by (namespace, pod, container, job) (rate(container_cpu_usage_seconds_total{container!="",container!="POD"}[{step}]))))",
    R"(max by (namespace, pod, container) (sum by (namespace, pod, container, job) (avg_over_time(container_memory_working_set_bytes{container!="",container!="POD"}[{step}]))))",
    // Two sums added, not one rate over a name regex: rate() drops the metric name, and the reads
    // and writes of a container would then collide as one label set.
    R"(max by (namespace, pod, container) (sum by (namespace, pod, container, job) (rate(container_fs_reads_bytes_total{container!="",container!="POD"}[{step}]))))"
    R"( + max by (namespace, pod, container) (sum by (namespace, pod, container, job) (rate(container_fs_writes_bytes_total{container!="",container!="POD"}[{step}]))))",
    // cAdvisor counts network per pod (on its sandbox: container "" or "POD", sometimes both, and
    // in every job that scrapes it, so the max per interface), not per container. Only a pod's single container gets it: splitting
    // a pod's traffic among several containers would be made up.
    R"((sum by (namespace, pod) (max by (namespace, pod, interface) (rate(container_network_receive_bytes_total{pod!=""}[{step}]))))"
    R"( + sum by (namespace, pod) (max by (namespace, pod, interface) (rate(container_network_transmit_bytes_total{pod!=""}[{step}])))))"
    R"( * on (namespace, pod) group_right() ((group by (namespace, pod, container) (container_cpu_usage_seconds_total{container!="",container!="POD"})))"
    R"( and on (namespace, pod) (count by (namespace, pod) (group by (namespace, pod, container) (container_cpu_usage_seconds_total{container!="",container!="POD"})) == 1)))"};

// Prometheus sends sample values as strings ("0.5", "NaN", "+Inf").
double parseSampleValue(const std::string& s) {
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  return end != s.c_str() && *end == '\0' ? x : NAN;
}

// {name="value",...} in PromQL's form: how an error names the label set behind an id.
std::string labelSetOf(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels)
    if (k != "__name__") out += fmt::format("{}{}={}", out.empty() ? "" : ",", k, json(v).dump());
  return "{" + out + "}";
}

std::string seriesIdOf(const std::map<std::string, std::string>& labels) {  // sorted by name
  std::string id;
  for (const auto& [k, v] : labels)
    if (k != "__name__") id += (id.empty() ? "" : "/") + v;
  if (id.empty()) return "_";
  for (char& c : id)
    if (c == ',' || c == '\n' || c == '\r') c = '_';
  return id;
}

// A query_range answer read as it is parsed (nlohmann's SAX interface), not as a document: a
// cluster's answer runs to hundreds of MB, and its DOM took about 10x that (2.2 GB peak for 1000
// series x 4032 steps x 2 resources, against 0.5 GB this way; docs/results.md).
class QueryRangeReader final : public json::json_sax_t {
 public:
  explicit QueryRangeReader(std::size_t& dropped) : dropped_(dropped) {}

  std::string status, error_type, error, result_type, bad_sample;
  std::vector<PromSeries> series;
  std::vector<std::string> warnings;

  bool null() override { return scalar(); }
  bool boolean(bool) override { return scalar(); }
  bool number_integer(number_integer_t v) override { return number(static_cast<double>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<double>(v)); }
  bool number_float(number_float_t v, const string_t&) override { return number(v); }
  bool string(string_t& v) override {
    if (loose()) return false;
    if (depth_ == 2 && key_[1] == "warnings" && in_warnings_) {
      warnings.push_back(v);
    } else if (depth_ == 1) {
      if (key_[1] == "status") status = v;
      if (key_[1] == "errorType") error_type = v;
      if (key_[1] == "error") error = v;
    } else if (depth_ == 2 && in_data_ && key_[2] == "resultType") {
      result_type = v;
    } else if (in_metric_ && depth_ == 5) {
      labels_[key_[5]] = v;
    } else if (in_pair_ && depth_ == 6) {
      ++pair_items_;
      if (pair_items_ == 2) value_ = parseSampleValue(v);
    }
    return true;
  }
  bool binary(binary_t&) override { return scalar(); }
  bool start_object(std::size_t) override {
    if (loose()) return false;
    ++depth_;
    if (depth_ == 2 && key_[1] == "data") in_data_ = true;
    if (depth_ == 4 && in_result_) {
      series.emplace_back();
      labels_.clear();
    }
    if (depth_ == 5 && in_result_ && key_[4] == "metric") in_metric_ = true;
    return grow();
  }
  bool key(string_t& k) override {
    key_[static_cast<std::size_t>(std::min(depth_, 6))] = k;
    return true;
  }
  bool end_object() override {
    if (depth_ == 5) in_metric_ = false;
    if (depth_ == 4 && in_result_) {
      series.back().id = seriesIdOf(labels_);
      series.back().labels = labelSetOf(labels_);
    }
    if (depth_ == 2) in_data_ = false;
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    if (depth_ == 2 && key_[1] == "warnings") in_warnings_ = true;
    if (depth_ == 3 && in_data_ && key_[2] == "result") in_result_ = true;
    if (depth_ == 5 && in_result_ && key_[4] == "values") in_values_ = true;
    if (depth_ == 6 && in_values_) {
      in_pair_ = true;
      pair_items_ = 0;
      time_ = value_ = NAN;
    }
    return grow();
  }
  bool end_array() override {
    if (depth_ == 6 && in_pair_) {
      in_pair_ = false;
      PromSeries& p = series.back();
      if (pair_items_ != 2 || std::isnan(time_)) return refuseSample();
      if (!std::isfinite(value_) || value_ < 0) {
        ++dropped_;
      } else {
        p.time.push_back(static_cast<std::int64_t>(std::llround(time_)));
        p.value.push_back(value_);
      }
    }
    if (depth_ == 5) in_values_ = false;
    if (depth_ == 3) in_result_ = false;
    if (depth_ == 2) in_warnings_ = false;
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const json::exception& e) override {
    parse_error_ = e.what();
    return false;
  }
  const std::string& parseError() const { return parse_error_; }

 private:
  // Stops the parse (sax_parse returns false) with the reason in bad_sample.
  bool refuseSample() {
    bad_sample = fmt::format("a sample of series {} is not [time, \"value\"]", series.size());
    return false;
  }
  // Something other than a [time, value] pair directly in a series' values: refused.
  bool loose() {
    if (!in_values_ || depth_ != 5) return false;
    refuseSample();
    return true;
  }
  bool scalar() {
    if (loose()) return false;
    if (in_pair_ && depth_ == 6) ++pair_items_;  // neither a time nor a value: refused at the pair's end
    return true;
  }
  bool number(double v) {
    if (loose()) return false;
    if (in_pair_ && depth_ == 6) {
      ++pair_items_;
      if (pair_items_ == 1) time_ = v;
      if (pair_items_ == 2) value_ = v;
    }
    return true;
  }
  bool grow() { return depth_ < 64; }  // no Prometheus answer nests deeper; stops a hostile one

  std::size_t& dropped_;
  int depth_ = 0;
  std::array<std::string, 7> key_;  // the last key read at each depth
  bool in_data_ = false, in_result_ = false, in_metric_ = false, in_values_ = false, in_pair_ = false,
       in_warnings_ = false;
  int pair_items_ = 0;
  double time_ = NAN, value_ = NAN;
  std::map<std::string, std::string> labels_;
  std::string parse_error_;
};

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

// A client of `q`'s server, with its timeouts, its headers (the token) and its path prefix.
struct Connection {
  std::unique_ptr<httplib::Client> client;
  httplib::Headers headers;
  std::string prefix;
};
Result<Connection> connect(const PrometheusQuery& q) {
  auto ep = splitUrl(q.url);
  if (!ep) return tl::unexpected(ep.error());
  Connection c;
  c.client = std::make_unique<httplib::Client>(ep->base);
  c.client->set_connection_timeout(10);
  c.client->set_read_timeout(q.timeout_seconds);
  c.headers = {{"Accept", "application/json"}};
  if (!q.bearer_token.empty()) c.headers.emplace("Authorization", "Bearer " + q.bearer_token);
  c.prefix = ep->prefix;
  return c;
}

}  // namespace

std::string withStep(std::string_view promql, std::int64_t step_seconds) {
  std::string out(promql);
  const std::string step = fmt::format("{}s", step_seconds);
  for (std::size_t at; (at = out.find("{step}")) != std::string::npos;) out.replace(at, 6, step);
  return out;
}

// Double-quoted, with Go's escapes.
std::string promString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out + '"';
}
std::string promAnyOf(const std::vector<std::string>& names) {
  std::string re;
  for (const auto& n : names) {
    if (!re.empty()) re += '|';
    for (char c : n) {
      if (std::string_view(R"(\.+*?()|[]{}^$)").find(c) != std::string_view::npos) re += '\\';
      re += c;
    }
  }
  return promString(re);
}

namespace {
// cAdvisor's CFS throttled seconds per second of the containers `match` selects, per pod and
// container, summed within a scrape job (as the usage is).
std::string throttledRate(const std::string& match, std::int64_t rate_window_seconds) {
  return fmt::format("sum by (pod, container, job) (rate(container_cpu_cfs_throttled_seconds_total{}[{}s]))", match,
                     rate_window_seconds);
}
}  // namespace

std::string namespaceThrottlingQuery(const std::string& ns, std::int64_t rate_window_seconds) {
  return fmt::format("max by (pod, container) ({})",
                     throttledRate(fmt::format("{{namespace={},container!=\"\",container!=\"POD\"}}", promString(ns)),
                                   rate_window_seconds));
}

std::array<std::string, kResourceCount> podContainerQueries(const std::string& ns,
                                                            const std::vector<std::string>& pods,
                                                            const std::vector<std::string>& containers,
                                                            std::int64_t rate_window_seconds,
                                                            double max_cpus) {
  const std::string match = fmt::format("{{namespace={},pod=~{},container=~{}}}", promString(ns), promAnyOf(pods),
                                        promAnyOf(containers));
  // Summed within a scrape job and the jobs' sums maxed, as the cadvisor preset does (a cluster
  // may scrape cAdvisor twice); then the most of any pod.
  std::array<std::string, kResourceCount> q;
  const std::string usage = fmt::format("sum by (pod, container, job) (rate(container_cpu_usage_seconds_total{}[{}s]))",
                                        match, rate_window_seconds);
  std::string cpu = usage;
  if (max_cpus > 0) {
    // max(usage, min(usage + throttled, max_cpus)); a container without a quota has no throttled
    // series, and `or` keeps its usage.
    const std::string throttled = throttledRate(match, rate_window_seconds);
    cpu = fmt::format("(clamp_max({0} + on (pod, container, job) {1}, {2}) > on (pod, container, job) {0}) or {0}", usage,
                      throttled, max_cpus);
  }
  q[index(Resource::kCpu)] = fmt::format("max by (container) ({})", cpu);
  q[index(Resource::kMemory)] =
      fmt::format("max by (container) (sum by (pod, container, job) (container_memory_working_set_bytes{}))", match);
  return q;
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

Result<QueryRangeAnswer> parseQueryRange(std::string_view body, std::size_t& dropped) {
  QueryRangeReader r(dropped);
  const bool parsed = json::sax_parse(body, &r);
  if (!r.bad_sample.empty()) return fail(ErrorCode::kParse, "{}", r.bad_sample);
  if (!parsed)
    return fail(ErrorCode::kParse, "not a Prometheus API answer ({}): '{}'", r.parseError(), body.substr(0, 120));
  if (r.status != "success")
    return fail(ErrorCode::kInvalidArgument, "Prometheus refused the query: {}: {}",
                r.error_type.empty() ? "error" : r.error_type, r.error.empty() ? std::string(body.substr(0, 200)) : r.error);
  if (r.result_type != "matrix")
    return fail(ErrorCode::kParse, "expected a range query's matrix, got resultType '{}'", r.result_type);
  return QueryRangeAnswer{std::move(r.series), std::move(r.warnings)};
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
  auto server = connect(q);
  if (!server) return tl::unexpected(server.error());
  httplib::Client& cli = *server->client;
  const httplib::Headers& headers = server->headers;
  const std::string& prefix = server->prefix;

  const auto steps = static_cast<std::uint64_t>((q.end - q.start) / q.step_seconds) + 1;
  // Per id and resource, the samples as (step of the grid from start, value), in the order
  // answered: memory follows the samples returned, not the range asked for (a dense grid per id
  // over a range of years would be gigabytes for a few workloads that exist for days).
  using Samples = std::vector<std::pair<std::uint64_t, double>>;
  std::unordered_map<std::string, std::size_t> index_of;
  std::vector<std::string> ids;
  std::vector<std::array<Samples, kResourceCount>> samples;
  std::array<std::unordered_map<std::size_t, std::string>, kResourceCount> labels_of;  // per id
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
      auto res = cli.Post(prefix + "/api/v1/query_range", headers, params);
      if (!res)
        return fail(ErrorCode::kUnavailable, "{}: {} query: no answer ({} error)", q.url, name(r),
                    httplib::to_string(res.error()));
      auto answer = parseQueryRange(res->body, dropped);
      if (!answer)
        return fail(answer.error().code, "{}: {} query '{}' (HTTP {}): {}", q.url, name(r), promql, res->status,
                    answer.error().message);
      // Prometheus says "success" with warnings when part of the data could not be read (a
      // remote-read or store that failed, a partial response from Thanos or Cortex).
      for (const auto& w : answer->warnings) {
        if (!q.allow_partial)
          return fail(ErrorCode::kUnavailable,
                      "{}: {} query '{}' for {}..{}: Prometheus warns that the answer may be incomplete: "
                      "{} (--allow-partial imports it anyway)",
                      q.url, name(r), promql, a, b, w);
        spdlog::warn("prometheus: {} query for {}..{}: {}", name(r), a, b, w);
      }
      for (auto& s : answer->series) {
        auto [it, added] = index_of.try_emplace(s.id, ids.size());
        if (added) {
          ids.push_back(s.id);
          samples.emplace_back();
        }
        // Ids join label values without names: two label sets can give one id, and their
        // samples would be mixed into one series without this.
        auto& seen = labels_of[index(r)][it->second];
        if (seen.empty()) seen = s.labels;
        if (seen != s.labels)
          return fail(ErrorCode::kInvalidArgument,
                      "{}: {} query '{}': the series {} and {} both become id '{}'; aggregate away "
                      "the label that tells them apart (e.g. `sum by (...)`) or keep it in both",
                      q.url, name(r), promql, seen, s.labels, s.id);
        auto& to = samples[it->second][index(r)];
        if (to.size() + s.time.size() > to.capacity())  // geometric growth across windows
          to.reserve(std::max(2 * to.capacity(), to.size() + s.time.size()));
        for (std::size_t i = 0; i < s.time.size(); ++i) {
          const std::int64_t d = s.time[i] - q.start;
          if (d < 0 || d % q.step_seconds != 0 || static_cast<std::uint64_t>(d / q.step_seconds) >= steps) {
            ++off_grid;  // query_range answers on the grid; anything else is not ours to place
            continue;
          }
          to.emplace_back(static_cast<std::uint64_t>(d / q.step_seconds), s.value[i]);
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
    if (std::all_of(samples[k].begin(), samples[k].end(), [](const Samples& v) { return v.empty(); }))
      continue;  // every sample it had was dropped: a series of no rows
    RawSeries s;
    s.id = ids[k];
    s.file = q.url;
    auto& per = samples[k];
    // The union of the resources' steps, in order; a resource without a sample at a step is NaN.
    std::vector<std::uint64_t> at;
    for (auto& v : per) {
      std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      for (const auto& [i, x] : v) at.push_back(i);
    }
    std::sort(at.begin(), at.end());
    at.erase(std::unique(at.begin(), at.end()), at.end());
    s.time.reserve(at.size());
    for (std::uint64_t i : at) s.time.push_back(q.start + static_cast<std::int64_t>(i) * q.step_seconds);
    for (std::size_t r = 0; r < kResourceCount; ++r) {
      if (per[r].empty()) continue;
      auto& out_values = s.value[r];
      out_values.assign(at.size(), NAN);
      std::size_t j = 0;
      for (const auto& [i, x] : per[r]) {
        while (at[j] < i) ++j;
        out_values[j] = x;  // a step answered twice keeps the later answer
      }
      Samples().swap(per[r]);  // held once, not twice
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const RawSeries& a, const RawSeries& b) { return a.id < b.id; });
  return out;
}

Result<std::vector<InstantSample>> parseInstant(std::string_view body, int http_status, bool allow_partial,
                                                const std::string& what) {
  const json answer = json::parse(body, nullptr, false);
  const json data = answer.is_object() ? answer.value("data", json::object()) : json::object();
  if (!answer.is_object() || !data.is_object())
    return fail(ErrorCode::kParse, "{} (HTTP {}): not a Prometheus API answer: '{}'", what, http_status,
                body.substr(0, 120));
  // value(key, default) throws where the key holds another type: read strings through this.
  auto text = [](const json& o, const char* key, std::string fallback) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : fallback;
  };
  if (text(answer, "status", "") != "success")
    return fail(ErrorCode::kInvalidArgument, "{}: Prometheus refused it: {}: {}", what, text(answer, "errorType", "error"),
                text(answer, "error", std::string(body.substr(0, 200))));
  for (const auto& w : answer.value("warnings", json::array()))
    if (!allow_partial)
      return fail(ErrorCode::kUnavailable, "{}: Prometheus warns that the answer may be incomplete: {}", what,
                  w.is_string() ? w.get<std::string>() : w.dump());
  if (text(data, "resultType", "") != "vector")
    return fail(ErrorCode::kParse, "{}: a {} answer, not a vector", what, text(data, "resultType", "?"));
  std::vector<InstantSample> out;
  for (const auto& series : data.value("result", json::array())) {
    auto& sample = out.emplace_back();
    sample.value = std::numeric_limits<double>::quiet_NaN();
    if (!series.is_object()) continue;
    const json metric = series.value("metric", json::object());  // held: items() of a temporary dangles
    if (metric.is_object())
      for (const auto& [k, v] : metric.items())
        if (v.is_string()) sample.labels[k] = v.get<std::string>();
    // "value": [time, "1.5"]: the value as a string, as Prometheus writes floats (NaN, +Inf too).
    const json value = series.value("value", json::array());
    if (value.is_array() && value.size() == 2 && value[1].is_string()) {
      const std::string v_text = value[1].get<std::string>();
      char* end = nullptr;
      const double v = std::strtod(v_text.c_str(), &end);
      if (end && *end == '\0' && !v_text.empty()) sample.value = v;
    }
  }
  return out;
}

Result<std::vector<InstantSample>> readInstant(const PrometheusQuery& server, const std::string& promql,
                                               std::int64_t time) {
  auto to = connect(server);
  if (!to) return tl::unexpected(to.error());
  auto res = to->client->Post(to->prefix + "/api/v1/query", to->headers,
                              httplib::Params{{"query", promql}, {"time", std::to_string(time)}});
  if (!res)
    return fail(ErrorCode::kUnavailable, "{}: query '{}': no answer ({} error)", server.url, promql,
                httplib::to_string(res.error()));
  // An instant query's answer is one sample per series: small, read whole.
  return parseInstant(res->body, res->status, server.allow_partial, fmt::format("{}: query '{}'", server.url, promql));
}

Status writeIdCsv(const std::vector<RawSeries>& series, const std::array<bool, kResourceCount>& resources,
                  const std::filesystem::path& file) {
  // Streamed a series at a time: a cluster's import can be larger than the series it came from.
  return writeFileAtomically(file, [&](std::ostream& out) {
    std::string text = "id,timestamp";
    for (Resource r : kAllResources)
      if (resources[index(r)]) text += fmt::format(",{}", name(r));
    text += '\n';
    for (const auto& s : series) {
      for (std::size_t i = 0; i < s.time.size(); ++i) {
        fmt::format_to(std::back_inserter(text), "{},{}", s.id, s.time[i]);
        for (Resource r : kAllResources) {
          if (!resources[index(r)]) continue;
          const auto& v = s.value[index(r)];
          text += ',';
          if (i < v.size() && !std::isnan(v[i])) fmt::format_to(std::back_inserter(text), "{}", v[i]);  // shortest exact form
        }
        text += '\n';
      }
      out << text;
      text.clear();
    }
    out << text;
  });
}

}  // namespace foresight::trace
