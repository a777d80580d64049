#include "factor_model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

namespace foresight::match {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kIterations = 60;

Eigen::MatrixXd withIntercept(const Eigen::MatrixXd& x) {
  Eigen::MatrixXd out(x.rows(), x.cols() + 1);
  out.col(0).setOnes();
  out.rightCols(x.cols()) = x;
  return out;
}

// Ridge regression of every column of t on [1, x]; the intercept is not penalised.
Eigen::MatrixXd ridge(const Eigen::MatrixXd& xt, const Eigen::MatrixXd& t, double lambda) {
  Eigen::MatrixXd a = xt.transpose() * xt;
  for (Eigen::Index j = 1; j < a.rows(); ++j) a(j, j) += lambda;
  a(0, 0) += 1e-9;
  return a.ldlt().solve(xt.transpose() * t);
}

Eigen::MatrixXd covariance(const Eigen::MatrixXd& r) {
  const double n = static_cast<double>(std::max<Eigen::Index>(1, r.rows()));
  return r.transpose() * r / n;
}

double logdet(const Eigen::MatrixXd& m) {
  if (m.rows() == 0) return 0;
  Eigen::LDLT<Eigen::MatrixXd> l(m);
  return l.vectorD().array().max(1e-300).log().sum();
}

}  // namespace

