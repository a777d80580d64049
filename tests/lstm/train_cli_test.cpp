// `foresight train` and `predict` end to end: the validation backtest lands in the model file's
// provenance; predict reads only the series' own file; train --autoencoder writes its model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "foresight/predict/lstm/model.h"
#include "support/shell.h"

namespace {
namespace fs = std::filesystem;
using foresight::test_support::runShell;

TEST(LstmTrainCli, ValidationBacktestSlackIsInTheProvenance) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-train-cli-" + std::to_string(::getpid()));
  fs::create_directories(dir / "trace");
  std::mt19937 rng(5);
  std::lognormal_distribution<double> noise(0.0, 0.6);
  for (int s = 0; s < 12; ++s) {
    std::ofstream f(dir / "trace" / fmt::format("vm{}.csv", s));
    f << "timestamp,cpu,memory\n";
    for (int i = 0; i < 6 * 288; ++i) {
      const double day = std::sin(i * 2 * M_PI / 288 + 0.5 * s);
      f << fmt::format("{},{},{}\n", 1600000000 + 300 * i, (1 + 0.8 * day) * noise(rng) * (1 + s),
                       2e9 * (1 + 0.1 * day) * noise(rng));
    }
  }
  const fs::path model = dir / "m.fsm";
  const std::string cmd = fmt::format(
      "{} train --trace {} --format csv --out {} --hidden 8 --horizon 3 --batch 4 --epochs 2 "
      "--holdout 0.5 --torch-threads 1 --no-progress --scale-weight-bound 4 --window-features",
      FORESIGHT_BIN, (dir / "trace").string(), model.string());
  const auto trained = runShell(cmd);
  ASSERT_EQ(trained.exit_code, 0) << trained.all();
  EXPECT_NE(trained.all().find("validation backtest, cpu slack"), std::string::npos) << trained.all();

  auto m = foresight::predict::lstm::loadModel(model);
  ASSERT_TRUE(m) << m.error().message;
  const auto prov = nlohmann::json::parse(m->provenance);
  EXPECT_EQ(prov.at("scale_weight_bound"), 4.0);
  EXPECT_EQ(prov.at("horizon_weight_power"), 0.0);
  EXPECT_EQ(prov.at("window_features"), true);
  const auto& vb = prov.at("validation_backtest");
  EXPECT_EQ(vb.at("series"), prov.at("validation_series"));
  // Which resources its training series had: disk_io and network none.
  const auto& with = prov.at("train_series_with");
  EXPECT_EQ(with.at("cpu"), prov.at("train_series"));
  EXPECT_EQ(with.at("memory"), prov.at("train_series"));
  EXPECT_EQ(with.at("disk_io"), 0);
  EXPECT_EQ(with.at("network"), 0);
  // This trace has only cpu and memory, so the figure without disk_io and network is the same.
  const auto& reduced = prov.at("validation_backtest_cpu_memory_only");
  EXPECT_EQ(reduced.at("slack"), vb.at("slack"));
  EXPECT_EQ(reduced.at("selection_figure"), vb.at("selection_figure"));
  for (const char* r : {"cpu", "memory"})
    for (const char* level : {"0.02", "0.01"}) {
      const auto& v = vb.at("slack").at(r).at(level);
      ASSERT_TRUE(v.is_number()) << r << " " << level << ": " << vb.dump();
      EXPECT_TRUE(std::isfinite(v.get<double>()));
      EXPECT_GT(v.get<double>(), 0.0);
      EXPECT_LT(v.get<double>(), 1.0);
    }

