// Best-of selection by recent quantile loss: the scoring's timing at a lead, and the policy that
// replays `foresight run --forecaster auto` in the backtest, on fake candidates.
#include "foresight/predict/best_of.h"

#include <gtest/gtest.h>

#include <cmath>

namespace foresight::predict {
namespace {

SelectionQuantiles band(double c) {  // quantiles spread around c
  SelectionQuantiles q{};
  for (std::size_t k = 0; k < q.size(); ++k) q[k] = c - 1 + 2 * kSelectionLevels[k];
  return q;
}

TEST(RecentLoss, ScoresAForecastWhenTheUsageItWasForArrives) {
  RecentLoss loss(2, /*half_life=*/4, /*lead=*/2);
  // Step 0: candidate 0 forecasts 100 for step 2, candidate 1 forecasts 5 for step 2.
  loss.observe(Resource::kCpu, 5);
  loss.forecast(Resource::kCpu, 0, band(100));
  loss.forecast(Resource::kCpu, 1, band(5));
  // Step 1: nothing was forecast for it (lead 2); candidate 1 now forecasts badly for step 3.
  loss.observe(Resource::kCpu, 5);
  EXPECT_FALSE(loss.scored(Resource::kCpu, 0));
  loss.forecast(Resource::kCpu, 0, band(100));
  loss.forecast(Resource::kCpu, 1, band(1000));
  // Step 2 scores step 0's forecasts: candidate 1 was right.
  loss.observe(Resource::kCpu, 5);
  EXPECT_TRUE(loss.scored(Resource::kCpu, 0));
  EXPECT_EQ(loss.best(Resource::kCpu), 1u);
  loss.forecast(Resource::kCpu, 0, std::nullopt);
  loss.forecast(Resource::kCpu, 1, std::nullopt);
  // Step 3 scores step 1's: candidate 1's 1000 is far worse than 0's 100 at usage 5.
  loss.observe(Resource::kCpu, 5);
  EXPECT_EQ(loss.best(Resource::kCpu), 0u);
  // Step 3's forecasts for step 5 favour candidate 1; step 4 scores step 2's, which were none.
  loss.forecast(Resource::kCpu, 0, band(1000));
  loss.forecast(Resource::kCpu, 1, band(5));
  loss.observe(Resource::kCpu, 5);
  EXPECT_EQ(loss.best(Resource::kCpu), 0u);
  loss.forecast(Resource::kCpu, 0, std::nullopt);
  loss.forecast(Resource::kCpu, 1, std::nullopt);
  // Step 5's usage is missing: step 3's forecasts go unscored.
  loss.observe(Resource::kCpu, NAN);
  EXPECT_EQ(loss.best(Resource::kCpu), 0u);
  // Memory was never scored: the first listed leads.
  EXPECT_EQ(loss.best(Resource::kMemory), 0u);
}

// Usage alternates 10 and 14. Candidate 0 forecasts 10 at every level: the better centre, a tail
// that misses every 14. Candidate 1 forecasts 0 at levels 0.1 and 0.5 and 14 above: the tail an
// allocation is taken from covers all. Scored on all levels, 0 wins; on the upper ones (the
// default), 1.
TEST(RecentLoss, ByDefaultScoresTheUpperLevelsAnAllocationIsTakenFrom) {
  const SelectionQuantiles centre = {10, 10, 10, 10, 10}, tail = {0, 0, 14, 14, 14};
  // Ends on a 10, where the centre forecaster's last loss is 0, so its win on all levels is not
  // the last step's.
  RecentLoss upper(2, /*half_life=*/4), all(2, /*half_life=*/4, /*lead=*/1, /*lowest_level=*/0.1);
  for (int t = 0; t <= 20; ++t)
    for (RecentLoss* l : {&upper, &all}) {
      l->observe(Resource::kCpu, t % 2 ? 14 : 10);
      l->forecast(Resource::kCpu, 0, centre);
      l->forecast(Resource::kCpu, 1, tail);
    }
  EXPECT_EQ(upper.best(Resource::kCpu), 1u);
  EXPECT_EQ(all.best(Resource::kCpu), 0u);
}

// Usage stays at 10. Candidate 0 forecasts 15 at every level, candidate 1 forecasts 14: on the
// upper levels their losses are 0.16 x 5 = 0.8 and 0.16 x 4 = 0.64, i.e. 0.8 of candidate 0's.
// With a margin m, candidate 1 takes over only below (1 - m) x 0.8.
TEST(RecentLoss, AMarginKeepsTheFirstCandidateUnlessAnotherIsClearlyBetter) {
  const SelectionQuantiles high = {15, 15, 15, 15, 15}, lower = {14, 14, 14, 14, 14};
  for (auto [margin, want] : {std::pair{0.0, 1u}, {0.1, 1u}, {0.25, 0u}}) {
    RecentLoss loss(2, /*half_life=*/4, /*lead=*/1, kSelectionLowestLevel, margin);
    for (int t = 0; t < 5; ++t) {
      loss.observe(Resource::kCpu, 10);
      loss.forecast(Resource::kCpu, 0, high);
      loss.forecast(Resource::kCpu, 1, lower);
    }
    EXPECT_EQ(loss.best(Resource::kCpu), want) << "margin " << margin;
  }
  // The first candidate not scored yet: the margin has nothing to hold, the scored one leads.
  RecentLoss loss(2, /*half_life=*/4, /*lead=*/1, kSelectionLowestLevel, 0.25);
  loss.observe(Resource::kCpu, 10);
  loss.forecast(Resource::kCpu, 0, std::nullopt);
  loss.forecast(Resource::kCpu, 1, lower);
  loss.observe(Resource::kCpu, 10);
  EXPECT_EQ(loss.best(Resource::kCpu), 1u);
}

// Calls of a candidate that are not its observations.
struct Calls {
  int commits = 0, intervals = 0;
};

// Forecasts a constant band around *c; commits c + knob; counts its calls into *calls.
class Fixed final : public Policy {
 public:
  Fixed(const double* c, Calls* calls) : c_(c), calls_(calls) {}
  void observe(const Observation&) override {}
  void commit(Resource, std::span<const double> knobs, std::span<double> out) override {
    if (calls_) ++calls_->commits;
    for (std::size_t i = 0; i < knobs.size(); ++i) out[i] = *c_ + knobs[i];
  }
  bool interval(Resource, double level, double& lo, double& hi) override {
    if (calls_) ++calls_->intervals;
    lo = *c_ - level;
    hi = *c_ + level;
    return true;
  }

