// Validation backtest: the model-selection criterion, scored by the same sim code as the
// evaluation, on data that training read but never took a gradient from.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "foresight/predict/lstm/model.h"
#include "foresight/sim/backtest.h"

namespace foresight::predict::lstm {

trace::Trace trainingParts(const std::vector<const trace::Series*>& series, double train_fraction) {
  trace::Trace tr;
  for (const auto* s : series) {
    trace::Series part = s->trainPart(train_fraction);
    if (part.size() < 4) continue;
    for (Resource r : kAllResources) tr.resources[index(r)] |= part.has(r);
    tr.step_seconds = part.step_seconds;
    tr.series.push_back(std::move(part));
  }
  return tr;
}

Result<ValidationBacktest> validationBacktest(const LstmModel& model,
                                              const std::vector<const trace::Series*>& series,
                                              double train_fraction, unsigned threads) {
  const auto start = std::chrono::steady_clock::now();
  trace::Trace tr = trainingParts(series, train_fraction);
  if (tr.series.empty()) return fail(ErrorCode::kInvalidArgument, "validation backtest: no series");
  auto factory = makeLstmPolicy(Ensemble{std::make_shared<const LstmModel>(model)});
  if (auto st = factory->prepare(tr, {}); !st) return tl::unexpected(st.error());
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

Result<WorkloadSplit> splitWorkloads(const std::vector<trace::Series>& series, double train_fraction,
                                     std::size_t horizon, double holdout, std::uint64_t split_seed) {
  std::vector<std::size_t> usable;
  for (std::size_t i = 0; i < series.size(); ++i)
    if (static_cast<double>(series[i].size()) * train_fraction > static_cast<double>(horizon + 2)) usable.push_back(i);
  if (usable.size() < 3)
    return fail(ErrorCode::kInvalidArgument, "train: {} usable series, need at least 3", usable.size());
  std::mt19937_64 rng(split_seed);
  std::shuffle(usable.begin(), usable.end(), rng);
  const auto held = static_cast<std::ptrdiff_t>(
      std::min(usable.size(), std::max<std::size_t>(2, static_cast<std::size_t>(std::round(holdout * static_cast<double>(usable.size()))))));
  WorkloadSplit s;
  s.validation.assign(usable.begin(), usable.begin() + held / 2);
  s.calibration.assign(usable.begin() + held / 2, usable.begin() + held);
  s.train.assign(usable.begin() + held, usable.end());
  return s;
}

Result<TrainedOn> trainedOn(const LstmModel& model) {
  const auto prov = nlohmann::json::parse(model.provenance, nullptr, false);
  if (prov.is_discarded() || !prov.is_object() || !prov.contains("seed") || !prov.contains("train_fraction"))
    return fail(ErrorCode::kInvalidArgument,
                "the model's provenance does not record its training split (seed, train_fraction)");
  try {
    TrainedOn t;
    t.trace = prov.value("trace", std::string());
    t.format = prov.value("format", std::string());
    t.train_fraction = prov.at("train_fraction").get<double>();
    t.split_seed = prov.value("split_seed", prov.at("seed").get<std::uint64_t>());
    t.holdout = prov.value("holdout", t.holdout);
    if (prov.contains("series_read")) t.series_read = prov.at("series_read").get<std::size_t>();
    if (prov.contains("validation_series")) t.validation_series = prov.at("validation_series").get<std::size_t>();
    if (const auto it = prov.find("train_series_with"); it != prov.end() && it->is_object()) {
      t.series_with.emplace();
      for (Resource r : kAllResources) (*t.series_with)[index(r)] = it->value(std::string(name(r)), std::size_t{0});
    }
    return t;
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kInvalidArgument, "the model's provenance: {}", e.what());
  }
}

std::string scoresTrainedSteps(const LstmModel& m, const std::string& file, double warmup_fraction) {
  if (!(warmup_fraction > 0)) return {};
  auto t = trainedOn(m);
  if (!t || !(warmup_fraction < t->train_fraction)) return {};
  return fmt::format(
      "lstm: {} was trained on the first {:g}% of each series of its training trace ({}, {}), and this backtest "
      "scores each series from {:g}% on (--train-fraction {:g}): if this is that trace, steps the model learnt from "
      "are scored and its figures flatter it; give --train-fraction {:g} or more",
      file.empty() ? "the model" : file, 100 * t->train_fraction, t->trace.empty() ? "not recorded" : t->trace,
      t->format.empty() ? "format not recorded" : t->format, 100 * warmup_fraction, warmup_fraction, t->train_fraction);
}

std::string untrainedResources(const LstmModel& m, const std::string& file, std::span<const Resource> used) {
  auto t = trainedOn(m);
  if (!t || !t->series_with) return {};
  std::vector<std::string> untrained;
  for (Resource r : used)
    if ((*t->series_with)[index(r)] == 0) untrained.emplace_back(name(r));
  if (untrained.empty()) return {};
  return fmt::format(
      "lstm: {} was trained on no series with {}: its forecasts of {} are persistence with an untrained spread "
      "(only the online calibration adapts them); train on a trace that has {}",
      file.empty() ? "the model" : file, fmt::join(untrained, " or "), fmt::join(untrained, " and "),
      fmt::join(untrained, " and "));
}

Result<HeldBack> validationWorkloads(const LstmModel& model, const std::vector<trace::Series>& series,
                                     std::string_view format) {
  auto t = trainedOn(model);
  if (!t) return tl::unexpected(t.error());
  if (!t->validation_series)
    return fail(ErrorCode::kInvalidArgument, "the model's provenance does not record its training split (validation_series)");
  if (!t->format.empty() && t->format != format)
    return fail(ErrorCode::kInvalidArgument, "the model was trained on a trace read as {}, this one is read as {} (--format {})",
                t->format, format, t->format);
  // Another step gives other series lengths, so another split with the same counts.
  if (!series.empty() && model.step_seconds > 0 && series.front().step_seconds != model.step_seconds)
    return fail(ErrorCode::kInvalidArgument, "the model was trained on {}-s steps, this trace is read at {}-s steps (--step {})",
                model.step_seconds, series.front().step_seconds, model.step_seconds);
  const auto read = t->series_read.value_or(series.size());
  if (read != series.size())
    return fail(ErrorCode::kInvalidArgument,
                "the model was trained on {} series and this trace gives {}: not the trace it was trained on "
                "(its provenance: trace {}, format {})",
                read, series.size(), t->trace.empty() ? "?" : t->trace, t->format.empty() ? "?" : t->format);
  auto split = splitWorkloads(series, t->train_fraction, model.horizon, t->holdout, t->split_seed);
  if (!split) return tl::unexpected(split.error());
  const auto want = *t->validation_series;
  if (split->validation.size() != want)
    return fail(ErrorCode::kInvalidArgument,
                "the model held back {} validation series and the split of this trace gives {}: not the trace "
                "it was trained on",
                want, split->validation.size());
  return HeldBack{split->validation, t->train_fraction};
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
