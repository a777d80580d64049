// LSTM forecaster: training on a synthetic fixture, model file integrity, streaming == sequence,
// non-crossing quantiles, causality and online calibration of the `lstm` policy.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "foresight/predict/lstm/model.h"
#include "foresight/predict/lstm/stream.h"
#include "foresight/predict/lstm/torch_api.h"
#include "foresight/sim/backtest.h"
#include "support/mutate.h"

namespace foresight::predict::lstm {
namespace {

namespace fs = std::filesystem;

// One folder per test process, removed when the process exits.
fs::path tempDir() {
  struct Owned {
    fs::path path = fs::temp_directory_path() / ("foresight_lstm_test_" + std::to_string(::getpid()));
    ~Owned() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static const Owned dir;
  fs::create_directories(dir.path);  // a test may have removed it
  return dir.path;
}

// Daily sine plus noise on cpu and memory, 5-minute steps; `phase` varies per series.
// The model's input column named n (SIZE_MAX: none).
std::size_t columnOf(const LstmModel& m, const std::string& n) {
  for (std::size_t i = 0; i < m.schema.size(); ++i)
    if (m.schema[i].name == n) return i;
  return SIZE_MAX;
}

trace::Series sineSeries(const std::string& id, std::size_t steps, double phase, std::uint64_t seed) {
  trace::Series s;
  s.id = id;
  s.start = 1372636800;  // 2013-07-01 00:00 UTC
  s.step_seconds = 300;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.1);
  s.usage[index(Resource::kCpu)].resize(steps);
  s.usage[index(Resource::kMemory)].resize(steps);
  for (std::size_t t = 0; t < steps; ++t) {
    const double day = static_cast<double>(t) / 288.0;
    s.usage[index(Resource::kCpu)][t] = std::max(0.0, 1.0 + 0.8 * std::sin(6.283185 * day + phase) + noise(rng));
    s.usage[index(Resource::kMemory)][t] = 1e9 * (1.0 + 0.1 * std::sin(6.283185 * day + phase)) * (1 + 0.1 * noise(rng));
  }
  s.usage[index(Resource::kCpu)][10] = NAN;  // a missing value must not poison the net
  s.metadata = {{"cpu_cores", 4}, {"cpu_capacity_mhz", 10400}, {"memory_capacity_bytes", 8e9}};
  return s;
}

TrainOptions tinyOptions() {
  TrainOptions o;
  o.hidden = 8;
  o.horizon = 3;
  o.batch = 4;
  o.bptt = 48;
  o.max_epochs = 4;
  o.patience = 10;
  o.lr = 1e-2;
  o.holdout = 0.25;
  o.train_fraction = 0.5;
  return o;
}

std::vector<trace::Series> fixture() {
  std::vector<trace::Series> v;
  for (int i = 0; i < 8; ++i) v.push_back(sineSeries(std::string("s").append(std::to_string(i)), 288 * 3, 0.7 * i, 100 + i));
  return v;
}

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void writeAll(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}
// Rewrites the CRC trailer so that only the content change is tested.
std::string withFreshCrc(std::string text) {
  const std::size_t body = text.size() - 16;
  text.resize(body);
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08lx", crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(text.data()), static_cast<uInt>(body)));
  return text + "\nCRC32 " + buf + "\n";
}

TEST(LstmTrain, LossFallsAndQuantilesDoNotCross) {
  setTorchThreads(1);
  auto rep = train(fixture(), tinyOptions());
  ASSERT_TRUE(rep) << rep.error().message;
  ASSERT_EQ(rep->epochs.size(), 4u);
  EXPECT_LT(rep->epochs.back().train_loss, 0.8 * rep->epochs.front().train_loss);
  EXPECT_LT(rep->epochs.back().val_loss, rep->epochs.front().val_loss);
  EXPECT_GT(rep->train_series, 0u);
  EXPECT_GT(rep->cal_series, 0u);
  EXPECT_EQ(rep->model.step_seconds, 300);  // the fixture's step

  auto f = forecastSeries({std::make_shared<const LstmModel>(rep->model)}, sineSeries("x", 288 * 2, 2.0, 7), 400);
  ASSERT_TRUE(f) << f.error().message;
  ASSERT_EQ(f->horizon(), 3u);
  for (Resource r : {Resource::kCpu, Resource::kMemory})
    for (const auto& q : f->values[index(r)])
      for (std::size_t k = 1; k < q.size(); ++k) EXPECT_LE(q[k - 1], q[k]);
  EXPECT_TRUE(f->values[index(Resource::kDiskIo)].empty());
  // Memory is ~1e9 here; the median forecast should be of that order, not of the scale floor.
  EXPECT_GT(f->quantile(Resource::kMemory, 1, 0.5), 5e8);
  EXPECT_LT(f->quantile(Resource::kMemory, 1, 0.5), 2e9);
}

TEST(LstmTrain, SameSeedSameModel) {
  setTorchThreads(1);
  auto o = tinyOptions();
  o.max_epochs = 1;
  auto a = train(fixture(), o), b = train(fixture(), o);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->model.w_ih, b->model.w_ih);
  EXPECT_EQ(a->model.head_w, b->model.head_w);
}

// --missing-resources: copies of training series without some resources join the training part
// only; the held-back workloads stay those of a run without it.
TEST(LstmTrain, MissingResourcesAddsCopiesAndKeepsTheSplit) {
  setTorchThreads(1);
  auto o = tinyOptions();
  o.max_epochs = 1;
  auto plain = train(fixture(), o);
  o.missing_resources = 1;  // every series: the fixture's only droppable resource is memory
  auto aug = train(fixture(), o);
  ASSERT_TRUE(plain && aug);
  EXPECT_EQ(plain->augmented_series, 0u);
  EXPECT_EQ(aug->augmented_series, aug->train_series);
  EXPECT_EQ(aug->train_series, plain->train_series);
  EXPECT_EQ(aug->val_index, plain->val_index);
  EXPECT_EQ(aug->train_steps, 2 * plain->train_steps);
  EXPECT_NE(aug->model.w_ih, plain->model.w_ih);  // the copies gave gradients
}

// --split-seed: the held-back workloads follow it, not the seed; giving the seed itself changes
// nothing, so models trained before the option still reproduce.
TEST(LstmTrain, SplitSeedFixesTheHeldBackWorkloads) {
  setTorchThreads(1);
  auto o = tinyOptions();
  o.max_epochs = 1;
  o.holdout = 0.5;
  auto vals = [&](std::uint64_t seed, std::optional<std::uint64_t> split) {
    o.seed = seed;
    o.split_seed = split;
    auto r = train(fixture(), o);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : TrainReport{};
  };
  const auto one = vals(1, std::nullopt), two = vals(2, std::nullopt), two_on_one = vals(2, 1u),
             one_on_one = vals(1, 1u);
  ASSERT_NE(one.val_index, two.val_index) << "the fixture's seeds 1 and 2 must split differently";
  EXPECT_EQ(two_on_one.val_index, one.val_index);
  EXPECT_NE(two_on_one.model.w_ih, one.model.w_ih);  // the weights still follow the seed
  EXPECT_EQ(one_on_one.val_index, one.val_index);
  EXPECT_EQ(one_on_one.model.w_ih, one.model.w_ih);
  // What train held back is what splitWorkloads gives (the backtest's --validation-of relies on it).
  for (const auto& [rep, seed] : {std::pair{one, 1u}, std::pair{two, 2u}}) {
    auto s = splitWorkloads(fixture(), o.train_fraction, o.horizon, o.holdout, seed);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->validation, rep.val_index);
  }
}

