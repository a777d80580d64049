// The LibTorch autoencoder's cost per fingerprint (`fingerprint.autoencoder: true`): the pipeline
// at the agent's defaults (window 60, hop 10, dim 16) with the autoencoder as its anomaly model,
// beside the same pipeline with the default PCA-error model.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <random>

#include "foresight/fingerprint/autoencoder.h"
#include "foresight/fingerprint/fingerprint.h"

using namespace foresight::fingerprint;

static void BM_FingerprintEveryHop(benchmark::State& state) {
  torch::set_num_threads(1);  // the agent's sampling thread
  Pipeline p({.window = 60, .hop = 10, .dim = 16}, resourceMetrics());
  if (state.range(0)) {
    AutoencoderOptions o;
    o.input_dim = p.featureNames().size();
    p.setAnomalyModel(std::make_shared<Autoencoder>(o));
  }
  std::mt19937 rng(1);
  std::normal_distribution<double> g;
  std::int64_t t = 0;
  auto push = [&] {
    const double row[4] = {1 + std::sin(t / 10.0) + 0.1 * g(rng), 1e9 + 1e6 * g(rng),
                           1e5 * std::abs(g(rng)), 1e4};
    return p.push(t++, row).has_value();
  };
  for (int i = 0; i < 600; ++i) push();  // past the first window and the model's warm-up
  std::size_t fps = 0;
  for (auto _ : state) {
    // One hop: 10 samples, the last of which completes a fingerprint.
    for (int i = 0; i < 10; ++i) fps += push();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(fps));
  state.SetLabel(state.range(0) ? "autoencoder" : "pca error");
}
BENCHMARK(BM_FingerprintEveryHop)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
