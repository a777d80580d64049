#include "foresight/fingerprint/fingerprint.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>

#include "foresight/core/files.h"

namespace fs = std::filesystem;

namespace foresight::fingerprint {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double variance(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double m = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / v.size();
}

// Least-squares line a + b*i through the present (finite) points, each at its own index.
std::pair<double, double> lineFit(std::span<const double> x) {
  double n = 0, si = 0, sx = 0, sii = 0, six = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) continue;
    n += 1; si += i; sx += x[i]; sii += double(i) * i; six += i * x[i];
  }
  if (n < 2) return {n == 0 ? 0 : sx, 0};
  const double den = n * sii - si * si;
  const double b = den == 0 ? 0 : (n * six - si * sx) / den;
  return {(sx - b * si) / n, b};
}

double autocorr(std::span<const double> x, std::size_t lag) {
  const std::size_t n = x.size();
  if (lag >= n) return 0;
  const double m = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < n; ++i) den += (x[i] - m) * (x[i] - m);
  if (den <= 0) return 0;
  for (std::size_t i = 0; i + lag < n; ++i) num += (x[i] - m) * (x[i + lag] - m);
  return num / den;
}

// Autocorrelation at `lag` from the pairs whose two samples are both present, scaled as the
// classical estimator is (so a complete window gives exactly autocorr()): with the gaps filled
// by the mean, a window of tiered samples (one in detail_every) had no pair at lag 1 and read as
// uncorrelated. NaN with fewer than 8 pairs.
double autocorrPresent(std::span<const double> x, std::size_t lag, double mean) {
  std::size_t present = 0, pairs = 0;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) continue;
    ++present;
    den += (x[i] - mean) * (x[i] - mean);
    if (i + lag < x.size() && std::isfinite(x[i + lag])) ++pairs, num += (x[i] - mean) * (x[i + lag] - mean);
  }
  if (pairs < 8) return kNaN;
  if (den <= 0) return 0;
  return num / den * static_cast<double>(present - std::min(lag, present)) / static_cast<double>(pairs);
}

}  // namespace

std::size_t detectPeriod(std::span<const double> x, std::size_t max_period) {
  const std::size_t n = x.size();
  if (n < 8) return 0;
  // Remove a linear trend first: a trend alone makes every lag look correlated.
  auto [a, b] = lineFit(x);
  std::vector<double> d(n);
  for (std::size_t i = 0; i < n; ++i) d[i] = x[i] - (a + b * i);
  const std::size_t top = std::min(max_period, n / 2);
  std::vector<double> r(top + 2, 0.0);
  for (std::size_t k = 1; k <= top + 1 && k < n; ++k) r[k] = autocorr(d, k);
  std::size_t best = 0;
  double best_r = 0.3;
  for (std::size_t k = 2; k <= top; ++k) {
    if (r[k] > r[k - 1] && r[k] >= r[k + 1] && r[k] > best_r) {
      best = k;
      best_r = r[k];
    }
  }
  return best;
}

Decomposition decompose(std::span<const double> x, std::size_t max_period) {
  const std::size_t n = x.size();
  Decomposition d;
  d.trend.assign(n, 0.0);
  d.seasonal.assign(n, 0.0);
  d.residual.assign(n, 0.0);
  d.period = detectPeriod(x, max_period);
  if (d.period >= 2) {
    const std::size_t h = d.period / 2;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t lo = i >= h ? i - h : 0, hi = std::min(n - 1, i + h);
      // Even periods: a centred window of period+1 points with half weight at both ends.
      double s = 0, w = 0;
      for (std::size_t j = lo; j <= hi; ++j) {
        const double wj = (d.period % 2 == 0 && (j == i - h || j == i + h) && i >= h) ? 0.5 : 1.0;
        s += wj * x[j];
        w += wj;
      }
      d.trend[i] = s / w;
    }
    std::vector<double> sum(d.period, 0.0), cnt(d.period, 0.0);
    // Only where the moving average saw a whole period: the edges would leak trend into the
    // season.
    for (std::size_t i = 0; i < n; ++i) {
      if (i < h || i + h >= n) continue;
      sum[i % d.period] += x[i] - d.trend[i];
      cnt[i % d.period] += 1;
    }
    for (std::size_t p = 0; p < d.period; ++p) {
      if (cnt[p] == 0) {  // window barely longer than the period: use every point
        for (std::size_t i = p; i < n; i += d.period) { sum[p] += x[i] - d.trend[i]; cnt[p] += 1; }
      }
    }
    double mean_season = 0;
    for (std::size_t p = 0; p < d.period; ++p) mean_season += sum[p] / cnt[p];
    mean_season /= d.period;
    for (std::size_t i = 0; i < n; ++i)
      d.seasonal[i] = sum[i % d.period] / cnt[i % d.period] - mean_season;
  } else {
    auto [a, b] = lineFit(x);
    for (std::size_t i = 0; i < n; ++i) d.trend[i] = a + b * i;
  }
  for (std::size_t i = 0; i < n; ++i) d.residual[i] = x[i] - d.trend[i] - d.seasonal[i];
  return d;
}

