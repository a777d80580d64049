// One `foresight recommend` round (list the VPAs, resolve each target's selector, read its pods'
// metrics and statuses, read the VPA and write its recommendation) against the fake API server on
// loopback, for 100 and 1000 VPAs: the recommender's own cost per round and the requests it makes.
// Loopback and a fake server: a real API server's latency adds to every request.
#include <benchmark/benchmark.h>

#include "foresight/core/log.h"
#include "foresight/loop/recommender.h"
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
  foresight::allocate::k8s::Settings s;
  s.mode = "vpa";
  foresight::loop::Autoscaler autoscaler(std::move(c), foresight::allocate::k8s::makeBackend(cluster.access(), s),
                                         std::nullopt);
  foresight::loop::VpaRecommender recommender(foresight::allocate::k8s::VpaDiscovery(cluster.access()),
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

}  // namespace

BENCHMARK_MAIN();
