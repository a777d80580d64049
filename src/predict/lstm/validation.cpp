// Validation backtest: the model-selection criterion, scored by the same sim code as the
// evaluation, on data that training read but never took a gradient from.
#include <chrono>
#include <cmath>

#include "foresight/predict/lstm/model.h"
#include "foresight/sim/backtest.h"

namespace foresight::predict::lstm {

Result<ValidationBacktest> validationBacktest(const LstmModel& model,
                                              const std::vector<const trace::Series*>& series,
                                              double train_fraction, unsigned threads) {
  const auto start = std::chrono::steady_clock::now();
  trace::Trace tr;
  for (const auto* s : series) {
    trace::Series part = s->trainPart(train_fraction);
    if (part.size() < 4) continue;
    for (Resource r : kAllResources) tr.resources[index(r)] |= part.has(r);
    tr.step_seconds = part.step_seconds;
    tr.series.push_back(std::move(part));
  }
  if (tr.series.empty()) return fail(ErrorCode::kInvalidArgument, "validation backtest: no series");
  auto factory = makeLstmPolicy(std::make_shared<const LstmModel>(model));
  if (auto st = factory->prepare(tr); !st) return tl::unexpected(st.error());
  sim::RunOptions ro;
  ro.protocol = {1, 0.5, 0.01};  // the backtest command's defaults: lead 1, warm-up = first half
  ro.threads = threads;
  ro.examples = 0;
  const sim::Report rep = sim::runBacktest(tr, {{"lstm", factory.get()}}, ro);
  ValidationBacktest v;
  v.series = rep.series;
  v.scored_steps = rep.evaluation_steps;
  for (const auto& [r, rr] : rep.policies.at(0).resources)
    for (double level : kValidationRiskLevels) {
      auto it = rr.iso_risk.find(level);
      v.slack[r][level] = it != rr.iso_risk.end() && it->second ? *it->second : NAN;
    }
  v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return v;
}

double selectionScore(const ValidationBacktest& v) {
  double sum = 0;
  int n = 0;
  for (Resource r : {Resource::kCpu, Resource::kMemory}) {
    auto it = v.slack.find(r);
    if (it == v.slack.end()) continue;
    auto at = it->second.find(0.01);
    if (at == it->second.end() || std::isnan(at->second)) return NAN;  // present but never reached
    sum += at->second;
    ++n;
  }
  return n ? sum / n : NAN;
}

}  // namespace foresight::predict::lstm