namespace {

// Missing samples take the window mean so that lags and phases keep their meaning.
std::vector<double> filledWithMean(std::span<const double> x, double mean) {
  std::vector<double> filled(x.begin(), x.end());
  for (double& e : filled)
    if (!std::isfinite(e)) e = mean;
  return filled;
}

}  // namespace

WindowShape windowShape(std::span<const double> x) {
  double sum = 0, sq = 0;
  std::size_t n = 0;
  for (double e : x)
    if (std::isfinite(e)) sum += e, ++n;
  if (n == 0) return {kNaN, kNaN, kNaN, kNaN};
  WindowShape s{};
  s.mean = sum / static_cast<double>(n);
  for (double e : x)
    if (std::isfinite(e)) sq += (e - s.mean) * (e - s.mean);
  s.stddev = n < 2 ? 0 : std::sqrt(sq / static_cast<double>(n));
  // Goh & Barabasi burstiness: -1 periodic, 0 Poisson-like, towards 1 bursty.
  s.burstiness = (s.stddev + s.mean) > 0 ? (s.stddev - s.mean) / (s.stddev + s.mean) : 0;
  s.acf1 = autocorr(filledWithMean(x, s.mean), 1);  // the LSTM's window block: kept as trained
  return s;
}

WindowStats windowStats(std::span<const double> x, std::size_t max_period) {
  const WindowShape shape = windowShape(x);
  if (std::isnan(shape.mean)) return {kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN, kNaN};
  std::vector<double> sorted;
  sorted.reserve(x.size());
  for (double e : x)
    if (std::isfinite(e)) sorted.push_back(e);
  std::sort(sorted.begin(), sorted.end());
  WindowStats s{};
  s.mean = shape.mean;
  s.stddev = shape.stddev;
  s.burstiness = shape.burstiness;
  s.acf1 = autocorrPresent(x, 1, s.mean);
  s.p95 = sorted[static_cast<std::size_t>(std::floor(0.95 * (sorted.size() - 1)))];
  s.max = sorted.back();
  s.slope = lineFit(x).second;  // over the present points: filled-in ones pull it towards 0
  // A window mostly filled in (a detail metric between tiered reads) has no period or
  // decomposition to speak of: the filled-in stretches between reads made a period of
  // detail_every. Left out (missing) rather than made up.
  if (2 * sorted.size() < x.size()) {
    s.period = s.trend_strength = s.seasonal_strength = s.residual_std = kNaN;
    return s;
  }
  const std::vector<double> filled = filledWithMean(x, s.mean);
  auto d = decompose(filled, max_period);
  s.period = static_cast<double>(d.period);
  std::vector<double> tr(filled.size()), sr(filled.size());
  for (std::size_t i = 0; i < filled.size(); ++i) {
    tr[i] = d.trend[i] + d.residual[i];
    sr[i] = d.seasonal[i] + d.residual[i];
  }
  const double vr = variance(d.residual), vtr = variance(tr), vsr = variance(sr);
  // Strength of trend and seasonality as in Wang, Smith & Hyndman (2006).
  s.trend_strength = vtr > 0 ? std::max(0.0, 1.0 - vr / vtr) : 0;
  s.seasonal_strength = (d.period >= 2 && vsr > 0) ? std::max(0.0, 1.0 - vr / vsr) : 0;
  s.residual_std = std::sqrt(vr);
  return s;
}

// ---------------------------------------------------------------------------- IncrementalPca

IncrementalPca::IncrementalPca(std::size_t input_dim, std::size_t output_dim)
    : out_(std::min(input_dim, output_dim)),
      eigenvalues_(Eigen::VectorXd::Zero(static_cast<Eigen::Index>(input_dim))),
      n_(Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(input_dim), static_cast<Eigen::Index>(input_dim))),
      mean_(n_),
      m2_(n_),
      basis_(Eigen::MatrixXd::Identity(static_cast<Eigen::Index>(input_dim), static_cast<Eigen::Index>(out_))) {}

