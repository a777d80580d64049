// The experiment's workloads. The cpu workload is an open-loop request server: requests of a fixed
// CPU cost arrive on a schedule set by the demand curve, so throttling shows as queueing latency
// rather than as less work done.
#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>
#include <thread>
#include <vector>

#include "clock.h"
#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/loop/experiment.h"

namespace foresight::loop {
namespace {

constexpr int kCpuThreads = 2;
constexpr double kRequestCpuSeconds = 0.002;  // 2 ms of CPU per request

double threadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double phaseAt(double t, const WorkloadOptions& o) {
  const double x = std::fmod(t - o.start_epoch, o.cycle_seconds) / o.cycle_seconds;
  return x < 0 ? x + 1 : x;
}

int runCpu(const WorkloadOptions& o) {
  const double end = o.start_epoch + o.duration_seconds;
  std::vector<std::vector<float>> latencies(kCpuThreads);
  std::vector<std::thread> threads;
  std::atomic<bool> stop{false};
  auto serve = [&](int i) {
    double arrival = std::max(wallNow(), o.start_epoch);
    volatile double sink = 0;
    while (arrival < end && !stop.load(std::memory_order_relaxed)) {
      if (wallNow() < arrival) sleepUntilWall(arrival);
      const double cpu0 = threadCpu();
      // Reading the thread's CPU clock is a system call: check it every few thousand steps.
      while (threadCpu() - cpu0 < kRequestCpuSeconds)
        for (int k = 0; k < 4096; ++k) sink = sink + 1.0;
      const double done = wallNow();
      if (arrival - o.start_epoch >= o.score_after) {
        latencies[i].push_back(static_cast<float>((done - arrival) * 1e3));
      }
      // Next arrival: this thread's share of the demand, in requests per second.
      const double rate = phasedCpuDemand(phaseAt(arrival, o)) / kCpuThreads / kRequestCpuSeconds;
      arrival += 1.0 / std::max(rate, 1e-3);
    }
  };
  for (int i = 0; i < kCpuThreads; ++i) {
    try {
      threads.emplace_back(serve, i);
    } catch (const std::system_error& e) {
      // With fewer threads the load and its latencies would not be the ones asked for: stop.
      stop = true;
      for (auto& t : threads) t.join();
      spdlog::error("bench workload: cannot start request thread {} of {}: {}", i + 1, kCpuThreads,
                    e.what());
      return 1;
    }
  }
  for (auto& t : threads) t.join();
  std::vector<float> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  nlohmann::json j;
  j["requests"] = all.size();
  if (!all.empty()) {
    const auto k = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(all.size()))) - 1;
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
    j["p99_latency_ms"] = all[k];
  }
  if (auto w = writeFileAtomically(o.out, j.dump() + "\n"); !w) {
    spdlog::error("bench workload: {}", w.error().message);
    return 1;
  }
  return 0;
}

int runMemory(const WorkloadOptions& o) {
  const double end = o.start_epoch + o.duration_seconds;
  // The peak is held from phase 0.5 to 0.8.
  const std::size_t max_bytes = static_cast<std::size_t>(memoryWorkingSet(0.5)) + (64 << 20);
  // Reserve the address space once; touching pages makes them resident, madvise gives them back.
  auto* base = static_cast<char*>(mmap(nullptr, max_bytes, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
  if (base == MAP_FAILED) {
    spdlog::error("bench workload: cannot reserve {} MiB of address space: {}", max_bytes >> 20,
                  std::strerror(errno));
    return 1;
  }
  std::size_t resident = 0;
  const std::size_t page = 4096;
  while (wallNow() < end) {
    const auto want = std::min(
        max_bytes, static_cast<std::size_t>(memoryWorkingSet(phaseAt(wallNow(), o))) / page * page);
    if (want > resident) {
      for (std::size_t off = resident; off < want; off += page) base[off] = 1;
    } else if (want < resident) {
      madvise(base + want, resident - want, MADV_DONTNEED);
    }
    resident = want;
    sleepUntilWall(wallNow() + 0.05);
  }
  return 0;
}

}  // namespace

double phasedCpuDemand(double phase) {
  // Quiet, a burst, a plateau: the shape of a batch window in a service's day, compressed.
  if (phase < 0.4) return 0.3;
  if (phase < 0.7) return 1.5;
  return 0.7;
}

double memoryWorkingSet(double phase) {
  // Grows linearly from 64 MiB to 640 MiB over half the cycle, holds, then is released.
  constexpr double kBase = 64.0 * (1 << 20), kPeak = 640.0 * (1 << 20);
  if (phase < 0.5) return kBase + (kPeak - kBase) * phase / 0.5;
  if (phase < 0.8) return kPeak;
  return kBase;
}

int runWorkload(WorkloadOptions o) {
  if (o.start_epoch <= 0) o.start_epoch = wallNow();  // run by hand: start now
  return o.kind == "memory" ? runMemory(o) : runCpu(o);
}

}  // namespace foresight::loop
