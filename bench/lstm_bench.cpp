// LSTM forecaster speed: batched streaming step (Torch), single-workload step (Torch and the plain
// C++ stepper the backtest uses), and one training step. Same architecture as the shipped model
// (hidden 48, horizon 12, 12 quantile levels); weights are random, which does not change the cost.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "foresight/predict/lstm/model.h"
#include "foresight/predict/lstm/torch_api.h"

namespace lstm = foresight::predict::lstm;

namespace {

const lstm::LstmModel& model() {
  // The shipped model's inputs: the window and day blocks, 46 columns at a 300 s step.
  static const lstm::LstmModel m = [] {
    auto built = lstm::LstmModel::initial(48, 12, lstm::kDefaultLevels, 1, true, true);
    built.step_seconds = 300;
    return built;
  }();
  return m;
}

std::vector<float> randomInputs(std::size_t n) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> nd;
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  return x;
}

// members: networks stepped one after the other on the same inputs, as the shipped forecaster's
// two averaged models are (each its own state).
void BM_TorchStreamingStep(benchmark::State& state) {
  const auto workloads = static_cast<std::size_t>(state.range(0));
  std::vector<std::unique_ptr<lstm::StreamingPredictor>> members;
  for (int64_t i = 0; i < state.range(1); ++i) {
    auto sp = lstm::StreamingPredictor::create(model(), workloads);
    if (!sp) {
      state.SkipWithError(sp.error().message.c_str());
      return;
    }
    members.push_back(std::move(*sp));
  }
  const auto x = randomInputs(workloads * model().inputs());
  for (auto _ : state)
    for (auto& sp : members) {
      if (!sp->step(x)) state.SkipWithError("step failed");
      benchmark::DoNotOptimize(sp->output(0).data());
    }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(workloads));
}
BENCHMARK(BM_TorchStreamingStep)
    ->ArgNames({"workloads", "members"})
    ->Args({1, 1})
    ->Args({100, 1})
    ->Args({10000, 1})
    ->Args({10000, 2})
    ->Unit(benchmark::kMillisecond);

// The step plus reading every workload's full forecast (non-crossing transform for all).
void BM_TorchStreamingStepAndReadAll(benchmark::State& state) {
  const auto workloads = static_cast<std::size_t>(state.range(0));
  auto sp = lstm::StreamingPredictor::create(model(), workloads);
  if (!sp) {
    state.SkipWithError(sp.error().message.c_str());
    return;
  }
  const auto x = randomInputs(workloads * model().inputs());
  for (auto _ : state) {
    if (!(*sp)->step(x)) state.SkipWithError("step failed");
    float sum = 0;
    for (std::size_t i = 0; i < workloads; ++i) sum += (*sp)->output(i)[0];
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(workloads));
}
BENCHMARK(BM_TorchStreamingStepAndReadAll)->Arg(10000)->Unit(benchmark::kMillisecond);

// What one backtest policy does per observation: one cell step + one horizon's quantiles for the
// four resources.
void BM_CpuStepperStep(benchmark::State& state) {
  lstm::CpuStepper st(model());
  const auto x = randomInputs(model().inputs());
  std::vector<double> q(model().levels.size());
  for (auto _ : state) {
    st.step(x);
    for (std::size_t r = 0; r < 4; ++r) st.quantiles(r, 1, q);
    benchmark::DoNotOptimize(q.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CpuStepperStep)->Unit(benchmark::kMicrosecond);

// Building one step's input vector per workload; Arg = fingerprint window (0: no fingerprint
// block; 288: one day of 5-minute steps, refreshed every kFingerprintHop steps, so the figure is
// the average over refresh and plain steps).
void BM_FeatureBuilderStep(benchmark::State& state) {
  lstm::LstmModel m = model();
  m.fingerprint_window = static_cast<std::size_t>(state.range(0));
  lstm::FeatureBuilder fb(m, {});
  std::vector<float> x(m.inputs());
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> ln(0.0, 1.0);
  foresight::predict::Observation o;
  for (auto _ : state) {
    for (double& u : o.usage) u = ln(rng);
    fb.step(o, x);
    ++o.step;
    o.time += 300;
    benchmark::DoNotOptimize(x.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FeatureBuilderStep)->Arg(0)->Arg(288)->Unit(benchmark::kMicrosecond);

// One optimiser step on a [bptt=72, batch=64] chunk: forward, pinball loss, backward, Adam.
void BM_TrainStep(benchmark::State& state) {
  lstm::TrainStepBench b(model(), 64, 72);
  for (auto _ : state) benchmark::DoNotOptimize(b.run());
  state.SetItemsProcessed(state.iterations() * 64 * 72);  // series-steps
}
BENCHMARK(BM_TrainStep)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // The target machine has 2 cores; FORESIGHT_TORCH_THREADS overrides (to compare 1 vs 2).
  const char* t = std::getenv("FORESIGHT_TORCH_THREADS");
  lstm::setTorchThreads(t ? std::atoi(t) : 2);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