TEST(LstmTrain, SplitHoldsBackHalfForValidationHalfForCalibrationAndSkipsShortSeries) {
  std::vector<trace::Series> v;
  for (int i = 0; i < 20; ++i) v.push_back(sineSeries(std::string("s").append(std::to_string(i)), i == 3 ? 20 : 200, 0, i));
  auto s = splitWorkloads(v, 0.5, /*horizon=*/12, /*holdout=*/0.2, /*seed=*/7);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->validation.size(), 2u);  // round(0.2 × 19) = 4 held back
  EXPECT_EQ(s->calibration.size(), 2u);
  EXPECT_EQ(s->train.size(), 15u);
  std::vector<std::size_t> all = s->train;
  all.insert(all.end(), s->validation.begin(), s->validation.end());
  all.insert(all.end(), s->calibration.begin(), s->calibration.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());      // disjoint
  EXPECT_EQ(std::find(all.begin(), all.end(), 3u), all.end());            // 10 steps read < horizon + 2
  EXPECT_EQ(s->validation, splitWorkloads(v, 0.5, 12, 0.2, 7)->validation);  // seeded
  EXPECT_NE(s->validation, splitWorkloads(v, 0.5, 12, 0.2, 8)->validation);
  v.resize(2);
  EXPECT_FALSE(splitWorkloads(v, 0.5, 12, 0.2, 7));
}

TEST(LstmTrain, TooFewSeriesIsAnError) {
  std::vector<trace::Series> one = {sineSeries("a", 600, 0, 1)};
  auto rep = train(one, tinyOptions());
  ASSERT_FALSE(rep);
  EXPECT_NE(rep.error().message.find("usable series"), std::string::npos);
}

TEST(LstmModelFile, RoundTrip) {
  LstmModel m = LstmModel::initial(6, 4, kDefaultLevels, 3);
  for (std::size_t i = 0; i < m.conformal.size(); ++i) m.conformal[i] = 0.001 * static_cast<double>(i);
  m.normalisers[8].mean = 1.5;
  m.provenance = R"({"command":"test"})";
  const fs::path p = tempDir() / "rt.fsm";
  ASSERT_TRUE(saveModel(m, p));
  for (const auto& e : fs::directory_iterator(p.parent_path()))  // no temporary file beside it
    EXPECT_FALSE(e.path().filename().string().starts_with("rt.fsm.")) << e.path();
  auto l = loadModel(p);
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(l->w_ih, m.w_ih);
  EXPECT_EQ(l->w_hh, m.w_hh);
  EXPECT_EQ(l->b, m.b);
  EXPECT_EQ(l->head_w, m.head_w);
  EXPECT_EQ(l->head_b, m.head_b);
  EXPECT_EQ(l->conformal, m.conformal);
  EXPECT_EQ(l->levels, m.levels);
  ASSERT_EQ(l->schema.size(), m.schema.size());
  for (std::size_t i = 0; i < m.schema.size(); ++i) EXPECT_EQ(l->schema[i].name, m.schema[i].name);
  EXPECT_DOUBLE_EQ(l->normalisers[8].mean, 1.5);
  EXPECT_NE(l->provenance.find("test"), std::string::npos);
  EXPECT_EQ(l->step_seconds, 0);  // not recorded: as in files written before the field
  m.step_seconds = 60;
  ASSERT_TRUE(saveModel(m, p));
  EXPECT_EQ(loadModel(p)->step_seconds, 60);
}

TEST(LstmModelFile, AnotherTraceStepIsWarnedAboutNotRefused) {
  LstmModel m = LstmModel::initial(6, 12, kDefaultLevels, 3);
  EXPECT_EQ(stepMismatch(m, 60), "");  // step not recorded: nothing to compare
  m.step_seconds = 300;
  EXPECT_EQ(stepMismatch(m, 300), "");
  const std::string w = stepMismatch(m, 60);
  EXPECT_NE(w.find("trained on 300-s steps, this trace has 60-s steps"), std::string::npos) << w;
  EXPECT_NE(w.find("12 steps spans 720 s"), std::string::npos) << w;
  EXPECT_NE(w.find("resample it to the model's step (--step 300)"), std::string::npos) << w;
  // A coarser trace cannot be resampled to a finer step: only training is offered.
  const std::string coarse = stepMismatch(m, 3600);
  EXPECT_EQ(coarse.find("--step"), std::string::npos) << coarse;
  EXPECT_NE(coarse.find("foresight train"), std::string::npos) << coarse;
}

// Members of one forecaster must forecast the same steps; a bad member is named.
TEST(LstmEnsemble, MembersLoadTogetherOrTheOneThatDiffersIsNamed) {
  LstmModel a = LstmModel::initial(6, 4, kDefaultLevels, 3), b = LstmModel::initial(6, 4, kDefaultLevels, 4);
  a.step_seconds = b.step_seconds = 300;
  LstmModel longer = LstmModel::initial(6, 6, kDefaultLevels, 5), faster = b;
  longer.step_seconds = 300;
  faster.step_seconds = 60;
  const fs::path pa = tempDir() / "ens-a.fsm", pb = tempDir() / "ens-b.fsm", pl = tempDir() / "ens-long.fsm",
                 pf = tempDir() / "ens-60s.fsm";
  ASSERT_TRUE(saveModel(a, pa) && saveModel(b, pb) && saveModel(longer, pl) && saveModel(faster, pf));
  const std::vector<fs::path> good = {pa, pb};
  auto e = loadEnsemble(good);
  ASSERT_TRUE(e) << e.error().message;
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[1]->w_ih, b.w_ih);  // in the order given
  const std::vector<fs::path> horizon = {pa, pl}, step = {pa, pf}, missing = {pa, tempDir() / "none.fsm"};
  auto h = loadEnsemble(horizon);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message.find(pl.string() + ": horizon 6 differs from " + pa.string() + "'s 4"),
            std::string::npos) << h.error().message;
  auto s = loadEnsemble(step);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find(pf.string() + ": trained on 60-s steps"), std::string::npos) << s.error().message;
  auto m = loadEnsemble(missing);
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("none.fsm"), std::string::npos) << m.error().message;
  EXPECT_FALSE(loadEnsemble({}));
}

TEST(LstmEnsemble, ModelListsAreCommaSeparatedWithoutEmptyEntries) {
  auto two = modelList("a.fsm,dir/b.fsm");
  ASSERT_TRUE(two);
  EXPECT_EQ(*two, (std::vector<fs::path>{"a.fsm", "dir/b.fsm"}));
  ASSERT_TRUE(modelList("one.fsm"));
  EXPECT_EQ(modelList("one.fsm")->size(), 1u);
  for (const char* bad : {"", ",a.fsm", "a.fsm,", "a.fsm,,b.fsm"}) EXPECT_FALSE(modelList(bad)) << bad;
}

