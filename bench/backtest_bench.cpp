// The full backtest of EVALUATION.md on a real trace: series-steps per second per policy, and the
// whole run (all baselines, full sweeps, 4 resources) as one figure.
//   FORESIGHT_TRACE=DIR FORESIGHT_FORMAT=bitbrains|csv ./build/bench/backtest_bench
// Default trace: ../shared/data/bitbrains-rnd/2013-7, else the shipped 40-VM sample.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>

#include "foresight/core/log.h"
#include "foresight/sim/backtest.h"
#include "foresight/trace/reader.h"

namespace {
using namespace foresight;

std::string tracePath() {
  if (const char* p = std::getenv("FORESIGHT_TRACE")) return p;
  const std::string full = std::string(FORESIGHT_SHARED_DATA_DIR) + "/bitbrains-rnd/2013-7";
  if (std::filesystem::exists(full)) return full;
  return std::string(FORESIGHT_SOURCE_DIR) + "/data/bitbrains-rnd-sample";
}

const trace::Trace& theTrace() {
  static const trace::Trace t = [] {
    trace::ReadOptions o;
    const char* f = std::getenv("FORESIGHT_FORMAT");
    o.format = f && std::string(f) == "csv" ? trace::Format::kCsv : trace::Format::kBitbrains;
    spdlog::set_level(spdlog::level::err);
    auto r = trace::readTraceDir(tracePath(), o);
    if (!r) {
      std::fprintf(stderr, "%s\n", r.error().message.c_str());
      std::exit(1);
    }
    return *r;
  }();
  return t;
}

std::uint64_t stepsOf(const trace::Trace& t) {
  std::uint64_t n = 0;
  for (const auto& s : t.series) n += s.size();
  return n;
}

void BM_ReadTrace(benchmark::State& state) {
  trace::ReadOptions o;
  o.format = trace::Format::kBitbrains;
  spdlog::set_level(spdlog::level::err);
  for (auto _ : state) benchmark::DoNotOptimize(trace::readTraceDir(tracePath(), o));
}

void runPolicies(benchmark::State& state, const std::vector<std::string>& names) {
  const auto& tr = theTrace();
  predict::PolicyRegistry registry("policy");
  predict::registerBaselines(registry);
  std::vector<std::unique_ptr<predict::PolicyFactory>> factories;
  std::vector<sim::NamedPolicy> named;
  for (const auto& n : names) {
    factories.push_back(std::move(*registry.create(n, {})));
    named.push_back({n, factories.back().get()});
  }
  sim::RunOptions run;
  for (auto _ : state) benchmark::DoNotOptimize(sim::runBacktest(tr, named, run));
  state.counters["series"] = static_cast<double>(tr.series.size());
  state.counters["series_steps_per_s"] =
      benchmark::Counter(static_cast<double>(stepsOf(tr) * names.size()),
                         benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Policy(benchmark::State& state, std::string name) { runPolicies(state, {name}); }
void BM_AllBaselines(benchmark::State& state) {
  runPolicies(state, {"vpa", "autopilot", "reactive", "static", "oracle"});
}

BENCHMARK(BM_ReadTrace)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Policy, vpa, "vpa")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Policy, autopilot, "autopilot")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Policy, reactive, "reactive")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Policy, static, "static")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Policy, oracle, "oracle")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AllBaselines)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
