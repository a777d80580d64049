#include "profiler_common.h"

#include <signal.h>
#include <unistd.h>

#include <thread>

#include "foresight/core/log.h"

namespace foresight::app {

Result<std::unique_ptr<WorkloadSource>> WorkloadSource::create(const WorkloadOptions& o) {
  auto s = std::unique_ptr<WorkloadSource>(new WorkloadSource());
  s->options_ = o;
  s->ctx_.paths = collect::HostPaths(o.root);
  s->ctx_.layout = collect::detectCgroupLayout(s->ctx_.paths);
  s->ctx_.clock_ticks = ::sysconf(_SC_CLK_TCK);
  s->ctx_.detail_every = o.detail_every;
  collect::registerCollectors(s->registry_);
  auto names = o.collectors.empty() ? collect::defaultCollectors(s->ctx_.layout) : o.collectors;
  auto sampler = collect::Sampler::create(s->ctx_, names, s->registry_);
  if (!sampler) return tl::unexpected(sampler.error());
  s->sampler_.emplace(std::move(*sampler));
  spdlog::info("cgroup layout: {}; collectors: {}", collect::toString(s->ctx_.layout.version),
               fmt::join(names, ","));
  for (const auto& sel : o.selectors) {
    auto w = collect::selectWorkloads(s->ctx_.paths, s->ctx_.layout, sel);
    if (!w) return tl::unexpected(w.error());
    s->fixed_.insert(s->fixed_.end(), w->begin(), w->end());
  }
  if (!o.command.empty()) {
    auto l = collect::LaunchedWorkload::start(s->ctx_, o.command);
    if (!l) return tl::unexpected(l.error());
    s->fixed_.push_back(l->workload());
    s->launched_.emplace(std::move(*l));
  }
  s->discover_ = s->fixed_.empty();
  return s;
}

std::vector<collect::Workload> WorkloadSource::current() {
  if (!discover_) return fixed_;
  auto w = collect::discoverCgroups(ctx_.paths, ctx_.layout, options_.max_depth, true);
  if (!w) {
    static bool logged = false;
    if (!logged) spdlog::warn("discovery: {}", w.error().message);
    logged = true;
    return {};
  }
  return *w;
}

bool WorkloadSource::commandExited() { return launched_ && launched_->exited(); }
int WorkloadSource::commandExitCode() const { return launched_ ? launched_->exitCode() : 0; }
bool WorkloadSource::commandFailed() { return launched_ && failedOnItsOwn(*launched_); }

bool failedOnItsOwn(collect::LaunchedWorkload& command) {
  return !stopFlag().load() && command.exited() && command.exitCode() != 0;
}

void runEvery(std::chrono::duration<double> period, std::chrono::duration<double> duration,
              const std::atomic<bool>& stop, const std::function<bool()>& round) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto step = std::chrono::duration_cast<clock::duration>(period);
  for (std::int64_t k = 0; !stop.load(); ++k) {
    const auto due = start + k * step;
    if (duration.count() > 0 && due - start > duration) break;
    while (!stop.load() && clock::now() < due) {
      // Sleep in short slices so a stop request is seen promptly.
      std::this_thread::sleep_for(std::min<clock::duration>(due - clock::now(), std::chrono::milliseconds(100)));
    }
    if (stop.load() || !round()) break;
  }
}

std::atomic<bool>& stopFlag() {
  static std::atomic<bool> flag{false};
  return flag;
}

void installStopHandler() {
  struct sigaction sa {};
  sa.sa_handler = [](int) { stopFlag().store(true); };
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace foresight::app