// The ensemble's forecast of a series is the mean of its members' (two random models that
// disagree, so neither member's own forecast passes).
TEST(LstmEnsemble, ForecastSeriesAveragesTheMembers) {
  auto a = std::make_shared<const LstmModel>(LstmModel::initial(6, 3, kDefaultLevels, 3));
  auto b = std::make_shared<const LstmModel>(LstmModel::initial(6, 3, kDefaultLevels, 4));
  const trace::Series s = sineSeries("e", 400, 0.5, 2);
  auto fa = forecastSeries({a}, s, 300), fb = forecastSeries({b}, s, 300), fab = forecastSeries({a, b}, s, 300);
  ASSERT_TRUE(fa && fb && fab);
  bool differ = false;
  for (Resource r : {Resource::kCpu, Resource::kMemory})
    for (std::size_t h = 0; h < 3; ++h)
      for (std::size_t q = 0; q < kDefaultLevels.size(); ++q) {
        const double x = fa->values[index(r)][h][q], y = fb->values[index(r)][h][q];
        EXPECT_NEAR(fab->values[index(r)][h][q], (x + y) / 2, 1e-9 * (1 + std::abs(x + y)));
        differ |= std::abs(x - y) > 1e-6 * (1 + std::abs(x));
      }
  EXPECT_TRUE(differ);
}

TEST(LstmModelFile, CorruptTruncatedAndIncompatibleAreRefused) {
  const fs::path dir = tempDir();
  LstmModel m = LstmModel::initial(6, 4, kDefaultLevels, 3);
  const fs::path good = dir / "good.fsm";
  ASSERT_TRUE(saveModel(m, good));
  const std::string text = readAll(good);

  std::string flipped = text;
  flipped[text.size() - 100] ^= 0x40;  // inside the weights
  writeAll(dir / "flipped.fsm", flipped);
  auto e1 = loadModel(dir / "flipped.fsm");
  ASSERT_FALSE(e1);
  EXPECT_NE(e1.error().message.find("flipped.fsm"), std::string::npos);
  EXPECT_NE(e1.error().message.find("CRC"), std::string::npos);

  writeAll(dir / "short.fsm", text.substr(0, text.size() / 2));
  auto e2 = loadModel(dir / "short.fsm");
  ASSERT_FALSE(e2);
  EXPECT_NE(e2.error().message.find("short.fsm"), std::string::npos);

  const std::string newer = fmt::format("\"format_version\":{}", kFormatVersion + 1);
  std::string v3 = text;
  v3.replace(v3.find("\"format_version\":1"), 18, newer);
  writeAll(dir / "v3.fsm", withFreshCrc(v3));
  auto e3 = loadModel(dir / "v3.fsm");
  ASSERT_FALSE(e3);
  EXPECT_NE(e3.error().message.find(fmt::format("incompatible model format version {}", kFormatVersion + 1)),
            std::string::npos);

  std::string unknown = text;
  const std::string key = "\"block\":\"time\",\"name\":\"tod_sin\"";
  ASSERT_NE(unknown.find(key), std::string::npos);
  unknown.replace(unknown.find(key), key.size(), "\"block\":\"time\",\"name\":\"tod_xyz\"");
  writeAll(dir / "unknown.fsm", withFreshCrc(unknown));
  auto e4 = loadModel(dir / "unknown.fsm");
  ASSERT_FALSE(e4);
  EXPECT_NE(e4.error().message.find("tod_xyz"), std::string::npos);

  writeAll(dir / "notamodel.fsm", "hello\n");
  EXPECT_FALSE(loadModel(dir / "notamodel.fsm"));
  EXPECT_FALSE(loadModel(dir / "missing.fsm"));
}

// Header values that would crash the reader, mis-interpolate or forecast infinities: refused with
// the file's name, whatever the checksum says.
TEST(LstmModelFile, HeaderValuesOutOfRangeAreRefusedNamingTheFile) {
  const fs::path dir = tempDir();
  LstmModel m = LstmModel::initial(6, 4, kDefaultLevels, 3);
  m.step_seconds = 300;
  ASSERT_TRUE(saveModel(m, dir / "good.fsm"));
  const std::string text = readAll(dir / "good.fsm");
  const std::string b_floats = fmt::format("{{\"floats\":{},\"name\":\"b\"}}", m.b.size());
  struct Case {
    const char* file;
    std::string from, to, expect;
  };
  const std::vector<Case> cases = {
      {"floats.fsm", b_floats, "{\"floats\":4611686018427387904,\"name\":\"b\"}", "tensor 'b' of 4611686018427387904 floats overruns"},
      {"hidden.fsm", "\"hidden\":6", "\"hidden\":4611686018427387904", "hidden size 4611686018427387904"},
      {"cal.fsm", "\"cal_levels\":[0.025,0.05,", "\"cal_levels\":[0.05,0.025,", "cal_levels"},
      {"cal1.fsm", "\"cal_levels\":[0.025,", "\"cal_levels\":[1.5,", "cal_levels"},
      {"conformal.fsm", "\"conformal\":[0.0,", "\"conformal\":[1e308,", "conformal offset 1e+308"},
      {"step.fsm", "\"step_seconds\":300", "\"step_seconds\":-300", "negative step_seconds -300"},
      {"std0.fsm", "\"std\":1.0", "\"std\":0.0", "(mean 0, std 0) is out of range"},
      {"stdneg.fsm", "\"std\":1.0", "\"std\":-2.0", "std -2) is out of range"},
      {"mean.fsm", "\"mean\":0.0", "\"mean\":1e300", "(mean 1e+300, std 1) is out of range"},
  };
  for (const auto& c : cases) {
    std::string bad = text;
    const auto at = bad.find(c.from);
    ASSERT_NE(at, std::string::npos) << c.from;
    bad.replace(at, c.from.size(), c.to);
    writeAll(dir / c.file, withFreshCrc(bad));
    auto l = loadModel(dir / c.file);
    ASSERT_FALSE(l) << c.file;
    EXPECT_NE(l.error().message.find((dir / c.file).string() + ": "), std::string::npos) << l.error().message;
    EXPECT_NE(l.error().message.find(c.expect), std::string::npos) << l.error().message;
  }
}

