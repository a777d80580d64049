// Torch-free parts of the LSTM forecaster: features, model file, plain C++ step.
#include "foresight/predict/lstm/model.h"

#include "foresight/core/files.h"

#include "foresight/fingerprint/fingerprint.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

namespace foresight::predict::lstm {
namespace {

constexpr std::string_view kMagic = "FORESIGHT-LSTM\n";
constexpr std::size_t kTrailerSize = 16;  // "\nCRC32 " + 8 hex digits + "\n"
constexpr double kTwoPi = 6.283185307179586;

std::vector<FeatureSpec> makeKnownFeatures() {
  std::vector<FeatureSpec> f;
  for (Resource r : kAllResources) {
    f.push_back({"u_" + std::string(name(r)), "usage", false});
    f.push_back({"seen_" + std::string(name(r)), "usage", false});
  }
  for (Resource r : kAllResources) f.push_back({"log_scale_" + std::string(name(r)), "level", false});
  for (const char* n : {"tod_sin", "tod_cos", "dow_sin", "dow_cos"}) f.push_back({n, "time", false});
  // Explicit summary of the recent peak and trough (what the hour-max `reactive` baseline acts
  // on), which the LSTM otherwise has to learn to keep in its state.
  for (Resource r : kAllResources) {
    f.push_back({"zmax12_" + std::string(name(r)), "window", false});
    f.push_back({"zmin12_" + std::string(name(r)), "window", false});
  }
  // One day earlier, in the model's steps: the usage a day before the next step and the max over
  // the horizon's window a day before (what recurs daily: nightly jobs, backups), which the LSTM
  // cannot carry in its state across a day of steps.
  for (Resource r : kAllResources) {
    f.push_back({"zday_" + std::string(name(r)), "day", false});
    f.push_back({"zdaymax_" + std::string(name(r)), "day", false});
  }
  f.push_back({"day_present", "day", false});
  for (const char* n : {"log_cpu_cores", "log_cpu_mhz_per_core", "log_memory_capacity", "metadata_present"})
    f.push_back({n, "metadata", true});
  for (std::size_t i = 0; i < kFingerprintDims; ++i) f.push_back({"fp_" + std::to_string(i), "fingerprint", true});
  f.push_back({"fingerprint_present", "fingerprint", true});
  return f;
}

int canonicalIndex(const std::string& n) {
  const auto& k = knownFeatures();
  for (std::size_t i = 0; i < k.size(); ++i)
    if (k[i].name == n) return static_cast<int>(i);
  return -1;
}

double softplus(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

// Strictly ascending within (0, 1): interpolate() divides by the gap between neighbours.
bool ascendingLevels(const std::vector<double>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!(v[i] > (i ? v[i - 1] : 0.0) && v[i] < 1)) return false;
  return true;
}
// A conformal offset is added in z = log1p(u / scale) space: e^50 times the workload's scale is
// beyond any usage (the shipped model's largest offset is 4.1), and far from where expm1
// overflows to an infinite forecast.
constexpr double kMaxConformalOffset = 50;
// Normalised inputs stay finite floats: (x - mean) / std with |mean| and 1 / std at most 1e6
// (fitted means are logs of usages and capacities, stds at least 1e-3).
constexpr double kMaxNormaliser = 1e6;
constexpr std::size_t kMaxDimension = 100000;

std::string hex8(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

std::uint32_t crcOf(const char* data, std::size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {  // zlib takes uInt lengths
    const uInt chunk = static_cast<uInt>(std::min<std::size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk, n -= chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

}  // namespace

const std::vector<FeatureSpec>& knownFeatures() {
  static const std::vector<FeatureSpec> k = makeKnownFeatures();
  return k;
}

double interpolate(const std::vector<double>& levels, std::span<const double> q, double level) {
  if (level <= levels.front()) return q.front();
  if (level >= levels.back()) return q[levels.size() - 1];
  auto it = std::upper_bound(levels.begin(), levels.end(), level);
  const std::size_t hi = static_cast<std::size_t>(it - levels.begin()), lo = hi - 1;
  const double w = (level - levels[lo]) / (levels[hi] - levels[lo]);
  return q[lo] + w * (q[hi] - q[lo]);
}

std::array<std::size_t, kResourceCount> LstmModel::anchors() const {
  std::array<std::size_t, kResourceCount> a;
  a.fill(SIZE_MAX);
  for (Resource r : kAllResources)
    for (std::size_t i = 0; i < schema.size(); ++i)
      if (schema[i].name == "u_" + std::string(name(r))) a[index(r)] = i;
  return a;
}

double LstmModel::conformalOffset(std::size_t r, std::size_t h1, double level) const {
  if (conformal.empty() || cal_levels.empty()) return 0.0;
  const std::size_t L = cal_levels.size();
  return interpolate(cal_levels, std::span<const double>(conformal.data() + (r * horizon + h1 - 1) * L, L), level);
}

LstmModel LstmModel::initial(std::size_t hidden, std::size_t horizon, std::vector<double> levels,
                             std::uint64_t seed, bool window_features, bool day_features) {
  LstmModel m;
  m.hidden = hidden;
  m.horizon = horizon;
  m.levels = std::move(levels);
  for (const auto& f : knownFeatures())
    if ((window_features || f.block != "window") && (day_features || f.block != "day")) m.schema.push_back(f);
  m.cal_levels = kDefaultCalLevels;
  m.conformal.assign(kResourceCount * horizon * m.cal_levels.size(), 0.0);
  const std::size_t F = m.inputs(), H = hidden, O = m.outputs();
  std::mt19937_64 rng(seed);
  const float k = 1.0f / std::sqrt(static_cast<float>(H));
  std::uniform_real_distribution<float> u(-k, k);
  auto fill = [&](std::vector<float>& v, std::size_t n) {
    v.resize(n);
    for (float& x : v) x = u(rng);
  };
  fill(m.w_ih, 4 * H * F);
  fill(m.w_hh, 4 * H * H);
  fill(m.b, 4 * H);
  for (std::size_t i = H; i < 2 * H; ++i) m.b[i] += 1.0f;  // forget gate open at start
  fill(m.head_w, O * H);
  fill(m.head_b, O);
  for (auto& f : m.schema) m.normalisers.push_back({f.name, 0.0, 1.0});
  return m;
}

Status LstmModel::validate(const std::string& what) const {
  const std::size_t F = inputs(), H = hidden, O = outputs();
  if (H == 0 || horizon == 0 || levels.size() < 2 || F == 0)
    return fail(ErrorCode::kParse, "{}: empty hidden size, horizon, levels or schema", what);
  // Bounded before the shapes below are multiplied out, which would wrap around.
  if (std::max({H, horizon, levels.size(), F}) > kMaxDimension)
    return fail(ErrorCode::kParse, "{}: hidden size {}, horizon {}, {} levels or {} inputs beyond {}", what, H,
                horizon, levels.size(), F, kMaxDimension);
  if (!ascendingLevels(levels))
    return fail(ErrorCode::kParse, "{}: quantile levels must ascend within (0, 1)", what);
  if (!cal_levels.empty() && !ascendingLevels(cal_levels))
    return fail(ErrorCode::kParse, "{}: calibration levels (cal_levels) must ascend within (0, 1)", what);
  for (double c : conformal)
    if (!(std::abs(c) <= kMaxConformalOffset))
      return fail(ErrorCode::kParse, "{}: conformal offset {} is not a finite number within ±{}", what, c,
                  kMaxConformalOffset);
  for (const auto& n : normalisers)
    if (!(std::abs(n.mean) <= kMaxNormaliser) || !(n.std >= 1 / kMaxNormaliser && n.std <= kMaxNormaliser))
      return fail(ErrorCode::kParse, "{}: normaliser of '{}' (mean {}, std {}) is out of range (|mean| <= {}, std in [{}, {}])",
                  what, n.name, n.mean, n.std, kMaxNormaliser, 1 / kMaxNormaliser, kMaxNormaliser);
  if (step_seconds < 0) return fail(ErrorCode::kParse, "{}: negative step_seconds {}", what, step_seconds);
  if (w_ih.size() != 4 * H * F || w_hh.size() != 4 * H * H || b.size() != 4 * H ||
      head_w.size() != O * H || head_b.size() != O)
    return fail(ErrorCode::kParse, "{}: weight shapes do not match hidden={} inputs={} outputs={}",
                what, H, F, O);
  if (!conformal.empty() && conformal.size() != kResourceCount * horizon * cal_levels.size())
    return fail(ErrorCode::kParse, "{}: conformal table has {} values, expected {}", what,
                conformal.size(), kResourceCount * horizon * cal_levels.size());
  if (residual)
    for (std::size_t a : anchors())
      if (a == SIZE_MAX) return fail(ErrorCode::kInvalidArgument, "{}: residual model without u_<resource> inputs", what);
  for (const auto& f : schema) {
    if (canonicalIndex(f.name) < 0 && !f.optional)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: incompatible model: input feature '{}' is unknown to this build", what, f.name);
  }
  if (fingerprint_window > 0) {
    if (fingerprint_window < 2)
      return fail(ErrorCode::kParse, "{}: fingerprint window of {} step(s), need at least 2", what, fingerprint_window);
    if (!hasBlock("fingerprint"))
      return fail(ErrorCode::kParse, "{}: fingerprint window set but no fingerprint columns", what);
  }
  if (hasBlock("day")) {
    if (!dayBlockFits(step_seconds, horizon))
      return fail(ErrorCode::kParse, "{}: the day block needs a step that divides a day into at least {} steps (step_seconds {})",
                  what, horizon, step_seconds);
  }
  for (const auto* v : {&w_ih, &w_hh, &b, &head_w, &head_b})
    for (float x : *v)
      if (!std::isfinite(x)) return fail(ErrorCode::kParse, "{}: non-finite weight", what);
  return ok();
}

int formatVersionFor(const LstmModel& m) {
  return m.scale_restart > 0 ? 3 : m.fingerprint_window > 0 ? 2 : 1;
}

Status saveModel(const LstmModel& m, const std::filesystem::path& file) {
  if (auto s = m.validate(file.string()); !s) return s;
  nlohmann::json h;
  h["format_version"] = formatVersionFor(m);
  h["architecture"] = "lstm1+linear quantile heads (base + cumulative softplus), z=log1p(u/scale)";
  h["hidden"] = m.hidden;
  h["horizon"] = m.horizon;
  h["levels"] = m.levels;
  h["residual"] = m.residual;
  if (m.fingerprint_window > 0) h["fingerprint_window"] = m.fingerprint_window;
  if (m.scale_restart > 0) h["scale_restart"] = m.scale_restart;
  if (m.step_seconds > 0) h["step_seconds"] = m.step_seconds;
  h["resources"] = {"cpu", "memory", "disk_io", "network"};
  for (const auto& f : m.schema) h["schema"].push_back({{"name", f.name}, {"block", f.block}, {"optional", f.optional}});
  for (const auto& n : m.normalisers) h["normalisers"].push_back({{"name", n.name}, {"mean", n.mean}, {"std", n.std}});
  h["cal_levels"] = m.cal_levels;
  h["conformal"] = m.conformal;
  const std::vector<std::pair<const char*, const std::vector<float>*>> tensors = {
      {"w_ih", &m.w_ih}, {"w_hh", &m.w_hh}, {"b", &m.b}, {"head_w", &m.head_w}, {"head_b", &m.head_b}};
  std::string blob;
  for (const auto& [n, v] : tensors) {
    h["tensors"].push_back({{"name", n}, {"floats", v->size()}});
    blob.append(reinterpret_cast<const char*>(v->data()), v->size() * sizeof(float));
  }
  h["blob_bytes"] = blob.size();
  h["provenance"] = m.provenance.empty() ? nlohmann::json::object() : nlohmann::json::parse(m.provenance, nullptr, false);
  std::string text(kMagic);
  text += h.dump() + "\n";
  text += blob;
  text += "\nCRC32 " + hex8(crcOf(text.data(), text.size())) + "\n";

  return writeFileAtomically(file, text);
}

Result<Ensemble> loadEnsemble(std::span<const std::filesystem::path> files) {
  if (files.empty()) return fail(ErrorCode::kInvalidArgument, "no model file given");
  Ensemble e;
  for (const auto& f : files) {
    auto m = loadModel(f);
    if (!m) return tl::unexpected(m.error());
    if (!e.empty()) {
      const LstmModel& first = *e.front();
      if (m->horizon != first.horizon)
        return fail(ErrorCode::kInvalidArgument, "{}: horizon {} differs from {}'s {}: members of one forecaster "
                    "must forecast the same steps", f.string(), m->horizon, files[0].string(), first.horizon);
      if (m->step_seconds != first.step_seconds)
        return fail(ErrorCode::kInvalidArgument, "{}: trained on {}-s steps, {} on {}-s steps: members of one "
                    "forecaster must forecast the same steps", f.string(), m->step_seconds, files[0].string(),
                    first.step_seconds);
    }
    e.push_back(std::make_shared<const LstmModel>(std::move(*m)));
  }
  return e;
}

Result<std::vector<std::filesystem::path>> modelList(std::string_view text) {
  std::vector<std::filesystem::path> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    if (comma == pos)
      return fail(ErrorCode::kInvalidArgument, "'{}': expected model files separated by commas", text);
    out.emplace_back(text.substr(pos, comma - pos));
    if (comma == text.size()) return out;
    pos = comma + 1;
  }
}

std::string stepMismatch(const LstmModel& m, std::int64_t trace_step_seconds) {
  if (m.step_seconds <= 0 || trace_step_seconds <= 0 || m.step_seconds == trace_step_seconds) return {};
  return fmt::format(
      "lstm: the model was trained on {}-s steps, this trace has {}-s steps: its forecasts "
      "follow {}-s dynamics and its horizon of {} steps spans {} s here; {}train a model on this "
      "trace (foresight train) for its own time scale",
      m.step_seconds, trace_step_seconds, m.step_seconds, m.horizon,
      static_cast<std::int64_t>(m.horizon) * trace_step_seconds,
      // A finer trace can be averaged up to the model's step; a coarser one cannot be refined.
      trace_step_seconds < m.step_seconds ? fmt::format("resample it to the model's step (--step {}) or ", m.step_seconds) : "");
}

Result<LstmModel> loadModel(const std::filesystem::path& file) {
  const std::string what = file.string();
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot open model file", what);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  if (text.compare(0, kMagic.size(), kMagic) != 0)
    return fail(ErrorCode::kParse, "{}: not a Foresight LSTM model file (bad magic)", what);
  if (text.size() < kMagic.size() + kTrailerSize || text.compare(text.size() - kTrailerSize, 7, "\nCRC32 ") != 0)
    return fail(ErrorCode::kParse, "{}: truncated model file (no checksum trailer)", what);
  const std::size_t body = text.size() - kTrailerSize;
  const std::string want = text.substr(body + 7, 8);
  if (hex8(crcOf(text.data(), body)) != want)
    return fail(ErrorCode::kParse, "{}: corrupt model file (CRC-32 mismatch)", what);
  const std::size_t eol = text.find('\n', kMagic.size());
  if (eol == std::string::npos || eol > body) return fail(ErrorCode::kParse, "{}: no header line", what);
  auto h = nlohmann::json::parse(text.begin() + static_cast<std::ptrdiff_t>(kMagic.size()),
                                 text.begin() + static_cast<std::ptrdiff_t>(eol), nullptr, false);
  if (h.is_discarded() || !h.is_object()) return fail(ErrorCode::kParse, "{}: header is not JSON", what);
  LstmModel m;
  try {
    m.format_version = h.at("format_version").get<int>();
    if (m.format_version < 1 || m.format_version > kFormatVersion)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: incompatible model format version {} (this build reads versions 1 to {})", what,
                  m.format_version, kFormatVersion);
    m.hidden = h.at("hidden").get<std::size_t>();
    m.horizon = h.at("horizon").get<std::size_t>();
    m.levels = h.at("levels").get<std::vector<double>>();
    m.residual = h.value("residual", false);  // files written before residual heads had none
    m.fingerprint_window = h.value("fingerprint_window", std::size_t{0});
    m.step_seconds = h.value("step_seconds", std::int64_t{0});
    m.scale_restart = h.value("scale_restart", std::uint32_t{0});
    if (m.format_version != formatVersionFor(m))
      return fail(ErrorCode::kParse, "{}: format version {} with a fingerprint window of {} and a scale restart of {} (version {} expected)",
                  what, m.format_version, m.fingerprint_window, m.scale_restart, formatVersionFor(m));
    for (const auto& f : h.at("schema")) m.schema.push_back({f.at("name"), f.at("block"), f.at("optional")});
    for (const auto& n : h.at("normalisers")) m.normalisers.push_back({n.at("name"), n.at("mean"), n.at("std")});
    m.cal_levels = h.at("cal_levels").get<std::vector<double>>();
    m.conformal = h.at("conformal").get<std::vector<double>>();
    const std::size_t blob_bytes = h.at("blob_bytes").get<std::size_t>();
    if (eol + 1 + blob_bytes != body)
      return fail(ErrorCode::kParse, "{}: blob is {} bytes, header says {}", what, body - eol - 1, blob_bytes);
    std::size_t off = eol + 1;
    for (const auto& t : h.at("tensors")) {
      const std::string n = t.at("name");
      const std::size_t count = t.at("floats");
      std::vector<float>* dst = n == "w_ih" ? &m.w_ih : n == "w_hh" ? &m.w_hh : n == "b" ? &m.b
                              : n == "head_w" ? &m.head_w : n == "head_b" ? &m.head_b : nullptr;
      if (!dst) return fail(ErrorCode::kInvalidArgument, "{}: incompatible model: unknown tensor '{}'", what, n);
      // Against the bytes left, before multiplying: a huge count would wrap count * 4 around.
      if (count > (body - off) / sizeof(float))
        return fail(ErrorCode::kParse, "{}: tensor '{}' of {} floats overruns the file", what, n, count);
      dst->resize(count);
      std::memcpy(dst->data(), text.data() + off, count * sizeof(float));
      off += count * sizeof(float);
    }
    if (h.contains("provenance")) m.provenance = h["provenance"].dump();
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kParse, "{}: bad header: {}", what, e.what());
  }
  if (auto s = m.validate(what); !s) return tl::unexpected(s.error());
  return m;
}

std::uint32_t scaleRestartSamples(const LstmModel& m, double sample_seconds) {
  if (m.scale_restart == 0 || m.step_seconds <= 0 || !(sample_seconds > 0)) return m.scale_restart;
  const double n = std::round(static_cast<double>(m.scale_restart) * static_cast<double>(m.step_seconds) / sample_seconds);
  return static_cast<std::uint32_t>(std::clamp(n, 1.0, static_cast<double>(UINT32_MAX)));
}

FeatureBuilder::FeatureBuilder(const LstmModel& model, const std::map<std::string, double>& metadata,
                               double sample_seconds)
    : scale_(runningScales(scaleRestartSamples(model, sample_seconds))) {
  for (auto& w : window_) w.fill(NAN);
  const auto& known = knownFeatures();
  canonical_.assign(known.size(), 0.0);
  fixed_.assign(known.size(), NAN);
  mean_.assign(known.size(), 0.0);
  inv_std_.assign(known.size(), 1.0);
  for (const auto& n : model.normalisers) {
    const int i = canonicalIndex(n.name);
    if (i < 0) continue;
    mean_[static_cast<std::size_t>(i)] = n.mean;
    inv_std_[static_cast<std::size_t>(i)] = n.std > 0 ? 1.0 / n.std : 1.0;
  }
  for (const auto& f : model.schema) source_.push_back(canonicalIndex(f.name));
  auto meta = [&](const char* k) {
    auto it = metadata.find(k);
    return it != metadata.end() && it->second > 0 ? it->second : NAN;
  };
  const double cores = meta("cpu_cores"), mhz = meta("cpu_capacity_mhz"), mem = meta("memory_capacity_bytes");
  if (!std::isnan(cores) && !std::isnan(mhz) && !std::isnan(mem)) {
    fixed_[static_cast<std::size_t>(canonicalIndex("log_cpu_cores"))] = std::log(cores);
    fixed_[static_cast<std::size_t>(canonicalIndex("log_cpu_mhz_per_core"))] = std::log(mhz / cores);
    fixed_[static_cast<std::size_t>(canonicalIndex("log_memory_capacity"))] = std::log(mem);
    fixed_[static_cast<std::size_t>(canonicalIndex("metadata_present"))] = 1.0;
  }
  fp_window_ = model.fingerprint_window;
  for (auto& ring : fp_ring_) ring.assign(fp_window_, NAN);
  if (model.hasBlock("day")) {
    day_lag_ = static_cast<std::size_t>(86400 / model.step_seconds);  // validate() checked the step
    day_horizon_ = model.horizon;
    for (auto& ring : day_ring_) ring.assign(day_lag_, NAN);
  }
}

void FeatureBuilder::refreshFingerprint(std::size_t oldest) {
  std::vector<double> window(fp_window_);
  for (Resource r : kAllResources) {
    const auto& ring = fp_ring_[index(r)];
    for (std::size_t i = 0; i < fp_window_; ++i) window[i] = ring[(oldest + i) % fp_window_];
    const fingerprint::WindowShape shape = fingerprint::windowShape(window);
    auto slot = [&](std::size_t i) { return static_cast<std::size_t>(canonicalIndex("fp_" + std::to_string(i))); };
    // A resource never seen in the window: 0, the neutral value of both.
    fixed_[slot(2 * index(r))] = std::isnan(shape.burstiness) ? 0.0 : shape.burstiness;
    fixed_[slot(2 * index(r) + 1)] = std::isnan(shape.acf1) ? 0.0 : shape.acf1;
  }
  fixed_[static_cast<std::size_t>(canonicalIndex("fingerprint_present"))] = 1.0;
}

void FeatureBuilder::step(const Observation& o, std::span<float> x) {
  std::size_t c = 0;
  for (Resource r : kAllResources) {
    const double u = o.usage[index(r)];
    scale_[index(r)].add(u);
    const bool seen = !std::isnan(u);
    canonical_[c++] = seen ? z(r, u) : 0.0;
    canonical_[c++] = seen ? 1.0 : 0.0;
  }
  for (Resource r : kAllResources) {
    canonical_[c] = (std::log(scale_[index(r)].value()) - mean_[c]) * inv_std_[c];
    ++c;
  }
  const double day = static_cast<double>(((o.time % 86400) + 86400) % 86400) / 86400.0;
  const double days = std::floor(static_cast<double>(o.time) / 86400.0);
  const double week = std::fmod(days + 3.0, 7.0) / 7.0;  // 1970-01-01 was a Thursday; 0 = Monday
  canonical_[c++] = std::sin(kTwoPi * day);
  canonical_[c++] = std::cos(kTwoPi * day);
  canonical_[c++] = std::sin(kTwoPi * week);
  canonical_[c++] = std::cos(kTwoPi * week);
  // Window extremes in z units of the current scale (z is monotone in u, so max z = z(max u)).
  for (Resource r : kAllResources) {
    auto& w = window_[index(r)];
    w[steps_ % kWindow] = o.usage[index(r)];
    double hi = -INFINITY, lo = INFINITY;
    for (double u : w)
      if (!std::isnan(u)) hi = std::max(hi, u), lo = std::min(lo, u);
    canonical_[c++] = std::isinf(hi) ? 0.0 : z(r, hi);
    canonical_[c++] = std::isinf(lo) ? 0.0 : z(r, lo);
  }
  // The ring holds steps t-L+1..t (t = steps_), so step t+k-L is at (t+k) % L for k = 1..horizon.
  const bool day_seen = day_lag_ > 0 && steps_ + 1 >= day_lag_;
  for (Resource r : kAllResources) {
    if (day_lag_ > 0) day_ring_[index(r)][steps_ % day_lag_] = static_cast<float>(o.usage[index(r)]);
    if (!day_seen) {
      canonical_[c++] = 0.0;
      canonical_[c++] = 0.0;
      continue;
    }
    const auto& ring = day_ring_[index(r)];
    const double next = ring[(steps_ + 1) % day_lag_];
    double hi = -INFINITY;
    for (std::size_t k = 1; k <= day_horizon_; ++k) {
      const double u = ring[(steps_ + k) % day_lag_];
      if (!std::isnan(u)) hi = std::max(hi, u);
    }
    canonical_[c++] = std::isnan(next) ? 0.0 : z(r, next);
    canonical_[c++] = std::isinf(hi) ? 0.0 : z(r, hi);
  }
  canonical_[c++] = day_seen ? 1.0 : 0.0;
  if (fp_window_ > 0) {
    for (Resource r : kAllResources) fp_ring_[index(r)][steps_ % fp_window_] = o.usage[index(r)];
    // Causal: the fingerprint of step t uses steps up to t only.
    if (steps_ + 1 >= fp_window_ && (steps_ + 1 - fp_window_) % kFingerprintHop == 0) {
      refreshFingerprint((steps_ + 1) % fp_window_);
    }
  }
  ++steps_;
  for (; c < canonical_.size(); ++c) {
    const double v = fixed_[c];
    const bool flag = knownFeatures()[c].name.ends_with("_present");
    canonical_[c] = std::isnan(v) ? 0.0 : flag ? v : (v - mean_[c]) * inv_std_[c];
  }
  for (std::size_t i = 0; i < source_.size(); ++i)
    x[i] = source_[i] < 0 ? 0.0f : static_cast<float>(canonical_[static_cast<std::size_t>(source_[i])]);
}

CpuStepper::CpuStepper(const LstmModel& model)
    : m_(model), h_(model.hidden, 0.0f), c_(model.hidden, 0.0f), gates_(4 * model.hidden),
      anchor_cols_(model.anchors()) {}

void CpuStepper::step(std::span<const float> x) {
  const std::size_t H = m_.hidden, F = m_.inputs();
  if (m_.residual)
    for (std::size_t r = 0; r < kResourceCount; ++r) anchor_[r] = x[anchor_cols_[r]];
  for (std::size_t j = 0; j < 4 * H; ++j) {
    float acc = m_.b[j];
    const float* wi = m_.w_ih.data() + j * F;
    for (std::size_t k = 0; k < F; ++k) acc += wi[k] * x[k];
    const float* wh = m_.w_hh.data() + j * H;
    for (std::size_t k = 0; k < H; ++k) acc += wh[k] * h_[k];
    gates_[j] = acc;
  }
  auto sig = [](float v) { return 1.0f / (1.0f + std::exp(-v)); };
  for (std::size_t k = 0; k < H; ++k) {
    const float i = sig(gates_[k]), f = sig(gates_[H + k]), g = std::tanh(gates_[2 * H + k]),
                o = sig(gates_[3 * H + k]);
    c_[k] = f * c_[k] + i * g;
    h_[k] = o * std::tanh(c_[k]);
  }
}

void CpuStepper::quantiles(std::size_t r, std::size_t h1, std::span<double> out) const {
  const std::size_t H = m_.hidden, Q = m_.levels.size();
  for (std::size_t q = 0; q < Q; ++q) {
    const std::size_t j = m_.outIndex(r, h1, q);
    const float* w = m_.head_w.data() + j * H;
    float acc = m_.head_b[j];
    for (std::size_t k = 0; k < H; ++k) acc += w[k] * h_[k];
    out[q] = q == 0 ? acc + (m_.residual ? anchor_[r] : 0.0f) : out[q - 1] + softplus(acc);
  }
}

}  // namespace foresight::predict::lstm
