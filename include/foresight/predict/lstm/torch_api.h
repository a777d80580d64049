#pragma once
// The LibTorch side of the LSTM forecaster, behind a Torch-free interface: training, a batched
// streaming predictor, and the full-sequence forward (for tests). Torch errors come back as
// Result errors; no Torch header leaks out of src/predict/lstm/.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "foresight/predict/lstm/model.h"
#include "foresight/trace/series.h"

namespace foresight::predict::lstm {

void setTorchThreads(int threads);

struct TrainOptions {
  double train_fraction = 0.5;  // only the first fraction of each series is ever read
  std::size_t hidden = 48, horizon = 12;
  std::size_t batch = 64;       // series per batch
  std::size_t bptt = 72;        // truncated-BPTT chunk length (steps)
  std::size_t max_epochs = 20, patience = 3;
  double lr = 3e-3;
  double holdout = 0.2;         // share of series held back: half validation, half conformal
  double time_budget_s = 0;     // 0: none; gradient steps stop when it is spent
  std::size_t max_series = 0;   // 0: all training series
  std::uint64_t seed = 1;
  // The workload split (training / validation / conformal) from this seed instead of `seed`, so
  // that runs with different seeds can be compared on the same held-back workloads.
  std::optional<std::uint64_t> split_seed;
  // The objective (pooled slack) is in absolute units but the pinball loss on z is relative:
  // weight each series' loss, per resource, by its scale over the mean scale of the training
  // series, clipped to [1/bound, bound]. 0: unweighted. Both defaults: the configuration that won
  // the validation backtest (docs/model.md).
  double scale_weight_bound = 4;
  // The loss of horizon step h is weighted by h^-P (then normalised): the allocation rests on the
  // first steps, while an equal weight lets the far steps, which are mostly spread, dominate.
  // 0: every step alike (the default; the shipped model was trained with 2, docs/model.md).
  double horizon_weight_power = 0;
  bool window_features = true;  // the zmax12_<r> / zmin12_<r> input columns
  bool day_features = false;    // the zday_<r> / zdaymax_<r> / day_present input columns
  // LstmModel::fingerprint_window of the trained model; 0: the initial model's (none if fresh).
  std::size_t fingerprint_window = 0;
  // LstmModel::scale_restart of the trained model; 0: the initial model's (none if fresh).
  std::uint32_t scale_restart = 0;
  // Fine-tuning: start from this model's weights, normalisers and architecture instead of fresh
  // ones (hidden, horizon, window_features and day_features are then the model's). The workload
  // split still comes from `seed` (or `split_seed`): use the model's, or its held-back workloads
  // are trained on.
  std::optional<LstmModel> init;
  // Which epoch is kept, and what early stopping waits on: the validation backtest's
  // selectionScore (the decision the model serves; the pinball loss averages every level and
  // horizon and can improve while the allocation gets worse, docs/model.md), or the validation loss.
  bool select_by_backtest = true;
  unsigned threads = 1;  // for the validation backtest
  // Traces of other origins often lack resources every Bitbrains series has, and a model that
  // never saw a seen_<r> flag at 0 forecasts worse without them (docs/model.md). With this
  // probability a training series also enters as a copy without some of memory, disk_io and
  // network (each dropped with probability 1/2, at least one); its other targets are unchanged.
  // 0: off. Drawn from its own random stream, so the workload split stays that of a run without it.
  double missing_resources = 0;
};

struct EpochInfo {
  std::size_t epoch = 0, batches_done = 0, batches_total = 0;
  double train_loss = 0, val_loss = NAN;
  double val_score = NAN;  // selectionScore of this epoch's validation backtest (select_by_backtest)
};

struct TrainReport {
  LstmModel model;
  std::vector<EpochInfo> epochs;
  std::size_t best_epoch = 0, train_series = 0, val_series = 0, cal_series = 0;
  std::uint64_t train_steps = 0;  // series-steps per epoch
  std::size_t augmented_series = 0;  // copies without some resources (missing_resources)
  // Training series (not copies) that have each resource: a resource none had has untrained heads.
  std::array<std::size_t, kResourceCount> series_with{};
  std::vector<std::size_t> val_index;  // the validation workloads, as indices into the input
  double seconds = 0;
};

// Trains on `series` (their first train_fraction only) and fits the split-conformal offsets on
// held-back workloads. `progress` is called after each batch.
Result<TrainReport> train(const std::vector<trace::Series>& series, const TrainOptions& options,
                          const std::function<void(const EpochInfo&)>& progress = {});

// Batched streaming: one hidden state per workload, one step per call for all of them.
class StreamingPredictor {
 public:
  static Result<std::unique_ptr<StreamingPredictor>> create(const LstmModel& model,
                                                            std::size_t workloads);
  ~StreamingPredictor();
  // x: workloads x model.inputs() features (row-major). Advances every workload by one step and
  // computes the raw head outputs for all of them.
  Status step(std::span<const float> x);
  // Quantiles (z-space, non-crossing) of workload i after the last step: R * horizon * Q values
  // (outIndex order), computed on demand into a buffer that the next call overwrites.
  std::span<const float> output(std::size_t i) const;
  std::size_t workloads() const;

 private:
  struct Impl;
  explicit StreamingPredictor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Full-sequence forward of one workload: x is T x inputs; returns T x outputs (z-space,
// non-crossing). For tests: streaming must equal it.
Result<std::vector<float>> forwardSequence(const LstmModel& model, std::span<const float> x,
                                           std::size_t steps);

// One training step (forward + pinball loss + backward + Adam) on random data of the given
// shape; for the throughput benchmark. Returns the loss.
struct TrainStepBench {
  explicit TrainStepBench(const LstmModel& model, std::size_t batch, std::size_t steps);
  ~TrainStepBench();
  double run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace foresight::predict::lstm
