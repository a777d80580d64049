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

#include "foresight/core/result.h"
#include "foresight/fingerprint/fingerprint.h"

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
  // Parameters (torch::save format), written to a temp file and renamed.
  Status save(const std::filesystem::path& file) const override;
  Status load(const std::filesystem::path& file) override;
  const AutoencoderOptions& options() const { return options_; }

 private:
  struct Impl;
  AutoencoderOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace foresight::fingerprint