FactorModel FactorModel::fit(const Eigen::MatrixXd& y, const Eigen::MatrixXd& env_x,
                             const Eigen::MatrixXd& fingerprints, FactorSettings s,
                             const std::vector<int>& groups_in) {
  const Eigen::Index n = y.rows(), m = y.cols(), r = s.rank;
  const double lambda = s.lambda;
  FactorModel f;
  f.settings_ = s;
  f.env_x_ = env_x;
  f.observed_.assign(static_cast<std::size_t>(m), 0);

  Eigen::VectorXd a = Eigen::VectorXd::Zero(n);
  Eigen::MatrixXd u = Eigen::MatrixXd::Zero(n, r);
  f.b_ = Eigen::VectorXd::Zero(m);
  f.v_ = Eigen::MatrixXd::Zero(m, r);
  // Start from the additive fit and the leading singular vectors of its residual.
  for (Eigen::Index w = 0; w < n; ++w) {
    double sum = 0;
    int k = 0;
    for (Eigen::Index e = 0; e < m; ++e)
      if (!std::isnan(y(w, e))) sum += y(w, e), ++k;
    a(w) = k ? sum / k : 0;
  }
  for (Eigen::Index e = 0; e < m; ++e) {
    double sum = 0;
    int k = 0;
    for (Eigen::Index w = 0; w < n; ++w)
      if (!std::isnan(y(w, e))) sum += y(w, e) - a(w), ++k;
    f.b_(e) = k ? sum / k : 0;
    f.observed_[static_cast<std::size_t>(e)] = k;
  }
  if (r > 0 && n > 0) {
    Eigen::MatrixXd res = Eigen::MatrixXd::Zero(n, m);
    for (Eigen::Index w = 0; w < n; ++w)
      for (Eigen::Index e = 0; e < m; ++e)
        if (!std::isnan(y(w, e))) res(w, e) = y(w, e) - a(w) - f.b_(e);
    Eigen::JacobiSVD<Eigen::MatrixXd> svd(res, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const Eigen::Index k = std::min<Eigen::Index>(r, svd.singularValues().size());
    for (Eigen::Index j = 0; j < k; ++j) {
      const double sq = std::sqrt(svd.singularValues()(j));
      u.col(j) = svd.matrixU().col(j) * sq;
      f.v_.col(j) = svd.matrixV().col(j) * sq;
    }
  }

  const Eigen::MatrixXd xt = withIntercept(env_x);
  f.env_coef_ = Eigen::MatrixXd::Zero(xt.cols(), r + 1);
  for (int it = 0; it < kIterations; ++it) {
    // Workloads: (a_w, u_w) by ridge least squares (a_w barely penalised: sizes differ widely).
    for (Eigen::Index w = 0; w < n; ++w) {
      Eigen::MatrixXd A = Eigen::MatrixXd::Identity(r + 1, r + 1) * lambda;
      A(0, 0) = 1e-6;
      Eigen::VectorXd rhs = Eigen::VectorXd::Zero(r + 1);
      for (Eigen::Index e = 0; e < m; ++e) {
        if (std::isnan(y(w, e))) continue;
        Eigen::VectorXd p(r + 1);
        p(0) = 1;
        p.tail(r) = f.v_.row(e).transpose();
        A += p * p.transpose();
        rhs += p * (y(w, e) - f.b_(e));
      }
      const Eigen::VectorXd th = A.ldlt().solve(rhs);
      a(w) = th(0);
      u.row(w) = th.tail(r).transpose();
    }
    // Environments: (b_e, v_e) shrunk towards what their features predict.
    const Eigen::MatrixXd prior_mean = xt * f.env_coef_;
    for (Eigen::Index e = 0; e < m; ++e) {
      Eigen::MatrixXd A = Eigen::MatrixXd::Identity(r + 1, r + 1) * lambda;
      Eigen::VectorXd rhs = lambda * prior_mean.row(e).transpose();
      for (Eigen::Index w = 0; w < n; ++w) {
        if (std::isnan(y(w, e))) continue;
        Eigen::VectorXd p(r + 1);
        p(0) = 1;
        p.tail(r) = u.row(w).transpose();
        A += p * p.transpose();
        rhs += p * (y(w, e) - a(w));
      }
      const Eigen::VectorXd th = A.ldlt().solve(rhs);
      f.b_(e) = th(0);
      f.v_.row(e) = th.tail(r).transpose();
    }
    // The feature map, from all environments' parameters.
    Eigen::MatrixXd params(m, r + 1);
    params.col(0) = f.b_;
    params.rightCols(r) = f.v_;
    f.env_coef_ = ridge(xt, params, lambda);
  }

  double sse = 0;
  int nobs = 0;
  for (Eigen::Index w = 0; w < n; ++w)
    for (Eigen::Index e = 0; e < m; ++e)
      if (!std::isnan(y(w, e))) {
        const double d = y(w, e) - a(w) - f.b_(e) - u.row(w).dot(f.v_.row(e));
        sse += d * d, ++nobs;
      }
  // Residual variance with the fitted parameters' degrees of freedom taken out.
  const double dof = static_cast<double>(nobs) - static_cast<double>((n + m) * (r + 1));
  f.noise_ = nobs ? std::max(1e-4, sse / std::max(1.0, dof)) : 1.0;

  // Prior of a new workload's (a, u): ridge regression on its fingerprint, the ridge chosen by
  // leave-one-group-out (workloads of one application share most of a fingerprint, so leaving
  // one out alone would reward memorising); "no fingerprint" (the mean) competes too.
  Eigen::MatrixXd theta(n, r + 1);
  theta.col(0) = a;
  theta.rightCols(r) = u;
  const Eigen::Index q = fingerprints.cols();
  f.fp_mean_ = Eigen::VectorXd::Zero(q);
  f.fp_sd_ = Eigen::VectorXd::Ones(q);
  Eigen::MatrixXd z = Eigen::MatrixXd::Zero(n, q);
  for (Eigen::Index j = 0; j < q; ++j) {
    double sum = 0, sq = 0;
    int k = 0;
    for (Eigen::Index w = 0; w < n; ++w)
      if (!std::isnan(fingerprints(w, j)))
        sum += fingerprints(w, j), sq += fingerprints(w, j) * fingerprints(w, j), ++k;
    if (k == 0) continue;
    f.fp_mean_(j) = sum / k;
    const double var = sq / k - f.fp_mean_(j) * f.fp_mean_(j);
    f.fp_sd_(j) = var > 1e-12 ? std::sqrt(var) : 1.0;
    for (Eigen::Index w = 0; w < n; ++w)
      z(w, j) =
          std::isnan(fingerprints(w, j)) ? 0 : (fingerprints(w, j) - f.fp_mean_(j)) / f.fp_sd_(j);
  }
  f.fp_lo_ = q ? Eigen::VectorXd(z.colwise().minCoeff().transpose()) : Eigen::VectorXd(0);
  f.fp_hi_ = q ? Eigen::VectorXd(z.colwise().maxCoeff().transpose()) : Eigen::VectorXd(0);
  std::vector<int> groups = groups_in;
  if (static_cast<Eigen::Index>(groups.size()) != n) {
    groups.resize(static_cast<std::size_t>(n));
    std::iota(groups.begin(), groups.end(), 0);
  }
  const std::set<int> distinct(groups.begin(), groups.end());
  const Eigen::MatrixXd xt_fp = withIntercept(z);
  // Held-out residuals of (a, u) for a ridge (infinite: the mean alone).
  auto heldOutResiduals = [&](double l) {
    Eigen::MatrixXd res(n, r + 1);
    for (int g : distinct) {
      std::vector<Eigen::Index> in, out;
      for (Eigen::Index w = 0; w < n; ++w)
        (groups[static_cast<std::size_t>(w)] == g ? out : in).push_back(w);
      Eigen::MatrixXd xi(in.size(), xt_fp.cols()), ti(in.size(), r + 1);
      for (std::size_t i = 0; i < in.size(); ++i)
        xi.row(static_cast<Eigen::Index>(i)) = xt_fp.row(in[i]),
        ti.row(static_cast<Eigen::Index>(i)) = theta.row(in[i]);
      Eigen::MatrixXd coef = Eigen::MatrixXd::Zero(xt_fp.cols(), r + 1);
      if (std::isinf(l)) {
        if (!in.empty()) coef.row(0) = ti.colwise().mean();
      } else {
        coef = ridge(xi, ti, l * static_cast<double>(in.size()));
      }
      for (auto w : out) res.row(w) = theta.row(w) - xt_fp.row(w) * coef;
    }
    return res;
  };
  Eigen::VectorXd scale(r + 1);  // the columns of theta weigh equally in the score
  const Eigen::MatrixXd centred = theta.rowwise() - theta.colwise().mean();
  for (Eigen::Index j = 0; j <= r; ++j)
    scale(j) = 1 / std::max(1e-9, centred.col(j).squaredNorm() / std::max<Eigen::Index>(1, n));
  auto score = [&](const Eigen::MatrixXd& res) {
    return (res.array().square().rowwise() * scale.transpose().array()).sum();
  };
  const double kNoFingerprint = std::numeric_limits<double>::infinity();
  double best_l = kNoFingerprint;
  Eigen::MatrixXd best_res = distinct.size() > 1 ? heldOutResiduals(kNoFingerprint) : centred;
  double best_score = score(best_res);
  if (q > 0 && distinct.size() > 2)
    for (double l : {0.1, 1.0, 10.0, 100.0}) {
      auto res = heldOutResiduals(l);
      if (const double sc = score(res); sc < best_score - 1e-12)
        best_score = sc, best_res = res, best_l = l;
    }
  f.fp_coef_ = Eigen::MatrixXd::Zero(q + 1, r + 1);
  if (std::isinf(best_l))
    f.fp_coef_.row(0) = theta.colwise().mean();
  else
    f.fp_coef_ = ridge(xt_fp, theta, best_l * static_cast<double>(n));
  f.prior_cov_ = covariance(best_res);
  f.prior_cov_.row(0).tail(r).setZero();  // level and factors independent (see the header)
  f.prior_cov_.col(0).tail(r).setZero();
  f.prior_cov_.diagonal().array() += 1e-6 + f.noise_ * 1e-3;
  return f;
}

std::vector<FactorSettings> FactorModel::defaultCandidates() {
  std::vector<FactorSettings> c;
  for (int r : {0, 1, 2, 3})
    for (double l : {0.3, 3.0}) c.push_back({r, l});
  return c;
}

FactorModel FactorModel::select(const Eigen::MatrixXd& y, const Eigen::MatrixXd& env_x,
                                const Eigen::MatrixXd& fingerprints, const std::vector<int>& groups,
                                std::size_t probes, const std::vector<FactorSettings>& candidates) {
  std::set<int> distinct(groups.begin(), groups.end());
  if (distinct.size() < 2 || candidates.size() < 2)
    return fit(y, env_x, fingerprints, candidates.front(), groups);
  const Eigen::Index n = y.rows(), m = y.cols();
  double best_score = std::numeric_limits<double>::infinity(), best_calibration = 1;
  FactorSettings best = candidates.front();
  for (const auto& s : candidates) {
    double score = 0, zsum = 0;
    int cells = 0;
    for (int g : distinct) {
      std::vector<Eigen::Index> train, held;
      for (Eigen::Index w = 0; w < n; ++w)
        (groups[static_cast<std::size_t>(w)] == g ? held : train).push_back(w);
      Eigen::MatrixXd yt(train.size(), m), ft(train.size(), fingerprints.cols());
      for (std::size_t i = 0; i < train.size(); ++i) {
        yt.row(static_cast<Eigen::Index>(i)) = y.row(train[i]);
        ft.row(static_cast<Eigen::Index>(i)) = fingerprints.row(train[i]);
      }
      std::vector<int> gt;
      for (auto w : train) gt.push_back(groups[static_cast<std::size_t>(w)]);
      const auto model = fit(yt, env_x, ft, s, gt);
      // The same probe policy for every candidate (full D-optimal), so they compete fairly.
      const auto design = model.design(probes, false);
      for (auto w : held) {
        auto belief = model.prior(fingerprints.row(w).transpose());
        std::vector<std::pair<std::size_t, double>> obs;
        for (auto e : design)
          if (!std::isnan(y(w, static_cast<Eigen::Index>(e))))
            obs.push_back({e, y(w, static_cast<Eigen::Index>(e))});
        belief = model.update(belief, obs);
        // Scored on differences between environments (what a ranking needs): the level error
        // shared by all of the workload's environments is taken out.
        std::vector<double> err, var;
        for (Eigen::Index e = 0; e < m; ++e) {
          if (std::isnan(y(w, e)) ||
              std::find(design.begin(), design.end(), static_cast<std::size_t>(e)) != design.end())
            continue;
          err.push_back(model.mean(belief, static_cast<std::size_t>(e)) - y(w, e));
          var.push_back(model.variance(belief, static_cast<std::size_t>(e)));
        }
        if (err.empty()) continue;
        const double shared =
            std::accumulate(err.begin(), err.end(), 0.0) / static_cast<double>(err.size());
        for (std::size_t i = 0; i < err.size(); ++i) {
          score += (err[i] - shared) * (err[i] - shared);
          zsum += err[i] * err[i] / var[i];
          ++cells;
        }
      }
    }
    if (cells && score / cells < best_score - 1e-12) {
      best_score = score / cells;
      best = s;
      best_calibration = zsum / cells;
    }
  }
  auto model = fit(y, env_x, fingerprints, best, groups);
  if (std::isfinite(best_calibration) && best_calibration > 0)
    model.calibration_ = best_calibration;
  return model;
}

Eigen::VectorXd FactorModel::phi(std::size_t env) const {
  const auto r = settings_.rank;
  Eigen::VectorXd p(r + 1);
  p(0) = 1;
  p.tail(r) = v_.row(static_cast<Eigen::Index>(env)).transpose();
  return p;
}

FactorModel::Belief FactorModel::prior(const Eigen::VectorXd& fingerprint) const {
  const auto q = fp_mean_.size();
  Eigen::VectorXd x = Eigen::VectorXd::Zero(q + 1);
  x(0) = 1;
  for (Eigen::Index j = 0; j < q && j < fingerprint.size(); ++j)
    if (!std::isnan(fingerprint(j)))
      x(j + 1) = std::clamp((fingerprint(j) - fp_mean_(j)) / fp_sd_(j), fp_lo_(j), fp_hi_(j));
  return {fp_coef_.transpose() * x, prior_cov_};
}

FactorModel::Belief FactorModel::update(
    const Belief& belief, const std::vector<std::pair<std::size_t, double>>& obs) const {
  if (obs.empty()) return belief;
  const Eigen::MatrixXd prec =
      belief.cov.ldlt().solve(Eigen::MatrixXd::Identity(belief.cov.rows(), belief.cov.cols()));
  Eigen::MatrixXd A = prec;
  Eigen::VectorXd rhs = prec * belief.mean;
  for (const auto& [e, value] : obs) {
    const auto p = phi(e);
    A += p * p.transpose() / noise_;
    rhs += p * (value - b_(static_cast<Eigen::Index>(e))) / noise_;
  }
  Belief out;
  out.cov = A.ldlt().solve(Eigen::MatrixXd::Identity(A.rows(), A.cols()));
  out.mean = out.cov * rhs;
  return out;
}

double FactorModel::mean(const Belief& belief, std::size_t env) const {
  return b_(static_cast<Eigen::Index>(env)) + phi(env).dot(belief.mean);
}

double FactorModel::variance(const Belief& belief, std::size_t env) const {
  const auto p = phi(env);
  return calibration_ * (p.dot(belief.cov * p) + noise_);
}

std::vector<std::size_t> FactorModel::design(std::size_t k, bool factors_only,
                                             const std::vector<std::size_t>& candidates_in) const {
  std::vector<std::size_t> candidates = candidates_in;
  if (candidates.empty()) {
    candidates.resize(static_cast<std::size_t>(b_.size()));
    std::iota(candidates.begin(), candidates.end(), 0);
  }
  const Eigen::Index r = settings_.rank, from = factors_only ? 1 : 0;
  Eigen::MatrixXd cov = prior_cov_;
  std::vector<std::size_t> chosen;
  while (chosen.size() < std::min(k, candidates.size())) {
    double best_gain = -1;
    std::size_t best_e = candidates.front();
    Eigen::MatrixXd best_cov;
    const double before = logdet(cov.bottomRightCorner(r + 1 - from, r + 1 - from));
    for (auto e : candidates) {
      if (std::find(chosen.begin(), chosen.end(), e) != chosen.end()) continue;
      const auto p = phi(e);
      const Eigen::VectorXd cp = cov * p;
      const Eigen::MatrixXd next = cov - cp * cp.transpose() / (noise_ + p.dot(cp));
      const double gain = before - logdet(next.bottomRightCorner(r + 1 - from, r + 1 - from));
      // Ties (e.g. a level-only model): prefer environments with more history to learn from.
      const bool better =
          gain > best_gain + 1e-9 || (gain > best_gain - 1e-9 && observed_[e] > observed_[best_e]);
      if (better) best_gain = gain, best_e = e, best_cov = next;
    }
    if (best_gain < 0) break;
    chosen.push_back(best_e);
    cov = best_cov;
  }
  return chosen;
}

std::vector<double> FactorModel::effects(const Belief& belief, std::size_t env) const {
  const Eigen::Index p = env_x_.cols(), r = settings_.rank, m = b_.size();
  const auto e = static_cast<Eigen::Index>(env);
  // Weight of each feature in log runtime for this workload: its effect on b plus u · its effect on
  // v.
  Eigen::VectorXd weight = env_coef_.col(0).tail(p);
  for (Eigen::Index k = 0; k < r; ++k) weight += belief.mean(k + 1) * env_coef_.col(k + 1).tail(p);
  const Eigen::RowVectorXd avg_x = env_x_.colwise().mean();
  std::vector<double> out(static_cast<std::size_t>(p) + 1);
  double tied = 0;
  for (Eigen::Index j = 0; j < p; ++j) {
    out[static_cast<std::size_t>(j)] = weight(j) * (env_x_(e, j) - avg_x(j));
    tied += out[static_cast<std::size_t>(j)];
  }
  double avg_total = 0;
  for (Eigen::Index i = 0; i < m; ++i) avg_total += mean(belief, static_cast<std::size_t>(i));
  avg_total /= static_cast<double>(m);
  out.back() = mean(belief, env) - avg_total - tied;
  return out;
}

namespace {

nlohmann::json matrixToJson(const Eigen::MatrixXd& m) {
  nlohmann::json rows = nlohmann::json::array();
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    std::vector<double> row(static_cast<std::size_t>(m.cols()));
    for (Eigen::Index j = 0; j < m.cols(); ++j) row[static_cast<std::size_t>(j)] = m(i, j);
    rows.push_back(row);
  }
  return {{"rows", m.rows()}, {"cols", m.cols()}, {"values", rows}};
}

Eigen::MatrixXd matrixFromJson(const nlohmann::json& j) {
  Eigen::MatrixXd m(j.at("rows").get<Eigen::Index>(), j.at("cols").get<Eigen::Index>());
  const auto& rows = j.at("values");
  if (static_cast<Eigen::Index>(rows.size()) != m.rows()) throw std::runtime_error("matrix rows");
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    const auto& row = rows.at(static_cast<std::size_t>(i));
    if (static_cast<Eigen::Index>(row.size()) != m.cols()) throw std::runtime_error("matrix cols");
    for (Eigen::Index c = 0; c < m.cols(); ++c)
      m(i, c) = row.at(static_cast<std::size_t>(c)).get<double>();
  }
  return m;
}

}  // namespace