// The shipped model's header line, damaged behind a valid checksum: each file is loaded or refused
// with its name, never a crash or an exception, and one that loads builds its inputs.
TEST(LstmModelFile, DamagedHeadersAreLoadedOrRefusedNamingTheFile) {
  const std::string text = readAll(fs::path(FORESIGHT_SOURCE_DIR) / "models" / "lstm-bitbrains.fsm");
  const std::size_t start = text.find('\n') + 1, eol = text.find('\n', start);
  ASSERT_NE(eol, std::string::npos);
  const fs::path file = tempDir() / "damaged.fsm";
  int loaded = 0, refused = 0;
  for (const auto& header : test_support::mutations(text.substr(start, eol - start), 300)) {
    writeAll(file, withFreshCrc(text.substr(0, start) + header + text.substr(eol)));
    Result<LstmModel> m = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(m = loadModel(file)) << header;
    if (!m) {
      ++refused;
      EXPECT_NE(m.error().message.find("damaged.fsm"), std::string::npos) << m.error().message;
      continue;
    }
    ++loaded;
    FeatureBuilder features(*m, {}, 300);
    std::vector<float> x(m->inputs());
    for (std::int64_t t = 0; t < 3; ++t) features.step({static_cast<std::size_t>(t), 1'700'000'000 + 300 * t, {0.5, 1e9, NAN, 1e3}}, x);
    for (float v : x) EXPECT_TRUE(std::isfinite(v)) << header;
  }
  EXPECT_GT(loaded, 10);
  EXPECT_GT(refused, 10);
}

TEST(LstmModelFile, OptionalFeatureUnknownToThisBuildIsZeroFilled) {
  LstmModel m = LstmModel::initial(4, 2, kDefaultLevels, 5);
  // A model from a newer build with an extra optional block column.
  m.schema.push_back({"fp_future", "fingerprint", true});
  const std::size_t F = m.inputs(), H = m.hidden;
  std::vector<float> w;
  for (std::size_t j = 0; j < 4 * H; ++j) {
    w.insert(w.end(), m.w_ih.begin() + static_cast<std::ptrdiff_t>(j * (F - 1)),
             m.w_ih.begin() + static_cast<std::ptrdiff_t>((j + 1) * (F - 1)));
    w.push_back(5.0f);
  }
  m.w_ih = w;
  ASSERT_TRUE(m.validate("m"));
  FeatureBuilder fb(m, {});
  std::vector<float> x(F, 1.0f);
  Observation o;
  o.usage = {1, 2, 3, 4};
  fb.step(o, x);
  EXPECT_EQ(x.back(), 0.0f);
}

// The fingerprint block: burstiness and lag-1 autocorrelation of each resource over the last
// fingerprint_window steps, from the step the window fills, refreshed every kFingerprintHop steps.
TEST(LstmFeatures, FingerprintBlockIsTheShapeOfTheLastWindowRefreshedEveryHop) {
  LstmModel m = LstmModel::initial(4, 2, kDefaultLevels, 5);
  auto col = [&](const std::string& n) {
    const std::size_t i = columnOf(m, n);
    if (i == SIZE_MAX) ADD_FAILURE() << "no column " << n;
    return i == SIZE_MAX ? 0 : i;
  };
  auto fp = [&](std::size_t i) { return col("fp_" + std::to_string(i)); };
  const std::size_t present = col("fingerprint_present");
  std::vector<float> x(m.inputs());
  Observation o;
  auto run = [&](FeatureBuilder& fb, std::size_t t, double cpu) {
    o.step = t;
    o.usage = {cpu, 5.0, NAN, 0.0};  // memory constant, disk_io never seen, network idle
    fb.step(o, x);
  };

  // Without a window (models written before the block): zeros, flag 0, however long it runs.
  {
    FeatureBuilder fb(m, {});
    for (std::size_t t = 0; t < 40; ++t) run(fb, t, t % 2 ? 3.0 : 1.0);
    for (std::size_t i = 0; i < kFingerprintDims; ++i) EXPECT_EQ(x[fp(i)], 0.0f) << i;
    EXPECT_EQ(x[present], 0.0f);
  }

  m.fingerprint_window = 4;
  ASSERT_TRUE(m.validate("m"));
  FeatureBuilder fb(m, {});
  for (std::size_t t = 0; t < 3; ++t) {
    run(fb, t, t % 2 ? 3.0 : 1.0);
    EXPECT_EQ(x[present], 0.0f) << "window not full at step " << t;
    EXPECT_EQ(x[fp(0)], 0.0f);
  }
  run(fb, 3, 3.0);  // window 1,3,1,3: mean 2, std 1; lag-1 products 3 x (-1) over 4
  EXPECT_EQ(x[present], 1.0f);
  EXPECT_FLOAT_EQ(x[fp(0)], static_cast<float>((1.0 - 2.0) / (1.0 + 2.0)));
  EXPECT_FLOAT_EQ(x[fp(1)], -0.75f);
  EXPECT_FLOAT_EQ(x[fp(2)], -1.0f);  // memory: std 0, so (0 - mean) / (0 + mean)
  EXPECT_FLOAT_EQ(x[fp(3)], 0.0f);
  EXPECT_FLOAT_EQ(x[fp(4)], 0.0f);  // disk_io never seen
  EXPECT_FLOAT_EQ(x[fp(5)], 0.0f);
  EXPECT_FLOAT_EQ(x[fp(6)], 0.0f);  // network all zero
  // cpu now flat at 2: the block keeps its last value until the next refresh, 12 steps on.
  for (std::size_t t = 4; t < 3 + kFingerprintHop; ++t) {
    run(fb, t, 2.0);
    EXPECT_FLOAT_EQ(x[fp(0)], static_cast<float>(-1.0 / 3.0)) << "step " << t;
  }
  run(fb, 3 + kFingerprintHop, 2.0);
  EXPECT_FLOAT_EQ(x[fp(0)], -1.0f);
  EXPECT_FLOAT_EQ(x[fp(1)], 0.0f);
}

TEST(LstmModelFile, FingerprintWindowRoundTripsAndIsChecked) {
  const fs::path dir = tempDir();
  LstmModel m = LstmModel::initial(4, 2, kDefaultLevels, 5);
  m.fingerprint_window = 288;
  ASSERT_TRUE(saveModel(m, dir / "m.fsm"));
  auto back = loadModel(dir / "m.fsm");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->fingerprint_window, 288u);
  // Version 2, so that an older build refuses the file instead of feeding the block zeros; a
  // model without the block stays version 1.
  std::stringstream text;
  text << std::ifstream(dir / "m.fsm", std::ios::binary).rdbuf();
  EXPECT_NE(text.str().find("\"format_version\":2"), std::string::npos);
  LstmModel plain = LstmModel::initial(4, 2, kDefaultLevels, 5);
  ASSERT_TRUE(saveModel(plain, dir / "plain.fsm"));
  std::stringstream plain_text;
  plain_text << std::ifstream(dir / "plain.fsm", std::ios::binary).rdbuf();
  EXPECT_NE(plain_text.str().find("\"format_version\":1"), std::string::npos);
  m.fingerprint_window = 1;
  auto bad = m.validate("m.fsm");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("fingerprint window"), std::string::npos);
}

// A model trained with the scale restart computes its inputs with it, and says so in a version 3
// file that older builds refuse; a version 1 or 2 header that carries it is refused too.
TEST(LstmModelFile, ScaleRestartRoundTripsAndDrivesTheFeatures) {
  const fs::path dir = tempDir();
  LstmModel m = LstmModel::initial(4, 2, kDefaultLevels, 5);
  m.scale_restart = 12;
  ASSERT_TRUE(saveModel(m, dir / "m.fsm"));
  auto back = loadModel(dir / "m.fsm");
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->scale_restart, 12u);
  const std::string text = readAll(dir / "m.fsm");
  ASSERT_NE(text.find("\"format_version\":3"), std::string::npos);
  std::string v2 = text;
  v2.replace(v2.find("\"format_version\":3"), 18, "\"format_version\":2");
  writeAll(dir / "v2.fsm", withFreshCrc(v2));
  auto bad = loadModel(dir / "v2.fsm");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("v2.fsm"), std::string::npos);
  EXPECT_NE(bad.error().message.find("scale restart of 12"), std::string::npos);

  // A day idle, then busy: the restarting model's scale follows within 12 steps, the other's not.
  LstmModel plain = LstmModel::initial(4, 2, kDefaultLevels, 5);
  FeatureBuilder fr(*back, {}), fp(plain, {});
  std::vector<float> x(m.inputs());
  Observation o;
  for (std::size_t t = 0; t < 300; ++t) {
    o.step = t;
    o.time = 1372636800 + 300 * static_cast<std::int64_t>(t);
    o.usage = {t < 288 ? 0.0 : 2.0, NAN, NAN, NAN};
    fr.step(o, x);
    fp.step(o, x);
  }
  EXPECT_DOUBLE_EQ(fr.scale(Resource::kCpu), 2.0);
  EXPECT_LT(fp.scale(Resource::kCpu), 0.1);
  const float z = x[columnOf(m, "u_cpu")];  // the plain model's input: at the clip
  EXPECT_FLOAT_EQ(z, 6.0f);
}

