// The LibTorch autoencoder learns a low-dimensional structure online and scores vectors off it
// as anomalous; its parameters round-trip through a file; trained offline on trace series it
// reconstructs held-back series better than untrained.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "foresight/fingerprint/autoencoder.h"

using namespace foresight::fingerprint;

namespace {
// 8-D points on a 1-D curve: x_i = sin(t * (i + 1) / 4).
Eigen::VectorXd onCurve(double t) {
  Eigen::VectorXd x(8);
  for (int i = 0; i < 8; ++i) x[i] = std::sin(t * (i + 1) / 4.0);
  return x;
}
}  // namespace

TEST(Autoencoder, LearnsTheCurveAndFlagsPointsOffIt) {
  Autoencoder ae({.input_dim = 8, .hidden = 32, .code = 2, .learning_rate = 1e-2, .steps_per_sample = 2});
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-1.5, 1.5);
  const Eigen::VectorXd probe = onCurve(0.7);
  const double before = ae.score(probe);
  for (int i = 0; i < 3000; ++i) ae.learn(onCurve(u(rng)));
  const double on = ae.score(probe);
  Eigen::VectorXd off = probe;
  off[0] += 2.0;
  off[5] -= 2.0;
  EXPECT_LT(on, before / 5);    // it learnt something
  EXPECT_GT(ae.score(off), 20 * on);

  const auto file = std::filesystem::path(testing::TempDir()) / "ae.pt";
  ASSERT_TRUE(ae.save(file));
  Autoencoder other({.input_dim = 8, .hidden = 32, .code = 2, .seed = 99});
  EXPECT_NE(other.score(probe), ae.score(probe));
  ASSERT_TRUE(other.load(file));
  EXPECT_DOUBLE_EQ(other.score(probe), ae.score(probe));
  EXPECT_FALSE(other.load(file.string() + ".missing"));
  std::filesystem::remove(file);
}

TEST(Autoencoder, DrivesThePipelineAnomalyScore) {
  Pipeline p({.window = 20, .hop = 5, .dim = 4}, {"cpu"});
  auto ae = std::make_shared<Autoencoder>(AutoencoderOptions{.input_dim = kStatCount, .hidden = 16, .code = 3});
  p.setAnomalyModel(ae);
  std::vector<double> normal, burst;
  for (std::size_t i = 0; i < 600; ++i) {
    double v = 1 + 0.5 * std::sin(2 * 3.14159265 * i / 10.0);
    if (i >= 580) v = 9;
    const double row[1] = {v};
    if (auto f = p.push(static_cast<std::int64_t>(i), row)) {
      if (i >= 300 && i < 580) normal.push_back(f->anomaly);
      if (i == 584) burst.push_back(f->anomaly);
    }
  }
  ASSERT_EQ(burst.size(), 1u);
  EXPECT_GT(burst[0], 10 * *std::max_element(normal.begin(), normal.end()));
}

namespace {
// Daily-periodic usage with per-series level and phase: what the pipeline sees on a trace.
std::vector<foresight::trace::Series> periodicTraces(int n) {
  std::vector<foresight::trace::Series> v;
  std::mt19937 rng(3);
  std::normal_distribution<double> g;
  for (int s = 0; s < n; ++s) {
    foresight::trace::Series x;
    x.id = std::string("s").append(std::to_string(s));
    x.start = 1'600'000'000;
    x.step_seconds = 300;
    for (int i = 0; i < 288 * 2; ++i) {
      const double day = std::sin(2 * M_PI * i / 48.0 + s);
      x.usage[0].push_back((1 + s % 3) * (1 + 0.5 * day) + 0.05 * g(rng));
      x.usage[1].push_back(1e9 * (1 + 0.1 * s) * (1 + 0.05 * day));
    }
    v.push_back(std::move(x));
  }
  return v;
}
}  // namespace

TEST(AutoencoderTraining, FitsTraceFingerprintsAndKeepsItsBestEpoch) {
  const auto series = periodicTraces(10);
  AutoencoderTraining o;
  o.epochs = 8;
  o.batch = 32;
  o.holdout = 0.3;
  auto rep = trainAutoencoder(series, o);
  ASSERT_TRUE(rep) << rep.error().message;
  EXPECT_EQ(rep->train_series, 7u);
  EXPECT_EQ(rep->val_series, 3u);
  ASSERT_EQ(rep->val_error.size(), 9u);  // untrained + 8 epochs
  ASSERT_GT(rep->best_epoch, 0u);
  const double best = rep->val_error[rep->best_epoch];
  EXPECT_LT(best, 0.8 * rep->val_error[0]);
  for (double e : rep->val_error) EXPECT_GE(e, best);
  // The model returned is the best epoch's, and it round-trips through its file.
  const auto file = std::filesystem::temp_directory_path() / ("ae-train-" + std::to_string(::getpid()) + ".pt");
  ASSERT_TRUE(rep->model->save(file));
  Autoencoder loaded(rep->model->options());
  ASSERT_TRUE(loaded.load(file));
  std::vector<float> z(rep->model->options().input_dim * 3);
  for (std::size_t i = 0; i < z.size(); ++i) z[i] = static_cast<float>(std::sin(0.37 * i));
  EXPECT_DOUBLE_EQ(loaded.meanError(z), rep->model->meanError(z));
  std::filesystem::remove(file);
  // Too short for one fingerprint window: an error that says so.
  std::vector<foresight::trace::Series> tiny = {series[0], series[1]};
  for (auto& t : tiny)
    for (auto& u : t.usage)
      if (!u.empty()) u.resize(30);
  auto bad = trainAutoencoder(tiny, o);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("window"), std::string::npos) << bad.error().message;
}
