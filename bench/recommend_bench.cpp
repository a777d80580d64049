// One `foresight recommend` round (list the VPAs, resolve each target's selector, read its pods'
// metrics and statuses, read the VPA and write its recommendation) against the fake API server on
// loopback, for 100 and 1000 VPAs: the recommender's own cost per round and the requests it makes.
// Loopback and a fake server: a real API server's latency adds to every request.
// And the cost of a start from history: a day of one container's history (1440 samples at the
// default 60 s period; `recommend --prometheus`) or 1800 s of a workload's at 1 s (`run`'s store)
// fed to its forecasters, without reading it.
#include <benchmark/benchmark.h>

#include "foresight/core/log.h"
#include "foresight/loop/recommender.h"
#include "foresight/trace/reader.h"
#include "support/fake_vpa_cluster.h"

namespace {
using foresight::test_support::FakeCluster;

void BM_RecommendRound(benchmark::State& state) {
  spdlog::set_level(spdlog::level::warn);
  FakeCluster cluster(static_cast<int>(state.range(0)));
  foresight::loop::AutoscalerConfig c;
  c.forecaster = foresight::loop::seasonalForecasters({});
  c.min_history_seconds = 0;
  c.min_samples = 1;  // plans (and writes) from the first round on, as in steady state
  c.apply = true;
  // As `foresight recommend` makes them: the backend reads the VPAs the discovery listed.
  auto listed = std::make_shared<foresight::allocate::k8s::VpaObjects>();
  foresight::allocate::k8s::Settings s;
  s.mode = "vpa";
  s.listed = listed;
  foresight::loop::Autoscaler autoscaler(std::move(c), foresight::allocate::k8s::makeBackend(cluster.access(), s),
                                         std::nullopt);
  foresight::loop::VpaRecommender recommender(foresight::allocate::k8s::VpaDiscovery(cluster.access(), 600, listed),
                                              "foresight", "", autoscaler);
  std::size_t containers = 0;
  const std::size_t before = cluster.requests().size();
  for (auto _ : state) {
    auto r = recommender.round();
    if (!r) {
      state.SkipWithError(r.error().message.c_str());
      return;
    }
    containers = r->containers;
  }
  state.counters["containers"] = static_cast<double>(containers);
  state.counters["requests_per_round"] =
      static_cast<double>(cluster.requests().size() - before) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_RecommendRound)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The history: the first VM of the shipped sample trace, its cpu and memory rows taken as
// samples `period` seconds apart (the forecasters' cost does not depend on the values).
foresight::trace::RawSeries historyOf(std::size_t samples, std::int64_t period) {
  static const foresight::trace::Series first = [] {
    spdlog::set_level(spdlog::level::err);  // the sample's short series, skipped, are not news here
    foresight::trace::ReadOptions o;
    o.format = foresight::trace::Format::kBitbrains;
    o.max_series = 1;
    auto tr = foresight::trace::readTraceDir(std::string(FORESIGHT_SOURCE_DIR) + "/data/bitbrains-rnd-sample", o);
    return tr && !tr->series.empty() ? tr->series.front() : foresight::trace::Series{};
  }();
  foresight::trace::RawSeries s;
  for (std::size_t i = 0; i < std::min(samples, first.size()); ++i) {
    s.time.push_back(1'780'000'000 + period * static_cast<std::int64_t>(i));
    for (auto r : {foresight::Resource::kCpu, foresight::Resource::kMemory})
      s.value[foresight::index(r)].push_back(first.usage[foresight::index(r)][i]);
  }
  return s;
}

// A new workload's forecasters fed `samples` of history at `period` seconds, as the commands make
// them: `recommend` (60 s, a day: 1440) and `run` (1 s, --history-length 1800).
void BM_WarmFromHistory(benchmark::State& state, const char* kind, std::int64_t period, std::size_t samples) {
  spdlog::set_level(spdlog::level::warn);
  const auto past = historyOf(samples, period);
  if (past.time.size() < samples) {
    state.SkipWithError("the shipped sample trace has too few rows");
    return;
  }
  const std::filesystem::path models[] = {FORESIGHT_SOURCE_DIR "/models/lstm-bitbrains.fsm",
                                          FORESIGHT_SOURCE_DIR "/models/lstm-bitbrains-2.fsm"};
  auto forecasters = foresight::loop::liveForecasters(kind, models, static_cast<double>(period));
  if (!forecasters) {
    state.SkipWithError(forecasters.error().message.c_str());
    return;
  }
  foresight::loop::AutoscalerConfig c;
  c.forecaster = *forecasters;
  foresight::loop::Autoscaler autoscaler(std::move(c), foresight::allocate::makeDryRunBackend(nullptr), std::nullopt);
  std::size_t n = 0;
  for (auto _ : state) {
    const std::string workload = "shop/web-" + std::to_string(n++) + "/app";
    benchmark::DoNotOptimize(autoscaler.warm(workload, past));
    state.PauseTiming();
    autoscaler.forget(workload);
    state.ResumeTiming();
  }
  state.counters["samples_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * past.time.size()),
                                                       benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_WarmFromHistory, recommend_seasonal, "seasonal", 60, 1440)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_WarmFromHistory, recommend_lstm, "lstm", 60, 1440)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_WarmFromHistory, recommend_auto, "auto", 60, 1440)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_WarmFromHistory, run_auto, "auto", 1, 1800)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
