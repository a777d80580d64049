#include "foresight/fingerprint/autoencoder.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>

#include "foresight/core/files.h"

namespace foresight::fingerprint {

// A feature constant so far has a running sd near zero, and its first move gives a z of any size:
// clipped, one such feature cannot swamp the error (and the gradient) of the others.
constexpr double kZClip = 8;

struct Autoencoder::Impl {
  torch::nn::Sequential net{nullptr};
  std::unique_ptr<torch::optim::Adam> opt;      // online: a few steps on each new vector
  std::unique_ptr<torch::optim::Adam> offline;  // fitEpoch's

  torch::Tensor tensor(const Eigen::VectorXd& z) const {
    auto t = torch::empty({1, static_cast<long>(z.size())}, torch::kFloat32);
    auto* p = t.data_ptr<float>();
    for (Eigen::Index i = 0; i < z.size(); ++i)
      p[i] = std::isfinite(z[i]) ? static_cast<float>(std::clamp(z[i], -kZClip, kZClip)) : 0.f;
    return t;
  }
};

Autoencoder::Autoencoder(AutoencoderOptions o) : options_(o), impl_(std::make_unique<Impl>()) {
  torch::manual_seed(o.seed);
  const long in = static_cast<long>(o.input_dim), h = static_cast<long>(o.hidden),
             c = static_cast<long>(o.code);
  impl_->net = torch::nn::Sequential(torch::nn::Linear(in, h), torch::nn::Tanh(),
                                     torch::nn::Linear(h, c), torch::nn::Tanh(),
                                     torch::nn::Linear(c, h), torch::nn::Tanh(),
                                     torch::nn::Linear(h, in));
  impl_->opt = std::make_unique<torch::optim::Adam>(impl_->net->parameters(),
                                                    torch::optim::AdamOptions(o.learning_rate));
}

Autoencoder::~Autoencoder() = default;

double Autoencoder::score(const Eigen::VectorXd& z) const {
  torch::NoGradGuard guard;
  auto x = impl_->tensor(z);
  return torch::mse_loss(impl_->net->forward(x), x).item<double>();
}

void Autoencoder::learn(const Eigen::VectorXd& z) {
  auto x = impl_->tensor(z);
  for (int s = 0; s < options_.steps_per_sample; ++s) {
    impl_->opt->zero_grad();
    auto loss = torch::mse_loss(impl_->net->forward(x), x);
    loss.backward();
    impl_->opt->step();
  }
}

double Autoencoder::scoreAndLearn(const Eigen::VectorXd& z) {
  const double s = score(z);
  learn(z);
  return s;
}

Status Autoencoder::save(const std::filesystem::path& file) const {
  std::ostringstream bytes;  // serialised first, so a failure leaves no file at all
  try {
    torch::serialize::OutputArchive archive;
    impl_->net->save(archive);
    archive.save_to(bytes);
  } catch (const std::exception& e) {
    return fail(ErrorCode::kIo, "{}: cannot save autoencoder: {}", file.string(), e.what());
  }
  return writeFileAtomically(file, bytes.view());
}

Status Autoencoder::load(const std::filesystem::path& file) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string());
    impl_->net->load(archive);
  } catch (const std::exception& e) {
    return fail(ErrorCode::kParse, "{}: cannot load autoencoder: {}", file.string(), e.what());
  }
  return ok();
}

double Autoencoder::fitEpoch(const std::vector<float>& z, std::size_t batch, double learning_rate,
                             std::uint64_t seed) {
  const auto d = static_cast<long>(options_.input_dim);
  const auto n = static_cast<long>(z.size()) / d;
  if (n == 0) return NAN;
  if (!impl_->offline)
    impl_->offline = std::make_unique<torch::optim::Adam>(impl_->net->parameters(),
                                                          torch::optim::AdamOptions(learning_rate));
  auto all = torch::from_blob(const_cast<float*>(z.data()), {n, d}, torch::kFloat32)
                 .clamp(-kZClip, kZClip);
  torch::manual_seed(seed);
  auto perm = torch::randperm(n, torch::kLong);
  double sum = 0;
  long batches = 0;
  for (long b = 0; b < n; b += static_cast<long>(batch)) {
    auto x = all.index_select(0, perm.slice(0, b, std::min(n, b + static_cast<long>(batch))));
    impl_->offline->zero_grad();
    auto loss = torch::mse_loss(impl_->net->forward(x), x);
    loss.backward();
    impl_->offline->step();
    sum += loss.item<double>();
    ++batches;
  }
  return sum / static_cast<double>(batches);
}

