#pragma once
// Fingerprint pipeline: sliding windows over a few metric series -> per-metric statistics and a
// trend/seasonal/residual decomposition -> z-scored feature vector -> incremental PCA to a compact
// vector; the anomaly score is the PCA reconstruction error (squared prediction error over the
// discarded components, scaled so that ~1 is typical). The same Pipeline runs on live samples and
// on trace::Series, so both give comparable fingerprints.
//
// Thread-safety: a Pipeline or IncrementalPca is used by one thread at a time.

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "foresight/core/result.h"
#include "foresight/trace/series.h"

namespace foresight::fingerprint {

struct Fingerprint {
  std::int64_t time_ms = 0;  // Unix milliseconds of the last sample in the window
  std::vector<double> vector;
  std::vector<std::pair<std::string, double>> features;  // named, before normalisation
  double anomaly = 0;
};
nlohmann::json toJson(const Fingerprint& f);

// Statistics of one window of one metric. NaN samples are ignored; all-NaN gives NaN features.
struct WindowStats {
  double mean, stddev, p95, max, slope, burstiness, acf1;
  double period, trend_strength, seasonal_strength, residual_std;
};
inline constexpr const char* kStatNames[] = {
    "mean", "std", "p95", "max", "slope", "burstiness", "acf1",
    "period", "trend_strength", "seasonal_strength", "residual_std"};
inline constexpr std::size_t kStatCount = std::size(kStatNames);
WindowStats windowStats(std::span<const double> x, std::size_t max_period);

// The cheap, scale-free part of windowStats (no decomposition): what the LSTM forecaster takes as
// its fingerprint block, per step, for every workload it serves (docs/model.md, "Fingerprint").
struct WindowShape {
  double mean, stddev, burstiness, acf1;
};
WindowShape windowShape(std::span<const double> x);

// Trend (centred moving average over the period, or a least-squares line without one), seasonal
// (mean detrended value per phase) and residual.
struct Decomposition {
  std::vector<double> trend, seasonal, residual;
  std::size_t period = 0;  // 0: no period found
};
// Period: the lag in [2, max_period] with the highest autocorrelation that is a local maximum and
// above 0.3; 0 when none is.
std::size_t detectPeriod(std::span<const double> x, std::size_t max_period);
Decomposition decompose(std::span<const double> x, std::size_t max_period);

// PCA on a running mean and covariance (Welford updates, O(d^2) per sample), the basis recomputed
// from the covariance by an eigensolver. Exact for what it has seen, unlike approximations such
// as CCIPCA, and cheap at the d (tens) used here. A missing (non-finite) feature is left out:
// each feature's mean and spread, and each pair's covariance, are over the updates where they
// were present.
class IncrementalPca {
 public:
  IncrementalPca() = default;
  IncrementalPca(std::size_t input_dim, std::size_t output_dim);
  void update(const Eigen::VectorXd& x);
  // z-scored projection onto the top components; zeros before two updates.
  Eigen::VectorXd project(const Eigen::VectorXd& x) const;
  // Squared error of reconstructing z(x) from its projection, over the mean discarded variance.
  double reconstructionError(const Eigen::VectorXd& x) const;
  std::size_t count() const { return count_; }  // updates, whatever was missing in them
  // x z-scored with the running mean and standard deviation (0 for missing or constant features).
  Eigen::VectorXd normalise(const Eigen::VectorXd& x) const { return zscore(x); }
  std::size_t inputDim() const { return static_cast<std::size_t>(m2_.rows()); }
  std::size_t outputDim() const { return out_; }
  const Eigen::MatrixXd& basis() const { return basis_; }
  nlohmann::json save() const;
  static Result<IncrementalPca> load(const nlohmann::json& j);

 private:
  void refresh();
  Eigen::VectorXd zscore(const Eigen::VectorXd& x) const;
  double spread(Eigen::Index feature) const;
  std::size_t out_ = 0, count_ = 0;
  Eigen::VectorXd eigenvalues_;
  // Per pair (i, j): n_ the updates with both present, mean_ the mean of i over them (the
  // diagonal: each feature's own), m2_ the co-moment.
  Eigen::MatrixXd n_, mean_, m2_;
  Eigen::MatrixXd basis_;  // input_dim x output_dim, columns by falling variance
};

// A learnt anomaly scorer over the z-scored feature vector (the LibTorch autoencoder in
// fingerprint/autoencoder.h); without one, the pipeline scores by PCA reconstruction error.
// Thread-safety: used by its pipeline's thread.
class AnomalyModel {
 public:
  virtual ~AnomalyModel() = default;
  // Score z (higher = more unusual), then learn from it.
  virtual double scoreAndLearn(const Eigen::VectorXd& z) = 0;
  // What it has learnt, for the agent's state_dir (written atomically), and back.
  virtual Status save(const std::filesystem::path& file) const = 0;
  virtual Status load(const std::filesystem::path& file) = 0;
};

struct Config {
  std::size_t window = 60;  // samples per window
  std::size_t hop = 10;     // samples between fingerprints
  std::size_t dim = 16;     // PCA output dimension
  std::size_t max_period = 0;  // 0: window / 2
};
// The settings' bounds, one place for the agent's config and the CLI's options. A window needs 4
// samples for its statistics; the upper bounds catch "-1" read into an unsigned.
inline constexpr std::size_t kMinWindow = 4, kMaxWindow = std::size_t{1} << 20;
inline constexpr std::size_t kMaxHop = std::size_t{1} << 20, kMaxDim = 4096;
Status checkConfig(const Config& c);  // fails naming the setting and its bounds

class Pipeline {
 public:
  Pipeline(Config config, std::vector<std::string> metrics);
  // One observation at time_ms (Unix milliseconds; one value per metric, NaN = missing); a
  // fingerprint every `hop` samples once a window is full.
  std::optional<Fingerprint> push(std::int64_t time_ms, std::span<const double> values);
  const std::vector<std::string>& metrics() const { return metrics_; }
  const Config& config() const { return config_; }
  const IncrementalPca& pca() const { return pca_; }
  std::vector<std::string> featureNames() const;
  // Replaces the PCA reconstruction error as the anomaly score.
  void setAnomalyModel(std::shared_ptr<AnomalyModel> model) { model_ = std::move(model); }
  AnomalyModel* anomalyModel() const { return model_.get(); }

  // State (config, metric names, PCA with its normalisation) as JSON, written atomically.
  Status saveState(const std::filesystem::path& file) const;
  static Result<Pipeline> loadState(const std::filesystem::path& file);

 private:
  Config config_;
  std::vector<std::string> metrics_;
  std::vector<std::deque<double>> buffers_;
  std::size_t since_emit_ = 0;
  IncrementalPca pca_;
  std::shared_ptr<AnomalyModel> model_;
};

// The resource names of trace::Series, as metric names for Pipeline.
std::vector<std::string> resourceMetrics();
// Runs the pipeline over a trace series (its four resources; absent ones are NaN).
std::vector<Fingerprint> fingerprintSeries(const trace::Series& series, Pipeline& pipeline);

}  // namespace foresight::fingerprint
