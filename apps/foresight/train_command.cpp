// `foresight train`: fits the global LSTM forecaster on a trace folder and writes the model file.
#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/core/progress.h"
#include "foresight/fingerprint/autoencoder.h"
#include "foresight/predict/lstm/torch_api.h"
#include "foresight/trace/reader.h"

namespace foresight::app {
namespace {

struct TrainArgs {
  std::string trace_dir, format = "bitbrains", out, init;
  predict::lstm::TrainOptions opt;
  std::size_t max_series = 0;
  std::int64_t step = 0;
  int torch_threads = 2;
  bool autoencoder = false;
  bool no_progress = false;
  std::string command_line;
};

// What both model kinds record of how they were made.
nlohmann::json provenanceOf(const TrainArgs& a) {
  return {{"command", a.command_line}, {"trace", a.trace_dir}, {"format", a.format}};
}
// Paths and the command line are bytes, JSON text is UTF-8: bytes that are not become U+FFFD
// instead of a throw that loses the model just trained.
std::string dumpProvenance(const nlohmann::json& prov, int indent = -1) {
  return prov.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The fingerprint autoencoder on the pipeline's default configuration (the agent's), from the
// trace's usage series; the model is the file the agent's fingerprint.autoencoder_model names,
// its provenance in FILE.json beside it.
int trainAutoencoder(const TrainArgs& a, const trace::Trace& tr) {
  fingerprint::AutoencoderTraining o;
  o.epochs = a.opt.max_epochs;
  o.holdout = a.opt.holdout;
  o.train_fraction = a.opt.train_fraction;
  o.seed = a.opt.seed;
  const auto t0 = std::chrono::steady_clock::now();
  auto rep = fingerprint::trainAutoencoder(tr.series, o);
  if (!rep) {
    spdlog::error("{}", rep.error().message);
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (std::size_t e = 0; e < rep->val_error.size(); ++e)
    spdlog::info("{}: held-back mean reconstruction error {:.4f}",
                 e == 0 ? std::string("untrained") : fmt::format("epoch {}", e), rep->val_error[e]);
  if (auto st = rep->model->save(a.out); !st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  nlohmann::json prov = provenanceOf(a);
  prov["train_series"] = rep->train_series;
  prov["validation_series"] = rep->val_series;
  prov["train_fraction"] = o.train_fraction;
  prov["train_fingerprints"] = rep->train_vectors;
  prov["validation_fingerprints"] = rep->val_vectors;
  prov["best_epoch"] = rep->best_epoch;
  prov["fingerprint"] = {{"window", o.fingerprint.window}, {"hop", o.fingerprint.hop}, {"dim", o.fingerprint.dim}};
  prov["validation_mean_reconstruction_error"] = rep->val_error;  // [0]: untrained
  prov["seed"] = o.seed;
  prov["seconds"] = seconds;
  if (auto st = writeFileAtomically(a.out + ".json", dumpProvenance(prov, 2) + "\n"); !st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  spdlog::info("wrote {} and {}.json (best epoch {}, {:.0f} s, {} training fingerprints)", a.out,
               a.out, rep->best_epoch, seconds, rep->train_vectors);
  return 0;
}

// Fine-tuning splits the workloads afresh: with another split seed, hold-out share or training
// fraction than the --init model's, workloads it held back may now give gradients.
void warnIfAnotherSplit(const TrainArgs& a, const predict::lstm::LstmModel& init) {
  auto was = predict::lstm::trainedOn(init);
  if (!was) {
    spdlog::warn("--init {}: {}; if this is its training trace, workloads it held back may become training data",
                 a.init, was.error().message);
    return;
  }
  std::vector<std::string> differ;
  const std::uint64_t split_seed = a.opt.split_seed.value_or(a.opt.seed);
  if (split_seed != was->split_seed)
    differ.push_back(
        fmt::format("split seed {} (--split-seed, else --seed) against its {}", split_seed, was->split_seed));
  if (a.opt.holdout != was->holdout)
    differ.push_back(fmt::format("--holdout {} against its {}", a.opt.holdout, was->holdout));
  if (a.opt.train_fraction != was->train_fraction)
    differ.push_back(
        fmt::format("--train-fraction {} against its {}", a.opt.train_fraction, was->train_fraction));
  if (differ.empty()) return;
  spdlog::warn("--init {}: another workload split than it was trained with ({}): if this is its training trace ({}), "
               "workloads it held back for validation and calibration may become training data; give --split-seed {} "
               "--holdout {} --train-fraction {} to keep them held back",
               a.init, fmt::join(differ, "; "), was->trace.empty() ? "not recorded" : was->trace, was->split_seed,
               was->holdout, was->train_fraction);
}

int runTrain(const TrainArgs& a) {
  auto format = trace::parseFormat(a.format);
  if (!format) {
    spdlog::error("{}", format.error().message);
    return 2;
  }
  // A fine-tuned model keeps its input columns: train() would ignore the flags and the provenance
  // misstate them.
  if (!a.init.empty() && (a.opt.day_features || !a.opt.window_features)) {
    spdlog::error("--init {}: {} cannot change the inputs of a model being fine-tuned (they are the model's); "
                  "drop it, or train a fresh model",
                  a.init, a.opt.day_features ? "--day-features" : "--no-window-features");
    return 2;
  }
  // Without --step the trace's median step is known only once it is read; train() checks it then.
  if (a.opt.day_features && a.step > 0 && !predict::lstm::dayBlockFits(a.step, a.opt.horizon)) {
    spdlog::error("--day-features: --step {} does not divide a day (86400 s) into at least --horizon {} steps",
                  a.step, a.opt.horizon);
    return 2;
  }
  // --out is checked by its validator; the autoencoder's sibling file before the training that a
  // failed write would throw away.
  if (a.autoencoder)
    if (auto st = checkOutputFile(a.out + ".json"); !st) {
      spdlog::error("--out: {}", st.error().message);
      return 2;
    }
  predict::lstm::setTorchThreads(a.torch_threads);
  auto opt = a.opt;
  if (!a.init.empty()) {
    auto init = predict::lstm::loadModel(a.init);
    if (!init) {
      spdlog::error("{}", init.error().message);
      return 1;
    }
    spdlog::info("{}: fine-tuning (hidden {}, horizon {}, {} inputs; --hidden, --horizon and the inputs "
                 "come from it)", a.init, init->hidden, init->horizon, init->inputs());
    warnIfAnotherSplit(a, *init);
    opt.init = std::move(*init);
  }
  opt.threads = static_cast<unsigned>(std::max(a.torch_threads, 1));
  trace::ReadOptions ro;
  ro.format = *format;
  ro.max_series = a.max_series;
  ro.step_seconds = a.step;
  auto tr = trace::readTraceDir(a.trace_dir, ro);
  if (!tr) {
    spdlog::error("{}", tr.error().message);
    return 1;
  }
  spdlog::info("{}: {} series, {} skipped, step {} s; training on the first {:.0f}% of each", a.trace_dir,
               tr->series.size(), tr->skipped.size(), tr->step_seconds, 100 * a.opt.train_fraction);
  if (a.autoencoder) return trainAutoencoder(a, *tr);
  std::unique_ptr<ProgressBar> bar;
  std::size_t epoch = 0;
  auto progress = [&](const predict::lstm::EpochInfo& e) {
    if (e.epoch != epoch) {
      epoch = e.epoch;
      bar = std::make_unique<ProgressBar>(fmt::format("epoch {}", e.epoch), e.batches_total, !a.no_progress);
    }
    if (std::isnan(e.val_loss)) {
      bar->update(e.batches_done, fmt::format("loss {:.4f}", e.train_loss));
    } else {
      bar->finish();
      spdlog::info("epoch {}: train loss {:.4f}, validation loss {:.4f}{}", e.epoch, e.train_loss,
                   e.val_loss,
                   a.opt.select_by_backtest
                       ? fmt::format(", validation backtest cpu+memory slack at 1% {:.3f}", e.val_score)
                       : "");
    }
  };
  auto rep = predict::lstm::train(tr->series, opt, progress);
  if (!rep) {
    spdlog::error("{}", rep.error().message);
    return 1;
  }
  nlohmann::json prov = provenanceOf(a);
  prov["series_read"] = tr->series.size();
  prov["train_series"] = rep->train_series;
  prov["validation_series"] = rep->val_series;
  prov["conformal_series"] = rep->cal_series;
  prov["train_fraction"] = a.opt.train_fraction;
  prov["series_steps_per_epoch"] = rep->train_steps;
  prov["seed"] = a.opt.seed;
  prov["split_seed"] = a.opt.split_seed.value_or(a.opt.seed);
  prov["holdout"] = a.opt.holdout;
  prov["torch_threads"] = a.torch_threads;
  prov["seconds"] = rep->seconds;
  prov["best_epoch"] = rep->best_epoch;
  prov["scale_weight_bound"] = a.opt.scale_weight_bound;
  prov["horizon_weight_power"] = a.opt.horizon_weight_power;
  // From the model: with --init its inputs are its own.
  prov["window_features"] = rep->model.hasBlock("window");
  prov["day_features"] = rep->model.hasBlock("day");
  prov["fingerprint_window"] = rep->model.fingerprint_window;
  prov["scale_restart"] = rep->model.scale_restart;
  if (!a.init.empty()) prov["init"] = a.init;
  // Which resources had targets: the heads of one no series had are untrained (a warning where
  // the model is used on it). A fine-tuned model also learnt from what its --init saw, if recorded.
  std::optional<std::array<std::size_t, kResourceCount>> with = rep->series_with;
  if (opt.init) {
    const auto was = predict::lstm::trainedOn(*opt.init);
    if (was && was->series_with)
      for (Resource r : kAllResources) (*with)[index(r)] += (*was->series_with)[index(r)];
    else
      with.reset();  // unknown
  }
  if (with)
    for (Resource r : kAllResources) prov["train_series_with"][std::string(name(r))] = (*with)[index(r)];
  prov["select_by"] = a.opt.select_by_backtest ? "backtest" : "loss";
  for (const auto& e : rep->epochs)
    prov["epochs"].push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"val_loss", e.val_loss},
                              {"val_score", std::isnan(e.val_score) ? nlohmann::json(nullptr) : nlohmann::json(e.val_score)},
                              {"batches", e.batches_done}, {"batches_total", e.batches_total}});
  if (rep->augmented_series) prov["missing_resources"] = {{"probability", a.opt.missing_resources},
                                                         {"augmented_series", rep->augmented_series}};
  // The model-selection figure: never the evaluation part (the backtest's test set). Also without
  // disk_io and network, as on a trace that has only cpu and memory (most public ones).
  std::vector<const trace::Series*> val;
  for (auto i : rep->val_index) val.push_back(&tr->series[i]);
  constexpr Resource kDiskAndNetwork[] = {Resource::kDiskIo, Resource::kNetwork};
  std::vector<trace::Series> reduced_store;
  for (const auto* s : val) reduced_store.push_back(s->without(kDiskAndNetwork));
  std::vector<const trace::Series*> reduced;
  for (const auto& s : reduced_store) reduced.push_back(&s);
  for (const auto& [key, set, label] :
       {std::tuple{"validation_backtest", &val, ""},
        std::tuple{"validation_backtest_cpu_memory_only", &reduced, " (cpu and memory only)"}}) {
    auto vb = predict::lstm::validationBacktest(rep->model, *set, a.opt.train_fraction,
                                                static_cast<unsigned>(std::max(a.torch_threads, 1)));
    if (!vb) {
      spdlog::error("{}", vb.error().message);
      return 1;
    }
    nlohmann::json vj;
    vj["what"] = fmt::format("policy lstm (default violation-cost sweep), lead 1, on the validation series' "
                             "training parts{}; warm-up = first half, scored = second half; pooled slack at iso-risk",
                             label);
    vj["series"] = vb->series;
    vj["scored_steps"] = vb->scored_steps;
    vj["seconds"] = vb->seconds;
    vj["selection_figure"] = predict::lstm::selectionScore(*vb);
    for (const auto& [r, by_level] : vb->slack) {
      std::string line;
      for (const auto& [level, slack] : by_level) {
        vj["slack"][std::string(name(r))][fmt::format("{}", level)] =
            std::isnan(slack) ? nlohmann::json(nullptr) : nlohmann::json(slack);
        line += fmt::format("  {:.3f} at {}", slack, level);
      }
      spdlog::info("validation backtest{}, {} slack:{}", label, name(r), line);
    }
    prov[key] = vj;
  }
  prov["trained_at"] = isoUtc(std::time(nullptr));
  rep->model.provenance = dumpProvenance(prov);
  if (auto s = predict::lstm::saveModel(rep->model, a.out); !s) {
    spdlog::error("{}", s.error().message);
    return 1;
  }
  spdlog::info("wrote {} (best epoch {}, {:.0f} s, {} training series-steps per epoch)", a.out,
               rep->best_epoch, rep->seconds, rep->train_steps);
  return 0;
}

}  // namespace

void addTrainCommand(CLI::App& app, int argc, char** argv) {
  auto a = std::make_shared<TrainArgs>();
  for (int i = 0; i < argc; ++i) a->command_line += (i ? " " : "") + std::string(argv[i]);
  auto* cmd = app.add_subcommand("train", "Train the LSTM forecaster on a trace folder");
  cmd->add_option("--trace", a->trace_dir, "folder of trace files, or one file")->required()->check(CLI::ExistingPath);
  cmd->add_option("--format", a->format, "bitbrains or csv")->capture_default_str();
  cmd->add_option("--out", a->out, "model file to write")->required()->check(outputFile());
  cmd->add_option("--train-fraction", a->opt.train_fraction, "only this first share of each series is read")
      ->capture_default_str()->check(CLI::Range(0.05, 1.0));
  cmd->add_option("--hidden", a->opt.hidden, "LSTM hidden size")->capture_default_str()->check(CLI::Range(2, 1024));
  cmd->add_option("--horizon", a->opt.horizon, "forecast steps")->capture_default_str()->check(CLI::Range(1, 288));
  cmd->add_option("--batch", a->opt.batch, "series per batch")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--bptt", a->opt.bptt, "truncated-BPTT chunk (steps)")->capture_default_str()->check(CLI::Range(2, 10000));
  cmd->add_option("--epochs", a->opt.max_epochs, "maximum epochs")->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  cmd->add_flag("--autoencoder", a->autoencoder,
                "train the fingerprint autoencoder (the agent's fingerprint.autoencoder_model) "
                "instead of the LSTM; uses --trace, --format, --out, --epochs, --holdout, "
                "--train-fraction, --seed");
  cmd->add_option("--patience", a->opt.patience, "early stopping: epochs without improvement")->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  cmd->add_option("--lr", a->opt.lr, "Adam learning rate")->capture_default_str()->check(finiteIn(1e-8, 1.0));
  cmd->add_option("--missing-resources", a->opt.missing_resources,
                  "probability that a training series also enters without some of memory, disk_io and "
                  "network, so the model learns to forecast on traces that lack them (0: off)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--holdout", a->opt.holdout, "share of workloads held back (validation + conformal)")
      ->capture_default_str()->check(CLI::Range(0.02, 0.8));
  cmd->add_option("--time-budget", a->opt.time_budget_s,
                  "stop taking gradient steps after this many seconds (then validate, calibrate, save); 0: none")
      ->capture_default_str()->check(finiteIn(0.0, 1e9));
  cmd->add_option("--max-series", a->max_series, "read only the first N series");
  cmd->add_option("--step", a->step, "resampling step in seconds (default: the median step); the model records it")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--train-series", a->opt.max_series, "use at most N series for gradients");
  cmd->add_option("--seed", a->opt.seed, "random seed")->capture_default_str();
  cmd->add_option_function<std::uint64_t>(
      "--split-seed", [a](std::uint64_t v) { a->opt.split_seed = v; },
      "seed of the workload split only (default: --seed), to compare seeds on the same held-back "
      "workloads");
  cmd->add_option("--torch-threads", a->torch_threads, "LibTorch intra-op threads")->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--scale-weight-bound", a->opt.scale_weight_bound,
                  "weight each series' loss by its scale / the mean scale, clipped to [1/B, B]; 0: unweighted")
      ->capture_default_str()
      ->check(finiteIn(0, 0) | finiteIn(1));
  cmd->add_option("--horizon-weight", a->opt.horizon_weight_power,
                  "weight horizon step h's loss by h^-P, so the near steps an allocation rests on "
                  "count more; 0: every step alike")
      ->capture_default_str()
      ->check(finiteIn(0, 8));
  cmd->add_flag("--window-features,!--no-window-features", a->opt.window_features,
                "inputs: max and min of the last 12 steps' z per resource")
      ->capture_default_str();
  cmd->add_flag("--day-features,!--no-day-features", a->opt.day_features,
                "inputs: per resource, the z a day before the next step and the max z over the "
                "horizon's window a day before (a day = 86400 s / the trace's step)")
      ->capture_default_str();
  cmd->add_option("--fingerprint-window", a->opt.fingerprint_window,
                  "inputs: the fingerprint block, burstiness and lag-1 autocorrelation of each "
                  "resource over the last N steps (288 = one day of 5-minute steps); 0: none, or "
                  "the --init model's")
      ->capture_default_str()
      ->check(CLI::IsMember({"0"}) | wholeNumber(2));
  cmd->add_option("--scale-restart", a->opt.scale_restart,
                  "inputs: restart each resource's scale after N steps in a row above 8x it (a "
                  "level shift, such as a workload that idled before it started; 12 = an hour of "
                  "5-minute steps); 0: never, or the --init model's")
      ->capture_default_str()
      ->check(wholeNumber(0));
  cmd->add_option("--init", a->init,
                  "fine-tune this model file instead of starting from fresh weights (keeps its "
                  "normalisers; give the --seed or --split-seed it was trained with, so its "
                  "held-back workloads stay held back)")
      ->check(CLI::ExistingFile);
  cmd->add_option_function<std::string>(
         "--select-by",
         [a](const std::string& v) { a->opt.select_by_backtest = v == "backtest"; },
         "which epoch is kept and what early stopping waits on: backtest (mean cpu and memory slack "
         "at 1% violations in a validation backtest run after each epoch, ~2 s on the July trace) or loss "
         "(validation pinball loss)")
      ->check(CLI::IsMember({"backtest", "loss"}))
      ->default_str("backtest");
  cmd->add_flag("--no-progress", a->no_progress, "no progress bar");
  cmd->callback([a] {
    if (int rc = runTrain(*a); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
