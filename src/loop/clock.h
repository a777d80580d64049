#pragma once
// Wall-clock helpers shared by the experiment and its workloads (both align to wall time, since
// they run in different processes).

#include <time.h>

#include <cmath>

namespace foresight::loop {

inline double wallNow() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

inline void sleepUntilWall(double t) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(t);
  ts.tv_nsec = static_cast<long>((t - std::floor(t)) * 1e9);
  clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr);
}

}  // namespace foresight::loop
