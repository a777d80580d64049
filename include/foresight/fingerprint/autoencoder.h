#pragma once
// Autoencoder anomaly model (LibTorch, in its own library foresight_fingerprint_torch so that the
// rest builds without Torch). A small MLP (input -> hidden -> code -> hidden -> input, tanh)
// trained online with Adam on z-scored fingerprint features; the score is the mean squared
// reconstruction error of a vector before it is learnt.
//
// Thread-safety: one thread at a time (Torch modules are not shared between threads here).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "foresight/core/result.h"
#include "foresight/fingerprint/fingerprint.h"
#include "foresight/trace/series.h"

namespace foresight::fingerprint {

struct AutoencoderOptions {
  std::size_t input_dim = 0;
  std::size_t hidden = 32;
  std::size_t code = 4;
  double learning_rate = 1e-2;
  int steps_per_sample = 4;  // Adam steps on each new vector
  std::uint64_t seed = 1;
};

class Autoencoder final : public AnomalyModel {
 public:
  explicit Autoencoder(AutoencoderOptions options);
  ~Autoencoder() override;
  double score(const Eigen::VectorXd& z) const;
  void learn(const Eigen::VectorXd& z);
  double scoreAndLearn(const Eigen::VectorXd& z) override;
  // Offline minibatch training on rows of `z` (row-major, input_dim floats each, as the pipeline
  // normalises them), with its own Adam: what `foresight train --autoencoder` runs. Returns the
  // mean training loss of the epoch.
  double fitEpoch(const std::vector<float>& z, std::size_t batch, double learning_rate,
                  std::uint64_t seed);
  // Takes `other`'s weights (same options); the optimisers' state is not copied.
  void copyWeightsFrom(const Autoencoder& other);
  // Mean reconstruction error over the rows of `z`, without learning.
  double meanError(const std::vector<float>& z) const;
  // Parameters (torch::save format), written to a temp file and renamed.
  Status save(const std::filesystem::path& file) const override;
  Status load(const std::filesystem::path& file) override;
  const AutoencoderOptions& options() const { return options_; }

 private:
  struct Impl;
  AutoencoderOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Offline training (`foresight train --autoencoder`): the fingerprint pipeline runs over each
// series (a fresh pipeline per series, as the agent has per workload) and its normalised
// feature vectors, the autoencoder's inputs, are collected; the autoencoder is then fitted on
// the training series' vectors in shuffled minibatches. Held-back series' vectors give the
// validation figure (mean reconstruction error). The agent and `record` start each new workload
// from such a model (`fingerprint.autoencoder_model`), so its scores mean something from the first
// fingerprint, and go on learning online.
struct AutoencoderTraining {
  Config fingerprint;            // the agent's defaults (window, hop, dim)
  AutoencoderOptions model;      // input_dim is set from the pipeline
  std::size_t epochs = 20;
  std::size_t batch = 256;
  double learning_rate = 1e-3;
  double holdout = 0.2;          // share of series held back for validation
  double train_fraction = 1.0;   // only this first share of each series is read
  std::uint64_t seed = 1;
};
struct AutoencoderReport {
  std::shared_ptr<Autoencoder> model;
  std::vector<double> val_error;  // mean held-back reconstruction error, untrained then per epoch
  std::size_t best_epoch = 0;     // the epoch kept (0: untrained was best)
  std::size_t train_series = 0, val_series = 0, train_vectors = 0, val_vectors = 0;
};
Result<AutoencoderReport> trainAutoencoder(const std::vector<trace::Series>& series,
                                           const AutoencoderTraining& options);

}  // namespace foresight::fingerprint
