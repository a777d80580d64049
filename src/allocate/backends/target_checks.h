#pragma once
// What the backends that write byte and core amounts as integers (cgroup v1 and v2, systemd)
// check and round the same way.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "foresight/allocate/allocation.h"
#include "foresight/allocate/backend.h"
#include "foresight/core/result.h"

namespace foresight::allocate {

// Targets these backends can take: a positive amount or unlimited (inf). A memory figure beyond
// 2^62 bytes would wrap in the conversion to an integer (1e30 became a 0-byte limit).
inline Status checkTarget(const Allocation& target, std::string_view what) {
  constexpr double kMaxAmount = 0x1p62;
  for (Resource r : kAllResources) {
    if (!target[r]) continue;
    const double v = *target[r];
    if (std::isnan(v) || v <= 0)
      return fail(ErrorCode::kInvalidArgument, "{}: {} {}: not a positive amount or unlimited",
                  what, name(r), v);
    if (!std::isinf(v) && v >= kMaxAmount)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: {} {}: above the 2^62 (4 EiB) this backend writes; 'max' is no limit", what,
                  name(r), v);
  }
  return ok();
}

// The kernel stores memory limits in whole pages; rounding first keeps apply() idempotent. Up,
// never down: a limit below what was asked for is the failure the planner guards against (and a
// tiny request must not round to 0).
inline std::uint64_t roundToPage(double bytes) {
  const long p = ::sysconf(_SC_PAGESIZE);
  const std::uint64_t page = p > 0 ? static_cast<std::uint64_t>(p) : 4096;
  return (static_cast<std::uint64_t>(std::ceil(bytes)) + page - 1) / page * page;
}

// memory_high_ratio (cgroup v2's memory.high, systemd's MemoryHigh= = ratio x the memory limit;
// 1, the default, sets them to the limit itself), refused outside (0, 1] with the backend's name.
inline Result<double> memoryHighRatio(const BackendOptions& options, std::string_view backend) {
  const std::string text = options.get("memory_high_ratio");
  if (text.empty()) return 1.0;
  char* end = nullptr;
  const double ratio = std::strtod(text.c_str(), &end);
  if (*end != '\0' || !(ratio > 0 && ratio <= 1))
    return fail(ErrorCode::kInvalidArgument, "{} option memory_high_ratio='{}': expected a number in (0, 1]",
                backend, text);
  return ratio;
}

// io_device=MAJ:MIN, the disk whose bandwidth disk_io limits; empty without the option.
inline Result<std::string> ioDevice(const BackendOptions& options, std::string_view backend) {
  const std::string text = options.get("io_device");
  if (text.empty()) return text;
  unsigned maj = 0, min = 0;
  char extra = 0;
  if (std::sscanf(text.c_str(), "%u:%u%c", &maj, &min, &extra) != 2)
    return fail(ErrorCode::kInvalidArgument, "{} option io_device='{}': expected MAJ:MIN", backend, text);
  return text;
}

}  // namespace foresight::allocate
