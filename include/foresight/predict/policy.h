#pragma once
// An allocation policy, as the backtest replays it: it observes a series step by step and, after
// each step, commits the allocation for a later step. Baselines and learned predictors alike.
//
// One Policy instance serves one series (all its resources); it is used by one thread at a time.
// A PolicyFactory is shared by all threads and must be safe to call concurrently after prepare().

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "foresight/core/registry.h"
#include "foresight/core/resource.h"
#include "foresight/core/result.h"
#include "foresight/trace/series.h"

namespace foresight::predict {

// What a policy may know about a series before it sees any usage.
struct SeriesContext {
  std::string id;
  std::int64_t start = 0;
  std::int64_t step_seconds = 300;
  std::size_t steps = 0;         // length of the series
  std::size_t warmup_steps = 0;  // steps before the scored part
  std::size_t lead_steps = 1;    // the allocation committed after step t is for step t + lead
  std::array<bool, kResourceCount> resources{};
  std::map<std::string, double> metadata;  // environment metadata, e.g. cpu_cores
};

struct Observation {
  std::size_t step = 0;
  std::int64_t time = 0;                       // Unix seconds of the step's start
  std::array<double, kResourceCount> usage{};  // NaN: missing (or resource absent)
};

class Policy {
 public:
  virtual ~Policy() = default;
  // The usage of the next step, in order. Missing values are NaN.
  virtual void observe(const Observation& o) = 0;
  // After observe(step t): the allocation of resource r for step t + lead, one per knob value
  // (out.size() == knobs.size()).
  virtual void commit(Resource r, std::span<const double> knobs, std::span<double> out) = 0;
  // For policies that forecast quantiles: the central interval of nominal coverage `level`
  // (e.g. 0.9 -> [q0.05, q0.95]) for step t + lead. False when the policy has none.
  virtual bool interval(Resource /*r*/, double /*level*/, double& /*lo*/, double& /*hi*/) {
    return false;
  }
};

// The risk knob of a policy for one resource: a grid ordered from least to most conservative
// (allocations grow along it), and the documented default.
struct Knob {
  std::string name;  // "percentile", "margin", "quantile"
  std::vector<double> grid;
  double default_value = 0;
};

// What prepare() is told of the replay beyond the trace.
struct ReplayInfo {
  // The first share of each series before its scored part (the backtest's --train-fraction);
  // 0: the scored steps are not the later parts of the trace's series (e.g. a model's held-back
  // workloads, `backtest --validation-of`).
  double warmup_fraction = 0;
};

class PolicyFactory {
 public:
  virtual ~PolicyFactory() = default;
  virtual Knob knob(Resource r) const = 0;
  virtual bool givesIntervals() const { return false; }
  // Only the oracle: create() then receives the whole series.
  virtual bool seesFuture() const { return false; }
  // Once per run before replay, with the whole trace. Lets a learned policy load its model or
  // batch work across series; it must not use usage after a series' step t to decide step t+lead.
  virtual Status prepare(const trace::Trace& /*trace*/, const ReplayInfo& /*replay*/) { return ok(); }
  // `future` is non-null only when seesFuture().
  virtual std::unique_ptr<Policy> create(const SeriesContext& ctx,
                                         const trace::Series* future) const = 0;
};

// Options given on the command line as name=value (e.g. model=path); each policy reads its own.
using PolicyOptions = std::map<std::string, std::string>;
using PolicyRegistry = Registry<PolicyFactory, const PolicyOptions&>;

// The five baselines of EVALUATION.md: vpa, autopilot, reactive, static, oracle.
void registerBaselines(PolicyRegistry& registry);

}  // namespace foresight::predict
