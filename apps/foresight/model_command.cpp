// `foresight model`: what a model file holds (show), and the one setting that may change after
// training (set --scale-restart), which is how the shipped model's header was edited.
#include <ctime>
#include <iostream>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "foresight/core/log.h"
#include "foresight/predict/lstm/model.h"

namespace foresight::app {
namespace {

struct ModelArgs {
  std::string file, out, note;
  std::vector<std::string> shown = shippedModels();
  long long scale_restart = -1;
};

int showModel(const std::string& file) {
  auto m = predict::lstm::loadModel(file);
  if (!m) {
    spdlog::error("{}", m.error().message);
    return 1;
  }
  fmt::print("{}: format version {}, checksum ok\n", file, m->format_version);
  fmt::print("step          {}\n", m->step_seconds > 0 ? fmt::format("{} s", m->step_seconds) : "not recorded");
  fmt::print("horizon       {} steps\nhidden        {}\nquantiles     {}\n", m->horizon, m->hidden,
             fmt::join(m->levels, " "));
  fmt::print("scale restart {}\n", m->scale_restart > 0
                                     ? fmt::format("after {} steps in a row above the clip", m->scale_restart)
                                     : "never");
  std::map<std::string, std::vector<std::string>> blocks;
  std::vector<std::string> order;
  for (const auto& f : m->schema) {
    if (!blocks.count(f.block)) order.push_back(f.block);
    blocks[f.block].push_back(f.name);
  }
  // What split-conformal calibration added to the heads' quantiles, one step ahead: in z units
  // (log1p(u / scale)); the online tracker adjusts each workload's on top.
  if (m->conformal.empty()) {
    fmt::print("calibration   none (no split-conformal offsets)\n");
  } else {
    static constexpr double kShown[] = {0.5, 0.9, 0.95, 0.99, 0.999};
    fmt::print("calibration   split-conformal offsets in z, 1 step ahead, at levels {}\n", fmt::join(kShown, " "));
    for (Resource r : kAllResources) {
      std::vector<std::string> v;
      for (double level : kShown) v.push_back(fmt::format("{:+.3f}", m->conformalOffset(index(r), 1, level)));
      fmt::print("  {:<11} {}\n", name(r), fmt::join(v, " "));
    }
  }
  fmt::print("inputs        {}\n", m->inputs());
  for (const auto& b : order) fmt::print("  {:<11} {}\n", b, fmt::join(blocks[b], " "));
  const auto prov = nlohmann::json::parse(m->provenance.empty() ? "{}" : m->provenance, nullptr, false);
  if (prov.is_object()) {
    for (const char* k : {"command", "trace", "trained_at", "seconds", "best_epoch", "seed"})
      if (prov.contains(k)) fmt::print("{:<13} {}\n", k, prov[k].is_string() ? prov[k].get<std::string>() : prov[k].dump());
    if (prov.contains("edits"))
      for (const auto& e : prov["edits"]) fmt::print("edit          {}\n", e.dump());
  }
  return 0;
}

int setModel(const ModelArgs& a) {
  auto m = predict::lstm::loadModel(a.file);
  if (!m) {
    spdlog::error("{}", m.error().message);
    return 1;
  }
  auto prov = nlohmann::json::parse(m->provenance.empty() ? "{}" : m->provenance, nullptr, false);
  if (!prov.is_object()) {
    spdlog::error("{}: its provenance is not a JSON object, so the edit could not be recorded", a.file);
    return 1;
  }
  m->scale_restart = static_cast<std::uint32_t>(a.scale_restart);
  m->format_version = predict::lstm::formatVersionFor(*m);
  prov["edits"].push_back({{"scale_restart", a.scale_restart}, {"by", "foresight model set"},
                           {"at", isoUtc(std::time(nullptr))}, {"note", a.note}});
  m->provenance = prov.dump();
  const std::string out = a.out.empty() ? a.file : a.out;
  if (auto st = predict::lstm::saveModel(*m, out); !st) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  spdlog::info("{}: scale restart {}, weights unchanged", out,
               a.scale_restart > 0 ? fmt::format("after {} steps", a.scale_restart) : "never");
  return 0;
}

}  // namespace

void addModelCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("model", "Show an LSTM model file, or change its scale restart without retraining");
  cmd->require_subcommand(1);
  auto show = std::make_shared<ModelArgs>();
  auto* s = cmd->add_subcommand("show", "Print what model files hold: step, horizon, quantiles, inputs, how it was made");
  s->add_option("file", show->shown, "model files (default: the two shipped models)")->capture_default_str();
  s->callback([show] {
    for (std::size_t i = 0; i < show->shown.size(); ++i) {
      if (i) fmt::print("\n");
      if (int rc = showModel(show->shown[i]); rc != 0) throw CLI::RuntimeError(rc);
    }
  });
  auto set = std::make_shared<ModelArgs>();
  auto* t = cmd->add_subcommand(
      "set", "Set the scale restart of a trained model (inputs at inference only; the weights are "
             "kept) and record the edit in its provenance");
  t->add_option("file", set->file, "model file")->required()->check(CLI::ExistingFile);
  t->add_option("--scale-restart", set->scale_restart,
                "steps in a row above the clip that restart a resource's scale (as train --scale-restart); 0: never")
      ->required()
      ->check(wholeNumber(0) & CLI::Range(0LL, static_cast<long long>(UINT32_MAX)));
  t->add_option("--note", set->note, "why, recorded with the edit");
  t->add_option("-o,--out", set->out, "where to write it (default: over FILE, atomically)")->check(outputFile());
  t->callback([set] {
    if (int rc = setModel(*set); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