  // The backtest on the model's own held-back workloads recomputes train's split from the
  // provenance: the lstm there scores what train's validation backtest scored.
  {
    const fs::path json = dir / "val.json";
    const auto bt = runShell(fmt::format("{} backtest --trace {} --format csv --validation-of {} --policies lstm "
                                         "--threads 1 --no-progress --json {}",
                                         FORESIGHT_BIN, (dir / "trace").string(), model.string(), json.string()));
    ASSERT_EQ(bt.exit_code, 0) << bt.all();
    const auto rep = nlohmann::json::parse(std::ifstream(json));
    EXPECT_EQ(rep.at("trace").at("series"), vb.at("series"));
    EXPECT_EQ(rep.at("trace").at("evaluation_steps"), vb.at("scored_steps"));
    for (const char* r : {"cpu", "memory"})
      for (const char* level : {"0.02", "0.01"})
        EXPECT_NEAR(rep.at("policies").at("lstm").at(r).at("iso_risk").at(level).get<double>(),
                    vb.at("slack").at(r).at(level).get<double>(), 1e-12)
            << r << " " << level;
    // Its held-back workloads gave no gradient: scoring them from earlier on is not warned about.
    const auto early = runShell(fmt::format("{} backtest --trace {} --format csv --validation-of {} --policies lstm "
                                            "--train-fraction 0.3 --threads 1 --no-progress",
                                            FORESIGHT_BIN, (dir / "trace").string(), model.string()));
    ASSERT_EQ(early.exit_code, 0) << early.all();
    EXPECT_EQ(early.all().find("learnt from"), std::string::npos) << early.all();
    EXPECT_EQ(early.all().find("trained on no series with"), std::string::npos) << early.all();
    // Used on a trace with disk I/O, which it never learnt: said, and the backtest still runs.
    fs::create_directories(dir / "disk");
    for (int s = 0; s < 3; ++s) {
      std::ifstream in(dir / "trace" / fmt::format("vm{}.csv", s));
      std::ofstream out(dir / "disk" / fmt::format("vm{}.csv", s));
      std::string line;
      std::getline(in, line);
      out << line << ",disk_io\n";
      while (std::getline(in, line)) out << line << ",1000\n";
    }
    const auto disk = runShell(fmt::format("{} backtest --trace {} --format csv --policies lstm --threads 1 --no-progress "
                                           "--policy-opt lstm.model={}",
                                           FORESIGHT_BIN, (dir / "disk").string(), model.string()));
    ASSERT_EQ(disk.exit_code, 0) << disk.all();
    EXPECT_NE(disk.all().find(fmt::format("lstm: {} was trained on no series with disk_io: its forecasts of disk_io",
                                          model.string())),
              std::string::npos)
        << disk.all();
    EXPECT_EQ(disk.all().find("network"), std::string::npos) << "not on this trace: " << disk.all();
    // Another trace (one workload fewer) is refused, naming both counts.
    fs::create_directories(dir / "fewer");
    for (int s = 1; s < 12; ++s) fs::copy_file(dir / "trace" / fmt::format("vm{}.csv", s), dir / "fewer" / fmt::format("vm{}.csv", s));
    const auto other = runShell(fmt::format("{} backtest --trace {} --format csv --validation-of {} --policies lstm --no-progress",
                                            FORESIGHT_BIN, (dir / "fewer").string(), model.string()));
    EXPECT_EQ(other.exit_code, 1) << other.all();
    EXPECT_NE(other.all().find("trained on 12 series and this trace gives 11"), std::string::npos) << other.all();
    // So is another step (the same series, other lengths: another split).
    const auto coarser = runShell(fmt::format("{} backtest --trace {} --format csv --step 600 --validation-of {} --policies lstm --no-progress",
                                              FORESIGHT_BIN, (dir / "trace").string(), model.string()));
    EXPECT_EQ(coarser.exit_code, 1) << coarser.all();
    EXPECT_NE(coarser.all().find("trained on 300-s steps, this trace is read at 600-s steps (--step 300)"), std::string::npos)
        << coarser.all();
  }

