// Training: stateful truncated BPTT over the first train_fraction of each series, pinball loss on
// every (resource, horizon, level), early stopping on held-back workloads, then split-conformal
// offsets on other held-back workloads.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "foresight/predict/lstm/torch_api.h"
#include "net.h"

namespace foresight::predict::lstm {
namespace {

// One series' training part, precomputed: inputs, raw usage, and the scale after each step.
struct SeriesData {
  std::size_t n = 0;
  std::vector<float> x;  // n x F
  std::vector<float> u;  // n x R (NaN: missing)
  std::vector<float> s;  // n x R
  std::array<float, kResourceCount> w{1, 1, 1, 1};  // loss weight per resource
};

// Mean usage over the first `fraction` of a series, floored; NaN when it has none.
double meanUsage(const trace::Series& s, Resource r, double fraction) {
  if (!s.has(r)) return NAN;
  const std::size_t n = s.trainSteps(fraction);
  double sum = 0;
  std::size_t k = 0;
  for (std::size_t t = 0; t < n; ++t)
    if (double u = s.usage[index(r)][t]; !std::isnan(u)) sum += std::max(u, 0.0), ++k;
  return k ? std::max(sum / static_cast<double>(k), scaleFloor(r)) : NAN;
}

// Loss weight = scale / mean scale of the training series, clipped to [1/bound, bound]: large
// workloads dominate the pooled slack, but each series-step counts the same in the violation
// rate, so small ones keep a floor, and the cap stops a handful of huge VMs owning the gradient.
void setScaleWeights(std::vector<SeriesData>& data, const std::vector<trace::Series>& series,
                     const std::vector<std::size_t>& tr, const std::vector<std::size_t>& weighted,
                     double fraction, double bound) {
  for (Resource r : kAllResources) {
    double sum = 0;
    std::size_t k = 0;
    for (auto i : tr)
      if (double m = meanUsage(series[i], r, fraction); !std::isnan(m)) sum += m, ++k;
    if (k == 0) continue;
    const double mean = sum / static_cast<double>(k);
    for (auto i : weighted) {
      const double m = meanUsage(series[i], r, fraction);
      if (!std::isnan(m)) data[i].w[index(r)] = static_cast<float>(std::clamp(m / mean, 1.0 / bound, bound));
    }
  }
}

SeriesData prepareSeries(const LstmModel& m, const trace::Series& s, double fraction) {
  SeriesData d;
  d.n = s.trainSteps(fraction);
  const std::size_t F = m.inputs();
  d.x.resize(d.n * F);
  d.u.resize(d.n * kResourceCount);
  d.s.resize(d.n * kResourceCount);
  FeatureBuilder fb(m, s.metadata);
  Observation o;
  for (std::size_t t = 0; t < d.n; ++t) {
    o.step = t;
    o.time = s.start + static_cast<std::int64_t>(t) * s.step_seconds;
    for (Resource r : kAllResources) o.usage[index(r)] = s.has(r) ? s.usage[index(r)][t] : NAN;
    fb.step(o, std::span<float>(d.x.data() + t * F, F));
    for (Resource r : kAllResources) {
      d.u[t * kResourceCount + index(r)] = static_cast<float>(o.usage[index(r)]);
      d.s[t * kResourceCount + index(r)] = static_cast<float>(fb.scale(r));
    }
  }
  return d;
}

struct Chunk {
  torch::Tensor x, y, mask;  // [T,B,F], [T,B,R,Hz], [T,B,R,Hz]
};

// Steps [t0, t0+T) of the given series; targets only where t+h is inside the training part.
// `hw`: a loss weight per horizon step (empty: all 1).
Chunk makeChunk(const std::vector<const SeriesData*>& group, std::size_t t0, std::size_t T,
                std::size_t F, std::size_t Hz, std::span<const float> hw = {}) {
  const std::size_t B = group.size(), R = kResourceCount;
  std::vector<float> x(T * B * F, 0.0f), y(T * B * R * Hz, 0.0f), mk(T * B * R * Hz, 0.0f);
  for (std::size_t b = 0; b < B; ++b) {
    const SeriesData& d = *group[b];
    for (std::size_t t = t0; t < std::min(t0 + T, d.n); ++t) {
      const std::size_t tt = t - t0;
      std::copy_n(d.x.data() + t * F, F, x.data() + (tt * B + b) * F);
      for (std::size_t r = 0; r < R; ++r) {
        const float sc = d.s[t * R + r];
        for (std::size_t h = 1; h <= Hz && t + h < d.n; ++h) {
          const float u = d.u[(t + h) * R + r];
          if (std::isnan(u)) continue;
          const std::size_t i = ((tt * B + b) * R + r) * Hz + (h - 1);
          y[i] = std::log1p(std::max(u, 0.0f) / sc);
          mk[i] = hw.empty() ? d.w[r] : d.w[r] * hw[h - 1];  // the loss is a mask-weighted mean
        }
      }
    }
  }
  const int64_t Ti = static_cast<int64_t>(T), Bi = static_cast<int64_t>(B);
  return {torch::from_blob(x.data(), {Ti, Bi, static_cast<int64_t>(F)}).clone(),
          torch::from_blob(y.data(), {Ti, Bi, static_cast<int64_t>(R), static_cast<int64_t>(Hz)}).clone(),
          torch::from_blob(mk.data(), {Ti, Bi, static_cast<int64_t>(R), static_cast<int64_t>(Hz)}).clone()};
}

torch::Tensor pinball(const torch::Tensor& q, const Chunk& c, const torch::Tensor& tau) {
  const auto Q = tau.size(0);
  auto qq = q.reshape({c.y.size(0), c.y.size(1), c.y.size(2), c.y.size(3), Q});
  auto diff = c.y.unsqueeze(-1) - qq;
  auto l = torch::max(tau * diff, (tau - 1) * diff);
  return (l * c.mask.unsqueeze(-1)).sum() / (c.mask.sum() * static_cast<double>(Q)).clamp_min(1.0);
}

using State = std::tuple<torch::Tensor, torch::Tensor>;

State zeroState(std::size_t B, std::size_t H) {
  return {torch::zeros({1, static_cast<int64_t>(B), static_cast<int64_t>(H)}),
          torch::zeros({1, static_cast<int64_t>(B), static_cast<int64_t>(H)})};
}

std::vector<std::vector<const SeriesData*>> groupsOf(const std::vector<SeriesData>& data,
                                                     const std::vector<std::size_t>& idx, std::size_t B) {
  std::vector<std::vector<const SeriesData*>> g;
  for (std::size_t i = 0; i < idx.size(); i += B) {
    g.emplace_back();
    for (std::size_t j = i; j < std::min(i + B, idx.size()); ++j) g.back().push_back(&data[idx[j]]);
  }
  return g;
}

std::size_t maxLen(const std::vector<const SeriesData*>& g) {
  std::size_t n = 0;
  for (auto* d : g) n = std::max(n, d->n);
  return n;
}

// Mean pinball loss over held-back series (no gradient), state carried across chunks.
double evaluate(Net& net, const std::vector<std::vector<const SeriesData*>>& groups, const LstmModel& m,
                std::size_t T, const torch::Tensor& tau, std::span<const float> hw) {
  torch::NoGradGuard ng;
  double sum = 0, weight = 0;
  for (const auto& g : groups) {
    State st = zeroState(g.size(), m.hidden);
    for (std::size_t t0 = 0; t0 < maxLen(g); t0 += T) {
      Chunk c = makeChunk(g, t0, T, m.inputs(), m.horizon, hw);
      auto q = net->forward(c.x, &st);
      const double w = c.mask.sum().item<double>();
      sum += pinball(q, c, tau).item<double>() * w;
      weight += w;
    }
  }
  return weight > 0 ? sum / weight : NAN;
}

// Split conformal, one-sided per level: the offset c such that a share `level` of held-back
// targets lies at or below quantile(level) + c.
void fitConformal(Net& net, const std::vector<std::vector<const SeriesData*>>& groups, LstmModel& m,
                  std::size_t T) {
  torch::NoGradGuard ng;
  const std::size_t R = kResourceCount, Hz = m.horizon, Q = m.levels.size(), L = m.cal_levels.size();
  std::vector<std::vector<float>> scores(R * Hz * L);
  std::vector<double> qv(Q);
  for (const auto& g : groups) {
    State st = zeroState(g.size(), m.hidden);
    for (std::size_t t0 = 0; t0 < maxLen(g); t0 += T) {
      Chunk c = makeChunk(g, t0, T, m.inputs(), Hz);
      auto q = net->forward(c.x, &st).contiguous();
      auto qa = q.accessor<float, 3>();
      auto ya = c.y.accessor<float, 4>();
      auto ma = c.mask.accessor<float, 4>();
      for (int64_t t = 0; t < q.size(0); t += 2) {  // every other step: neighbours are correlated
        for (int64_t b = 0; b < q.size(1); ++b)
          for (std::size_t r = 0; r < R; ++r)
            for (std::size_t h = 1; h <= Hz; ++h) {
              if (ma[t][b][static_cast<int64_t>(r)][static_cast<int64_t>(h - 1)] == 0) continue;
              for (std::size_t k = 0; k < Q; ++k) qv[k] = qa[t][b][static_cast<int64_t>(m.outIndex(r, h, k))];
              const double y = ya[t][b][static_cast<int64_t>(r)][static_cast<int64_t>(h - 1)];
              for (std::size_t l = 0; l < L; ++l)
                scores[(r * Hz + h - 1) * L + l].push_back(static_cast<float>(y - interpolate(m.levels, qv, m.cal_levels[l])));
            }
      }
    }
  }
  m.conformal.assign(R * Hz * L, 0.0);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    auto& s = scores[i];
    if (s.empty()) continue;
    const double level = m.cal_levels[i % L];
    const double n = static_cast<double>(s.size());
    // Finite-sample split-conformal rank: ceil((n + 1) level).
    auto k = static_cast<std::size_t>(std::clamp(std::ceil((n + 1) * level) - 1, 0.0, n - 1));
    std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(k), s.end());
    m.conformal[i] = s[k];
  }
}

