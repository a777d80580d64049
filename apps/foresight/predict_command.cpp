// `foresight predict`: the forecast bands of one series after a given step.
#include <iostream>

#include <fmt/ranges.h>

#include "commands.h"
#include "foresight/core/log.h"
#include "foresight/predict/lstm/model.h"
#include "foresight/predict/lstm/stream.h"
#include "foresight/trace/reader.h"

namespace foresight::app {
namespace {

struct PredictArgs {
  std::vector<std::string> models = shippedModels();
  std::string trace_dir, format = "bitbrains", series;
  long long at = -1;
  std::int64_t step = 0;
};

std::string human(Resource r, double v) {
  if (std::isnan(v)) return "nan";
  if (r == Resource::kCpu) return fmt::format("{:.3f}", v);
  if (r == Resource::kMemory) return fmt::format("{:.1f}M", v / (1024.0 * 1024.0));
  return fmt::format("{:.1f}K/s", v / 1024.0);
}

int runPredict(const PredictArgs& a) {
  const std::vector<std::filesystem::path> model_files(a.models.begin(), a.models.end());
  auto models = predict::lstm::loadEnsemble(model_files);
  if (!models) {
    spdlog::error("{}", models.error().message);
    return 1;
  }
  auto format = trace::parseFormat(a.format);
  if (!format) {
    spdlog::error("{}", format.error().message);
    return 2;
  }
  trace::ReadOptions ro;
  ro.format = *format;
  ro.step_seconds = a.step;
  // Only the series' own file is read where it has one: a folder of other workloads' files costs
  // time and would log every short series of theirs as skipped. Without one, the series may be
  // a row group of a file with an `id` column: then every file is read.
  auto files = trace::listTraceFiles(a.trace_dir);
  if (!files) {
    spdlog::error("{}", files.error().message);
    return 1;
  }
  const std::string base = a.series.substr(0, a.series.find('#'));
  std::vector<std::filesystem::path> own;
  bool every_file = false;
  for (const auto& f : *files)
    if (trace::seriesId(f) == base) own.push_back(f);
  if (own.empty()) {
    if (*format != trace::Format::kCsv) {
      spdlog::error("{}: no file {}.csv or {}.csv.gz for series '{}'", a.trace_dir, base, base, a.series);
      return 1;
    }
    own = *files;
    every_file = true;
  }
  auto tr = trace::readTrace(own, ro);
  if (!tr) {
    spdlog::error("{}", tr.error().message);
    return 1;
  }
  const trace::Series* s = nullptr;
  for (const auto& x : tr->series)
    if (x.id == a.series) s = &x;
  if (!s) {  // a file split at long gaps gives pieces ID#1, ID#2...: name them (also for ID#7)
    std::vector<std::string> pieces;
    for (const auto& x : tr->series)
      if (trace::isPieceOf(x.id, base)) pieces.push_back(x.id);
    spdlog::error("{}: no series '{}'{}", a.trace_dir, a.series,
                  !pieces.empty() ? fmt::format(" (pieces: {})", fmt::join(pieces, ", "))
                  : every_file    ? fmt::format(" (no file {}.csv or {}.csv.gz, and no id column names it)", base, base)
                                  : "");
    return 1;
  }
  // Members share their step (loadEnsemble), so the first speaks for all.
  if (auto w = predict::lstm::stepMismatch(*models->front(), tr->step_seconds); !w.empty()) spdlog::warn("{}", w);
  std::vector<Resource> used;
  for (Resource r : kAllResources)
    if (s->has(r)) used.push_back(r);
  for (std::size_t i = 0; i < models->size(); ++i)
    if (auto w = predict::lstm::untrainedResources(*(*models)[i], a.models[i], used); !w.empty()) spdlog::warn("{}", w);
  if (a.at >= static_cast<long long>(s->size())) {
    spdlog::error("--at {}: series {} has steps 0 to {}", a.at, s->id, s->size() - 1);
    return 2;
  }
  const std::size_t at = a.at < 0 ? s->size() - 1 : static_cast<std::size_t>(a.at);
  auto f = predict::lstm::forecastSeries(*models, *s, at);
  if (!f) {
    spdlog::error("{}", f.error().message);
    return 1;
  }
  fmt::print("series {} after step {} (t={}), step {} s; bands calibrated by split and online conformal\n", f->workload,
             at, f->time, f->step_seconds);
  for (Resource r : kAllResources) {
    if (f->values[index(r)].empty()) continue;
    fmt::print("\n{:<8} {:>4}", name(r), "h");
    for (double l : f->levels) fmt::print(" {:>10}", fmt::format("q{:g}", l));
    fmt::print("\n");
    for (std::size_t h = 1; h <= f->horizon(); ++h) {
      fmt::print("{:<8} {:>4}", "", h);
      for (double v : f->values[index(r)][h - 1]) fmt::print(" {:>10}", human(r, v));
      fmt::print("\n");
    }
  }
  return 0;
}

}  // namespace

void addPredictCommand(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand("predict", "Print the LSTM forecast bands of one series");
  addModelOption(*cmd, a->models);
  cmd->add_option("--trace", a->trace_dir, "folder of trace files, or one file")->required()->check(CLI::ExistingPath);
  cmd->add_option("--format", a->format, "bitbrains or csv")->capture_default_str();
  cmd->add_option("--series", a->series, "series id (file name without extension, or the csv's id column)")->required();
  cmd->add_option("--step", a->step, "resampling step in seconds (default: the median step)")->check(CLI::PositiveNumber);
  cmd->add_option("--at", a->at, "forecast after this step, from 0 (default: the last)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([a] {
    if (int rc = runPredict(*a); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