  // Fine-tuning that model with the fingerprint block: same architecture and held-back workloads,
  // the block switched on, the starting file in the provenance.
  const fs::path tuned = dir / "tuned.fsm";
  auto fineTune = [&](const fs::path& init, const std::string& more = "") {
    const std::string c = fmt::format(
        "{} train --trace {} --format csv --out {} --init {} --fingerprint-window 48 --scale-restart 6 --batch 4 "
        "--epochs 1 --holdout 0.5 --torch-threads 1 --no-progress {}",
        FORESIGHT_BIN, (dir / "trace").string(), tuned.string(), init.string(), more);
    const auto r = runShell(c);
    return std::pair{r.exit_code, r.all()};
  };
  auto [rc, out] = fineTune(model);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(out.find("another workload split"), std::string::npos) << out;
  auto t = foresight::predict::lstm::loadModel(tuned);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->fingerprint_window, 48u);
  EXPECT_EQ(t->scale_restart, 6u);
  EXPECT_EQ(m->scale_restart, 0u);  // off unless asked for
  EXPECT_EQ(t->hidden, m->hidden);
  EXPECT_EQ(t->horizon, m->horizon);
  const auto tprov = nlohmann::json::parse(t->provenance);
  EXPECT_EQ(tprov.at("init"), model.string());
  // What the starting model learnt from counts too.
  EXPECT_EQ(tprov.at("train_series_with").at("cpu"), 2 * with.at("cpu").get<int>());
  EXPECT_EQ(tprov.at("train_series_with").at("disk_io"), 0);
  EXPECT_EQ(tprov.at("fingerprint_window"), 48);
  EXPECT_EQ(tprov.at("scale_restart"), 6);
  EXPECT_EQ(tprov.at("validation_series"), prov.at("validation_series"));
  for (std::size_t i = 0; i < m->normalisers.size(); ++i) EXPECT_EQ(t->normalisers[i].mean, m->normalisers[i].mean);
  EXPECT_EQ(tprov.at("window_features"), true);
  EXPECT_EQ(tprov.at("day_features"), false);

  // The inputs are the starting model's: flags that would change them are refused before any
  // work, and the provenance records the model's, not the defaults. Another split seed than its
  // own is warned about (its held-back workloads may give gradients).
  fs::remove(tuned);
  for (const char* flag : {"--day-features", "--no-window-features"}) {
    std::tie(rc, out) = fineTune(model, flag);
    EXPECT_EQ(rc, 2) << flag << ": " << out;
    EXPECT_NE(out.find(fmt::format("--init {}: {} cannot change the inputs", model.string(), flag)), std::string::npos)
        << out;
    EXPECT_FALSE(fs::exists(tuned)) << flag;
  }
  auto plain = foresight::predict::lstm::LstmModel::initial(m->hidden, m->horizon, m->levels, 1, /*window_features=*/false);
  plain.step_seconds = m->step_seconds;
  plain.provenance = m->provenance;
  ASSERT_TRUE(foresight::predict::lstm::saveModel(plain, dir / "nowindow.fsm"));
  std::tie(rc, out) = fineTune(dir / "nowindow.fsm", "--split-seed 9");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("another workload split than it was trained with (split seed 9 (--split-seed, else --seed) "
                     "against its 1)"), std::string::npos) << out;
  EXPECT_NE(out.find("give --split-seed 1 --holdout 0.5 --train-fraction 0.5"), std::string::npos) << out;
  t = foresight::predict::lstm::loadModel(tuned);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(nlohmann::json::parse(t->provenance).at("window_features"), false);

  // A corrupt starting file: refused, naming it, and nothing written.
  fs::remove(tuned);
  std::ofstream(dir / "bad.fsm") << "FORESIGHT-LSTM\n{}\n";
  std::tie(rc, out) = fineTune(dir / "bad.fsm");
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("bad.fsm"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tuned));
  fs::remove_all(dir);
}

// Other workloads' files are not read: a short one beside it would otherwise be logged as skipped.
// Without --model the shipped model forecasts, as in `run` and the backtest.
TEST(LstmPredictCli, ReadsOnlyTheSeriesOwnFile) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-predict-cli-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, int steps) {
    std::ofstream f(dir / name);
    f << "timestamp,cpu,memory\n";
    for (int i = 0; i < steps; ++i)
      f << fmt::format("{},{},{}\n", 1600000000 + 300 * i, 0.5 + 0.4 * std::sin(i * 2 * M_PI / 288), 2e9);
  };
  write("web.csv", 3 * 288);
  write("short.csv", 10);
  auto run = [&](const std::string& series, std::string& out) {
    const std::string cmd =
        fmt::format("{} predict --trace {} --format csv --series {}", FORESIGHT_BIN, dir.string(), series);
    const auto r = runShell(cmd);
    out = r.all();
    return r.exit_code;
  };
  std::string out;
  EXPECT_EQ(run("web", out), 0) << out;
  EXPECT_NE(out.find("series web after step"), std::string::npos) << out;
  EXPECT_EQ(out.find("short"), std::string::npos) << out;
  const auto beyond = runShell(fmt::format("{} predict --model {}/models/lstm-bitbrains.fsm --trace {} --format csv "
                                           "--series web --at {}", FORESIGHT_BIN, FORESIGHT_SOURCE_DIR,
                                           dir.string(), 3 * 288));
  EXPECT_EQ(beyond.exit_code, 2) << beyond.all();
  EXPECT_NE(beyond.all().find("--at 864: series web has steps 0 to 863"), std::string::npos) << beyond.all();
  EXPECT_EQ(run("nosuch", out), 1) << out;
  EXPECT_NE(out.find("no series 'nosuch' (no file nosuch.csv or nosuch.csv.gz, and no id column names it)"),
            std::string::npos) << out;
  fs::remove_all(dir);
}