// The restart is a time, not a count: fed 1-second samples (foresight run), the shipped model's
// 72 steps of 300 s are six hours of samples, so after three days idle a two-minute burst does not
// restart the scale while six hours at a new level do; at 900-second samples it comes after 24.
TEST(LstmModelFile, ScaleRestartIsAsLongAtEverySamplePeriod) {
  LstmModel m = LstmModel::initial(4, 2, kDefaultLevels, 5);
  m.scale_restart = 72;
  m.step_seconds = 300;
  EXPECT_EQ(scaleRestartSamples(m, 300), 72u);
  EXPECT_EQ(scaleRestartSamples(m, 0), 72u);  // the model's own step
  EXPECT_EQ(scaleRestartSamples(m, 900), 24u);
  EXPECT_EQ(scaleRestartSamples(m, 1), 21600u);
  EXPECT_EQ(scaleRestartSamples(m, 1e9), 1u);  // never below one sample
  LstmModel unknown = m;
  unknown.step_seconds = 0;  // a file that does not record its step: counted in samples
  EXPECT_EQ(scaleRestartSamples(unknown, 1), 72u);
  LstmModel never = m;
  never.scale_restart = 0;
  EXPECT_EQ(scaleRestartSamples(never, 1), 0u);

  auto feed = [&](FeatureBuilder& fb, std::size_t idle, std::size_t busy) {
    std::vector<float> x(m.inputs());
    Observation o;
    for (std::size_t t = 0; t < idle + busy; ++t) {
      o.step = t;
      o.time = 1372636800 + static_cast<std::int64_t>(t);
      o.usage = {t < idle ? 0.01 : 2.0, NAN, NAN, NAN};
      fb.step(o, x);
    }
    return fb.scaleRestarts(Resource::kCpu);
  };
  constexpr std::size_t kThreeDays = 3 * 86400;
  FeatureBuilder burst(m, {}, 1.0), counted(m, {}, 0.0), shift(m, {}, 1.0);
  EXPECT_EQ(feed(burst, kThreeDays, 120), 0u);    // two minutes busy at 1-s samples: a burst
  EXPECT_EQ(feed(counted, kThreeDays, 120), 1u);  // the same samples as 300-s steps: a shift
  EXPECT_EQ(feed(shift, kThreeDays, 21600), 1u);  // six hours busy: a shift
  EXPECT_DOUBLE_EQ(shift.scale(Resource::kCpu), 2.0);
}

TEST(LstmStreaming, StepEqualsFullSequence) {
  setTorchThreads(1);
  LstmModel m = LstmModel::initial(16, 3, kDefaultLevels, 11);
  const std::size_t F = m.inputs(), O = m.outputs(), T = 40, B = 3;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd;
  std::vector<std::vector<float>> xs(B, std::vector<float>(T * F));
  for (auto& x : xs)
    for (float& v : x) v = nd(rng);
  std::vector<std::vector<float>> full(B);
  for (std::size_t b = 0; b < B; ++b) {
    auto y = forwardSequence(m, xs[b], T);
    ASSERT_TRUE(y) << y.error().message;
    full[b] = *y;
  }
  auto sp = StreamingPredictor::create(m, B);
  ASSERT_TRUE(sp) << sp.error().message;
  std::vector<CpuStepper> cpu(B, CpuStepper(m));
  std::vector<float> batch(B * F);
  std::vector<double> q(m.levels.size());
  for (std::size_t t = 0; t < T; ++t) {
    for (std::size_t b = 0; b < B; ++b) std::copy_n(xs[b].data() + t * F, F, batch.data() + b * F);
    ASSERT_TRUE((*sp)->step(batch));
    for (std::size_t b = 0; b < B; ++b) {
      cpu[b].step(std::span<const float>(xs[b].data() + t * F, F));
      auto out = (*sp)->output(b);
      for (std::size_t j = 0; j < O; ++j) ASSERT_NEAR(out[j], full[b][t * O + j], 1e-4) << "t=" << t << " b=" << b;
      for (std::size_t r = 0; r < kResourceCount; ++r)
        for (std::size_t h = 1; h <= m.horizon; ++h) {
          cpu[b].quantiles(r, h, q);
          for (std::size_t k = 0; k < q.size(); ++k) {
            ASSERT_NEAR(q[k], full[b][t * O + m.outIndex(r, h, k)], 1e-4);
            if (k) {
              ASSERT_LE(q[k - 1], q[k]);  // non-crossing by construction
            }
          }
        }
    }
  }
  EXPECT_FALSE((*sp)->step(std::vector<float>(F)));  // wrong batch shape is an error
}

class LstmPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_path_ = tempDir() / "policy.fsm";
    ASSERT_TRUE(saveModel(LstmModel::initial(8, 4, kDefaultLevels, 21), model_path_));
    registerLstm(reg_, {model_path_});
  }
  std::unique_ptr<PolicyFactory> factory(PolicyOptions o = {}) {
    auto f = reg_.create("lstm", o);
    EXPECT_TRUE(f);
    return std::move(*f);
  }
  fs::path model_path_;
  PolicyRegistry reg_{"policy"};
};

TEST_F(LstmPolicyTest, Causal) {
  auto f = factory();
  trace::Trace tr;
  ASSERT_TRUE(f->prepare(tr, {}));
  EXPECT_TRUE(f->givesIntervals());
  trace::Series s = sineSeries("c", 600, 0.3, 9);
  const sim::Protocol p{2, 0.5, 0.01};
  const std::size_t cut = 400;
  for (Resource r : {Resource::kCpu, Resource::kMemory}) {
    auto a = sim::replayAllocations(*f, s, p, r);
    trace::Series poisoned = s;
    for (auto& u : poisoned.usage)
      for (std::size_t t = cut + 1; t < u.size(); ++t) u[t] = 1e12;
    auto b = sim::replayAllocations(*f, poisoned, p, r);
    for (std::size_t t = 0; t <= cut + p.lead_steps; ++t)
      for (std::size_t k = 0; k < a[t].size(); ++k) {
        if (std::isnan(a[t][k])) {
          ASSERT_TRUE(std::isnan(b[t][k]));
        } else {
          ASSERT_EQ(a[t][k], b[t][k]) << "step " << t;
        }
      }
    // ...and the poison does reach later allocations, so the comparison above can fail.
    bool changed = false;
    for (std::size_t t = cut + p.lead_steps + 1; t < a.size(); ++t) changed |= a[t][0] != b[t][0];
    EXPECT_TRUE(changed);
  }
}