 private:
  const double* c_;
  Calls* calls_;
};

class FixedFactory final : public PolicyFactory {
 public:
  FixedFactory(const double* c, std::string knob, bool intervals = true, Calls* calls = nullptr)
      : c_(c), knob_(std::move(knob)), intervals_(intervals), calls_(calls) {}
  Knob knob(Resource) const override { return {knob_, {0.0, 1.0}, 0.0}; }
  bool givesIntervals() const override { return intervals_; }
  std::unique_ptr<Policy> create(const SeriesContext&, const trace::Series*) const override {
    return std::make_unique<Fixed>(c_, calls_);
  }

 private:
  const double* c_;
  std::string knob_;
  bool intervals_;
  Calls* calls_;
};

TEST(BestOfPolicy, CommitsWithTheCandidateThatForecastTheSeriesBetter) {
  double a = 10, b = 50;
  std::vector<std::unique_ptr<PolicyFactory>> c;
  c.push_back(std::make_unique<FixedFactory>(&a, "cost"));
  c.push_back(std::make_unique<FixedFactory>(&b, "cost"));
  auto f = makeBestOfFactory(std::move(c), /*half_life=*/5);
  ASSERT_TRUE(f->prepare(trace::Trace{}, {}));
  EXPECT_TRUE(f->givesIntervals());
  SeriesContext ctx;
  ctx.lead_steps = 1;
  ctx.resources = {true, true, false, false};
  auto p = f->create(ctx, nullptr);
  auto feed = [&](double cpu, std::size_t from, std::size_t n) {
    for (std::size_t t = from; t < from + n; ++t) {
      Observation o;
      o.step = t;
      o.usage = {cpu, NAN, NAN, NAN};
      p->observe(o);
    }
  };
  const std::array<double, 2> knobs = {0.0, 1.0};
  std::array<double, 2> out{};
  feed(50, 0, 20);  // b is right
  p->commit(Resource::kCpu, knobs, out);
  EXPECT_DOUBLE_EQ(out[0], 50);
  EXPECT_DOUBLE_EQ(out[1], 51);
  double lo = 0, hi = 0;
  ASSERT_TRUE(p->interval(Resource::kCpu, 0.9, lo, hi));
  EXPECT_DOUBLE_EQ(lo, 49.1);
  feed(10, 20, 30);  // the behaviour changes: a is right now
  p->commit(Resource::kCpu, knobs, out);
  EXPECT_DOUBLE_EQ(out[0], 10);
  // Memory's usage was always missing: never scored, the first listed commits.
  p->commit(Resource::kMemory, knobs, out);
  EXPECT_DOUBLE_EQ(out[0], 10);
}

// A candidate that is not chosen still commits and gives its intervals every step (into scratch):
// online state that learns from what it committed (the lstm's calibration) keeps up, so it is
// current when the candidate is chosen again.
TEST(BestOfPolicy, EveryCandidateCommitsEveryStepTheChosenOneDecides) {
  double a = 10, b = 50;
  Calls calls_a, calls_b;
  std::vector<std::unique_ptr<PolicyFactory>> c;
  c.push_back(std::make_unique<FixedFactory>(&a, "cost", true, &calls_a));
  c.push_back(std::make_unique<FixedFactory>(&b, "cost", true, &calls_b));
  auto f = makeBestOfFactory(std::move(c), /*half_life=*/5);
  ASSERT_TRUE(f->prepare(trace::Trace{}, {}));
  SeriesContext ctx;
  ctx.resources = {true, false, false, false};
  auto p = f->create(ctx, nullptr);
  const std::array<double, 2> knobs = {0.0, 1.0};
  std::array<double, 2> out{};
  int intervals_asked_for_selection = 0;
  for (std::size_t t = 0; t < 20; ++t) {  // b is right throughout
    Observation o;
    o.step = t;
    o.usage = {50, NAN, NAN, NAN};
    p->observe(o);
    intervals_asked_for_selection = calls_a.intervals;
    p->commit(Resource::kCpu, knobs, out);
    double lo = 0, hi = 0;
    ASSERT_TRUE(p->interval(Resource::kCpu, 0.5, lo, hi));
    EXPECT_EQ(calls_a.intervals, intervals_asked_for_selection + 1) << "step " << t;
  }
  EXPECT_DOUBLE_EQ(out[1], 51);  // b's
  EXPECT_EQ(calls_a.commits, 20);
  EXPECT_EQ(calls_b.commits, 20);
}

TEST(BestOfPolicy, RefusesCandidatesThatCannotBeComparedOrScored) {
  double a = 1;
  std::vector<std::unique_ptr<PolicyFactory>> knobs;
  knobs.push_back(std::make_unique<FixedFactory>(&a, "cost"));
  knobs.push_back(std::make_unique<FixedFactory>(&a, "quantile"));
  auto s = makeBestOfFactory(std::move(knobs))->prepare(trace::Trace{}, {});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("knobs differ for cpu (cost and quantile)"), std::string::npos)
      << s.error().message;

  std::vector<std::unique_ptr<PolicyFactory>> blind;
  blind.push_back(std::make_unique<FixedFactory>(&a, "cost"));
  blind.push_back(std::make_unique<FixedFactory>(&a, "cost", /*intervals=*/false));
  s = makeBestOfFactory(std::move(blind))->prepare(trace::Trace{}, {});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("gives no intervals"), std::string::npos) << s.error().message;

  for (double level : {0.0, 1.0, static_cast<double>(NAN)}) {
    std::vector<std::unique_ptr<PolicyFactory>> ok;
    ok.push_back(std::make_unique<FixedFactory>(&a, "cost"));
    s = makeBestOfFactory(std::move(ok), 60, level)->prepare(trace::Trace{}, {});
    ASSERT_FALSE(s) << level;
    EXPECT_NE(s.error().message.find("lowest_level must be a number in (0, 1)"), std::string::npos) << s.error().message;
  }
}

}  // namespace
}  // namespace foresight::predict