// A file split at a long gap gives pieces web#1 and web#2: asked for the file's id or a piece it
// does not have, the error names the pieces.
TEST(LstmPredictCli, NamesThePiecesOfASeriesSplitAtAGap) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-predict-pieces-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "web.csv");
    f << "timestamp,cpu,memory\n";
    for (int i = 0; i < 2 * 3 * 288; ++i) {
      const int step = i < 3 * 288 ? i : i + 100;  // 100 steps missing: longer than any fill
      f << fmt::format("{},{},{}\n", 1600000000 + 300 * step, 0.5 + 0.4 * std::sin(i * 2 * M_PI / 288), 2e9);
    }
  }
  const std::string base = fmt::format("{} predict --model {}/models/lstm-bitbrains.fsm --trace {} --format csv",
                                       FORESIGHT_BIN, FORESIGHT_SOURCE_DIR, dir.string());
  for (const char* asked : {"web", "web#7"}) {
    const auto r = runShell(fmt::format("{} --series '{}'", base, asked));
    EXPECT_EQ(r.exit_code, 1) << asked << ": " << r.all();
    EXPECT_NE(r.all().find(fmt::format("no series '{}' (pieces: web#1, web#2)", asked)), std::string::npos)
        << asked << ": " << r.all();
  }
  const auto piece = runShell(base + " --series 'web#2'");
  EXPECT_EQ(piece.exit_code, 0) << piece.all();
  fs::remove_all(dir);
}

// A series that is a row group of a file with an `id` column, given as the file itself; --step
// resamples it (here coarser than the model's step, which is warned about).
TEST(LstmPredictCli, FindsASeriesByTheIdColumnOfOneFile) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-predict-id-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "fleet.csv");
    f << "id,timestamp,cpu,memory[GiB]\n";
    for (int i = 0; i < 3 * 288; ++i)
      for (const char* id : {"web", "db"})
        f << fmt::format("{},{},{},{}\n", id, 1600000000 + 300 * i, 0.5 + 0.4 * std::sin(i * 2 * M_PI / 288), 2);
  }
  const std::string base = fmt::format("{} predict --model {}/models/lstm-bitbrains.fsm --trace {} --format csv",
                                       FORESIGHT_BIN, FORESIGHT_SOURCE_DIR, (dir / "fleet.csv").string());
  const auto db = runShell(base + " --series db");
  EXPECT_EQ(db.exit_code, 0) << db.all();
  EXPECT_NE(db.all().find("series db after step 863"), std::string::npos) << db.all();
  const auto coarse = runShell(base + " --series web --step 600");
  EXPECT_EQ(coarse.exit_code, 0) << coarse.all();
  EXPECT_NE(coarse.all().find("series web after step 431"), std::string::npos) << coarse.all();
  EXPECT_NE(coarse.all().find("this trace has 600-s steps"), std::string::npos) << coarse.all();
  fs::remove_all(dir);
}

