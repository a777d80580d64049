#pragma once
// The global LSTM forecaster's model file and its Torch-free parts: input features, a plain C++
// single-workload step (what the backtest policy runs on each thread), conformal offsets.
//
// Outputs are quantiles of z = log1p(u / scale), where scale is a causal, burst-robust running
// level of the workload; quantiles survive monotone maps, so u-quantiles are scale * expm1(z-q).

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "foresight/core/resource.h"
#include "foresight/core/result.h"
#include "foresight/predict/decision.h"
#include "foresight/predict/forecast.h"
#include "foresight/predict/policy.h"

namespace foresight::predict::lstm {

// The newest model file version this build reads. Version 2 adds the fingerprint block's
// `fingerprint_window`, version 3 the scale's `scale_restart`. A file is written with the lowest
// version that holds what it uses (formatVersionFor), so a model without them is still version 1,
// which older builds read, while they refuse a newer file instead of computing its inputs wrongly.
inline constexpr int kFormatVersion = 3;
inline constexpr std::size_t kFingerprintDims = 8;
inline constexpr std::size_t kFingerprintHop = 12;

// One named input column. Optional blocks (metadata, fingerprint) are zero-filled with their
// `*_present` flag at 0 when a workload does not have them, so a model trained with a block can
// still serve workloads without it, and a block can be appended (new zero-initialised columns)
// without retraining the rest by hand.
struct FeatureSpec {
  std::string name;
  std::string block;  // usage, level, time, window, day, metadata, fingerprint
  bool optional = false;
};

// Every feature this build can compute, in its canonical order.
const std::vector<FeatureSpec>& knownFeatures();

struct Normaliser {  // (x - mean) / std for the level and metadata features
  std::string name;
  double mean = 0, std = 1;
};

struct LstmModel {
  int format_version = kFormatVersion;
  std::size_t hidden = 48;
  std::size_t horizon = 12;
  std::vector<double> levels;            // quantile heads, ascending
  // Residual heads: every quantile of resource r is offset by the current input u_<r> (the last
  // observed z), so an untrained head already forecasts persistence and training learns changes
  // and spread. anchors() gives the u_<r> columns (SIZE_MAX: none).
  bool residual = true;
  std::array<std::size_t, kResourceCount> anchors() const;
  // The fingerprint block: fingerprint::windowShape of each resource over the last
  // fingerprint_window steps (fp_<2r> burstiness, fp_<2r+1> lag-1 autocorrelation), refreshed
  // every kFingerprintHop steps once the window is full. 0: the block is fed zeros (files written
  // before it, and models trained without it).
  std::size_t fingerprint_window = 0;
  // RunningScale's restart_after: the scale restarts after this many steps (of step_seconds) in a
  // row above its clip; fed samples of another period, after as long a time (scaleRestartSamples).
  // 0: never (files written before 2026-12-05).
  std::uint32_t scale_restart = 0;
  // The step of the trace it was trained on: its dynamics, horizon and lead are in such steps.
  // 0: not recorded (files written before 2026-12-04).
  std::int64_t step_seconds = 0;
  std::vector<FeatureSpec> schema;       // the model's input columns, in order
  std::vector<Normaliser> normalisers;
  // Split conformal offsets in z space: conformal[(r * horizon + h-1) * cal_levels + l] is added
  // to the interpolated quantile at cal_levels[l].
  std::vector<double> cal_levels;
  std::vector<double> conformal;
  // Weights, row-major, PyTorch's LSTM gate order (i, f, g, o).
  std::vector<float> w_ih;   // [4H x F]
  std::vector<float> w_hh;   // [4H x H]
  std::vector<float> b;      // [4H]  (b_ih + b_hh)
  std::vector<float> head_w; // [R*horizon*Q x H]
  std::vector<float> head_b; // [R*horizon*Q]
  std::string provenance;    // JSON text: command, data, time taken, losses