// With an untrained (random) model, the online calibrator alone must bring the violation rate of
// each knob near 1 - knob on a stationary series. Only knobs <= 0.95: from a random start the
// tracker of a level tau descends by eta * (1 - tau) per covered step, too slowly for 0.99 here.
TEST_F(LstmPolicyTest, OnlineCalibrationReachesNominalRate) {
  auto f = factory({{"eta", "0.05"}, {"knob", "quantile"}});
  ASSERT_TRUE(f->prepare({}, {}));
  trace::Series s;
  s.id = "n";
  s.start = 1372636800;
  s.step_seconds = 300;
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> ln(0.0, 0.5);
  s.usage[index(Resource::kCpu)].resize(8000);
  for (double& u : s.usage[index(Resource::kCpu)]) u = ln(rng);
  const sim::Protocol p{1, 0.5, 0.01};
  auto a = sim::replayAllocations(*f, s, p, Resource::kCpu);
  const auto grid = f->knob(Resource::kCpu).grid;
  for (std::size_t k = 0; k < grid.size(); ++k) {
    if (grid[k] > 0.95) continue;
    std::size_t n = 0, viol = 0;
    for (std::size_t t = 4000; t < a.size(); ++t) {
      ++n;
      viol += s.usage[0][t] > a[t][k];
    }
    const double rate = static_cast<double>(viol) / static_cast<double>(n), want = 1 - grid[k];
    EXPECT_NEAR(rate, want, std::max(0.006, 0.25 * want)) << "knob " << grid[k];
  }
  // Allocations grow along the knob grid.
  for (std::size_t t = 4000; t < a.size(); t += 97)
    for (std::size_t k = 1; k < grid.size(); ++k) EXPECT_LE(a[t][k - 1], a[t][k] * (1 + 1e-9));
}

TEST_F(LstmPolicyTest, IdleWorkloadGetsAFloorThatGrowsWithTheKnob) {
  auto f = factory({{"eta", "0"}});
  ASSERT_TRUE(f->prepare({}, {}));
  trace::Series s;
  s.id = "idle";
  s.start = 1372636800;
  s.step_seconds = 300;
  s.usage[index(Resource::kCpu)].assign(300, 0.0);
  for (std::size_t t = 0; t < 300; t += 50) s.usage[0][t] = 2.0;  // rare bursts
  auto a = sim::replayAllocations(*f, s, {1, 0.5, 0.01}, Resource::kCpu);
  const auto grid = f->knob(Resource::kCpu).grid;
  EXPECT_GT(a[299].back(), 0.0);
  EXPECT_LT(a[299].front(), a[299].back());
}

TEST_F(LstmPolicyTest, CorruptModelIsRefusedAtPrepare) {
  writeAll(tempDir() / "bad.fsm", "FORESIGHT-LSTM\n{}\n");
  auto f = factory({{"model", (tempDir() / "bad.fsm").string()}});
  auto st = f->prepare({}, {});
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("bad.fsm"), std::string::npos);
  auto g = factory({{"eta", "abc"}});
  EXPECT_FALSE(g->prepare({}, {}));
  auto k = factory({{"knob", "percentile"}});
  auto ks = k->prepare({}, {});
  ASSERT_FALSE(ks);
  EXPECT_NE(ks.error().message.find("lstm.knob"), std::string::npos);
}

// model=A,B: each member replays as it would alone; the allocation at every knob and both ends of
// an interval are the means of the members' (they disagree, so neither member alone passes).
TEST_F(LstmPolicyTest, SeveralModelsAreAveraged) {
  const fs::path second = tempDir() / "policy-2.fsm";
  ASSERT_TRUE(saveModel(LstmModel::initial(8, 4, kDefaultLevels, 22), second));
  const std::string both = model_path_.string() + "," + second.string();
  const trace::Series s = sineSeries("e", 300, 0.3, 5);
  const sim::Protocol p{2, 0.5, 0.01};
  for (const char* knob : {"cost", "quantile"}) {
    auto a = factory({{"knob", knob}}), b = factory({{"knob", knob}, {"model", second.string()}}),
         ab = factory({{"knob", knob}, {"model", both}});
    for (auto* f : {a.get(), b.get(), ab.get()}) ASSERT_TRUE(f->prepare({}, {}));
    for (Resource r : {Resource::kCpu, Resource::kMemory}) {
      const auto x = sim::replayAllocations(*a, s, p, r), y = sim::replayAllocations(*b, s, p, r),
                 z = sim::replayAllocations(*ab, s, p, r);
      ASSERT_EQ(z.size(), x.size());
      bool differ = false;
      for (std::size_t t = 0; t < z.size(); ++t)
        for (std::size_t k = 0; k < z[t].size(); ++k) {
          if (std::isnan(x[t][k])) {
            EXPECT_TRUE(std::isnan(z[t][k]));
            continue;
          }
          EXPECT_NEAR(z[t][k], (x[t][k] + y[t][k]) / 2, 1e-9 * (1 + x[t][k] + y[t][k])) << knob << " step " << t;
          differ |= std::abs(x[t][k] - y[t][k]) > 1e-6 * (1 + x[t][k]);
        }
      EXPECT_TRUE(differ) << knob;
    }
  }
  auto a = factory(), b = factory({{"model", second.string()}}), ab = factory({{"model", both}});
  SeriesContext ctx;
  ctx.lead_steps = 2;
  ctx.step_seconds = 300;
  std::vector<std::unique_ptr<Policy>> pol;
  for (auto* f : {a.get(), b.get(), ab.get()}) {
    ASSERT_TRUE(f->prepare({}, {}));
    pol.push_back(f->create(ctx, nullptr));
  }
  for (std::size_t t = 0; t < 200; ++t) {
    Observation o;
    o.step = t;
    o.time = s.start + static_cast<std::int64_t>(t) * s.step_seconds;
    for (Resource r : kAllResources) o.usage[index(r)] = s.has(r) ? s.usage[index(r)][t] : NAN;
    for (auto& q : pol) q->observe(o);
  }
  for (double level : {0.8, 0.9}) {
    double lo[3], hi[3];
    for (std::size_t i = 0; i < 3; ++i) ASSERT_TRUE(pol[i]->interval(Resource::kCpu, level, lo[i], hi[i]));
    EXPECT_NEAR(lo[2], (lo[0] + lo[1]) / 2, 1e-12);
    EXPECT_NEAR(hi[2], (hi[0] + hi[1]) / 2, 1e-12);
    EXPECT_NE(hi[0], hi[1]);
  }
  // A list with an empty entry, or a member of another horizon, is refused at prepare, named.
  auto empty = factory({{"model", both + ","}});
  auto e = empty->prepare({}, {});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("lstm.model="), std::string::npos) << e.error().message;
  const fs::path other = tempDir() / "policy-h6.fsm";
  ASSERT_TRUE(saveModel(LstmModel::initial(8, 6, kDefaultLevels, 23), other));
  auto mixed = factory({{"model", model_path_.string() + "," + other.string()}});
  auto m = mixed->prepare({}, {});
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("policy-h6.fsm: horizon 6"), std::string::npos) << m.error().message;
}

// Same series at different sizes: what the scale weights act on.
std::vector<trace::Series> scaledFixture() {
  auto v = fixture();
  for (std::size_t i = 0; i < v.size(); ++i)
    for (double& u : v[i].usage[index(Resource::kCpu)]) u *= std::pow(3.0, static_cast<double>(i % 4));
  return v;
}