void fitNormalisers(LstmModel& m, const std::vector<const trace::Series*>& series, double fraction) {
  std::map<std::string, std::vector<double>> values;
  for (const auto* s : series) {
    for (Resource r : kAllResources)
      if (double mu = meanUsage(*s, r, fraction); !std::isnan(mu))
        values["log_scale_" + std::string(name(r))].push_back(std::log(mu));
    auto meta = [&](const char* key) {
      auto it = s->metadata.find(key);
      return it != s->metadata.end() && it->second > 0 ? it->second : NAN;
    };
    const double cores = meta("cpu_cores"), mhz = meta("cpu_capacity_mhz"), mem = meta("memory_capacity_bytes");
    if (!std::isnan(cores) && !std::isnan(mhz) && !std::isnan(mem)) {
      values["log_cpu_cores"].push_back(std::log(cores));
      values["log_cpu_mhz_per_core"].push_back(std::log(mhz / cores));
      values["log_memory_capacity"].push_back(std::log(mem));
    }
  }
  for (auto& n : m.normalisers) {
    auto it = values.find(n.name);
    if (it == values.end() || it->second.size() < 2) continue;
    const auto& v = it->second;
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    double var = 0;
    for (double x : v) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / static_cast<double>(v.size() - 1));
    n.mean = mean;
    n.std = sd > 1e-3 ? sd : 1.0;
  }
}