void IncrementalPca::update(const Eigen::VectorXd& x) {
  ++count_;
  // Welford's update for each pair of features present in x (a feature alone: the diagonal).
  // Missing features were once taken as the running mean and counted in one shared count, which
  // shrank the variance and covariance of a feature missing from some windows (a detail metric)
  // and pulled its mean towards where it started.
  const Eigen::Index d = x.size();
  Eigen::VectorXd present(d), v(d);
  for (Eigen::Index i = 0; i < d; ++i) {
    present[i] = std::isfinite(x[i]) ? 1.0 : 0.0;
    v[i] = present[i] > 0 ? x[i] : 0.0;
  }
  const Eigen::MatrixXd both = present * present.transpose();
  n_ += both;
  const Eigen::MatrixXd xs = v.replicate(1, d);  // xs(i, j) = x_i
  const Eigen::MatrixXd before = (xs - mean_).cwiseProduct(both);
  mean_ += before.cwiseQuotient(n_.cwiseMax(1.0));
  const Eigen::MatrixXd after = (xs - mean_).cwiseProduct(both);
  m2_ += before.cwiseProduct(after.transpose());
  // The eigensolver is O(d^3): every update while the model is young, then every 8th.
  if (count_ >= 2 && (count_ < 32 || count_ % 8 == 0)) refresh();
}

// A feature's spread for z-scores: at least a thousandth of its mean's size. A feature that sat
// constant and then moved by a page (memory at 100 MiB, +4 KiB) had a spread near 0, and its
// z-score (so the anomaly) ran to thousands for a hundred fingerprints. 0: constant at 0, no
// information.
double IncrementalPca::spread(Eigen::Index i) const {
  const double var = n_(i, i) >= 2 ? m2_(i, i) / (n_(i, i) - 1) : 0.0;
  const double sd = std::max(std::sqrt(std::max(var, 0.0)), 1e-3 * std::fabs(mean_(i, i)));
  return sd > 1e-12 ? sd : 0.0;
}

void IncrementalPca::refresh() {
  const Eigen::Index d = m2_.rows();
  // Each pair over the windows where both were present (pairwise deletion); its matrix may be
  // slightly indefinite, hence the eigenvalues clipped at 0 below.
  const Eigen::MatrixXd cov = (n_.array() >= 2).select(m2_.array() / (n_.array() - 1.0), 0.0).matrix();
  Eigen::VectorXd inv_sd(d);
  for (Eigen::Index i = 0; i < d; ++i) {
    const double sd = spread(i);
    inv_sd[i] = sd > 0 ? 1.0 / sd : 0.0;  // constant features carry no information
  }
  const Eigen::MatrixXd corr = inv_sd.asDiagonal() * cov * inv_sd.asDiagonal();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(corr);
  // Ascending from Eigen; we want the largest first.
  eigenvalues_ = es.eigenvalues().reverse().cwiseMax(0.0);
  Eigen::MatrixXd vecs = es.eigenvectors().rowwise().reverse();
  Eigen::MatrixXd fresh = vecs.leftCols(static_cast<Eigen::Index>(out_));
  // An eigenvector's sign is arbitrary: each component is turned to agree with the previous
  // basis' component it is closest to (two with close eigenvalues may swap places), so a
  // fingerprint does not flip sign between refreshes. "Largest loading positive" flipped whenever
  // the two largest loadings were close. The first basis is the identity, which makes the first
  // refresh's rule "largest loading positive".
  for (Eigen::Index c = 0; c < fresh.cols(); ++c) {
    Eigen::Index closest = 0;
    (basis_.transpose() * fresh.col(c)).cwiseAbs().maxCoeff(&closest);
    if (fresh.col(c).dot(basis_.col(closest)) < 0) fresh.col(c) *= -1;
  }
  basis_ = std::move(fresh);
}

Eigen::VectorXd IncrementalPca::zscore(const Eigen::VectorXd& x) const {
  Eigen::VectorXd z(x.size());
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double sd = spread(i);
    z[i] = (std::isfinite(x[i]) && sd > 0) ? (x[i] - mean_(i, i)) / sd : 0.0;
  }
  return z;
}

Eigen::VectorXd IncrementalPca::project(const Eigen::VectorXd& x) const {
  if (count_ < 2) return Eigen::VectorXd::Zero(static_cast<Eigen::Index>(out_));
  return basis_.transpose() * zscore(x);
}

double IncrementalPca::reconstructionError(const Eigen::VectorXd& x) const {
  if (count_ < 2) return 0;
  const Eigen::VectorXd z = zscore(x);
  const Eigen::VectorXd r = z - basis_ * (basis_.transpose() * z);
  const Eigen::Index d = eigenvalues_.size(), k = static_cast<Eigen::Index>(out_);
  const double discarded = d > k ? eigenvalues_.tail(d - k).sum() : 0.0;
  // Typical residual energy is the discarded variance; floor it so a perfect fit does not divide
  // by zero.
  return r.squaredNorm() / std::max(discarded, 1e-3);
}

