#include "foresight/match/matcher.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include <Eigen/Dense>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "boosted_trees.h"
#include "factor_model.h"

namespace foresight::match {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Text features with more levels than this are identifiers rather than kinds; one-hot would only
// let the trees memorise environments.
constexpr std::size_t kMaxLevels = 32;
// Pairwise products only while they stay few: cluster totals (nodes × per-node size) matter and
// trees cannot multiply, but n² columns swamp small data.
constexpr std::size_t kMaxProductInputs = 8;

// Log runtimes of one workload with failures imputed as twice its slowest completed run: a failure
// says "at least this bad" and must pull the probe choice towards environments that reveal it.
std::vector<double> imputedLogRuntimes(const OutcomeTable& t, std::size_t w) {
  const auto m = t.environments.size();
  std::vector<double> v(m, kNaN);
  double worst = -std::numeric_limits<double>::infinity();
  for (std::size_t e = 0; e < m; ++e) {
    const auto& o = t.outcomes[w][e];
    if (o.has_run && o.completed && o.runtime_s > 0) {
      v[e] = std::log(o.runtime_s);
      worst = std::max(worst, v[e]);
    }
  }
  if (!std::isfinite(worst)) return v;
  for (std::size_t e = 0; e < m; ++e)
    if (t.outcomes[w][e].has_run && std::isnan(v[e])) v[e] = worst + std::log(2.0);
  return v;
}

}  // namespace

Result<RuntimeModel> parseRuntimeModel(const std::string& s) {
  if (s == "factor") return RuntimeModel::kFactor;
  if (s == "xgboost") return RuntimeModel::kXgboost;
  return fail(ErrorCode::kInvalidArgument, "unknown model '{}' (known: factor, xgboost)", s);
}

std::vector<std::size_t> Matcher::chooseProbes(const OutcomeTable& t,
                                               const std::vector<std::size_t>& workloads,
                                               std::size_t k) {
  const auto m = t.environments.size();
  k = std::min(k, m);
  std::vector<std::vector<double>> rows;
  for (auto w : workloads) {
    auto v = imputedLogRuntimes(t, w);
    double sum = 0;
    int n = 0;
    for (double x : v)
      if (!std::isnan(x)) sum += x, ++n;
    if (n < 2) continue;
    // Row-centred: a workload's overall size says nothing about which probe is informative.
    for (double& x : v)
      if (!std::isnan(x)) x -= sum / n;
    rows.push_back(std::move(v));
  }
  std::vector<std::size_t> chosen;
  if (rows.empty()) {  // no history: spread the probes over the catalog order
    for (std::size_t i = 0; i < k; ++i) chosen.push_back(i * m / std::max<std::size_t>(k, 1));
    return chosen;
  }
  Eigen::MatrixXd z(rows.size(), m);
  for (std::size_t e = 0; e < m; ++e) {
    double sum = 0;
    int n = 0;
    for (auto& r : rows)
      if (!std::isnan(r[e])) sum += r[e], ++n;
    const double mean = n ? sum / n : 0;
    for (std::size_t i = 0; i < rows.size(); ++i)
      z(i, e) = (std::isnan(rows[i][e]) ? mean : rows[i][e]) - mean;
  }
  // Greedy forward selection: add the environment whose column, with those already chosen,
  // explains the most of every environment's variation across workloads.
  while (chosen.size() < k) {
    double best = -1;
    std::size_t best_e = m;
    for (std::size_t e = 0; e < m; ++e) {
      if (std::find(chosen.begin(), chosen.end(), e) != chosen.end()) continue;
      Eigen::MatrixXd a(z.rows(), chosen.size() + 1);
      for (std::size_t j = 0; j < chosen.size(); ++j) a.col(j) = z.col(chosen[j]);
      a.col(chosen.size()) = z.col(e);
      const Eigen::MatrixXd fit = a * a.colPivHouseholderQr().solve(z);
      const double explained = fit.squaredNorm();
      if (explained > best + 1e-12) best = explained, best_e = e;
    }
    chosen.push_back(best_e);
  }
  return chosen;
}

struct Matcher::Model {
  MatcherOptions options;
  Objective objective = Objective::kCost;
  std::optional<double> deadline_s;
  std::vector<std::string> env_ids;
  std::vector<std::map<std::string, std::string>> env_labels;  // text features, for explanations
  std::vector<double> price_per_hour;
  std::vector<std::string> feature_names;  // env features, fingerprint, anchor, probe shapes
  std::size_t env_features = 0;
  DenseMatrix env_matrix;                  // [environment][env feature]
  std::vector<std::string> fingerprint_names;
  std::vector<double> probe_mean_log;      // typical log runtime on each probe
  std::vector<BoostedTrees> runtime_models, completion_models;
  // Out-of-bag mean squared error in log runtime: how far a member's prediction for a workload it
  // never saw lands, the error the ensemble's own spread does not show.
  double oob_mse = 0;
  // Platt scaling of the completion models' logits, fitted on out-of-bag rows: boosted trees on a
  // few dozen workloads are overconfident, and the ranking weighs failures by their probability.
  double platt_a = 1, platt_b = 0;
  std::optional<FactorModel> factor;      // set when options.model is kFactor
  std::vector<std::string> linear_names;  // the factor model's environment features

