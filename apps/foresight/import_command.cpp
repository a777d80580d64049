// `foresight import prometheus`: a server's usage history as a generic CSV trace with an id column.
#include <chrono>
#include <cmath>

#include "commands.h"
#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/trace/prometheus.h"

namespace foresight::app {
namespace {

struct ImportArgs {
  std::string url, preset = "foresight", out, token_file;
  std::vector<std::string> queries;  // RESOURCE=PROMQL
  double start = NAN, end = NAN, days = 14;
  std::int64_t step = 300;
  bool allow_partial = false;
};

int runImport(const ImportArgs& a) {
  trace::PrometheusQuery q;
  q.url = a.url;
  q.step_seconds = a.step;
  q.allow_partial = a.allow_partial;
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  q.end = std::isnan(a.end) ? now : static_cast<std::int64_t>(a.end);
  q.start = std::isnan(a.start) ? q.end - static_cast<std::int64_t>(a.days * 86400) : static_cast<std::int64_t>(a.start);
  if (q.end < q.start) {
    spdlog::error("the range ends ({}) before it starts ({})", q.end, q.start);
    return 2;
  }
  auto preset = trace::presetQueries(a.preset, a.step);
  if (!preset) {
    spdlog::error("--preset: {}", preset.error().message);
    return 2;
  }
  q.promql = *preset;
  for (const auto& kv : a.queries) {
    const auto eq = kv.find('=');
    auto r = parseResource(kv.substr(0, eq));
    if (eq == std::string::npos || !r) {
      spdlog::error("--query '{}': expected RESOURCE=PROMQL with RESOURCE one of cpu, memory, disk_io, network", kv);
      return 2;
    }
    q.promql[index(*r)] = trace::withStep(kv.substr(eq + 1), a.step);  // "" drops the resource
  }
  if (!a.token_file.empty()) {
    auto token = readTokenFile(a.token_file);
    if (!token) {
      spdlog::error("--token-file {}", token.error().message);
      return 1;
    }
    q.bearer_token = std::move(*token);
  }
  for (Resource r : kAllResources)
    if (!q.promql[index(r)].empty()) spdlog::info("prometheus: {} = {}", name(r), q.promql[index(r)]);
  auto series = trace::readPrometheus(q);
  if (!series) {
    spdlog::error("{}", series.error().message);
    return 1;
  }
  if (series->empty()) {
    spdlog::error("{}: the queries returned no series with a usable sample between {} and {}; nothing written",
                  a.url, q.start, q.end);
    return 1;
  }
  // The columns are the resources that answered: an empty column would read as a resource that
  // is present and never used.
  std::array<bool, kResourceCount> resources{};
  for (const auto& s : *series)
    for (Resource r : kAllResources) resources[index(r)] = resources[index(r)] || !s.value[index(r)].empty();
  for (Resource r : kAllResources)
    if (!q.promql[index(r)].empty() && !resources[index(r)])
      spdlog::warn("prometheus: {}: no samples; the column is left out", name(r));
  if (auto st = trace::writeIdCsv(*series, resources, a.out); !st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  std::size_t rows = 0;
  for (const auto& s : *series) rows += s.time.size();
  spdlog::info("wrote {}: {} series, {} rows, step {} s ({} to {}); read it with --trace {} --format csv",
               a.out, series->size(), rows, q.step_seconds, q.start, q.end, a.out);
  return 0;
}

}  // namespace

void addImportCommand(CLI::App& app) {
  auto* imp = app.add_subcommand("import", "Fetch usage history from another system as a trace");
  imp->require_subcommand(1);
  auto a = std::make_shared<ImportArgs>();
  auto* cmd = imp->add_subcommand(
      "prometheus",
      "Query a Prometheus server's history (/api/v1/query_range) into a generic CSV trace with an id "
      "column (docs/evaluation.md)");
  cmd->add_option("--url", a->url, "the server, http(s)://host:port[/prefix]")->required();
  cmd->add_option("--out", a->out, "CSV file to write")->required()->check(outputFile());
  cmd->add_option("--preset", a->preset,
                  "queries: foresight (this project's agent's gauges) or cadvisor (Kubernetes "
                  "containers: cpu, memory, disk_io; network for a pod's only container)")
      ->capture_default_str();
  cmd->add_option("--query", a->queries,
                  "RESOURCE=PROMQL, replacing the preset's query for that resource ({step} = the step, "
                  "e.g. rate(x[{step}]); an empty PROMQL leaves the resource out); series ids are the "
                  "answers' label values, '/'-joined in label-name order");
  // Bounds keep the Unix-seconds arithmetic exact (int64) and the number of queries finite.
  cmd->add_option("--start", a->start, "Unix seconds (default: --days before --end)")
      ->check(finiteIn(0.0, 1e11));
  cmd->add_option("--end", a->end, "Unix seconds (default: now)")->check(finiteIn(0.0, 1e11));
  cmd->add_option("--days", a->days, "history to fetch when --start is not given")->capture_default_str()
      ->check(finiteIn(1.0 / 1440, 36500.0));
  cmd->add_option("--step", a->step, "seconds between samples")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400}));
  cmd->add_option("--token-file", a->token_file, "file whose first line is a bearer token")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--allow-partial", a->allow_partial,
                "import answers that Prometheus warns may be incomplete (e.g. a remote-read store "
                "that failed), with a warning; by default they are an error");
  cmd->callback([a] {
    if (int rc = runImport(*a); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