nlohmann::json IncrementalPca::save() const {
  nlohmann::json j;
  j["output_dim"] = out_;
  j["count"] = count_;
  const Eigen::VectorXd mean = mean_.diagonal();
  j["mean"] = std::vector<double>(mean.data(), mean.data() + mean.size());
  j["m2"] = std::vector<double>(m2_.data(), m2_.data() + m2_.size());
  j["pair_counts"] = std::vector<double>(n_.data(), n_.data() + n_.size());
  j["pair_means"] = std::vector<double>(mean_.data(), mean_.data() + mean_.size());
  // The basis as used, since it is refreshed only every few updates.
  j["basis"] = std::vector<double>(basis_.data(), basis_.data() + basis_.size());
  j["eigenvalues"] = std::vector<double>(eigenvalues_.data(), eigenvalues_.data() + eigenvalues_.size());
  return j;
}

Result<IncrementalPca> IncrementalPca::load(const nlohmann::json& j) {
  try {
    auto mean = j.at("mean").get<std::vector<double>>();
    auto m2 = j.at("m2").get<std::vector<double>>();
    if (m2.size() != mean.size() * mean.size()) {
      return fail(ErrorCode::kParse, "pca: m2 has {} values, expected {}", m2.size(),
                  mean.size() * mean.size());
    }
    IncrementalPca p(mean.size(), j.at("output_dim").get<std::size_t>());
    p.count_ = j.at("count").get<std::size_t>();
    p.m2_ = Eigen::Map<Eigen::MatrixXd>(m2.data(), p.m2_.rows(), p.m2_.cols());
    if (j.contains("pair_counts")) {
      auto n = j.at("pair_counts").get<std::vector<double>>();
      auto means = j.at("pair_means").get<std::vector<double>>();
      if (n.size() != m2.size() || means.size() != m2.size())
        return fail(ErrorCode::kParse, "pca: pair_counts or pair_means of the wrong size");
      p.n_ = Eigen::Map<Eigen::MatrixXd>(n.data(), p.n_.rows(), p.n_.cols());
      p.mean_ = Eigen::Map<Eigen::MatrixXd>(means.data(), p.mean_.rows(), p.mean_.cols());
    } else {
      // Saved before per-pair counts: every feature counted in every update.
      p.n_.setConstant(static_cast<double>(p.count_));
      p.mean_ = Eigen::Map<Eigen::VectorXd>(mean.data(), static_cast<Eigen::Index>(mean.size()))
                    .replicate(1, static_cast<Eigen::Index>(mean.size()));
    }
    auto basis = j.at("basis").get<std::vector<double>>();
    auto eig = j.at("eigenvalues").get<std::vector<double>>();
    if (basis.size() != static_cast<std::size_t>(p.basis_.size()) || eig.size() != mean.size()) {
      return fail(ErrorCode::kParse, "pca: basis or eigenvalues of the wrong size");
    }
    p.basis_ = Eigen::Map<Eigen::MatrixXd>(basis.data(), p.basis_.rows(), p.basis_.cols());
    p.eigenvalues_ = Eigen::Map<Eigen::VectorXd>(eig.data(), static_cast<Eigen::Index>(eig.size()));
    return p;
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kParse, "pca state: {}", e.what());
  }
}

// ---------------------------------------------------------------------------- Pipeline

Status checkConfig(const Config& c) {
  if (c.window < kMinWindow || c.window > kMaxWindow)
    return fail(ErrorCode::kInvalidArgument, "fingerprint window {} not in [{}, {}]", c.window, kMinWindow, kMaxWindow);
  if (c.hop < 1 || c.hop > kMaxHop)
    return fail(ErrorCode::kInvalidArgument, "fingerprint hop {} not in [1, {}]", c.hop, kMaxHop);
  if (c.dim < 1 || c.dim > kMaxDim)
    return fail(ErrorCode::kInvalidArgument, "fingerprint dim {} not in [1, {}]", c.dim, kMaxDim);
  return {};
}

Pipeline::Pipeline(Config config, std::vector<std::string> metrics)
    : config_(config), metrics_(std::move(metrics)), buffers_(metrics_.size()),
      pca_(metrics_.size() * kStatCount, config.dim) {
  if (config_.max_period == 0) config_.max_period = config_.window / 2;
}