  // anchor = how much slower than typical the workload ran on its probes (mean log ratio);
  // shape = each probe's deviation from that. Failed or unknown probes are missing values.
  std::vector<float> workloadFeatures(const std::map<std::string, double>& fingerprint,
                                      const std::vector<double>& probe_log, double& anchor) const {
    std::vector<float> f;
    for (const auto& name : fingerprint_names) {
      auto it = fingerprint.find(name);
      f.push_back(it == fingerprint.end() ? NAN : static_cast<float>(it->second));
    }
    double sum = 0;
    int n = 0;
    for (std::size_t p = 0; p < probe_log.size(); ++p)
      if (!std::isnan(probe_log[p])) sum += probe_log[p] - probe_mean_log[p], ++n;
    anchor = n ? sum / n : kNaN;
    f.push_back(static_cast<float>(anchor));
    for (std::size_t p = 0; p < probe_log.size(); ++p)
      f.push_back(std::isnan(probe_log[p]) || !n
                      ? NAN
                      : static_cast<float>(probe_log[p] - probe_mean_log[p] - anchor));
    return f;
  }

  void appendRow(DenseMatrix& x, std::size_t e, const std::vector<float>& wf) const {
    const auto* row = env_matrix.values.data() + e * env_matrix.cols;
    x.values.insert(x.values.end(), row, row + env_matrix.cols);
    x.values.insert(x.values.end(), wf.begin(), wf.end());
    ++x.rows;
  }
};

Matcher::Matcher() : model_(std::make_unique<Model>()) {}
Matcher::Matcher(Matcher&&) noexcept = default;
Matcher& Matcher::operator=(Matcher&&) noexcept = default;
Matcher::~Matcher() = default;

namespace {

// The environments' numeric feature names, and each text feature's values.
std::pair<std::set<std::string>, std::map<std::string, std::set<std::string>>> featureKinds(
    const OutcomeTable& t) {
  std::set<std::string> numeric;
  std::map<std::string, std::set<std::string>> levels;
  for (const auto& e : t.environments) {
    for (const auto& [k, v] : e.numbers) numeric.insert(k);
    for (const auto& [k, v] : e.labels) levels[k].insert(v);
  }
  return {numeric, levels};
}

// One column `key=level` per value of each text feature (mergeLevels reads that naming back);
// features with one value, too many, or a different value for every environment are left out.
void appendOneHot(const OutcomeTable& t, const std::map<std::string, std::set<std::string>>& levels,
                  std::vector<std::string>& names, std::vector<std::vector<double>>& cols) {
  const auto m = t.environments.size();
  for (const auto& [k, vs] : levels) {
    if (vs.size() < 2 || vs.size() > kMaxLevels || (vs.size() == m && m > 2)) continue;
    for (const auto& level : vs) {
      names.push_back(k + "=" + level);
      auto& c = cols.emplace_back();
      for (const auto& e : t.environments) {
        auto it = e.labels.find(k);
        c.push_back(it == e.labels.end() ? kNaN : (it->second == level ? 1.0 : 0.0));
      }
    }
  }
}

void encodeEnvironments(const OutcomeTable& t, std::vector<std::string>& names, DenseMatrix& x) {
  const auto m = t.environments.size();
  const auto [numeric, levels] = featureKinds(t);
  std::vector<std::vector<double>> cols;
  for (const auto& k : numeric) {
    names.push_back(k);
    auto& c = cols.emplace_back();
    for (const auto& e : t.environments) c.push_back(e.numbers.contains(k) ? e.numbers.at(k) : kNaN);
  }
  const std::size_t base = cols.size();
  if (base <= kMaxProductInputs)
    for (std::size_t i = 0; i < base; ++i)
      for (std::size_t j = i + 1; j < base; ++j) {
        names.push_back(names[i] + "*" + names[j]);
        auto& c = cols.emplace_back();
        for (std::size_t e = 0; e < m; ++e) c.push_back(cols[i][e] * cols[j][e]);
      }
  if (std::any_of(t.price_per_hour.begin(), t.price_per_hour.end(),
                  [](double p) { return std::isfinite(p); })) {
    names.push_back("price_per_hour");
    cols.push_back(t.price_per_hour);
  }
  appendOneHot(t, levels, names, cols);
  x.rows = m;
  x.cols = cols.size();
  x.values.resize(m * x.cols);
  for (std::size_t e = 0; e < m; ++e)
    for (std::size_t c = 0; c < x.cols; ++c) x.values[e * x.cols + c] = static_cast<float>(cols[c][e]);
}

// Environment features for the linear (factor) model, standardised: positive numbers on a log
// scale, since resources act on runtime multiplicatively (twice the nodes, a fraction of the
// time), which also makes products such as nodes × vCPUs sums the model already has; the price
// (a summary of size); one-hot text kinds. Missing values sit at the average (0).
void linearEnvironmentFeatures(const OutcomeTable& t, std::vector<std::string>& names,
                               Eigen::MatrixXd& x) {
  const auto m = t.environments.size();
  const auto [numeric, levels] = featureKinds(t);
  std::vector<std::vector<double>> cols;
  auto add = [&](const std::string& name, std::vector<double> c) {
    bool positive = true;
    for (double v : c) positive = positive && (std::isnan(v) || v > 0);
    if (positive)
      for (double& v : c) v = std::isnan(v) ? v : std::log(v);
    names.push_back(positive ? "log " + name : name);
    cols.push_back(std::move(c));
  };
  for (const auto& k : numeric) {
    std::vector<double> c;
    for (const auto& e : t.environments)
      c.push_back(e.numbers.contains(k) ? e.numbers.at(k) : kNaN);
    add(k, std::move(c));
  }
  if (std::any_of(t.price_per_hour.begin(), t.price_per_hour.end(),
                  [](double p) { return std::isfinite(p); }))
    add("price_per_hour", t.price_per_hour);
  appendOneHot(t, levels, names, cols);
  std::vector<std::string> kept;
  std::vector<std::vector<double>> standard;
  for (std::size_t j = 0; j < cols.size(); ++j) {
    double sum = 0, sq = 0;
    int n = 0;
    for (double v : cols[j])
      if (!std::isnan(v)) sum += v, sq += v * v, ++n;
    if (n < 2) continue;
    const double mean = sum / n, var = sq / n - mean * mean;
    if (!(var > 1e-12)) continue;  // constant: nothing to learn from
    auto& c = standard.emplace_back();
    for (double v : cols[j]) c.push_back(std::isnan(v) ? 0 : (v - mean) / std::sqrt(var));
    kept.push_back(names[j]);
  }
  names = std::move(kept);
  x.resize(static_cast<Eigen::Index>(m), static_cast<Eigen::Index>(standard.size()));
  for (std::size_t j = 0; j < standard.size(); ++j)
    for (std::size_t e = 0; e < m; ++e)
      x(static_cast<Eigen::Index>(e), static_cast<Eigen::Index>(j)) = standard[j][e];
}

// Logistic regression of the label on the margin, p = σ(a·margin + b), by Newton's method; keeps
// the identity (a = 1, b = 0) when there is too little to fit or the fit does not converge.
void fitPlatt(const std::vector<std::pair<double, double>>& rows, double& a_out, double& b_out) {
  bool has[2] = {false, false};
  for (const auto& [m, y] : rows) has[y > 0.5] = true;
  if (!has[0] || !has[1]) return;
  double a = 1, b = 0;
  for (int it = 0; it < 50; ++it) {
    double ga = 0, gb = 0, haa = 1e-6, hab = 0, hbb = 1e-6;  // tiny ridge keeps H invertible
    for (const auto& [m, y] : rows) {
      const double p = 1 / (1 + std::exp(-(a * m + b)));
      const double w = p * (1 - p);
      ga += (p - y) * m, gb += p - y;
      haa += w * m * m, hab += w * m, hbb += w;
    }
    const double det = haa * hbb - hab * hab;
    if (!(std::abs(det) > 0)) return;
    const double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
    a -= da, b -= db;
    if (!std::isfinite(a) || !std::isfinite(b)) return;
    if (std::abs(da) + std::abs(db) < 1e-9) break;
  }
  // A negative slope would invert the model's ordering: a sign it has nothing to say.
  if (a > 0) a_out = a, b_out = b;
}

std::map<std::string, std::string> xgbParams(const MatcherOptions& o, std::uint64_t seed,
                                             bool classify) {
  return {{"objective", classify ? "binary:logistic" : "reg:squarederror"},
          {"eta", fmt::format("{}", o.learning_rate)},
          {"max_depth", std::to_string(o.max_depth)},
          {"subsample", fmt::format("{}", o.subsample)},
          {"colsample_bytree", fmt::format("{}", o.colsample)},
          {"nthread", std::to_string(std::max(1u, o.threads))},
          {"seed", std::to_string(seed)},
          {"verbosity", "0"}};
}

}  // namespace

