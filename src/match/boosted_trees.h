#pragma once
// RAII wrapper over XGBoost's C API: train on a dense float matrix (NaN = missing), predict,
// per-feature contributions (SHAP), save and load as XGBoost's JSON model.
//
// Thread-safety: predict() takes a lock, XGBoost boosters are not documented as safe to share.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "foresight/core/result.h"

namespace foresight::match {

struct DenseMatrix {
  std::size_t rows = 0, cols = 0;
  std::vector<float> values;  // row-major
};

class BoostedTrees {
 public:
  static Result<BoostedTrees> train(const DenseMatrix& x, const std::vector<float>& y,
                                    const std::map<std::string, std::string>& params, int rounds);
  static Result<BoostedTrees> load(const std::string& json);

  BoostedTrees(BoostedTrees&&) noexcept;
  BoostedTrees& operator=(BoostedTrees&&) noexcept;
  ~BoostedTrees();

  enum class Output { kValue, kMargin, kContributions };
  // One value per row (kMargin: before the link function, e.g. the logit); with contributions,
  // (cols + 1) per row, the last being the bias.
  Result<std::vector<float>> predict(const DenseMatrix& x, Output output = Output::kValue) const;
  Result<std::string> save() const;

 private:
  explicit BoostedTrees(void* booster);
  void* booster_ = nullptr;
  std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
};

}  // namespace foresight::match
