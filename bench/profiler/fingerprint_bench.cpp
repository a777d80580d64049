// Fingerprint pipeline throughput: samples pushed per second (4 metrics, window 60, hop 10,
// dim 16: the agent's defaults), on a synthetic periodic series with noise.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

#include "foresight/fingerprint/fingerprint.h"

using namespace foresight::fingerprint;

static void BM_PipelinePush(benchmark::State& state) {
  Pipeline p({.window = static_cast<std::size_t>(state.range(0)), .hop = 10, .dim = 16}, resourceMetrics());
  std::mt19937 rng(1);
  std::normal_distribution<double> g;
  std::int64_t t = 0;
  std::size_t fps = 0;
  for (auto _ : state) {
    const double row[4] = {1 + std::sin(t / 10.0) + 0.1 * g(rng), 1e9 + 1e6 * g(rng), 1e5 * std::abs(g(rng)), 1e4};
    if (auto f = p.push(t++, row)) ++fps;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["fingerprints"] = static_cast<double>(fps);
}
BENCHMARK(BM_PipelinePush)->Arg(60)->Arg(600);

BENCHMARK_MAIN();