Result<Matcher> Matcher::train(const OutcomeTable& t, const std::vector<std::size_t>& workloads,
                               const MatcherOptions& options) {
  if (workloads.empty()) return fail(ErrorCode::kInvalidArgument, "the matcher needs past workloads");
  Matcher matcher;
  auto& md = *matcher.model_;
  md.options = options;
  md.objective = t.objective;
  md.deadline_s = t.deadline_s;
  for (const auto& e : t.environments) md.env_ids.push_back(e.id), md.env_labels.push_back(e.labels);
  md.price_per_hour = t.price_per_hour;
  encodeEnvironments(t, md.feature_names, md.env_matrix);
  md.env_features = md.env_matrix.cols;

  std::set<std::string> fp_names;
  for (auto w : workloads)
    for (const auto& [k, v] : t.fingerprints[w]) fp_names.insert(k);
  md.fingerprint_names.assign(fp_names.begin(), fp_names.end());
  for (const auto& k : md.fingerprint_names) md.feature_names.push_back("fingerprint:" + k);

  matcher.budget_ = options.probes;
  const bool factor = options.model == RuntimeModel::kFactor;
  if (factor) {
    Eigen::MatrixXd env_x;
    linearEnvironmentFeatures(t, md.linear_names, env_x);
    const auto n = static_cast<Eigen::Index>(workloads.size());
    const auto m = static_cast<Eigen::Index>(t.environments.size());
    Eigen::MatrixXd y(n, m), fp(n, static_cast<Eigen::Index>(md.fingerprint_names.size()));
    std::vector<int> groups;
    std::map<std::string, int> group_ids;
    for (Eigen::Index i = 0; i < n; ++i) {
      const auto w = workloads[static_cast<std::size_t>(i)];
      for (Eigen::Index e = 0; e < m; ++e) {
        const auto& o = t.outcomes[w][static_cast<std::size_t>(e)];
        y(i, e) = o.has_run && o.completed && o.runtime_s > 0 ? std::log(o.runtime_s) : kNaN;
      }
      for (std::size_t j = 0; j < md.fingerprint_names.size(); ++j) {
        auto it = t.fingerprints[w].find(md.fingerprint_names[j]);
        fp(i, static_cast<Eigen::Index>(j)) = it == t.fingerprints[w].end() ? kNaN : it->second;
      }
      std::string g = t.workloads[w];
      if (!options.group_by.empty())
        if (auto it = t.info[w].find(options.group_by); it != t.info[w].end()) g = it->second;
      groups.push_back(group_ids.emplace(g, static_cast<int>(group_ids.size())).first->second);
    }
    md.factor =
        FactorModel::select(y, env_x, fp, groups, options.probes, FactorModel::defaultCandidates());
    // Informative probes pin down the workload's factors u (its level does not change which
    // environment is cheapest): one per factor, at most half the budget (rounded up), and at
    // least one probe left to check a promising candidate — an informative probe alone only
    // moves predictions, and with one probe an extreme environment misled the choice.
    const auto informative = options.informative_probes.value_or(std::min<std::size_t>(
        (options.probes + 1) / 2, static_cast<std::size_t>(md.factor->rank())));
    matcher.probes_ =
        md.factor->design(std::min(informative, options.probes > 0 ? options.probes - 1 : 0), true);
  } else {
    matcher.probes_ = chooseProbes(
        t, workloads,
        std::min(options.probes, options.informative_probes.value_or((options.probes + 1) / 2)));
  }
  md.feature_names.push_back("probe level");
  for (auto p : matcher.probes_) {
    md.feature_names.push_back("probe:" + t.environments[p].id);
    double sum = 0;
    int n = 0;
    for (auto w : workloads) {
      const auto& o = t.outcomes[w][p];
      if (o.has_run && o.completed && o.runtime_s > 0) sum += std::log(o.runtime_s), ++n;
    }
    md.probe_mean_log.push_back(n ? sum / n : 0.0);
  }

  // Each past workload's descriptor, as a new workload would present it.
  std::vector<std::vector<float>> wfeat(t.workloads.size());
  std::vector<double> offset(t.workloads.size(), 0);
  for (auto w : workloads) {
    std::vector<double> probe_log;
    for (auto p : matcher.probes_) {
      const auto& o = t.outcomes[w][p];
      probe_log.push_back(o.has_run && o.completed && o.runtime_s > 0 ? std::log(o.runtime_s) : kNaN);
    }
    double anchor = 0;
    wfeat[w] = md.workloadFeatures(t.fingerprints[w], probe_log, anchor);
    offset[w] = std::isnan(anchor) ? 0 : anchor;
  }

  bool both_classes[2] = {false, false};
  for (auto w : workloads)
    for (const auto& o : t.outcomes[w])
      if (o.has_run) both_classes[o.completed ? 1 : 0] = true;

  std::mt19937_64 rng(options.seed);
  std::vector<std::pair<double, double>> oob_logit;  // (margin, completed)
  double oob_sum = 0;
  std::size_t oob_n = 0;
  const std::size_t members = std::max<std::size_t>(1, options.ensemble);
  // The rows of the workloads a bootstrap sample left out, with target(w, outcome) where it has
  // one: the out-of-bag check of an ensemble member.
  auto outOfBag = [&](const std::vector<std::size_t>& sample, auto&& target) {
    std::set<std::size_t> in_bag(sample.begin(), sample.end());
    std::pair<DenseMatrix, std::vector<double>> rows;
    rows.first.cols = md.feature_names.size();
    for (auto w : workloads) {
      if (in_bag.contains(w)) continue;
      for (std::size_t e = 0; e < t.environments.size(); ++e)
        if (auto y = target(w, t.outcomes[w][e])) {
          md.appendRow(rows.first, e, wfeat[w]);
          rows.second.push_back(*y);
        }
    }
    return rows;
  };
  for (std::size_t k = 0; k < members; ++k) {
    // Bootstrap over workloads (not rows): the spread then reflects which past workloads we
    // happened to see, the uncertainty that matters for a new one.
    std::vector<std::size_t> sample;
    std::uniform_int_distribution<std::size_t> pick(0, workloads.size() - 1);
    if (members == 1)
      sample = workloads;
    else
      for (std::size_t i = 0; i < workloads.size(); ++i) sample.push_back(workloads[pick(rng)]);
    DenseMatrix xr, xc;
    xr.cols = xc.cols = md.feature_names.size();
    std::vector<float> yr, yc;
    for (auto w : sample)
      for (std::size_t e = 0; e < t.environments.size(); ++e) {
        const auto& o = t.outcomes[w][e];
        if (!o.has_run) continue;
        md.appendRow(xc, e, wfeat[w]);
        yc.push_back(o.completed ? 1.f : 0.f);
        if (o.completed && o.runtime_s > 0) {
          md.appendRow(xr, e, wfeat[w]);
          yr.push_back(static_cast<float>(std::log(o.runtime_s) - offset[w]));
        }
      }
    if (!factor) {
      auto reg =
          BoostedTrees::train(xr, yr, xgbParams(options, options.seed + k, false), options.rounds);
      if (!reg) return tl::unexpected(reg.error());
      if (members > 1) {
        auto [xo, yo] = outOfBag(sample, [&](std::size_t w, const Outcome& o) -> std::optional<double> {
          if (!o.has_run || !o.completed || !(o.runtime_s > 0)) return std::nullopt;
          return std::log(o.runtime_s) - offset[w];
        });
        if (!yo.empty()) {
          auto pred = reg->predict(xo);
          if (!pred) return tl::unexpected(pred.error());
          for (std::size_t i = 0; i < yo.size(); ++i)
            oob_sum += ((*pred)[i] - yo[i]) * ((*pred)[i] - yo[i]);
          oob_n += yo.size();
        }
      }
      md.runtime_models.push_back(std::move(*reg));
    }
    if (both_classes[0] && both_classes[1]) {
      auto cls = BoostedTrees::train(xc, yc, xgbParams(options, options.seed + k, true), options.rounds);
      if (!cls) return tl::unexpected(cls.error());
      if (members > 1) {
        auto [xo, yo] = outOfBag(sample, [](std::size_t, const Outcome& o) -> std::optional<double> {
          if (!o.has_run) return std::nullopt;
          return o.completed ? 1 : 0;
        });
        if (!yo.empty()) {
          auto margin = cls->predict(xo, BoostedTrees::Output::kMargin);
          if (!margin) return tl::unexpected(margin.error());
          for (std::size_t i = 0; i < yo.size(); ++i) oob_logit.push_back({(*margin)[i], yo[i]});
        }
      }
      md.completion_models.push_back(std::move(*cls));
    }
  }
  md.oob_mse = oob_n ? oob_sum / oob_n : 0;
  fitPlatt(oob_logit, md.platt_a, md.platt_b);
  return matcher;
}

