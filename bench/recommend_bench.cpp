// One `foresight recommend` round (list the VPAs, resolve each target's selector, read its pods'
// metrics and statuses, read the VPA and write its recommendation) against the fake API server on
// loopback, for 100 and 1000 VPAs: the recommender's own cost per round and the requests it makes.
// Loopback and a fake server: a real API server's latency adds to every request.
// And the cost of `--prometheus` at a start: a day of one container's history (1440 samples at
// the default 60 s period) fed to its forecasters, per forecaster kind, without Prometheus itself.
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

// The history: a day of the shipped sample trace's first VM's cpu and memory (its 5-minute rows
// taken as minutes: the forecasters' cost does not depend on the values).
const foresight::trace::RawSeries& aDayOfHistory() {
  static const foresight::trace::RawSeries day = [] {
    spdlog::set_level(spdlog::level::err);  // the sample's short series, skipped, are not news here
    foresight::trace::RawSeries s;
    foresight::trace::ReadOptions o;
    o.format = foresight::trace::Format::kBitbrains;
    o.max_series = 1;
    auto tr = foresight::trace::readTraceDir(std::string(FORESIGHT_SOURCE_DIR) + "/data/bitbrains-rnd-sample", o);
    if (!tr || tr->series.empty()) return s;
    const auto& first = tr->series.front();
    for (std::size_t i = 0; i < std::min<std::size_t>(1440, first.size()); ++i) {
      s.time.push_back(1'780'000'000 + 60 * static_cast<std::int64_t>(i));
      for (auto r : {foresight::Resource::kCpu, foresight::Resource::kMemory})
        s.value[foresight::index(r)].push_back(first.usage[foresight::index(r)][i]);
    }
    return s;
  }();
  return day;
}

void BM_WarmADayOfHistory(benchmark::State& state, const char* kind) {
  spdlog::set_level(spdlog::level::warn);
  const auto& day = aDayOfHistory();
  if (day.time.size() < 1440) {
    state.SkipWithError("the shipped sample trace has no day of rows");
    return;
  }
  foresight::predict::SeasonalOptions seasonal;  // as `foresight recommend` sets them at a 60 s period
  seasonal.max_period = 16;
  seasonal.errors = 16;
  auto forecasters = foresight::loop::makeForecasters(
      kind, std::string(FORESIGHT_SOURCE_DIR) + "/models/lstm-bitbrains.fsm", seasonal, 60);
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
    benchmark::DoNotOptimize(autoscaler.warm(workload, day));
    state.PauseTiming();
    autoscaler.forget(workload);
    state.ResumeTiming();
  }
  state.counters["samples_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * day.time.size()),
                                                       benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_WarmADayOfHistory, seasonal, "seasonal")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_WarmADayOfHistory, lstm, "lstm")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_WarmADayOfHistory, auto, "auto")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