// Without --model, predict forecasts with both shipped models averaged: the same bands as naming
// them, repeated or comma-separated, and not those of the first alone. A member that does not fit
// is refused by name.
TEST(LstmPredictCli, TheShippedForecasterIsBothShippedModelsAveraged) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-predict-ens-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "web.csv");
    f << "timestamp,cpu,memory\n";
    for (int i = 0; i < 2 * 288; ++i)
      f << fmt::format("{},{},{}\n", 1600000000 + 300 * i, 0.5 + 0.4 * std::sin(i * 2 * M_PI / 288), 2e9);
  }
  const std::string models = std::string(FORESIGHT_SOURCE_DIR) + "/models/";
  auto predict = [&](const std::string& options) {
    return runShell(fmt::format("{} predict --trace {} --format csv --series web {}", FORESIGHT_BIN, dir.string(),
                                options));
  };
  const auto shipped = predict("");
  ASSERT_EQ(shipped.exit_code, 0) << shipped.all();
  const auto repeated = predict(fmt::format("--model {0}lstm-bitbrains.fsm --model {0}lstm-bitbrains-2.fsm", models));
  const auto listed = predict(fmt::format("--model {0}lstm-bitbrains.fsm,{0}lstm-bitbrains-2.fsm", models));
  const auto first = predict(fmt::format("--model {}lstm-bitbrains.fsm", models));
  ASSERT_EQ(first.exit_code, 0) << first.all();
  EXPECT_EQ(repeated.out, shipped.out);
  EXPECT_EQ(listed.out, shipped.out);
  EXPECT_NE(first.out, shipped.out);
  ASSERT_TRUE(foresight::predict::lstm::saveModel(
      foresight::predict::lstm::LstmModel::initial(8, 4, foresight::predict::lstm::kDefaultLevels, 1),
      dir / "h4.fsm"));
  const auto mixed = predict(fmt::format("--model {}lstm-bitbrains.fsm,{}", models, (dir / "h4.fsm").string()));
  EXPECT_EQ(mixed.exit_code, 1) << mixed.all();
  EXPECT_NE(mixed.all().find("h4.fsm: horizon 4 differs from"), std::string::npos) << mixed.all();
  // A --model given replaces the shipped pair; it is not added to it (which the horizon would refuse).
  const auto alone = predict("--model " + (dir / "h4.fsm").string());
  EXPECT_EQ(alone.exit_code, 0) << alone.all();
  fs::remove_all(dir);
}