namespace {
// One driver per text feature: the effects of its levels' one-hot columns summed, under the
// chosen environment's own level. Apart, a two-level feature showed both levels with the same
// factor (not being c4 and being r4 push the same way), which reads as a contradiction.
void mergeLevels(std::vector<Driver>& drivers, const std::map<std::string, std::string>& labels) {
  std::vector<Driver> out;
  std::map<std::string, std::size_t> at;  // feature key -> index in out
  for (auto& d : drivers) {
    const auto eq = d.feature.find('=');
    if (eq == std::string::npos) {
      out.push_back(std::move(d));
      continue;
    }
    const std::string key = d.feature.substr(0, eq);
    auto [it, fresh] = at.try_emplace(key, out.size());
    if (fresh) {
      auto own = labels.find(key);
      out.push_back({own == labels.end() ? key + "=(none)" : key + "=" + own->second, 0.0});
    }
    out[it->second].effect += d.effect;
  }
  drivers = std::move(out);
}
}  // namespace

Result<Ranking> Matcher::rank(const WorkloadEvidence& evidence,
                              const std::vector<std::size_t>& candidates_in) const {
  const auto& md = *model_;
  const auto m = md.env_ids.size();
  std::map<std::size_t, const ProbeOutcome*> observed;
  for (const auto& p : evidence.probes) {
    auto it = std::find(md.env_ids.begin(), md.env_ids.end(), p.env);
    if (it == md.env_ids.end())
      return fail(ErrorCode::kNotFound, "probe run on unknown environment '{}'", p.env);
    if (p.completed && !(p.runtime_s > 0))
      return fail(ErrorCode::kInvalidArgument, "probe run on '{}': runtime must be > 0", p.env);
    observed[static_cast<std::size_t>(it - md.env_ids.begin())] = &p;
  }
  std::vector<double> probe_log;
  for (auto p : probes_) {
    auto it = observed.find(p);
    probe_log.push_back(it != observed.end() && it->second->completed ? std::log(it->second->runtime_s)
                                                                      : kNaN);
  }
  double anchor = 0;
  const auto wf = md.workloadFeatures(evidence.fingerprint, probe_log, anchor);
  const double offset = std::isnan(anchor) ? 0 : anchor;

  std::vector<std::size_t> candidates = candidates_in;
  if (candidates.empty()) {
    candidates.resize(m);
    std::iota(candidates.begin(), candidates.end(), 0);
  }
  DenseMatrix x;
  x.cols = md.feature_names.size();
  for (auto e : candidates) {
    if (e >= m) return fail(ErrorCode::kInvalidArgument, "candidate environment {} out of range", e);
    md.appendRow(x, e, wf);
  }
  const std::size_t n = candidates.size();
  // Checking probes (measured, but not model inputs) show how far off the model is for this
  // workload; their rows follow the candidates'.
  std::vector<std::pair<std::size_t, double>> checks;  // row, measured log runtime
  for (const auto& [e, p] : observed) {
    if (!p->completed || std::find(probes_.begin(), probes_.end(), e) != probes_.end()) continue;
    checks.push_back({x.rows, std::log(p->runtime_s)});
    md.appendRow(x, e, wf);
  }
  std::vector<double> mu(n), sd(n), p_complete(n, 1);
  std::optional<FactorModel::Belief> belief;
  if (md.factor) {
    // Every completed probe, informative or checking, updates the belief about the workload.
    Eigen::VectorXd fp(static_cast<Eigen::Index>(md.fingerprint_names.size()));
    for (std::size_t j = 0; j < md.fingerprint_names.size(); ++j) {
      auto it = evidence.fingerprint.find(md.fingerprint_names[j]);
      fp(static_cast<Eigen::Index>(j)) = it == evidence.fingerprint.end() ? kNaN : it->second;
    }
    std::vector<std::pair<std::size_t, double>> obs;
    for (const auto& [e, p] : observed)
      if (p->completed) obs.push_back({e, std::log(p->runtime_s)});
    belief = md.factor->update(md.factor->prior(fp), obs);
    for (std::size_t i = 0; i < n; ++i) {
      mu[i] = md.factor->mean(*belief, candidates[i]);
      sd[i] = std::sqrt(md.factor->variance(*belief, candidates[i]));
    }
  } else {
    std::vector<double> sum(x.rows, 0), sumsq(x.rows, 0);
    for (const auto& model : md.runtime_models) {
      auto pred = model.predict(x);
      if (!pred) return tl::unexpected(pred.error());
      for (std::size_t i = 0; i < x.rows; ++i)
        sum[i] += (*pred)[i], sumsq[i] += (*pred)[i] * (*pred)[i];
    }
    const double k = static_cast<double>(md.runtime_models.size());
    // A workload's errors are shared across environments (it is larger or more parallel than its
    // descriptor says), so shift every prediction by the mean residual of the checks, shrunk as
    // under a random effect whose variance equals the out-of-bag error: δ = Σ residuals / (n + 1),
    // leaving oob / (n + 1) of that error.
    double shift = 0, oob_left = md.oob_mse;
    if (!checks.empty()) {
      for (const auto& [row, measured] : checks) shift += measured - (sum[row] / k + offset);
      shift /= static_cast<double>(checks.size() + 1);
      oob_left = md.oob_mse / static_cast<double>(checks.size() + 1);
    }
    for (std::size_t i = 0; i < n; ++i) {
      mu[i] = sum[i] / k + offset + shift;
      sd[i] = std::sqrt(std::max(0.0, sumsq[i] / k - (sum[i] / k) * (sum[i] / k)) + oob_left);
    }
  }
  x.rows = n;
  x.values.resize(n * x.cols);
  if (!md.completion_models.empty()) {
    std::fill(p_complete.begin(), p_complete.end(), 0);
    for (const auto& model : md.completion_models) {
      auto margin = model.predict(x, BoostedTrees::Output::kMargin);
      if (!margin) return tl::unexpected(margin.error());
      for (std::size_t i = 0; i < n; ++i)
        p_complete[i] += 1 / (1 + std::exp(-(md.platt_a * (*margin)[i] + md.platt_b))) /
                         static_cast<double>(md.completion_models.size());
    }
  }
  Ranking ranking;
  std::vector<std::size_t> row_of;  // ranking entry → row in x
  for (std::size_t i = 0; i < n; ++i) {
    const auto e = candidates[i];
    RankedEnvironment r;
    r.env = md.env_ids[e];
    r.runtime_s = std::exp(mu[i]);
    r.runtime_low_s = std::exp(mu[i] - sd[i]);
    r.runtime_high_s = std::exp(mu[i] + sd[i]);
    r.log_sd = sd[i];
    r.p_complete = p_complete[i];
    if (auto it = observed.find(e); it != observed.end()) {
      r.observed = true;
      r.log_sd = 0;
      r.p_complete = it->second->completed ? 1 : 0;
      if (it->second->completed)
        r.runtime_s = r.runtime_low_s = r.runtime_high_s = it->second->runtime_s;
    }
    const double price = md.price_per_hour[e] / 3600;
    r.cost = r.runtime_s * price;
    r.cost_low = r.runtime_low_s * price;
    r.cost_high = r.runtime_high_s * price;
    r.admissible = r.p_complete >= 0.5 && (!md.deadline_s || r.runtime_s <= *md.deadline_s);
    ranking.environments.push_back(r);
    row_of.push_back(i);
  }
  // Bayes choice under MATCHING.md's loss: a run that fails (or misses the deadline) costs as much
  // as the worst environment that would complete, so rank by expected loss
  //   P(ok) · E[value | ok] + (1 − P(ok)) · worst expected value,
  // with E[value | ok] the lognormal mean exp(μ + σ²/2) of the ensemble's prediction.
  const bool by_cost = md.objective == Objective::kCost;
  std::vector<double> mean_value(n), p_ok(n);  // E[value | ok]
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& r = ranking.environments[i];
    const double mean_runtime = r.runtime_s * std::exp(r.log_sd * r.log_sd / 2);
    mean_value[i] = by_cost ? mean_runtime * md.price_per_hour[candidates[i]] / 3600 : mean_runtime;
    double in_time = 1;
    if (md.deadline_s) {
      if (r.log_sd > 0)
        in_time = 0.5 * std::erfc(-(std::log(*md.deadline_s) - std::log(r.runtime_s)) /
                                  (r.log_sd * std::sqrt(2.0)));
      else
        in_time = r.runtime_s <= *md.deadline_s ? 1 : 0;
    }
    p_ok[i] = r.p_complete * in_time;
    if (r.p_complete > 0 && std::isfinite(mean_value[i])) worst = std::max(worst, mean_value[i]);
  }
  for (std::size_t i = 0; i < n; ++i)
    ranking.environments[i].expected =
        p_ok[i] * (std::isfinite(mean_value[i]) ? mean_value[i] : worst) + (1 - p_ok[i]) * worst;
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return ranking.environments[a].expected < ranking.environments[b].expected;
  });
  std::vector<RankedEnvironment> sorted;
  for (auto i : order) sorted.push_back(ranking.environments[i]);
  ranking.environments = std::move(sorted);
  if (n == 0) return ranking;

  if (md.factor) {
    // Why the top choice: each environment feature's share of its predicted log runtime against
    // the average environment, through the part of b and v tied to features, weighted by this
    // workload's factors; what the features do not explain is the environment's own.
    const auto effects = md.factor->effects(*belief, candidates[order[0]]);
    for (std::size_t j = 0; j < effects.size(); ++j)
      if (std::abs(effects[j]) > 1e-9)
        ranking.drivers.push_back({j < md.linear_names.size()
                                       ? md.linear_names[j]
                                       : "environment's own (not in its features)",
                                   effects[j]});
  } else {
    // Why the top choice: SHAP contributions to its predicted log runtime, averaged over members.
    const auto top_row = row_of[order[0]];
    DenseMatrix one;
    one.cols = x.cols;
    one.rows = 1;
    one.values.assign(x.values.begin() + top_row * x.cols,
                      x.values.begin() + (top_row + 1) * x.cols);
    std::vector<double> effect(x.cols, 0);
    for (const auto& model : md.runtime_models) {
      auto c = model.predict(one, BoostedTrees::Output::kContributions);
      if (!c) return tl::unexpected(c.error());
      for (std::size_t j = 0; j < x.cols; ++j)
        effect[j] += (*c)[j] / static_cast<double>(md.runtime_models.size());
    }
    for (std::size_t j = 0; j < x.cols; ++j)
      if (std::abs(effect[j]) > 1e-9) ranking.drivers.push_back({md.feature_names[j], effect[j]});
  }
  mergeLevels(ranking.drivers, md.env_labels[candidates[order[0]]]);
  std::sort(ranking.drivers.begin(), ranking.drivers.end(),
            [](const Driver& a, const Driver& b) { return std::abs(a.effect) > std::abs(b.effect); });
  if (ranking.drivers.size() > 5) ranking.drivers.resize(5);
  const auto& top = ranking.environments.front();
  std::string text = fmt::format("{}: {} runtime {:.0f} s", top.env,
                                 top.observed ? "measured" : "predicted", top.runtime_s);
  if (std::isfinite(top.cost)) text += fmt::format(", cost {:.4f}", top.cost);
  if (!top.observed) text += fmt::format(" (±{:.0f}%)", 100 * (std::exp(top.log_sd) - 1));
  text += ". Runtime effects against the average environment (×factor):";
  for (const auto& d : ranking.drivers) text += fmt::format(" {} ×{:.2f};", d.feature, std::exp(d.effect));
  ranking.explanation = text;
  return ranking;
}

