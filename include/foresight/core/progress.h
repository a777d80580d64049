#pragma once
// A one-line progress bar on stderr, drawn only when stderr is a terminal (never into pipes or
// log files). Thread-safe: update() may be called from any thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>

namespace foresight {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::size_t total, bool enabled);
  ~ProgressBar();
  static bool stderrIsTerminal();
  // `extra` is shown after the count (e.g. "loss 0.123").
  void update(std::size_t done, const std::string& extra = "");
  void finish();

 private:
  std::string label_;
  std::size_t total_;
  bool enabled_, finished_ = false;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace foresight
