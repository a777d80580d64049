#pragma once
// parallelFor: runs body(i) for i in [0, n) on a few threads, handing out indices one at a time
// (series differ a lot in length, so static chunks would leave a core idle).

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace foresight {

inline unsigned defaultThreads() { return std::max(1u, std::thread::hardware_concurrency()); }

// body(i, worker) — worker in [0, threads) lets callers keep per-thread state without locks.
template <typename Body>
void parallelFor(std::size_t n, unsigned threads, Body&& body) {
  if (threads == 0) threads = defaultThreads();
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(n, 1)));
  std::atomic<std::size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](unsigned worker) {
    try {
      for (std::size_t i = next++; i < n; i = next++) body(i, worker);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
      next = n;
    }
  };
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < threads; ++w) {
    // Out of memory or of threads (RLIMIT_NPROC): the threads started and this one do the work.
    // Letting the exception escape would destroy the started threads unjoined: std::terminate.
    try {
      pool.emplace_back(run, w);
    } catch (const std::exception&) {
      break;
    }
  }
  run(0);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace foresight
