#include "foresight/collect/sampler.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "foresight/core/log.h"

namespace fs = std::filesystem;

namespace foresight::collect {

std::int64_t nowNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Result<Sampler> Sampler::create(const CollectorContext& ctx, const std::vector<std::string>& names,
                                const CollectorRegistry& registry) {
  Sampler s;
  s.ctx_ = ctx;
  // Collectors keep ~12 fds per workload open between rounds (KeptFile).
  raiseFdLimit();
  for (const auto& n : names) {
    auto c = registry.create(n, ctx);
    if (!c) return tl::unexpected(c.error());
    s.collectors_.push_back(std::move(*c));
  }
  return s;
}

std::vector<std::string> Sampler::collectorNames() const {
  std::vector<std::string> out;
  for (const auto& c : collectors_) out.emplace_back(c->name());
  return out;
}

Result<const std::vector<pid_t>*> Sampler::pidsOf(const Workload& w, bool detail) {
  if (w.kind != Workload::Kind::kCgroup) {
    auto pids = workloadPids(ctx_.paths, ctx_.layout, w);
    if (!pids) return tl::unexpected(pids.error());
    tree_pids_ = std::move(*pids);
    return &tree_pids_;
  }
  // Between detail rounds no collector reads a cgroup's pids, so the list is not re-read (an
  // openat and a read per workload per round); a cgroup that vanished meanwhile is reported by
  // the cgroup collector's kept files.
  if (auto it = procs_.find(w.id); !detail && it != procs_.end()) return &it->second.pids;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto it = procs_.find(w.id);
    if (it == procs_.end()) {
      // cgroup v1 keeps a pid list per open cgroup.procs and serves it again to reads at offset
      // 0 while it lives (cgroup_pidlist_start; re-armed for a second at each read): a kept fd
      // would return a stale list, so v1 re-opens the file each read. v2 restarts its iterator.
      const auto mode = ctx_.layout.version == CgroupVersion::kV2 ? KeptFile::Mode::kKeep
                                                                  : KeptFile::Mode::kReopen;
      it = procs_.emplace(w.id, Procs{KeptFile(cgroupPath(ctx_.layout.reference(), w.cgroup) / "cgroup.procs", mode), {}}).first;
    }
    if (auto text = it->second.file.read(buf_)) {
      it->second.pids = parsePids(*text);
      return &it->second.pids;
    }
    const bool gone = it->second.file.gone();
    procs_.erase(it);
    // A kept fd whose cgroup was removed: the path may hold a new cgroup of the same name.
    if (!gone) break;
  }
  return fail(ErrorCode::kNotFound, "{}: cgroup is gone", w.cgroup);
}

void Sampler::forget(const std::string& id) {
  procs_.erase(id);
  workload_errors_.erase(id);
  for (auto& c : collectors_) c->forget(id);
}

void Sampler::refreshLimits(const std::string& id) {
  for (auto& c : collectors_) c->refreshLimits(id);
}

Result<Sample> Sampler::sampleOne(const Workload& w) {
  // A workload's first sample reads everything (rates and gauges start at once); after that its
  // detail round is offset by a hash of its id, so each round reads ~1/N of the fleet's detail.
  const std::uint64_t n = std::max(ctx_.detail_every, 1u);
  const bool detail = n == 1 || !previous_.count(w.id) || (round_ + std::hash<std::string>{}(w.id)) % n == 0;
  auto pids = pidsOf(w, detail);
  if (!pids) return tl::unexpected(pids.error());
  Sample s;
  s.workload = w.id;
  s.time_ns = nowNs();
  s.mono_ns = nowNs(CLOCK_MONOTONIC);
  s.detail = detail;
  s.metrics.reserve(64);
  for (auto& c : collectors_) {
    auto st = c->collect(w, **pids, s);
    if (st) continue;
    if (st.error().code == ErrorCode::kNotFound) return tl::unexpected(st.error());
    ++errors_;
    ++workload_errors_[w.id];
    if (logged_.insert(c->name()).second) {
      spdlog::warn("collector {} failed (logged once): {}", c->name(), st.error().message);
    }
  }
  // This workload's own count: the process-wide one on every workload would multiply in a sum.
  s.add("collector_errors_total", static_cast<double>(workload_errors_[w.id]));
  return s;
}

Sampler::Round Sampler::sample(const std::vector<Workload>& workloads) {
  Round r;
  ++round_;
  r.samples.reserve(workloads.size());
  const std::size_t before = errors_;
  for (const auto& w : workloads) {
    auto s = sampleOne(w);
    if (s) r.samples.push_back(std::move(*s));
    else if (s.error().code == ErrorCode::kNotFound) r.gone.push_back(w.id);
    else ++errors_;
  }
  r.errors = errors_ - before;
  std::set<std::string> current;
  for (const auto& w : workloads) current.insert(w.id);
  // A workload no longer discovered (emptied or removed between two rounds, the usual way one
  // ends) is gone as much as one whose files vanished mid-read: reported, so that what the agent
  // keeps of it (gauges, pipeline, last sample) goes too.
  for (const auto& id : previous_)
    if (!current.count(id)) r.gone.push_back(id);
  for (const auto& g : r.gone) {
    current.erase(g);
    forget(g);
  }
  previous_ = std::move(current);
  return r;
}

std::string CsvTraceWriter::fileName(const std::string& id) { return workloadFileName(id) + ".csv"; }

Status CsvTraceWriter::add(const Sample& sample) {
  auto it = files_.find(sample.workload);
  if (it == files_.end()) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return fail(ErrorCode::kIo, "{}: cannot create folder: {}", dir_.string(), ec.message());
    auto file = AtomicFile::create(dir_ / fileName(sample.workload));
    if (!file) return tl::unexpected(file.error());
    file->out() << "timestamp,cpu,memory,disk_io,network\n";
    it = files_.emplace(sample.workload, File{std::move(*file), {}, false}).first;
  }
  File& f = it->second;
  if (auto st = f.file.resume(); !st) return st;
  std::ostream& out = f.file.out();
  if (f.have_last) {
    auto u = resourceUsage(f.last, sample);
    // Unix seconds with milliseconds: the trace reader accepts fractions (and rounds to seconds).
    out << fmt::format("{}.{:03}", sample.time_ns / 1000000000, sample.time_ns % 1000000000 / 1000000);
    for (double v : u) {
      out << ',';
      if (!std::isnan(v)) out << fmt::format("{:.6g}", v);  // empty cell = missing
    }
    out << '\n';
    if (!out) return fail(ErrorCode::kIo, "{}: write failed", f.file.temporaryPath().string());
  }
  carryForward(f.last, sample);
  f.have_last = true;
  return ok();
}

Status CsvTraceWriter::pause(const std::string& workload) {
  auto it = files_.find(workload);
  if (it == files_.end()) return ok();
  it->second.have_last = false;
  return it->second.file.pause();
}

Status CsvTraceWriter::finish() {
  std::vector<fs::path> renamed;
  Status st = ok();
  for (auto& [id, f] : files_) {
    st = f.file.commit();
    if (!st) break;  // the files not committed go with the writer
    renamed.push_back(f.file.path());
  }
  // All or nothing: a recording missing some workloads would pass for a whole one.
  if (!st)
    for (const auto& p : renamed) {
      std::error_code ec;
      fs::remove(p, ec);
    }
  files_.clear();
  return st;
}

}  // namespace foresight::collect