TEST(LstmTrain, ScaleWeightsChangeTheFitAndBoundOneIsUnweighted) {
  setTorchThreads(1);
  auto o = tinyOptions();
  o.max_epochs = 1;
  o.scale_weight_bound = 0;
  auto plain = train(scaledFixture(), o);
  o.scale_weight_bound = 1;  // every weight clipped to 1
  auto one = train(scaledFixture(), o);
  o.scale_weight_bound = 4;
  auto weighted = train(scaledFixture(), o);
  ASSERT_TRUE(plain && one && weighted);
  EXPECT_EQ(plain->model.w_ih, one->model.w_ih);
  EXPECT_NE(plain->model.w_ih, weighted->model.w_ih);
  o.scale_weight_bound = 0.5;
  auto bad = train(scaledFixture(), o);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bound"), std::string::npos);
}

// Power 0 must leave training exactly as it was; a positive power must move the fit.
TEST(LstmTrain, HorizonWeightZeroIsTheEqualLossAndAPowerChangesTheFit) {
  setTorchThreads(1);
  auto o = tinyOptions();
  o.max_epochs = 1;
  auto plain = train(fixture(), o);
  o.horizon_weight_power = 0;
  auto zero = train(fixture(), o);
  o.horizon_weight_power = 1;
  auto weighted = train(fixture(), o);
  ASSERT_TRUE(plain && zero && weighted);
  EXPECT_EQ(plain->model.w_ih, zero->model.w_ih);
  EXPECT_NE(plain->model.w_ih, weighted->model.w_ih);
  // The validation loss is weighted the same way, so it is another average of the same errors.
  EXPECT_NE(plain->epochs.back().val_loss, weighted->epochs.back().val_loss);
  for (double bad : {-0.5, 9.0, static_cast<double>(NAN)}) {
    o.horizon_weight_power = bad;
    auto r = train(fixture(), o);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("horizon weight"), std::string::npos) << r.error().message;
  }
}

TEST(LstmFeatures, WindowExtremesAreTheLast12StepsInCurrentScaleUnits) {
  LstmModel m = LstmModel::initial(4, 2, kDefaultLevels, 1);
  auto col = [&](const std::string& n) { return columnOf(m, n); };
  ASSERT_NE(col("zmax12_cpu"), SIZE_MAX);
  ASSERT_NE(col("zmin12_memory"), SIZE_MAX);
  FeatureBuilder fb(m, {});
  std::vector<float> x(m.inputs());
  Observation o;
  std::vector<double> cpu;
  for (std::size_t t = 0; t < 30; ++t) {
    o.step = t;
    o.time = 1372636800 + 300 * static_cast<std::int64_t>(t);
    const double u = t == 5 ? 40.0 : t == 20 ? NAN : 1.0 + 0.1 * static_cast<double>(t % 7);
    cpu.push_back(u);
    o.usage = {u, 2e9, NAN, NAN};
    fb.step(o, x);
    double hi = -1, lo = 1e300;
    for (std::size_t k = t >= 11 ? t - 11 : 0; k <= t; ++k)
      if (!std::isnan(cpu[k])) hi = std::max(hi, cpu[k]), lo = std::min(lo, cpu[k]);
    const double sc = fb.scale(Resource::kCpu);
    ASSERT_NEAR(x[col("zmax12_cpu")], std::min(std::log1p(hi / sc), 6.0), 1e-5) << t;
    ASSERT_NEAR(x[col("zmin12_cpu")], std::min(std::log1p(lo / sc), 6.0), 1e-5) << t;
    ASSERT_NEAR(x[col("zmax12_memory")], std::log1p(2e9 / fb.scale(Resource::kMemory)), 1e-5);
    ASSERT_EQ(x[col("zmax12_disk_io")], 0.0f);  // never seen
  }
  // Training without the block leaves it out of the schema.
  LstmModel lean = LstmModel::initial(4, 2, kDefaultLevels, 1, false);
  EXPECT_EQ(lean.inputs() + 2 * kResourceCount, m.inputs());
  EXPECT_EQ(lean.w_ih.size(), 4 * 4 * lean.inputs());
}

// The day block against a direct count: with hourly steps (a day = 24), z of the usage a day
// before the next step and the max z over the horizon's window a day before, in current scale units.
TEST(LstmFeatures, DayBlockIsTheHorizonWindowOneDayEarlier) {
  LstmModel m = LstmModel::initial(4, 3, kDefaultLevels, 1, true, true);
  m.step_seconds = 3600;
  ASSERT_TRUE(m.validate("test"));
  auto col = [&](const std::string& n) { return columnOf(m, n); };
  ASSERT_NE(col("zday_memory"), SIZE_MAX);
  ASSERT_NE(col("zdaymax_cpu"), SIZE_MAX);
  ASSERT_NE(col("day_present"), SIZE_MAX);
  FeatureBuilder fb(m, {});
  std::vector<float> x(m.inputs());
  Observation o;
  std::vector<double> cpu;
  for (std::size_t t = 0; t < 60; ++t) {
    o.step = t;
    o.time = 1372636800 + 3600 * static_cast<std::int64_t>(t);
    const double u = t == 30 ? NAN : 1.0 + 0.3 * static_cast<double>((t * 7) % 5) + (t == 26 ? 9.0 : 0.0);
    cpu.push_back(u);
    o.usage = {u, 2e9, NAN, NAN};
    fb.step(o, x);
    const double sc = fb.scale(Resource::kCpu);
    if (t + 1 < 24) {  // less than a day of history: zeros and the flag off
      ASSERT_EQ(x[col("day_present")], 0.0f) << t;
      ASSERT_EQ(x[col("zday_cpu")], 0.0f) << t;
      ASSERT_EQ(x[col("zdaymax_cpu")], 0.0f) << t;
      continue;
    }
    ASSERT_EQ(x[col("day_present")], 1.0f) << t;
    const double next = cpu[t + 1 - 24];
    ASSERT_NEAR(x[col("zday_cpu")], std::isnan(next) ? 0.0 : std::min(std::log1p(next / sc), 6.0), 1e-5) << t;
    double hi = -1;
    for (std::size_t k = t + 1 - 24; k <= t + 3 - 24; ++k)
      if (!std::isnan(cpu[k])) hi = std::max(hi, cpu[k]);
    ASSERT_NEAR(x[col("zdaymax_cpu")], std::min(std::log1p(hi / sc), 6.0), 1e-5) << t;
    ASSERT_NEAR(x[col("zday_memory")], std::log1p(2e9 / fb.scale(Resource::kMemory)), 1e-5);
    ASSERT_EQ(x[col("zday_disk_io")], 0.0f);  // never seen
  }
  // Off by default; a day-block model without a step that divides a day is refused.
  EXPECT_EQ(LstmModel::initial(4, 3, kDefaultLevels, 1).inputs() + 2 * kResourceCount + 1, m.inputs());
  m.step_seconds = 0;
  EXPECT_FALSE(m.validate("test"));
  m.step_seconds = 7 * 3600;
  EXPECT_FALSE(m.validate("test"));
}

// Noisy, bursty daily series: the violation-cost sweep then spans violation rates around 1-2%.
std::vector<trace::Series> burstyFixture() {
  std::vector<trace::Series> v;
  for (int i = 0; i < 12; ++i) {
    trace::Series s = sineSeries(std::string("b").append(std::to_string(i)), 288 * 6, 0.5 * i, 300 + i);
    std::mt19937_64 rng(900 + i);
    std::lognormal_distribution<double> ln(0.0, 0.6);
    for (auto& u : s.usage)
      for (double& x : u) x *= ln(rng);
    v.push_back(std::move(s));
  }
  return v;
}