Result<Ranking> recommendEnvironments(const OutcomeTable& table, const WorkloadEvidence& evidence,
                                      MatcherOptions options,
                                      const std::function<bool(const Environment&)>& admissible) {
  if (evidence.probes.empty()) options.probes = 0;
  std::vector<std::size_t> all(table.workloads.size());
  std::iota(all.begin(), all.end(), 0);
  auto matcher = Matcher::train(table, all, options);
  if (!matcher) return tl::unexpected(matcher.error());
  std::vector<std::size_t> candidates;
  for (std::size_t e = 0; e < table.environments.size(); ++e)
    if (!admissible || admissible(table.environments[e])) candidates.push_back(e);
  if (candidates.empty())
    return fail(ErrorCode::kNotFound, "no environment in the catalog is admissible");
  return matcher->rank(evidence, candidates);
}

Result<std::optional<std::size_t>> Matcher::nextProbe(const WorkloadEvidence& evidence,
                                                      const std::vector<std::size_t>& candidates_in) const {
  const auto& md = *model_;
  std::set<std::string> done;
  for (const auto& p : evidence.probes) done.insert(p.env);
  std::vector<std::size_t> candidates = candidates_in;
  if (candidates.empty())
    for (std::size_t e = 0; e < md.env_ids.size(); ++e) candidates.push_back(e);
  for (auto p : probes_)
    if (!done.contains(md.env_ids[p]) &&
        std::find(candidates.begin(), candidates.end(), p) != candidates.end())
      return std::optional<std::size_t>(p);
  auto ranking = rank(evidence, candidates);
  if (!ranking) return tl::unexpected(ranking.error());
  // Expected improvement over the best measured value b, for V = k·exp(Z), Z ~ N(μ, σ²):
  //   EI = P(complete) · (b·Φ(d) − E[V]·Φ(d − σ)),  d = (ln b − ln k − μ) / σ.
  // Before any success, b is the worst expected value (what a failure costs under the protocol).
  const bool by_cost = md.objective == Objective::kCost;
  auto price = [&](const std::string& env) {
    const auto e = static_cast<std::size_t>(std::find(md.env_ids.begin(), md.env_ids.end(), env) -
                                            md.env_ids.begin());
    return by_cost ? md.price_per_hour[e] / 3600 : 1.0;
  };
  double best = std::numeric_limits<double>::infinity(), worst = 0;
  for (const auto& r : ranking->environments) {
    const double v = (by_cost ? r.cost : r.runtime_s) * std::exp(r.log_sd * r.log_sd / 2);
    if (r.observed && r.p_complete > 0 && (!md.deadline_s || r.runtime_s <= *md.deadline_s))
      best = std::min(best, by_cost ? r.cost : r.runtime_s);
    if (r.p_complete > 0 && std::isfinite(v)) worst = std::max(worst, v);
  }
  if (!std::isfinite(best)) best = worst;
  auto phi = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  std::optional<std::size_t> pick;
  double pick_ei = -1;
  for (const auto& r : ranking->environments) {
    if (r.observed || done.contains(r.env)) continue;
    const double k = price(r.env);
    const double mu = std::log(r.runtime_s), sd = r.log_sd;
    double ei;
    if (sd > 1e-12) {
      const double d = (std::log(best / k) - mu) / sd;
      ei = best * phi(d) - k * std::exp(mu + sd * sd / 2) * phi(d - sd);
    } else {
      ei = std::max(0.0, best - k * r.runtime_s);
    }
    double in_time = 1;
    if (md.deadline_s && sd > 1e-12)
      in_time = phi((std::log(*md.deadline_s) - mu) / sd);
    else if (md.deadline_s)
      in_time = r.runtime_s <= *md.deadline_s ? 1 : 0;
    ei *= r.p_complete * in_time;
    if (ei > pick_ei) {
      pick_ei = ei;
      pick = static_cast<std::size_t>(std::find(md.env_ids.begin(), md.env_ids.end(), r.env) -
                                      md.env_ids.begin());
    }
  }
  return pick;
}