  std::size_t inputs() const { return schema.size(); }
  bool hasBlock(std::string_view block) const {
    return std::any_of(schema.begin(), schema.end(), [&](const FeatureSpec& f) { return f.block == block; });
  }
  std::size_t outputs() const { return kResourceCount * horizon * levels.size(); }
  std::size_t outIndex(std::size_t r, std::size_t h1, std::size_t q) const {
    return (r * horizon + (h1 - 1)) * levels.size() + q;
  }
  double conformalOffset(std::size_t r, std::size_t h1, double level) const;
  // Fresh random weights (deterministic for a seed) and every known feature as the schema
  // (without the window block unless `window_features`, without the day block unless
  // `day_features`; a day-block model needs step_seconds set before use).
  static LstmModel initial(std::size_t hidden, std::size_t horizon, std::vector<double> levels,
                           std::uint64_t seed, bool window_features = true, bool day_features = false);
  Status validate(const std::string& what) const;
};

// The lowest file version that holds `m`: 3 with a scale restart, 2 with a fingerprint window, 1.
int formatVersionFor(const LstmModel& m);

// The day block needs a step that divides a day into at least `horizon` steps.
inline bool dayBlockFits(std::int64_t step_seconds, std::size_t horizon) {
  return step_seconds > 0 && 86400 % step_seconds == 0 && static_cast<std::size_t>(86400 / step_seconds) >= horizon;
}

inline const std::vector<double> kDefaultLevels = {0.025, 0.05, 0.1, 0.25, 0.5, 0.75,
                                                   0.8,   0.9,  0.95, 0.975, 0.99, 0.995};
inline const std::vector<double> kDefaultCalLevels = {0.025, 0.05, 0.1,  0.25, 0.5,  0.6,
                                                      0.7,   0.75, 0.8,  0.85, 0.9,  0.95,
                                                      0.97,  0.975, 0.98, 0.99, 0.995, 0.999};

// Written whole or not at all (writeFileAtomically). The file carries the schema, normalisers,
// version and a CRC-32 of everything before the trailer.
Status saveModel(const LstmModel& m, const std::filesystem::path& file);
// Refuses (naming the file) a missing, truncated or corrupt file, a newer/older format, and a
// schema this build cannot compute.
Result<LstmModel> loadModel(const std::filesystem::path& file);

// Several models whose forecasts are averaged: each member runs its own stream and online
// calibration, and the allocations, band ends and quantiles given are the means of the members'.
// The shipped forecaster is two members that differ only in their training seed: the mean was
// worth its second step on held-back workloads (docs/results.md, "Two models averaged").
using Ensemble = std::vector<std::shared_ptr<const LstmModel>>;
// Loads each file as loadModel does (naming the one refused). Refused when none is given, or when
// the members' horizons or recorded steps differ: their forecasts would not be for the same times.
Result<Ensemble> loadEnsemble(std::span<const std::filesystem::path> files);
// A list of model files as an option gives it: comma-separated, empty entries refused.
Result<std::vector<std::filesystem::path>> modelList(std::string_view text);

// A warning when a trace's step differs from the one `m` was trained on (empty when they agree or
// the model does not record it): the model's dynamics, horizon and lead are in its own steps, so
// on another step its forecasts are for a time scale it never saw; only the online calibration
// adapts. Not an error: `foresight run` feeds it 1-second samples on purpose (docs/closed-loop.md).
std::string stepMismatch(const LstmModel& m, std::int64_t trace_step_seconds);

// A warning when a backtest scores each series from `warmup_fraction` on while `m` (read from
// `file`) was trained on a larger first share of each series of its training trace: on that
// trace, steps it learnt from would be scored (empty otherwise, and when warmup_fraction is 0 or
// the provenance does not record the share). Not an error: on another trace nothing overlaps.
std::string scoresTrainedSteps(const LstmModel& m, const std::string& file, double warmup_fraction);

// A warning when `m` forecasts one of `used` that no series it was trained on had (its provenance's
// `train_series_with`; empty when every one had some, or the model does not record it): that
// resource's heads never had a target, so its forecasts are persistence plus an untrained spread.
// Not an error: the other resources' forecasts stand.
std::string untrainedResources(const LstmModel& m, const std::string& file, std::span<const Resource> used);

// The model's scale_restart in samples of `sample_seconds`: as long a time as scale_restart steps
// of the model's own step (six hours for the shipped model), so that `foresight run`'s 1-second
// samples restart a scale after a level shift of hours, not after a burst of a minute. At least 1
// when the model restarts at all; scale_restart itself when either period is unknown (0).
std::uint32_t scaleRestartSamples(const LstmModel& m, double sample_seconds);

// Builds the model's input vector for one workload, one step at a time (causal). `sample_seconds`:
// the period of the observations it is fed (0: the model's own step).
class FeatureBuilder {
 public:
  FeatureBuilder(const LstmModel& model, const std::map<std::string, double>& metadata,
                 double sample_seconds = 0);
  // Updates the scales with the observation and writes model.inputs() values into `x`.
  void step(const Observation& o, std::span<float> x);
  double scale(Resource r) const { return scale_[index(r)].value(); }
  std::uint64_t scaleRestarts(Resource r) const { return scale_[index(r)].restarts(); }
  // A usage in the model's units, log1p(u / scale) with the current scale; clipped so a 1000x
  // burst cannot saturate every gate.
  double z(Resource r, double u) const { return std::min(std::log1p(std::max(u, 0.0) / scale(r)), 6.0); }