TEST(LstmValidation, BacktestOnValidationTrainingPartsGivesSlackInUnitRange) {
  setTorchThreads(1);
  auto o = tinyOptions();
  o.max_epochs = 2;
  o.holdout = 0.5;
  const auto series = burstyFixture();
  auto rep = train(series, o);
  ASSERT_TRUE(rep) << rep.error().message;
  ASSERT_EQ(rep->val_index.size(), rep->val_series);
  std::vector<const trace::Series*> val;
  for (auto i : rep->val_index) val.push_back(&series[i]);
  auto vb = validationBacktest(rep->model, val, o.train_fraction, 1);
  ASSERT_TRUE(vb) << vb.error().message;
  EXPECT_EQ(vb->series, val.size());
  // Scored: the second half of the first half of each series, at lead 1.
  EXPECT_EQ(vb->scored_steps, val.size() * (288 * 3 / 2 - 0));
  for (Resource r : {Resource::kCpu, Resource::kMemory}) {
    ASSERT_EQ(vb->slack.count(r), 1u);
    for (double level : kValidationRiskLevels) {
      const double s = vb->slack.at(r).at(level);
      EXPECT_TRUE(std::isfinite(s)) << name(r) << " " << level;
      EXPECT_GT(s, 0.0);
      EXPECT_LT(s, 1.0);
    }
    // More risk aversion costs slack.
    EXPECT_LE(vb->slack.at(r).at(0.02), vb->slack.at(r).at(0.01));
  }
  EXPECT_EQ(vb->slack.count(Resource::kDiskIo), 0u);
  // The evaluation half is never read: poisoning it changes nothing.
  std::vector<trace::Series> poisoned(val.size());
  std::vector<const trace::Series*> pv;
  for (std::size_t i = 0; i < val.size(); ++i) {
    poisoned[i] = *val[i];
    for (auto& u : poisoned[i].usage)
      for (std::size_t t = u.size() / 2; t < u.size(); ++t) u[t] = 1e12;
    pv.push_back(&poisoned[i]);
  }
  auto vp = validationBacktest(rep->model, pv, o.train_fraction, 1);
  ASSERT_TRUE(vp);
  EXPECT_EQ(vp->slack, vb->slack);
}

// The epoch kept is the one whose calibrated model scored best in the validation backtest (and
// with --select-by loss, the one with the lowest validation loss).
TEST(LstmTrain, KeepsTheEpochTheSelectionFigureRanksBest) {
  setTorchThreads(1);
  auto o = tinyOptions();
  o.max_epochs = 3;
  o.holdout = 0.5;
  const auto series = burstyFixture();
  auto rep = train(series, o);
  ASSERT_TRUE(rep) << rep.error().message;
  ASSERT_EQ(rep->epochs.size(), 3u);
  std::size_t argmin = 0;
  for (std::size_t e = 0; e < rep->epochs.size(); ++e) {
    ASSERT_TRUE(std::isfinite(rep->epochs[e].val_score)) << "epoch " << e + 1;
    if (rep->epochs[e].val_score < rep->epochs[argmin].val_score) argmin = e;
  }
  EXPECT_EQ(rep->best_epoch, argmin + 1);
  std::vector<const trace::Series*> val;
  for (auto i : rep->val_index) val.push_back(&series[i]);
  auto vb = validationBacktest(rep->model, val, o.train_fraction, 1);
  ASSERT_TRUE(vb) << vb.error().message;
  // The same model (the final calibration refits it from the copied weights: float round-off).
  EXPECT_NEAR(selectionScore(*vb), rep->epochs[argmin].val_score, 1e-6);

  o.select_by_backtest = false;
  auto by_loss = train(series, o);
  ASSERT_TRUE(by_loss) << by_loss.error().message;
  std::size_t lowest = 0;
  for (std::size_t e = 0; e < by_loss->epochs.size(); ++e) {
    EXPECT_TRUE(std::isnan(by_loss->epochs[e].val_score));
    if (by_loss->epochs[e].val_loss < by_loss->epochs[lowest].val_loss) lowest = e;
  }
  EXPECT_EQ(by_loss->best_epoch, lowest + 1);
}

// Files written before the window block (the shipped model among them) have no such columns; the
// same weights with the columns appended at zero weight must forecast identically, i.e. columns
// map by name and the new features disturb no old one.
TEST(LstmModelFile, NewCanonicalColumnsDoNotChangeAnOldSchemasForecasts) {
  auto o = tinyOptions();
  o.max_epochs = 1;
  o.window_features = false;
  setTorchThreads(1);
  auto rep = train(fixture(), o);
  ASSERT_TRUE(rep) << rep.error().message;
  const LstmModel& old = rep->model;
  for (const auto& f : old.schema) ASSERT_NE(f.block, "window");
  LstmModel wide = old;
  const std::size_t F = old.inputs(), H = old.hidden;
  // Inserted in the middle of the schema, so that a positional mapping would fail.
  const std::size_t at = 4;
  for (const auto& f : knownFeatures())
    if (f.block == "window") {
      wide.schema.insert(wide.schema.begin() + static_cast<std::ptrdiff_t>(at), f);
      wide.normalisers.push_back({f.name, 0.0, 1.0});
    }
  const std::size_t W = wide.inputs(), added = W - F;
  ASSERT_EQ(added, 2 * kResourceCount);
  wide.w_ih.assign(4 * H * W, 0.0f);
  for (std::size_t row = 0; row < 4 * H; ++row) {
    std::copy_n(old.w_ih.data() + row * F, at, wide.w_ih.data() + row * W);
    std::copy_n(old.w_ih.data() + row * F + at, F - at, wide.w_ih.data() + row * W + at + added);
  }
  ASSERT_TRUE(wide.validate("wide"));
  const trace::Series s = burstyFixture()[3];
  for (std::size_t t : {100u, 1500u}) {
    auto a = forecastSeries({std::make_shared<const LstmModel>(old)}, s, t),
         b = forecastSeries({std::make_shared<const LstmModel>(wide)}, s, t);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->values, b->values);
  }
}

TEST(LstmShipped, ShippedModelLoads) {
  const fs::path p = fs::path(FORESIGHT_SOURCE_DIR) / "models" / "lstm-bitbrains.fsm";
  if (!fs::exists(p)) GTEST_SKIP() << p << " not present";
  auto m = loadModel(p);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->horizon, 12u);
  EXPECT_LT(fs::file_size(p), 5u * 1024 * 1024);
  // Its header was edited after training (`foresight model set`, docs/model.md "Scale
  // restart"): the edit is recorded beside the training command it does not replace.
  EXPECT_EQ(m->scale_restart, 72u);
  const auto prov = nlohmann::json::parse(m->provenance);
  ASSERT_TRUE(prov.contains("edits")) << m->provenance.substr(0, 200);
  EXPECT_EQ(prov.at("edits").back().at("scale_restart"), 72);
  EXPECT_NE(prov.at("command").get<std::string>().find(" train "), std::string::npos);
}

}  // namespace
}  // namespace foresight::predict::lstm
