// The live loop's forecasters: best-of selection by recent quantile loss.
#include "foresight/loop/forecaster.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "foresight/predict/lstm/model.h"
#include "foresight/predict/lstm/stream.h"

namespace foresight::loop {
namespace {

// Forecasts a constant band [c - 1, c + 1] spread over the levels, for every resource; counts the
// forecasts asked for more than one sample ahead (the planner's; selection asks for one) into *planned.
class Constant final : public WorkloadForecaster {
 public:
  explicit Constant(const double* c, int* planned = nullptr) : c_(c), planned_(planned) {}
  void observe(std::int64_t, const std::array<double, kResourceCount>&) override {}
  bool forecast(Resource, std::span<const double> levels, std::size_t lookahead,
                std::vector<std::vector<double>>& out) override {
    if (planned_ && lookahead > 1) ++*planned_;
    out.assign(lookahead, std::vector<double>(levels.size()));
    for (auto& row : out)
      for (std::size_t q = 0; q < levels.size(); ++q) row[q] = *c_ - 1 + 2 * levels[q];
    return true;
  }

 private:
  const double* c_;
  int* planned_;
};

TEST(BestOfForecasters, FollowsTheCandidateWithTheLowerRecentLoss) {
  double a = 10, b = 50;
  auto factory = bestOfForecasters({[&] { return std::make_unique<Constant>(&a); },
                                    [&] { return std::make_unique<Constant>(&b); }},
                                   /*half_life=*/5);
  auto f = factory();
  std::vector<std::vector<double>> out;
  const std::array<double, 1> median = {0.5};
  auto feed = [&](double u, int n) {
    for (int i = 0; i < n; ++i) f->observe(i, {u, NAN, NAN, NAN});
  };
  feed(50, 20);  // b is right
  ASSERT_TRUE(f->forecast(Resource::kCpu, median, 2, out));
  EXPECT_DOUBLE_EQ(out[1][0], 50);
  feed(10, 30);  // behaviour changes: a is right now
  ASSERT_TRUE(f->forecast(Resource::kCpu, median, 2, out));
  EXPECT_DOUBLE_EQ(out[1][0], 10);
  // Resources are judged separately: memory has never been scored, so the first listed leads.
  ASSERT_TRUE(f->forecast(Resource::kMemory, median, 1, out));
  EXPECT_DOUBLE_EQ(out[0][0], 10);
}

// A candidate that is not chosen still forecasts each time the best-of does (into scratch), so its
// online state (the lstm's calibration of the planner's levels and horizons) keeps learning.
TEST(BestOfForecasters, EveryCandidateForecastsTheChosenOneAnswers) {
  double a = 10, b = 50;
  int planned_a = 0, planned_b = 0;
  auto factory = bestOfForecasters({[&] { return std::make_unique<Constant>(&a, &planned_a); },
                                    [&] { return std::make_unique<Constant>(&b, &planned_b); }},
                                   /*half_life=*/5);
  auto f = factory();
  std::vector<std::vector<double>> out;
  const std::array<double, 1> median = {0.5};
  for (int i = 0; i < 20; ++i) {  // b is right throughout
    f->observe(i, {50, NAN, NAN, NAN});
    ASSERT_TRUE(f->forecast(Resource::kCpu, median, 2, out));
  }
  EXPECT_DOUBLE_EQ(out[1][0], 50);
  EXPECT_EQ(planned_a, 20);
  EXPECT_EQ(planned_b, 20);
}

// The agent reads memory only every few rounds (tiered sampling): a forecast made after a round
// without it is still scored when the next reading comes, so the selection follows memory too.
TEST(BestOfForecasters, ScoresAResourceReadOnlyEveryFewSamples) {
  double a = 10, b = 50;
  auto factory = bestOfForecasters({[&] { return std::make_unique<Constant>(&a); },
                                    [&] { return std::make_unique<Constant>(&b); }},
                                   /*half_life=*/5);
  auto f = factory();
  for (int i = 0; i < 60; ++i) f->observe(i, {NAN, i % 3 == 0 ? 50.0 : NAN, NAN, NAN});
  std::vector<std::vector<double>> out;
  const std::array<double, 1> median = {0.5};
  ASSERT_TRUE(f->forecast(Resource::kMemory, median, 1, out));
  EXPECT_DOUBLE_EQ(out[0][0], 50);  // b, not the first listed
}

TEST(MakeForecasters, RefusesUnknownKindsAndMissingModels) {
  const std::filesystem::path missing[] = {"/nonexistent.fsm"};
  EXPECT_TRUE(makeForecasters("seasonal", missing, {}));  // needs no model
  EXPECT_FALSE(makeForecasters("arima", {}, {}));
  auto r = makeForecasters("auto", missing, {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent.fsm"), std::string::npos);
  EXPECT_FALSE(makeForecasters("lstm", {}, {}));  // no model file at all
}

// Several models are one forecaster: the mean of the members' ordered quantiles at every horizon
// and level (two untrained models that disagree, so neither one alone passes).
TEST(LstmForecasters, SeveralModelsForecastTheMeanOfTheirMembers) {
  using predict::lstm::LstmModel;
  auto a = std::make_shared<const LstmModel>(LstmModel::initial(8, 4, predict::lstm::kDefaultLevels, 3));
  auto b = std::make_shared<const LstmModel>(LstmModel::initial(8, 4, predict::lstm::kDefaultLevels, 4));
  const double eta = predict::lstm::kDefaultEta;
  auto fa = lstmForecasters({a}, eta)(), fb = lstmForecasters({b}, eta)(), fab = lstmForecasters({a, b}, eta)();
  const std::array<double, 3> levels = {0.5, 0.9, 0.99};
  std::vector<std::vector<double>> x, y, z, scratch;
  for (int t = 0; t < 50; ++t) {
    const std::array<double, kResourceCount> u = {1 + 0.5 * std::sin(t / 3.0), 2e9 + 1e8 * (t % 7), NAN, NAN};
    for (auto* f : {fa.get(), fb.get(), fab.get()}) {
      f->observe(1000 + t, u);
      ASSERT_TRUE(f->forecast(Resource::kCpu, levels, 3, scratch));  // asked every step, as the loop does
    }
  }
  bool differ = false;
  for (Resource r : {Resource::kCpu, Resource::kMemory}) {
    ASSERT_TRUE(fa->forecast(r, levels, 3, x) && fb->forecast(r, levels, 3, y) && fab->forecast(r, levels, 3, z));
    for (std::size_t h = 0; h < 3; ++h)
      for (std::size_t q = 0; q < levels.size(); ++q) {
        EXPECT_NEAR(z[h][q], (x[h][q] + y[h][q]) / 2, 1e-9 * (1 + x[h][q] + y[h][q]));
        differ |= std::abs(x[h][q] - y[h][q]) > 1e-6 * (1 + x[h][q]);
        if (q) {
          EXPECT_LE(z[h][q - 1], z[h][q]);
        }
      }
  }
  EXPECT_TRUE(differ);
}

// makeForecasters hands the sample period to the LSTM: the model's scale restarts after 72 of its
// 300-s steps, i.e. six hours. Ten minutes near idle and then two minutes a thousand times busier,
// in 1-s samples, are a burst: the scale is not restarted and stays near 0.004 cores, with the input
// at its clip. Counted as 300-s steps (or with the period unknown), the same samples are a level
// shift and the scale restarts at 10 cores. The forecasts are in units of the scale, so the
// (untrained) model's median is many times higher after the restart.
TEST(MakeForecasters, TheLstmRestartsItsScaleAfterAsLongATimeAtAnySamplePeriod) {
  namespace fs = std::filesystem;
  const fs::path file = fs::temp_directory_path() / ("foresight-restart-" + std::to_string(::getpid()) + ".fsm");
  auto m = predict::lstm::LstmModel::initial(8, 4, predict::lstm::kDefaultLevels, 3);
  m.scale_restart = 72;
  m.step_seconds = 300;
  ASSERT_TRUE(predict::lstm::saveModel(m, file));
  auto median = [&](double sample_seconds) {
    auto factory = makeForecasters("lstm", std::span(&file, 1), {}, sample_seconds);
    EXPECT_TRUE(factory) << factory.error().message;
    auto f = (*factory)();
    for (int t = 0; t < 720; ++t) f->observe(1000 + t, {t < 600 ? 0.001 : 10.0, NAN, NAN, NAN});
    std::vector<std::vector<double>> out;
    const std::array<double, 1> half = {0.5};
    EXPECT_TRUE(f->forecast(Resource::kCpu, half, 1, out));
    return out[0][0];
  };
  const double at_1s = median(1.0), at_300s = median(300.0);
  EXPECT_LT(4 * at_1s, at_300s);
  EXPECT_DOUBLE_EQ(median(0.0), at_300s);  // 0: the model's own step
  fs::remove(file);
}

}  // namespace
}  // namespace foresight::loop