 private:
  std::vector<int> source_;  // model column -> canonical feature index, -1 = zero
  std::vector<double> mean_, inv_std_;  // per canonical feature (identity where none)
  std::array<RunningScale, kResourceCount> scale_;
  // The last kWindow raw usages per resource (NaN: missing), a ring at step % kWindow.
  static constexpr std::size_t kWindow = 12;
  std::array<std::array<double, kWindow>, kResourceCount> window_;
  std::size_t steps_ = 0;
  // The last fingerprint_window raw usages per resource, a ring at step % fingerprint_window.
  std::size_t fp_window_ = 0;
  std::array<std::vector<double>, kResourceCount> fp_ring_;
  void refreshFingerprint(std::size_t oldest);  // oldest: the ring slot of the window's first step
  // The day block: the last day_lag_ (one day of the model's steps) raw usages per resource, a
  // ring at step % day_lag_; 0: the model has no day block. Floats: a day of 5-minute steps is
  // 4.6 KB per workload.
  std::size_t day_lag_ = 0, day_horizon_ = 0;
  std::array<std::vector<float>, kResourceCount> day_ring_;
  std::vector<double> canonical_;
  std::vector<double> fixed_;  // metadata and fingerprint values (canonical), NaN = not set
};

// Plain C++ LSTM step for one workload (no Torch): what a backtest thread runs per series.
class CpuStepper {
 public:
  explicit CpuStepper(const LstmModel& model);
  void step(std::span<const float> x);
  // Raw head outputs (z-space quantiles, non-crossing) for resource r, horizon h1 (1-based).
  void quantiles(std::size_t r, std::size_t h1, std::span<double> out) const;
  std::span<const float> hidden() const { return h_; }

 private:
  const LstmModel& m_;
  std::vector<float> h_, c_, gates_;
  std::array<std::size_t, kResourceCount> anchor_cols_;
  std::array<float, kResourceCount> anchor_{};
};

// Interpolates z-space head quantiles at `level` (clamped to the outermost heads).
double interpolate(const std::vector<double>& levels, std::span<const double> q, double level);


// Registers policies `lstm` and `auto` (option model=FILE[,FILE...]; default `default_models`,
// the shipped ensemble).
void registerLstm(PolicyRegistry& registry, std::vector<std::filesystem::path> default_models);

// Policy `lstm` with its default options on models already in memory (what model=FILES loads).
std::unique_ptr<PolicyFactory> makeLstmPolicy(Ensemble models);

// The first `train_fraction` of each series (the part `train` read), as a trace; parts under 4
// steps are left out.
trace::Trace trainingParts(const std::vector<const trace::Series*>& series, double train_fraction);

// Model selection aligned with the backtest objective, never on the evaluation part: the `lstm`
// policy (default knob sweep) replayed on the first `train_fraction` of held-back series through
// the sim backtest, warm-up = first half of that part, pooled slack at equal violation rate.
inline const std::vector<double> kValidationRiskLevels = {0.02, 0.01};
struct ValidationBacktest {
  std::size_t series = 0;
  std::uint64_t scored_steps = 0;
  // iso-risk slack per resource present and level of kValidationRiskLevels; NaN where the
  // frontier does not reach that violation rate.
  std::map<Resource, std::map<double, double>> slack;
  double seconds = 0;
};
Result<ValidationBacktest> validationBacktest(const LstmModel& model,
                                              const std::vector<const trace::Series*>& series,
                                              double train_fraction, unsigned threads);
// The workload-level split of `train`: series whose first `train_fraction` is longer than
// horizon + 2 steps, shuffled by `split_seed`; the first round(holdout × n) (at least 2) are held
// back, half for validation, half for split-conformal calibration; the rest train. Indices into
// `series`. Held-back workloads never give a gradient.
struct WorkloadSplit {
  std::vector<std::size_t> train, validation, calibration;
};
Result<WorkloadSplit> splitWorkloads(const std::vector<trace::Series>& series, double train_fraction,
                                     std::size_t horizon, double holdout, std::uint64_t split_seed);
// What a model's provenance records of the trace `train` read and how it split its workloads.
struct TrainedOn {
  std::string trace, format;     // as given to train; empty when not recorded
  double train_fraction = 0;     // the first share of each series it read
  std::uint64_t split_seed = 0;  // `split_seed`, else `seed` (files from before the split seed)
  double holdout = 0.2;          // files from before it was recorded were split at the default 0.2
  std::optional<std::size_t> series_read, validation_series;  // the trace's series; those held back for validation
  // Per resource, how many training series had it (`train_series_with`); absent in older files.
  std::optional<std::array<std::size_t, kResourceCount>> series_with;
};
// Refused when the provenance is not JSON or lacks seed or train_fraction.
Result<TrainedOn> trainedOn(const LstmModel& model);
// The validation workloads a model file was selected on (indices into `series`) and the share of
// each that training read, recomputed from its provenance on the trace it was trained on, read as
// `train` read it (`format`: bitbrains or csv; the model's step). Refused when the provenance lacks
// the split, or the format, step or series counts differ from what it records.
struct HeldBack {
  std::vector<std::size_t> validation;
  double train_fraction = 0;
};
Result<HeldBack> validationWorkloads(const LstmModel& model, const std::vector<trace::Series>& series,
                                     std::string_view format);
// The selection figure, lower is better: the mean of cpu and memory slack at 1% violations (the
// predictor's targets), over those present. NaN when neither reaches 1%.
double selectionScore(const ValidationBacktest& v);

}  // namespace foresight::predict::lstm
