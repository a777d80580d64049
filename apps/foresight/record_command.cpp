// `foresight record`: samples workloads for a while and writes the generic CSV trace format (one
// file per workload) plus fingerprints.jsonl, so a recording feeds `train` and `backtest`.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "commands.h"
#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/fingerprint/fingerprint.h"
#include "foresight/server/agent.h"
#include "profiler_common.h"

namespace fs = std::filesystem;

namespace foresight::app {
namespace {

struct RecordArgs {
  WorkloadOptions workloads;
  std::string out;
  double duration = 0, period = 1.0;
  fingerprint::Config fp;
  bool autoencoder = false;
  std::string autoencoder_model;
};

int runRecord(const RecordArgs& a) {
  if (a.duration <= 0 && a.workloads.command.empty()) {
    spdlog::error("record: --duration must be > 0 (it may be omitted only with -- CMD)");
    return 2;
  }
  if ((a.autoencoder || !a.autoencoder_model.empty()) && !server::haveAutoencoder()) {
    spdlog::error("record: --autoencoder: this build has no LibTorch");
    return 2;
  }
  std::shared_ptr<const fingerprint::AnomalyModel> initial_autoencoder;  // read once, copied per workload
  if (!a.autoencoder_model.empty()) {
    auto model = server::loadAutoencoder(a.fp, a.autoencoder_model);
    if (!model) {
      spdlog::error("record: --autoencoder-model: {}", model.error().message);
      return 2;
    }
    initial_autoencoder = std::move(*model);
  }
  auto source = WorkloadSource::create(a.workloads);
  if (!source) {
    spdlog::error("record: {}", source.error().message);
    return 1;
  }
  collect::CsvTraceWriter writer(a.out);
  std::map<std::string, fingerprint::Pipeline> pipelines;
  std::map<std::string, collect::Sample> last;
  const fs::path fp_path = fs::path(a.out) / "fingerprints.jsonl";
  std::error_code ec;
  fs::create_directories(a.out, ec);
  auto fp_file = AtomicFile::create(fp_path);
  if (!fp_file) {
    spdlog::error("record: {}", fp_file.error().message);
    return 1;
  }
  std::ostream& fp_out = fp_file->out();
  Status failure = ok();
  std::size_t rounds = 0, fingerprints = 0;
  installStopHandler();
  runEvery(std::chrono::duration<double>(a.period), std::chrono::duration<double>(a.duration),
           stopFlag(), [&] {
             const bool ending = (*source)->commandExited();
             auto round = (*source)->sampler().sample((*source)->current());
             for (auto& s : round.samples) {
               if (auto st = writer.add(s); !st) { failure = st; return false; }
               auto it = last.find(s.workload);
               if (it != last.end()) {
                 auto u = collect::resourceUsage(it->second, s);
                 auto [p, created] = pipelines.try_emplace(s.workload, a.fp, fingerprint::resourceMetrics());
                 if (created && (a.autoencoder || !a.autoencoder_model.empty()))
                   (void)server::attachAutoencoder(p->second, initial_autoencoder.get());  // checked above
                 if (auto f = p->second.push(s.time_ns / 1000000, u)) {
                   auto j = fingerprint::toJson(*f);
                   j["workload"] = s.workload;
                   fp_out << j.dump() << '\n';
                   if (!fp_out) {
                     failure = fail(ErrorCode::kIo, "{}: write failed: {}", fp_file->temporaryPath().string(), std::strerror(errno));
                     return false;
                   }
                   ++fingerprints;
                 }
               }
               collect::carryForward(last[s.workload], s);
             }
             // What a gone workload holds goes with it; a new one under the same id starts over.
             for (const auto& g : round.gone) {
               if (auto st = writer.pause(g); !st) { failure = st; return false; }
               pipelines.erase(g);
               last.erase(g);
             }
             ++rounds;
             return !ending;  // one last round after the command exits
           });
  if (!failure) {
    spdlog::error("record: {}", failure.error().message);
    return 1;
  }
  const std::size_t workloads = writer.workloads();
  // fingerprints.jsonl first: it can still be taken back if the CSV files cannot all be put in
  // place (the writer takes back its own), so a failed recording leaves none of its files.
  if (auto st = fp_file->commit(); !st) {
    spdlog::error("record: {}", st.error().message);
    return 1;
  }
  if (auto st = writer.finish(); !st) {
    spdlog::error("record: {}", st.error().message);
    fs::remove(fp_path, ec);
    return 1;
  }
  spdlog::info("record: {} rounds, {} workloads, {} fingerprints -> {}", rounds, workloads,
               fingerprints, a.out);
  if ((*source)->commandFailed()) {
    spdlog::warn("record: {} exited with status {}", a.workloads.command.front(), (*source)->commandExitCode());
    return 3;
  }
  return 0;
}

}  // namespace

void addWorkloadOptions(CLI::App& cmd, WorkloadOptions& w) {
  cmd.add_option("selectors", w.selectors, "pid:N, cgroup:/path or cmd:REGEX (none: every populated cgroup)");
  cmd.add_option("--root", w.root, "host root holding proc/ and sys/fs/cgroup/")->capture_default_str();
  cmd.add_option("--max-depth", w.max_depth, "cgroup depth for discovery")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd.add_option("--collectors", w.collectors, "collector names (default: all that apply)")->delimiter(',');
  cmd.add_option("--detail-every", w.detail_every, "read the detail files every N rounds (1: every round)")
      ->capture_default_str()->check(CLI::PositiveNumber);
}

void addRecordCommand(CLI::App& app, Builtins& builtins) {
  auto a = std::make_shared<RecordArgs>();
  auto* cmd = app.add_subcommand("record", "Record workloads to generic CSV traces + fingerprints");
  cmd->add_option("--out", a->out, "output folder")->required();
  cmd->add_option("--duration", a->duration, "seconds to record (0 with -- CMD: until it exits)");
  cmd->add_option("--period", a->period, "seconds between samples")->capture_default_str()
      ->check(finiteAbove(0));
  cmd->add_option("--window", a->fp.window, "fingerprint window (samples)")->capture_default_str()
      ->check(CLI::Range(fingerprint::kMinWindow, fingerprint::kMaxWindow));
  cmd->add_option("--hop", a->fp.hop, "samples between fingerprints")->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, fingerprint::kMaxHop));
  cmd->add_option("--dim", a->fp.dim, "fingerprint vector size (at most the number of features)")
      ->capture_default_str()->check(CLI::Range(std::size_t{1}, fingerprint::kMaxDim));
  cmd->add_flag("--autoencoder", a->autoencoder, "anomaly score from the LibTorch autoencoder (default: PCA error)");
  cmd->add_option("--autoencoder-model", a->autoencoder_model,
                  "start each workload's autoencoder from this model (foresight train --autoencoder); "
                  "implies --autoencoder")
      ->check(CLI::ExistingFile);
  // A recording is a trace to train and backtest on: every column every row (the trace reader
  // would split a series at the gaps that tiered sampling leaves).
  a->workloads.detail_every = 1;
  addWorkloadOptions(*cmd, a->workloads);
  cmd->callback([a, &builtins] {
    a->workloads.command = builtins.command;
    int rc = runRecord(*a);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