namespace {

constexpr int kFormatVersion = 2;  // 2: the factor model

// JSON has no NaN: missing feature values travel as null.
nlohmann::json floatsToJson(const std::vector<float>& v) {
  nlohmann::json j = nlohmann::json::array();
  for (float x : v) j.push_back(std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x));
  return j;
}

std::vector<float> floatsFromJson(const nlohmann::json& j) {
  std::vector<float> v;
  for (const auto& x : j) v.push_back(x.is_null() ? NAN : x.get<float>());
  return v;
}

}  // namespace

Result<std::string> Matcher::save() const {
  const auto& md = *model_;
  nlohmann::json j;
  j["format"] = "foresight-matcher";
  j["version"] = kFormatVersion;
  j["options"] = {{"probes", md.options.probes}, {"ensemble", md.options.ensemble},
                  {"rounds", md.options.rounds}, {"max_depth", md.options.max_depth},
                  {"learning_rate", md.options.learning_rate}, {"subsample", md.options.subsample},
                  {"colsample", md.options.colsample}, {"seed", md.options.seed}};
  j["objective"] = md.objective == Objective::kCost ? "cost" : "runtime";
  j["deadline_s"] = md.deadline_s ? nlohmann::json(*md.deadline_s) : nlohmann::json(nullptr);
  j["environments"] = md.env_ids;
  j["environment_labels"] = md.env_labels;
  nlohmann::json prices = nlohmann::json::array();
  for (double p : md.price_per_hour) prices.push_back(std::isnan(p) ? nlohmann::json(nullptr) : nlohmann::json(p));
  j["price_per_hour"] = prices;
  j["feature_names"] = md.feature_names;
  j["env_features"] = md.env_features;
  j["env_matrix"] = {{"rows", md.env_matrix.rows}, {"cols", md.env_matrix.cols},
                     {"values", floatsToJson(md.env_matrix.values)}};
  j["fingerprint_names"] = md.fingerprint_names;
  j["probe_mean_log"] = md.probe_mean_log;
  j["probes"] = probes_;
  j["budget"] = budget_;
  j["oob_mse"] = md.oob_mse;
  j["platt"] = {md.platt_a, md.platt_b};
  j["model"] = md.factor ? "factor" : "xgboost";
  if (md.factor) {
    j["factor"] = md.factor->toJson();
    j["linear_names"] = md.linear_names;
  }
  for (const auto* models : {&md.runtime_models, &md.completion_models}) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& m : *models) {
      auto text = m.save();
      if (!text) return tl::unexpected(text.error());
      list.push_back(nlohmann::json::parse(*text));
    }
    j[models == &md.runtime_models ? "runtime_models" : "completion_models"] = list;
  }
  return j.dump();
}

