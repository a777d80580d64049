#pragma once
// Low-rank model of log runtime across workloads and environments, after Selecta (Klimovic et al.,
// ATC 2018) and PARIS:
//   log runtime[w, e] = a_w + b_e + u_w · v_e + noise,
// with the environment's parameters (b_e, v_e) shrunk towards a linear function of its features,
// so an environment with little or no history is predicted from its hardware. A new workload's
// (a, u) gets a Gaussian prior — from its fingerprint by ridge regression when there is one, else
// the spread of the past workloads — that each measured probe updates (Bayesian linear
// regression), which gives a predictive mean and variance for every environment.
//
// Rank and ridge strength are chosen inside the training data by leave-one-group-out: past
// workloads are hidden in turn, predicted from a few probes, and scored on the rest.
//
// Thread-safety: const methods are safe to call concurrently.

#include <optional>
#include <utility>
#include <vector>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

namespace foresight::match {

struct FactorSettings {
  int rank = 1;
  double lambda = 1;  // ridge strength, in units of one observation
};

class FactorModel {
 public:
  // y: log runtime [workload × environment], NaN where unknown (no run or failed);
  // env_x: environment features [environment × p], already standardised;
  // fingerprints: [workload × q] raw values, NaN = unknown (q may be 0); groups: per workload,
  // held out together when the fingerprint regression is checked (empty: each alone).
  static FactorModel fit(const Eigen::MatrixXd& y, const Eigen::MatrixXd& env_x,
                         const Eigen::MatrixXd& fingerprints, FactorSettings settings,
                         const std::vector<int>& groups = {});

  // Picks the settings with the lowest error, predicting each group of workloads from `probes`
  // probe outcomes after fitting the others, then fits on all with them. The predictive variance
  // is calibrated on the same held-out predictions. With one group: the first candidate.
  static FactorModel select(const Eigen::MatrixXd& y, const Eigen::MatrixXd& env_x,
                            const Eigen::MatrixXd& fingerprints, const std::vector<int>& groups,
                            std::size_t probes, const std::vector<FactorSettings>& candidates);
  static std::vector<FactorSettings> defaultCandidates();

  // Belief about a workload's (a, u).
  struct Belief {
    Eigen::VectorXd mean;
    Eigen::MatrixXd cov;
  };
  Belief prior(const Eigen::VectorXd& fingerprint) const;  // size q, NaN = unknown
  // Measured log runtimes (environment, value) of completed runs.
  Belief update(const Belief& belief, const std::vector<std::pair<std::size_t, double>>& obs) const;
  double mean(const Belief& belief, std::size_t env) const;
  double variance(const Belief& belief, std::size_t env) const;  // predictive, noise included

  // Greedy Bayesian D-optimal design: each next environment is the one whose outcome shrinks the
  // posterior volume of u (factors_only) or of (a, u) the most. Outcomes do not enter a linear-
  // Gaussian posterior's covariance, so the design is fixed before any probe runs.
  std::vector<std::size_t> design(std::size_t k, bool factors_only,
                                  const std::vector<std::size_t>& candidates = {}) const;

  // Contributions to environment e's predicted log runtime against the average environment: one
  // per feature (through the feature-tied part of b and v), then the environment's own part.
  std::vector<double> effects(const Belief& belief, std::size_t env) const;

  int rank() const { return settings_.rank; }
  const FactorSettings& settings() const { return settings_; }
  double noise() const { return noise_; }
  double calibration() const { return calibration_; }

  nlohmann::json toJson() const;
  static std::optional<FactorModel> fromJson(const nlohmann::json& j);

 private:
  Eigen::VectorXd phi(std::size_t env) const;  // (1, v_e)

  FactorSettings settings_;
  Eigen::VectorXd b_;
  Eigen::MatrixXd v_;         // [environment × rank]
  Eigen::MatrixXd env_x_;     // [environment × p], standardised
  Eigen::MatrixXd env_coef_;  // [(p + 1) × (rank + 1)]: prior mean of (b_e, v_e), intercept first
  Eigen::VectorXd fp_mean_, fp_sd_;
  Eigen::VectorXd fp_lo_,
      fp_hi_;  // standardised range seen in training: a linear map must not extrapolate
  Eigen::MatrixXd fp_coef_;    // [(q + 1) × (rank + 1)]: prior mean of (a, u) from a fingerprint
  Eigen::MatrixXd prior_cov_;  // [(rank + 1) × (rank + 1)]
  std::vector<int> observed_;  // per environment: how many training runs it has
  double noise_ = 1;           // residual variance of log runtime
  double calibration_ = 1;     // factor on the predictive variance, from held-out predictions
};

}  // namespace foresight::match