// `model set` changes the scale restart and nothing else a forecast uses: the weights, schema,
// normalisers and calibration come back equal, and the edit is appended to the provenance.
TEST(LstmModelCli, SetChangesTheScaleRestartOnlyAndShowPrintsIt) {
  using foresight::predict::lstm::loadModel;
  const fs::path dir = fs::temp_directory_path() / ("foresight-model-cli-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path shipped = fs::path(FORESIGHT_SOURCE_DIR) / "models" / "lstm-bitbrains.fsm";
  const fs::path out = dir / "m.fsm";
  auto set = runShell(fmt::format("{} model set {} --scale-restart 12 --note 'an hour' -o {}", FORESIGHT_BIN,
                                  shipped.string(), out.string()));
  ASSERT_EQ(set.exit_code, 0) << set.all();
  auto before = loadModel(shipped);
  auto after = loadModel(out);
  ASSERT_TRUE(before && after) << (before ? after.error().message : before.error().message);
  EXPECT_NE(before->scale_restart, 12u);
  EXPECT_EQ(after->scale_restart, 12u);
  EXPECT_EQ(after->w_ih, before->w_ih);
  EXPECT_EQ(after->w_hh, before->w_hh);
  EXPECT_EQ(after->head_w, before->head_w);
  EXPECT_EQ(after->conformal, before->conformal);
  EXPECT_EQ(after->step_seconds, before->step_seconds);
  ASSERT_EQ(after->normalisers.size(), before->normalisers.size());
  for (std::size_t i = 0; i < after->normalisers.size(); ++i) {
    EXPECT_EQ(after->normalisers[i].mean, before->normalisers[i].mean);
    EXPECT_EQ(after->normalisers[i].std, before->normalisers[i].std);
  }
  const auto edits = nlohmann::json::parse(after->provenance).at("edits");
  EXPECT_EQ(edits.back().at("scale_restart"), 12);
  EXPECT_EQ(edits.back().at("note"), "an hour");
  EXPECT_EQ(edits.size(), nlohmann::json::parse(before->provenance).value("edits", nlohmann::json::array()).size() + 1);
  // Over the file itself (the default), then back to never: version 2 holds a model without it.
  ASSERT_EQ(runShell(fmt::format("{} model set {} --scale-restart 0", FORESIGHT_BIN, out.string())).exit_code, 0);
  auto never = loadModel(out);
  ASSERT_TRUE(never) << never.error().message;
  EXPECT_EQ(never->scale_restart, 0u);
  EXPECT_LT(never->format_version, after->format_version);

  // The split-conformal offsets one step ahead, as set: memory's at 0.99 only.
  auto calibrated = *never;
  std::fill(calibrated.conformal.begin(), calibrated.conformal.end(), 0.0);
  const auto& cal = calibrated.cal_levels;
  const auto l99 = static_cast<std::size_t>(std::find(cal.begin(), cal.end(), 0.99) - cal.begin());
  ASSERT_LT(l99, cal.size());
  calibrated.conformal[(index(foresight::Resource::kMemory) * calibrated.horizon + 0) * cal.size() + l99] = 0.4321;
  ASSERT_TRUE(saveModel(calibrated, out));
  auto show = runShell(fmt::format("{} model show {}", FORESIGHT_BIN, out.string()));
  ASSERT_EQ(show.exit_code, 0) << show.all();
  EXPECT_NE(show.out.find("  memory      +0.000 +0.000 +0.000 +0.432 +0.000\n"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("  cpu         +0.000 +0.000 +0.000 +0.000 +0.000\n"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("scale restart never"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("step          300 s"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("\"note\":\"an hour\""), std::string::npos) << show.out;
  auto shipped_show = runShell(fmt::format("{} model show", FORESIGHT_BIN));
  ASSERT_EQ(shipped_show.exit_code, 0) << shipped_show.all();
  EXPECT_NE(shipped_show.out.find(fmt::format("after {} steps", before->scale_restart)), std::string::npos)
      << shipped_show.out;
  // A corrupt file is refused, named; a negative restart is refused before anything is read.
  std::string bytes;
  {
    std::ifstream in(out, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(dir / "bad.fsm", std::ios::binary) << bytes;
  auto bad = runShell(fmt::format("{} model set {} --scale-restart 5", FORESIGHT_BIN, (dir / "bad.fsm").string()));
  EXPECT_EQ(bad.exit_code, 1) << bad.all();
  EXPECT_NE(bad.all().find("bad.fsm"), std::string::npos) << bad.all();
  auto negative = runShell(fmt::format("{} model set {} --scale-restart -1", FORESIGHT_BIN, out.string()));
  EXPECT_NE(negative.exit_code, 0);
  EXPECT_NE(negative.all().find("--scale-restart"), std::string::npos) << negative.all();
  fs::remove_all(dir);
}

// `train --autoencoder`: the fingerprint autoencoder's file plus its provenance beside it.
TEST(AutoencoderTrainCli, WritesTheModelAndItsProvenance) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-ae-cli-" + std::to_string(::getpid()));
  fs::create_directories(dir / "trace");
  for (int s = 0; s < 6; ++s) {
    std::ofstream f(dir / "trace" / fmt::format("vm{}.csv", s));
    f << "timestamp,cpu,memory\n";
    for (int i = 0; i < 3 * 288; ++i)
      f << fmt::format("{},{},{}\n", 1600000000 + 300 * i, (1 + s) * (1.2 + std::sin(i * 2 * M_PI / 288 + s)),
                       1e9 * (1 + 0.1 * s));
  }
  const fs::path model = dir / "ae.pt";
  const std::string cmd = fmt::format(
      "{} train --autoencoder --trace {} --format csv --out {} --epochs 4 --holdout 0.34 "
      "--torch-threads 1",
      FORESIGHT_BIN, (dir / "trace").string(), model.string());
  const auto r = runShell(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.all();
  ASSERT_TRUE(fs::exists(model)) << r.all();
  const auto prov = nlohmann::json::parse(std::ifstream(dir / "ae.pt.json"));
  EXPECT_EQ(prov.at("validation_series"), 2);
  EXPECT_EQ(prov.at("validation_mean_reconstruction_error").size(), 5u);
  EXPECT_GT(prov.at("train_fingerprints").get<int>(), 0);
  fs::remove_all(dir);
}

// A trace folder whose name is not UTF-8 (paths are bytes): both model kinds are written, their
// provenance with U+FFFD for the bad byte, instead of a JSON error at the end losing the model.
TEST(LstmTrainCli, ATracePathThatIsNotUtf8IsRecordedWithReplacementCharacters) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-train-utf8-" + std::to_string(::getpid()));
  const fs::path trace = dir / "trace-\xff";
  fs::create_directories(trace);
  for (int s = 0; s < 8; ++s) {
    std::ofstream f(trace / fmt::format("vm{}.csv", s));
    f << "timestamp,cpu,memory\n";
    for (int i = 0; i < 3 * 288; ++i)
      f << fmt::format("{},{},{}\n", 1600000000 + 300 * i, (1 + s) * (1.2 + std::sin(i * 2 * M_PI / 288 + s)),
                       1e9 * (1 + 0.1 * s));
  }
  const std::string replaced = "trace-\xef\xbf\xbd";
  const auto lstm = runShell(fmt::format("{} train --trace '{}' --format csv --out {} --hidden 4 --horizon 2 --batch 4 "
                                         "--epochs 1 --holdout 0.5 --torch-threads 1 --no-progress",
                                         FORESIGHT_BIN, trace.string(), (dir / "m.fsm").string()));
  ASSERT_EQ(lstm.exit_code, 0) << lstm.all();
  auto m = foresight::predict::lstm::loadModel(dir / "m.fsm");
  ASSERT_TRUE(m) << m.error().message;
  const auto prov = nlohmann::json::parse(m->provenance);
  EXPECT_NE(prov.at("trace").get<std::string>().find(replaced), std::string::npos) << prov.at("trace");
  EXPECT_NE(prov.at("command").get<std::string>().find(replaced), std::string::npos) << prov.at("command");

  const auto ae = runShell(fmt::format("{} train --autoencoder --trace '{}' --format csv --out {} --epochs 1 "
                                       "--holdout 0.34 --torch-threads 1",
                                       FORESIGHT_BIN, trace.string(), (dir / "ae.pt").string()));
  ASSERT_EQ(ae.exit_code, 0) << ae.all();
  EXPECT_TRUE(fs::exists(dir / "ae.pt"));
  const auto ae_prov = nlohmann::json::parse(std::ifstream(dir / "ae.pt.json"));
  EXPECT_NE(ae_prov.at("trace").get<std::string>().find(replaced), std::string::npos) << ae_prov.at("trace");
  fs::remove_all(dir);
}

// Output paths and option values that would waste a training run (or write a random model) are
// refused before the trace is read.
TEST(LstmTrainCli, RefusesUnwritableOutputsAndMeaninglessOptionsUpFront) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-train-args-" + std::to_string(::getpid()));
  fs::create_directories(dir / "taken.fsm");
  fs::create_directories(dir / "ae.pt.json");
  const std::string base = fmt::format("{} train --trace {}/data/bitbrains-rnd-sample --format bitbrains",
                                       FORESIGHT_BIN, FORESIGHT_SOURCE_DIR);
  const auto taken = runShell(base + " --out " + (dir / "taken.fsm").string());
  EXPECT_EQ(taken.exit_code, 2) << taken.all();
  EXPECT_NE(taken.all().find("taken.fsm: is a directory"), std::string::npos) << taken.all();
  EXPECT_EQ(taken.all().find("series"), std::string::npos) << "read the trace first: " << taken.all();
  const auto missing = runShell(base + " --out " + (dir / "no" / "m.fsm").string());
  EXPECT_EQ(missing.exit_code, 2) << missing.all();
  const auto ae = runShell(base + " --autoencoder --out " + (dir / "ae.pt").string());
  EXPECT_EQ(ae.exit_code, 2) << ae.all();
  EXPECT_NE(ae.all().find("ae.pt.json: is a directory"), std::string::npos) << ae.all();
  EXPECT_FALSE(fs::exists(dir / "ae.pt"));
  for (const char* bad : {"--epochs 0", "--lr nan", "--lr inf", "--torch-threads -3", "--time-budget -5",
                          "--patience 0"}) {
    const auto r = runShell(fmt::format("{} {} --out {}", base, bad, (dir / "m.fsm").string()));
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_FALSE(fs::exists(dir / "m.fsm")) << bad;
  }
  // Values train() would refuse only after the whole trace is read: bad arguments, before it.
  for (const auto& [bad, named] : {std::pair{"--scale-weight-bound 0.5", "--scale-weight-bound"},
                                   std::pair{"--scale-weight-bound -1", "--scale-weight-bound"},
                                   std::pair{"--fingerprint-window 1", "--fingerprint-window"},
                                   std::pair{"--scale-restart -1", "--scale-restart"},
                                   std::pair{"--day-features --step 7", "--step 7 does not divide a day"},
                                   std::pair{"--day-features --step 7200", "--step 7200 does not divide a day (86400 s) into at least --horizon 13"}}) {
    const auto r = runShell(fmt::format("{} {} --horizon 13 --out {}", base, bad, (dir / "m.fsm").string()));
    EXPECT_EQ(r.exit_code, 2) << bad << ": " << r.all();
    EXPECT_NE(r.all().find(named), std::string::npos) << bad << ": " << r.all();
    EXPECT_EQ(r.all().find("skipped"), std::string::npos) << bad << ": read the trace first: " << r.all();
    EXPECT_FALSE(fs::exists(dir / "m.fsm")) << bad;
  }
  fs::remove_all(dir);
}

}  // namespace