torch::Tensor tauOf(const LstmModel& m) {
  std::vector<float> t(m.levels.begin(), m.levels.end());
  return torch::from_blob(t.data(), {static_cast<int64_t>(t.size())}).clone();
}

}  // namespace

Result<TrainReport> train(const std::vector<trace::Series>& series, const TrainOptions& o,
                          const std::function<void(const EpochInfo&)>& progress) {
  const auto t_start = std::chrono::steady_clock::now();
  try {
    if (o.scale_weight_bound != 0 && !(o.scale_weight_bound >= 1))
      return fail(ErrorCode::kInvalidArgument, "train: scale weight bound {} must be 0 (off) or >= 1",
                  o.scale_weight_bound);
    if (!(o.horizon_weight_power >= 0 && o.horizon_weight_power <= 8))
      return fail(ErrorCode::kInvalidArgument, "train: horizon weight power {} must be within [0, 8]",
                  o.horizon_weight_power);
    torch::manual_seed(o.seed);
    std::mt19937_64 rng(o.seed);
    TrainReport rep;
    LstmModel m = o.init ? *o.init
                         : LstmModel::initial(o.hidden, o.horizon, kDefaultLevels, o.seed, o.window_features, o.day_features);
    if (o.fingerprint_window > 0) m.fingerprint_window = o.fingerprint_window;
    if (o.scale_restart > 0) m.scale_restart = o.scale_restart;
    if (!series.empty()) m.step_seconds = series.front().step_seconds;  // one step per trace
    if (auto s = m.validate("train"); !s) return tl::unexpected(s.error());

    // Workload-level split: held-back workloads never contribute a gradient.
    auto split = splitWorkloads(series, o.train_fraction, m.horizon, o.holdout, o.split_seed.value_or(o.seed));
    if (!split) return tl::unexpected(split.error());
    {  // the batch order below draws from rng after a shuffle of the usable series, as it always has
      std::vector<std::size_t> same_size(split->train.size() + split->validation.size() + split->calibration.size());
      std::shuffle(same_size.begin(), same_size.end(), rng);
    }
    std::vector<std::size_t> val = split->validation, cal = split->calibration, tr = split->train;
    if (o.max_series && tr.size() > o.max_series) tr.resize(o.max_series);
    if (tr.empty()) return fail(ErrorCode::kInvalidArgument, "train: no training series after the hold-out");

    std::vector<const trace::Series*> train_series;
    for (auto i : tr) train_series.push_back(&series[i]);
    // A fine-tuned model keeps its normalisers: its weights were learnt on them.
    if (!o.init) fitNormalisers(m, train_series, o.train_fraction);

    std::vector<SeriesData> data(series.size());
    for (const auto* part : {&tr, &val, &cal})
      for (auto i : *part) data[i] = prepareSeries(m, series[i], o.train_fraction);
    // Validation is weighted too, so early stopping follows the weighted objective.
    if (o.scale_weight_bound > 0) {
      std::vector<std::size_t> weighted = tr;
      weighted.insert(weighted.end(), val.begin(), val.end());
      setScaleWeights(data, series, tr, weighted, o.train_fraction, o.scale_weight_bound);
    }
    if (o.missing_resources > 0) {
      std::mt19937_64 aug_rng(o.seed ^ 0x6d697373696e67ULL);
      std::bernoulli_distribution pick(o.missing_resources), coin(0.5);
      const std::size_t originals = tr.size();
      for (std::size_t k = 0; k < originals; ++k) {
        const std::size_t i = tr[k];
        if (!pick(aug_rng)) continue;
        std::vector<Resource> drop;
        for (Resource r : {Resource::kMemory, Resource::kDiskIo, Resource::kNetwork})
          if (series[i].has(r) && coin(aug_rng)) drop.push_back(r);
        if (drop.empty()) {  // at least one: the last it has
          for (Resource r : {Resource::kNetwork, Resource::kDiskIo, Resource::kMemory})
            if (series[i].has(r)) { drop.push_back(r); break; }
          if (drop.empty()) continue;  // cpu only already
        }
        SeriesData d = prepareSeries(m, series[i].without(drop), o.train_fraction);
        d.w = data[i].w;
        data.push_back(std::move(d));
        tr.push_back(data.size() - 1);
        ++rep.augmented_series;
      }
    }
    for (auto i : tr) rep.train_steps += data[i].n;
    for (std::size_t k = 0; k < tr.size() - rep.augmented_series; ++k)
      for (Resource r : kAllResources) rep.series_with[index(r)] += series[tr[k]].has(r);
    rep.val_index = val;
    rep.train_series = tr.size() - rep.augmented_series, rep.val_series = val.size(), rep.cal_series = cal.size();

    std::vector<float> hw;  // empty: equal weights, the loss exactly as before the option
    if (o.horizon_weight_power > 0)
      for (std::size_t h = 1; h <= m.horizon; ++h)
        hw.push_back(static_cast<float>(std::pow(static_cast<double>(h), -o.horizon_weight_power)));

    Net net = toNet(m);
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(o.lr));
    const torch::Tensor tau = tauOf(m);
    auto val_groups = groupsOf(data, val, o.batch), cal_groups = groupsOf(data, cal, o.batch);
    std::vector<const trace::Series*> val_series;
    for (auto i : val) val_series.push_back(&series[i]);
    double best = INFINITY;
    std::size_t since_best = 0;
    LstmModel best_model = m;

    // The budget is checked per batch: a partial last epoch still ends with a validation pass.
    auto out_of_time = [&] {
      return o.time_budget_s > 0 &&
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count() >= o.time_budget_s;
    };
    for (std::size_t epoch = 1; epoch <= o.max_epochs; ++epoch) {
      net->train();
      std::shuffle(tr.begin(), tr.end(), rng);
      auto groups = groupsOf(data, tr, o.batch);
      // Round-robin over groups, chunk by chunk in time order, carrying each group's state:
      // consecutive updates come from different workloads.
      std::vector<State> states;
      std::size_t chunks = 0, longest = 0;
      for (const auto& g : groups) {
        states.push_back(zeroState(g.size(), m.hidden));
        chunks += (maxLen(g) + o.bptt - 1) / o.bptt;
        longest = std::max(longest, maxLen(g));
      }
      EpochInfo info;
      info.epoch = epoch;
      info.batches_total = chunks;
      double loss_sum = 0;
      for (std::size_t t0 = 0; t0 < longest; t0 += o.bptt) {
        std::vector<std::size_t> order(groups.size());
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        for (std::size_t gi : order) {
          if (t0 >= maxLen(groups[gi]) || out_of_time()) continue;
          Chunk c = makeChunk(groups[gi], t0, o.bptt, m.inputs(), m.horizon, hw);
          State st = {std::get<0>(states[gi]).detach(), std::get<1>(states[gi]).detach()};
          auto q = net->forward(c.x, &st);
          auto loss = pinball(q, c, tau);
          opt.zero_grad();
          loss.backward();
          torch::nn::utils::clip_grad_norm_(net->parameters(), 1.0);
          opt.step();
          states[gi] = st;
          loss_sum += loss.item<double>();
          ++info.batches_done;
          info.train_loss = loss_sum / static_cast<double>(info.batches_done);
          if (progress) progress(info);
        }
      }
      net->eval();
      info.val_loss = evaluate(net, val_groups, m, 288, tau, hw);
      LstmModel candidate = m;
      fromNet(net, candidate);
      double score = info.val_loss;
      if (o.select_by_backtest) {
        fitConformal(net, cal_groups, candidate, 288);  // the backtest runs the calibrated model
        auto vb = validationBacktest(candidate, val_series, o.train_fraction, std::max(o.threads, 1u));
        if (!vb) return tl::unexpected(vb.error());
        info.val_score = selectionScore(*vb);
        // Never reaching 1% violations is the worst outcome, not a missing one.
        score = std::isnan(info.val_score) ? INFINITY : info.val_score;
      }
      rep.epochs.push_back(info);
      if (progress) progress(info);
      if (score < best || rep.best_epoch == 0) {
        best = score;
        since_best = 0;
        rep.best_epoch = epoch;
        best_model = std::move(candidate);
      } else if (++since_best >= o.patience) {
        break;
      }
      if (out_of_time()) break;
    }
    Net best_net = toNet(best_model);
    best_net->eval();
    fitConformal(best_net, cal_groups, best_model, 288);
    rep.model = std::move(best_model);
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    return rep;
  } catch (const c10::Error& e) {
    return fail(ErrorCode::kInternal, "train: torch error: {}", e.what_without_backtrace());
  }
}

