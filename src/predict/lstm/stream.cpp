#include "foresight/predict/lstm/stream.h"

#include <algorithm>
#include <cmath>

namespace foresight::predict::lstm {

LstmStream::LstmStream(const LstmModel& model, const std::map<std::string, double>& metadata,
                       double eta, double sample_seconds)
    : m_(model), fb_(model, metadata, sample_seconds), st_(model), x_(model.inputs()), eta_(eta),
      z_(kResourceCount * model.horizon, std::vector<double>(model.levels.size())),
      z_valid_(kResourceCount * model.horizon, false) {}

void LstmStream::observe(const Observation& o) {
  // Score what was given for this step first (causal: the tracker only ever sees the past).
  for (Resource r : kAllResources) {
    const double u = o.usage[index(r)];
    if (std::isnan(u)) continue;
    for (auto& t : trackers_[index(r)]) {
      const std::size_t slot = steps_ % t.pending.size();
      if (t.pending_for[slot] != steps_) continue;
      t.adj += eta_ * (t.level - (u <= t.pending[slot] ? 1.0 : 0.0));
    }
  }
  std::array<std::uint64_t, kResourceCount> restarts;
  for (Resource r : kAllResources) restarts[index(r)] = fb_.scaleRestarts(r);
  fb_.step(o, x_);
  // A restarted scale marks a level shift: the corrections learnt before it are about a workload
  // that is gone, and at the top levels the tracker unlearns a widening about 1/(1 - level) times
  // more slowly than it learnt it (docs/model.md, "Scale restart").
  for (Resource r : kAllResources)
    if (fb_.scaleRestarts(r) != restarts[index(r)])
      for (auto& t : trackers_[index(r)]) t.adj = 0;
  st_.step(x_);
  ++steps_;
  std::fill(z_valid_.begin(), z_valid_.end(), false);
}

double LstmStream::quantile(Resource r, std::size_t h, double level) {
  h = std::clamp<std::size_t>(h, 1, m_.horizon);
  const std::size_t k = index(r) * m_.horizon + (h - 1);
  if (!z_valid_[k]) {
    st_.quantiles(index(r), h, z_[k]);
    z_valid_[k] = true;
  }
  Tracker& t = tracker(r, h, level);
  const double z = interpolate(m_.levels, z_[k], level) + m_.conformalOffset(index(r), h, level) + t.adj;
  const double v = fb_.scale(r) * std::expm1(z);
  // The last observation is step steps_ - 1, so this value is for step steps_ - 1 + h.
  const std::size_t step = steps_ - 1 + h;
  t.pending[step % t.pending.size()] = v;
  t.pending_for[step % t.pending.size()] = step;
  return v;
}

LstmStream::Tracker& LstmStream::tracker(Resource r, std::size_t h, double level) {
  for (auto& t : trackers_[index(r)])
    if (t.h == h && t.level == level) return t;
  trackers_[index(r)].push_back({h, level, 0.0, std::vector<double>(h + 1, NAN),
                                 std::vector<std::size_t>(h + 1, SIZE_MAX)});
  return trackers_[index(r)].back();
}

void LstmStream::orderedQuantiles(Resource r, std::size_t h, std::span<const double> levels,
                                  std::span<double> out) {
  for (std::size_t q = 0; q < levels.size(); ++q) {
    const double x = std::max(quantile(r, h, levels[q]), 0.0);
    out[q] = q ? std::max(x, out[q - 1]) : x;
  }
}

namespace {

// One member's forecast after step `at` (< s.size()), at `levels`.
Forecast memberForecast(const LstmModel& model, const trace::Series& s, std::size_t at,
                        const std::vector<double>& levels) {
  LstmStream stream(model, s.metadata, kDefaultEta, static_cast<double>(s.step_seconds));
  Observation o;
  for (std::size_t t = 0; t <= at; ++t) {
    o.step = t;
    o.time = s.start + static_cast<std::int64_t>(t) * s.step_seconds;
    for (Resource r : kAllResources) o.usage[index(r)] = s.has(r) ? s.usage[index(r)][t] : NAN;
    stream.observe(o);
    // Every (horizon, level) is asked at every step so that all of its online trackers learn.
    if (t == at) break;
    for (Resource r : kAllResources)
      if (s.has(r))
        for (std::size_t h = 1; h <= model.horizon; ++h)
          for (double level : levels) (void)stream.quantile(r, h, level);
  }
  Forecast f;
  f.workload = s.id;
  f.time = o.time;
  f.step_seconds = s.step_seconds;
  f.levels = levels;
  for (Resource r : kAllResources) {
    if (!s.has(r)) continue;
    auto& v = f.values[index(r)];
    v.assign(model.horizon, std::vector<double>(levels.size()));
    for (std::size_t h = 1; h <= model.horizon; ++h) stream.orderedQuantiles(r, h, levels, v[h - 1]);
  }
  return f;
}

}  // namespace

Result<Forecast> forecastSeries(const Ensemble& models, const trace::Series& s, std::size_t at) {
  if (models.empty()) return fail(ErrorCode::kInvalidArgument, "no model to forecast series {} with", s.id);
  if (s.size() == 0) return fail(ErrorCode::kInvalidArgument, "series {}: empty", s.id);
  at = std::min(at, s.size() - 1);
  const auto& levels = models.front()->levels;
  Forecast f = memberForecast(*models.front(), s, at, levels);
  for (std::size_t i = 1; i < models.size(); ++i) {
    const Forecast g = memberForecast(*models[i], s, at, levels);
    for (Resource r : kAllResources)
      for (std::size_t h = 0; h < f.values[index(r)].size(); ++h)
        for (std::size_t q = 0; q < levels.size(); ++q) f.values[index(r)][h][q] += g.values[index(r)][h][q];
  }
  // The mean of ordered bands is ordered.
  for (auto& v : f.values)
    for (auto& row : v)
      for (double& x : row) x /= static_cast<double>(models.size());
  return f;
}

}  // namespace foresight::predict::lstm
