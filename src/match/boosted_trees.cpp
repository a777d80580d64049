#include "boosted_trees.h"

#include <xgboost/c_api.h>

namespace foresight::match {
namespace {

tl::unexpected<Error> xgbError(const char* what) {
  return fail(ErrorCode::kInternal, "XGBoost {}: {}", what, XGBGetLastError());
}

// Owns a DMatrix for the duration of one call.
struct Matrix {
  DMatrixHandle h = nullptr;
  ~Matrix() { if (h) XGDMatrixFree(h); }
};

int makeMatrix(const DenseMatrix& x, Matrix& m) {
  return XGDMatrixCreateFromMat(x.values.data(), x.rows, x.cols, std::numeric_limits<float>::quiet_NaN(),
                                &m.h);
}

}  // namespace

BoostedTrees::BoostedTrees(void* booster) : booster_(booster) {}
BoostedTrees::BoostedTrees(BoostedTrees&& o) noexcept
    : booster_(std::exchange(o.booster_, nullptr)), mutex_(std::move(o.mutex_)) {}
BoostedTrees& BoostedTrees::operator=(BoostedTrees&& o) noexcept {
  if (this != &o) {
    if (booster_) XGBoosterFree(booster_);
    booster_ = std::exchange(o.booster_, nullptr);
    mutex_ = std::move(o.mutex_);
  }
  return *this;
}
BoostedTrees::~BoostedTrees() {
  if (booster_) XGBoosterFree(booster_);
}

Result<BoostedTrees> BoostedTrees::train(const DenseMatrix& x, const std::vector<float>& y,
                                         const std::map<std::string, std::string>& params,
                                         int rounds) {
  if (x.rows == 0 || y.size() != x.rows)
    return fail(ErrorCode::kInvalidArgument, "XGBoost training needs rows and one label each");
  Matrix m;
  if (makeMatrix(x, m) != 0) return xgbError("DMatrix");
  if (XGDMatrixSetFloatInfo(m.h, "label", y.data(), y.size()) != 0) return xgbError("labels");
  BoosterHandle b = nullptr;
  if (XGBoosterCreate(&m.h, 1, &b) != 0) return xgbError("create");
  BoostedTrees trees(b);
  for (const auto& [k, v] : params)
    if (XGBoosterSetParam(b, k.c_str(), v.c_str()) != 0) return xgbError(k.c_str());
  for (int i = 0; i < rounds; ++i)
    if (XGBoosterUpdateOneIter(b, i, m.h) != 0) return xgbError("training");
  return trees;
}

Result<BoostedTrees> BoostedTrees::load(const std::string& json) {
  BoosterHandle b = nullptr;
  if (XGBoosterCreate(nullptr, 0, &b) != 0) return xgbError("create");
  BoostedTrees trees(b);
  if (XGBoosterLoadModelFromBuffer(b, json.data(), json.size()) != 0) return xgbError("load");
  return trees;
}

Result<std::vector<float>> BoostedTrees::predict(const DenseMatrix& x, Output output) const {
  std::lock_guard lock(*mutex_);
  Matrix m;
  if (makeMatrix(x, m) != 0) return xgbError("DMatrix");
  bst_ulong len = 0;
  const float* out = nullptr;
  // option_mask: 1 = output margin, 4 = feature contributions (SHAP values).
  const int mask = output == Output::kMargin ? 1 : output == Output::kContributions ? 4 : 0;
  if (XGBoosterPredict(booster_, m.h, mask, 0, 0, &len, &out) != 0)
    return xgbError("predict");
  return std::vector<float>(out, out + len);
}

Result<std::string> BoostedTrees::save() const {
  std::lock_guard lock(*mutex_);
  bst_ulong len = 0;
  const char* out = nullptr;
  if (XGBoosterSaveModelToBuffer(booster_, R"({"format": "json"})", &len, &out) != 0)
    return xgbError("save");
  return std::string(out, len);
}

}  // namespace foresight::match
