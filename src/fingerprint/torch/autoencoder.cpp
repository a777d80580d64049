#include "foresight/fingerprint/autoencoder.h"

#include <torch/torch.h>

namespace foresight::fingerprint {

struct Autoencoder::Impl {
  torch::nn::Sequential net{nullptr};
  std::unique_ptr<torch::optim::Adam> opt;

  torch::Tensor tensor(const Eigen::VectorXd& z) const {
    auto t = torch::empty({1, static_cast<long>(z.size())}, torch::kFloat32);
    auto* p = t.data_ptr<float>();
    for (Eigen::Index i = 0; i < z.size(); ++i) p[i] = std::isfinite(z[i]) ? static_cast<float>(z[i]) : 0.f;
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
  std::filesystem::path tmp = file;
  tmp += ".tmp";
  try {
    torch::serialize::OutputArchive archive;
    impl_->net->save(archive);
    archive.save_to(tmp.string());
  } catch (const std::exception& e) {
    return fail(ErrorCode::kIo, "{}: cannot save autoencoder: {}", tmp.string(), e.what());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, file, ec);
  if (ec) return fail(ErrorCode::kIo, "{}: cannot rename: {}", file.string(), ec.message());
  return ok();
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

}  // namespace foresight::fingerprint