void Autoencoder::copyWeightsFrom(const Autoencoder& other) {
  torch::NoGradGuard guard;
  auto dst = impl_->net->parameters();
  const auto src = other.impl_->net->parameters();
  for (std::size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
}

double Autoencoder::meanError(const std::vector<float>& z) const {
  torch::NoGradGuard guard;
  const auto d = static_cast<long>(options_.input_dim);
  const auto n = static_cast<long>(z.size()) / d;
  if (n == 0) return NAN;
  auto x = torch::from_blob(const_cast<float*>(z.data()), {n, d}, torch::kFloat32).clamp(-kZClip, kZClip);
  return torch::mse_loss(impl_->net->forward(x), x).item<double>();
}

namespace {

// Records the pipeline's normalised vectors (the autoencoder's inputs) and scores nothing.
class Recorder final : public AnomalyModel {
 public:
  explicit Recorder(std::vector<float>& out) : out_(out) {}
  double scoreAndLearn(const Eigen::VectorXd& z) override {
    for (Eigen::Index i = 0; i < z.size(); ++i)
      out_.push_back(std::isfinite(z[i]) ? static_cast<float>(z[i]) : 0.f);
    return 0;
  }
  Status save(const std::filesystem::path&) const override { return ok(); }
  Status load(const std::filesystem::path&) override { return ok(); }

 private:
  std::vector<float>& out_;
};

std::vector<float> vectorsOf(const std::vector<const trace::Series*>& series, const Config& fp,
                             double train_fraction) {
  std::vector<float> out;
  for (const auto* s : series) {
    // Only the training part: the rest may be someone's evaluation part.
    Pipeline p(fp, resourceMetrics());
    p.setAnomalyModel(std::make_shared<Recorder>(out));
    (void)fingerprintSeries(s->trainPart(train_fraction), p);
  }
  return out;
}

}  // namespace

Result<AutoencoderReport> trainAutoencoder(const std::vector<trace::Series>& series,
                                           const AutoencoderTraining& o) {
  if (series.size() < 2)
    return fail(ErrorCode::kInvalidArgument, "train --autoencoder: {} series, need at least 2",
                series.size());
  std::vector<std::size_t> order(series.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed);
  std::shuffle(order.begin(), order.end(), rng);
  const auto held = std::clamp<std::size_t>(
      static_cast<std::size_t>(std::round(o.holdout * static_cast<double>(series.size()))), 1,
      series.size() - 1);
  std::vector<const trace::Series*> val, tr;
  for (std::size_t i = 0; i < order.size(); ++i) (i < held ? val : tr).push_back(&series[order[i]]);

  AutoencoderReport rep;
  rep.train_series = tr.size();
  rep.val_series = val.size();
  AutoencoderOptions mo = o.model;
  mo.input_dim = Pipeline(o.fingerprint, resourceMetrics()).featureNames().size();
  mo.seed = o.seed;
  const auto train_z = vectorsOf(tr, o.fingerprint, o.train_fraction);
  const auto val_z = vectorsOf(val, o.fingerprint, o.train_fraction);
  rep.train_vectors = train_z.size() / mo.input_dim;
  rep.val_vectors = val_z.size() / mo.input_dim;
  if (rep.train_vectors == 0 || rep.val_vectors == 0)
    return fail(ErrorCode::kInvalidArgument,
                "train --autoencoder: too short for a fingerprint window of {} samples ({} training "
                "and {} held-back fingerprints)", o.fingerprint.window, rep.train_vectors, rep.val_vectors);
  try {
    auto model = std::make_shared<Autoencoder>(mo);
    auto best = std::make_shared<Autoencoder>(mo);  // same seed: the untrained weights
    rep.val_error.push_back(model->meanError(val_z));
    double best_error = rep.val_error.back();
    for (std::size_t epoch = 1; epoch <= o.epochs; ++epoch) {
      model->fitEpoch(train_z, o.batch, o.learning_rate, o.seed + epoch);
      rep.val_error.push_back(model->meanError(val_z));
      if (rep.val_error.back() < best_error) {  // keep this epoch's weights
        best_error = rep.val_error.back();
        rep.best_epoch = epoch;
        best->copyWeightsFrom(*model);
      }
    }
    rep.model = best;
  } catch (const c10::Error& e) {
    return fail(ErrorCode::kInternal, "train --autoencoder: torch error: {}", e.what_without_backtrace());
  }
  return rep;
}

}  // namespace foresight::fingerprint
