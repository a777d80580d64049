// The LibTorch autoencoder learns a low-dimensional structure online and scores vectors off it
// as anomalous; its parameters round-trip through a file.
#include <gtest/gtest.h>

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