nlohmann::json FactorModel::toJson() const {
  return {{"rank", settings_.rank},
          {"lambda", settings_.lambda},
          {"b", matrixToJson(b_)},
          {"v", matrixToJson(v_)},
          {"env_x", matrixToJson(env_x_)},
          {"env_coef", matrixToJson(env_coef_)},
          {"fp_mean", matrixToJson(fp_mean_)},
          {"fp_sd", matrixToJson(fp_sd_)},
          {"fp_lo", matrixToJson(fp_lo_)},
          {"fp_hi", matrixToJson(fp_hi_)},
          {"fp_coef", matrixToJson(fp_coef_)},
          {"prior_cov", matrixToJson(prior_cov_)},
          {"observed", observed_},
          {"noise", noise_},
          {"calibration", calibration_}};
}

std::optional<FactorModel> FactorModel::fromJson(const nlohmann::json& j) {
  try {
    FactorModel f;
    f.settings_ = {j.at("rank").get<int>(), j.at("lambda").get<double>()};
    f.b_ = matrixFromJson(j.at("b"));
    f.v_ = matrixFromJson(j.at("v"));
    f.env_x_ = matrixFromJson(j.at("env_x"));
    f.env_coef_ = matrixFromJson(j.at("env_coef"));
    f.fp_mean_ = matrixFromJson(j.at("fp_mean"));
    f.fp_sd_ = matrixFromJson(j.at("fp_sd"));
    f.fp_lo_ = matrixFromJson(j.at("fp_lo"));
    f.fp_hi_ = matrixFromJson(j.at("fp_hi"));
    f.fp_coef_ = matrixFromJson(j.at("fp_coef"));
    f.prior_cov_ = matrixFromJson(j.at("prior_cov"));
    f.observed_ = j.at("observed").get<std::vector<int>>();
    f.noise_ = j.at("noise").get<double>();
    f.calibration_ = j.at("calibration").get<double>();
    const Eigen::Index r = f.settings_.rank, m = f.b_.size();
    if (r < 0 || f.v_.rows() != m || f.v_.cols() != r || f.env_x_.rows() != m ||
        f.env_coef_.rows() != f.env_x_.cols() + 1 || f.env_coef_.cols() != r + 1 ||
        f.fp_coef_.rows() != f.fp_mean_.size() + 1 || f.fp_coef_.cols() != r + 1 ||
        f.fp_sd_.size() != f.fp_mean_.size() || f.fp_lo_.size() != f.fp_mean_.size() ||
        f.fp_hi_.size() != f.fp_mean_.size() || f.prior_cov_.rows() != r + 1 ||
        f.prior_cov_.cols() != r + 1 || static_cast<Eigen::Index>(f.observed_.size()) != m)
      return std::nullopt;
    return f;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace foresight::match