struct TrainStepBench::Impl {
  Net net{nullptr};
  std::unique_ptr<torch::optim::Adam> opt;
  Chunk c;
  torch::Tensor tau;
};

TrainStepBench::TrainStepBench(const LstmModel& m, std::size_t batch, std::size_t steps)
    : impl_(std::make_unique<Impl>()) {
  torch::manual_seed(1);
  impl_->net = toNet(m);
  impl_->opt = std::make_unique<torch::optim::Adam>(impl_->net->parameters(), torch::optim::AdamOptions(1e-3));
  const int64_t T = static_cast<int64_t>(steps), B = static_cast<int64_t>(batch);
  impl_->c = {torch::randn({T, B, static_cast<int64_t>(m.inputs())}),
              torch::rand({T, B, static_cast<int64_t>(kResourceCount), static_cast<int64_t>(m.horizon)}),
              torch::ones({T, B, static_cast<int64_t>(kResourceCount), static_cast<int64_t>(m.horizon)})};
  impl_->tau = tauOf(m);
}
TrainStepBench::~TrainStepBench() = default;

double TrainStepBench::run() {
  State st = zeroState(static_cast<std::size_t>(impl_->c.x.size(1)), static_cast<std::size_t>(impl_->net->lstm->options.hidden_size()));
  auto loss = pinball(impl_->net->forward(impl_->c.x, &st), impl_->c, impl_->tau);
  impl_->opt->zero_grad();
  loss.backward();
  torch::nn::utils::clip_grad_norm_(impl_->net->parameters(), 1.0);
  impl_->opt->step();
  return loss.item<double>();
}

}  // namespace foresight::predict::lstm