Result<Matcher> Matcher::load(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != "foresight-matcher")
    return fail(ErrorCode::kParse, "not a saved matcher (expected format foresight-matcher)");
  if (j.value("version", 0) != kFormatVersion && j.value("version", 0) != 1)
    return fail(ErrorCode::kParse, "saved matcher version {} (this build reads {})",
                j.value("version", 0), kFormatVersion);
  Matcher matcher;
  auto& md = *matcher.model_;
  try {
    const auto& o = j.at("options");
    md.options.probes = o.at("probes");
    md.options.ensemble = o.at("ensemble");
    md.options.rounds = o.at("rounds");
    md.options.max_depth = o.at("max_depth");
    md.options.learning_rate = o.at("learning_rate");
    md.options.subsample = o.at("subsample");
    md.options.colsample = o.at("colsample");
    md.options.seed = o.at("seed");
    md.objective = j.at("objective") == "cost" ? Objective::kCost : Objective::kRuntime;
    if (!j.at("deadline_s").is_null()) md.deadline_s = j.at("deadline_s").get<double>();
    md.env_ids = j.at("environments").get<std::vector<std::string>>();
    // Files from before labels were kept explain with unnamed levels.
    md.env_labels = j.contains("environment_labels")
                        ? j.at("environment_labels").get<std::vector<std::map<std::string, std::string>>>()
                        : std::vector<std::map<std::string, std::string>>(md.env_ids.size());
    if (md.env_labels.size() != md.env_ids.size())
      return fail(ErrorCode::kParse, "matcher file: {} environment label sets for {} environments",
                  md.env_labels.size(), md.env_ids.size());
    for (const auto& p : j.at("price_per_hour"))
      md.price_per_hour.push_back(p.is_null() ? kNaN : p.get<double>());
    md.feature_names = j.at("feature_names").get<std::vector<std::string>>();
    md.env_features = j.at("env_features");
    md.env_matrix.rows = j.at("env_matrix").at("rows");
    md.env_matrix.cols = j.at("env_matrix").at("cols");
    md.env_matrix.values = floatsFromJson(j.at("env_matrix").at("values"));
    md.fingerprint_names = j.at("fingerprint_names").get<std::vector<std::string>>();
    md.probe_mean_log = j.at("probe_mean_log").get<std::vector<double>>();
    matcher.probes_ = j.at("probes").get<std::vector<std::size_t>>();
    matcher.budget_ = j.at("budget");
    md.oob_mse = j.at("oob_mse");
    md.platt_a = j.at("platt").at(0);
    md.platt_b = j.at("platt").at(1);
    if (j.value("model", "xgboost") == "factor") {
      md.options.model = RuntimeModel::kFactor;
      md.factor = FactorModel::fromJson(j.at("factor"));
      if (!md.factor || md.factor->settings().rank < 0)
        return fail(ErrorCode::kParse, "saved matcher: malformed factor model");
      md.linear_names = j.at("linear_names").get<std::vector<std::string>>();
    } else {
      md.options.model = RuntimeModel::kXgboost;
    }
    for (const char* key : {"runtime_models", "completion_models"})
      for (const auto& m : j.at(key)) {
        auto trees = BoostedTrees::load(m.dump());
        if (!trees) return tl::unexpected(trees.error());
        (std::string(key) == "runtime_models" ? md.runtime_models : md.completion_models)
            .push_back(std::move(*trees));
      }
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kParse, "saved matcher: {}", e.what());
  }
  if (md.env_matrix.values.size() != md.env_matrix.rows * md.env_matrix.cols ||
      md.env_matrix.rows != md.env_ids.size() || md.price_per_hour.size() != md.env_ids.size() ||
      md.probe_mean_log.size() != matcher.probes_.size() ||
      (md.runtime_models.empty() && !md.factor))
    return fail(ErrorCode::kParse, "saved matcher: inconsistent sizes");
  for (auto p : matcher.probes_)
    if (p >= md.env_ids.size()) return fail(ErrorCode::kParse, "saved matcher: probe {} out of range", p);
  return matcher;
}

}  // namespace foresight::match
