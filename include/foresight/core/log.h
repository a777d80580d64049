#pragma once
// Logging is spdlog's default logger, on stderr so that stdout stays for results (tables, JSON).

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace foresight {

// level: trace, debug, info, warn, error, off. Unknown levels fall back to info.
void setupLogging(std::string_view level);

// A problem that recurs every round (a backend that cannot be reached, a file that is gone) is
// said once a minute per key, and at once when its message changes: every round would flood the
// log, and a first or a different failure must not wait. Not thread-safe.
class RepeatedLog {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RepeatedLog(Clock::duration every = std::chrono::minutes(1)) : every_(every) {}
  // Whether to say `message` for `key` at `now`; if so, `held_back` is how often it was held back
  // since it was last said.
  bool due(const std::string& key, const std::string& message, Clock::time_point now, std::size_t& held_back);
  // The key recovered (or went): its next failure is said at once.
  void forget(const std::string& key) { said_.erase(key); }

 private:
  struct Said {
    std::string message;
    Clock::time_point at;
    std::size_t held_back = 0;
  };
  Clock::duration every_;
  std::map<std::string, Said> said_;
};

}  // namespace foresight
