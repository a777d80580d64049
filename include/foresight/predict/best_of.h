#pragma once
// Choosing among forecasters per workload and resource by their recent quantile loss. One rule
// for both places it runs: `foresight run --forecaster auto` live (loop/forecasters.cpp) and the
// backtest policy `auto`, which replays it on a trace.

#include <array>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "foresight/core/resource.h"
#include "foresight/predict/policy.h"

namespace foresight::predict {

// The levels a candidate's forecasts can be scored at: the centre and both tails.
inline constexpr std::array<double, 5> kSelectionLevels = {0.1, 0.5, 0.9, 0.95, 0.99};
using SelectionQuantiles = std::array<double, kSelectionLevels.size()>;
// By default only the upper levels are scored: an allocation is taken from the upper tail, and a
// loss that weighs the centre as much handed workloads to the forecaster with the better median
// (docs/closed-loop.md, "Which forecaster").
inline constexpr double kSelectionLowestLevel = 0.9;
// How much lower another candidate's recent loss must be than the first-listed candidate's (the
// LSTM in `auto`) to take a workload from it: a fraction m, another takes over below (1 - m) times
// the first's loss; 0 would let the lowest loss win. 0.25 was chosen on held-back workloads by a
// rule written before its figures (docs/results.md, "A margin for leaving the LSTM").
inline constexpr double kSelectionMargin = 0.25;

// Exponentially weighted pinball loss of each candidate's forecasts, per resource (half-life in
// scored forecasts), summed over the levels of kSelectionLevels from `lowest_level` up. A forecast
// is scored when the usage it was for arrives, `lead` observations after it was made.
class RecentLoss {
 public:
  RecentLoss(std::size_t candidates, double half_life, std::size_t lead = 1,
             double lowest_level = kSelectionLowestLevel, double margin = kSelectionMargin);
  // A new observation of r (NaN: missing): scores the forecasts made `lead` observations ago.
  void observe(Resource r, double usage);
  // What candidate i forecasts now, at kSelectionLevels, for `lead` observations ahead
  // (nullopt: no forecast). Call once per candidate after each observe().
  void forecast(Resource r, std::size_t i, const std::optional<SelectionQuantiles>& q);
  // The candidate with the lowest recent loss, the first listed's counted as (1 - margin) of it;
  // candidates not yet scored rank last; ties go to the first listed.
  std::size_t best(Resource r) const;
  bool scored(Resource r, std::size_t i) const { return state_[index(r)][i].scored; }

 private:
  struct Score {
    double loss = 0;
    bool scored = false;
    std::deque<std::optional<SelectionQuantiles>> pending;
  };
  double decay_, margin_;
  std::size_t lead_;
  std::size_t first_level_;  // index into kSelectionLevels
  std::array<std::vector<Score>, kResourceCount> state_;
};

// A policy that runs every candidate side by side on a series (each one observes, commits and
// gives intervals every step) and, per resource, takes the allocation and intervals of the one of
// lowest RecentLoss on that series. The candidates must give intervals and share one
// knob (name and grid), checked at prepare().
std::unique_ptr<PolicyFactory> makeBestOfFactory(std::vector<std::unique_ptr<PolicyFactory>> candidates,
                                                 double half_life = 60,
                                                 double lowest_level = kSelectionLowestLevel,
                                                 double margin = kSelectionMargin);

}  // namespace foresight::predict