std::vector<std::string> Pipeline::featureNames() const {
  std::vector<std::string> out;
  for (const auto& m : metrics_)
    for (const char* s : kStatNames) out.push_back(m + "." + s);
  return out;
}

std::optional<Fingerprint> Pipeline::push(std::int64_t time_ms, std::span<const double> values) {
  for (std::size_t m = 0; m < metrics_.size(); ++m) {
    buffers_[m].push_back(m < values.size() ? values[m] : kNaN);
    if (buffers_[m].size() > config_.window) buffers_[m].pop_front();
  }
  ++since_emit_;
  if (buffers_.empty() || buffers_[0].size() < config_.window || since_emit_ < config_.hop) {
    return std::nullopt;
  }
  since_emit_ = 0;
  Fingerprint f;
  f.time_ms = time_ms;
  Eigen::VectorXd x(static_cast<Eigen::Index>(metrics_.size() * kStatCount));
  std::vector<double> window;
  for (std::size_t m = 0; m < metrics_.size(); ++m) {
    window.assign(buffers_[m].begin(), buffers_[m].end());
    WindowStats s = windowStats(window, config_.max_period);
    const double* p = &s.mean;  // WindowStats is kStatCount doubles in kStatNames order
    for (std::size_t k = 0; k < kStatCount; ++k) {
      x[static_cast<Eigen::Index>(m * kStatCount + k)] = p[k];
      f.features.emplace_back(metrics_[m] + "." + kStatNames[k], p[k]);
    }
  }
  // Score against what was seen before, then learn from it.
  if (model_ && pca_.count() >= 2) {
    f.anomaly = model_->scoreAndLearn(pca_.normalise(x));
  } else {
    f.anomaly = pca_.reconstructionError(x);
  }
  pca_.update(x);
  Eigen::VectorXd v = pca_.project(x);
  f.vector.assign(v.data(), v.data() + v.size());
  return f;
}
static_assert(sizeof(WindowStats) == kStatCount * sizeof(double));

Status Pipeline::saveState(const fs::path& file) const {
  nlohmann::json j;
  j["version"] = 1;
  j["window"] = config_.window;
  j["hop"] = config_.hop;
  j["dim"] = config_.dim;
  j["max_period"] = config_.max_period;
  j["metrics"] = metrics_;
  j["pca"] = pca_.save();
  return writeFileAtomically(file, j.dump());
}

Result<Pipeline> Pipeline::loadState(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot open", file.string());
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (j.at("version").get<int>() != 1) {
      return fail(ErrorCode::kParse, "{}: unknown state version {}", file.string(), j.at("version").dump());
    }
    Config c;
    c.window = j.at("window");
    c.hop = j.at("hop");
    c.dim = j.at("dim");
    c.max_period = j.at("max_period");
    Pipeline p(c, j.at("metrics").get<std::vector<std::string>>());
    auto pca = IncrementalPca::load(j.at("pca"));
    if (!pca) return fail(ErrorCode::kParse, "{}: {}", file.string(), pca.error().message);
    if (pca->inputDim() != p.metrics_.size() * kStatCount) {
      return fail(ErrorCode::kParse, "{}: PCA input {} does not match {} metrics", file.string(),
                  pca->inputDim(), p.metrics_.size());
    }
    p.pca_ = std::move(*pca);
    return p;
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kParse, "{}: {}", file.string(), e.what());
  }
}

nlohmann::json toJson(const Fingerprint& f) {
  nlohmann::json j;
  j["time_ms"] = f.time_ms;
  j["vector"] = f.vector;
  j["anomaly"] = f.anomaly;
  nlohmann::json feats = nlohmann::json::object();
  // JSON has no NaN: a missing feature is null.
  for (const auto& [k, v] : f.features) feats[k] = std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
  j["features"] = feats;
  return j;
}

std::vector<std::string> resourceMetrics() {
  std::vector<std::string> out;
  for (Resource r : kAllResources) out.emplace_back(name(r));
  return out;
}

std::vector<Fingerprint> fingerprintSeries(const trace::Series& series, Pipeline& pipeline) {
  std::vector<Fingerprint> out;
  const std::size_t n = series.size();
  std::array<double, kResourceCount> row{};
  for (std::size_t k = 0; k < n; ++k) {
    for (Resource r : kAllResources) {
      const auto& u = series.usage[index(r)];
      row[index(r)] = u.empty() ? kNaN : u[k];
    }
    const std::int64_t t = series.start + static_cast<std::int64_t>(k) * series.step_seconds;
    if (auto f = pipeline.push(t * 1000, row)) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace foresight::fingerprint
