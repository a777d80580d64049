#pragma once
// Reads the shared-memory segments of libforesight-probe.so (foresight/probe/probe_abi.h).
//
// Thread-safety: free functions.

#include <sys/types.h>

#include <array>
#include <compare>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "foresight/collect/paths.h"
#include "foresight/core/result.h"
#include "foresight/probe/probe_abi.h"

namespace foresight::collect {

// What names a segment: the process's pid in its own pid namespace, its start time (clock ticks
// after boot) and the inode of its pid namespace.
struct ProbeSegmentId {
  pid_t pid = 0;
  std::uint64_t start = 0;
  std::uint64_t pidns = 0;
  auto operator<=>(const ProbeSegmentId&) const = default;
};

// "foresight-probe-<pid>-<start>-<pidns>", and back (nullopt for any other name).
std::string probeSegmentName(const ProbeSegmentId& id);
std::optional<ProbeSegmentId> parseProbeSegmentName(std::string_view name);
std::filesystem::path probeSegmentPath(const std::filesystem::path& dir, const ProbeSegmentId& id);

// A host process as its segment names it (the last pid of the NSpid line of /proc/<pid>/status,
// the start time of /proc/<pid>/stat, the inode of /proc/<pid>/ns/pid), and the real, effective,
// saved and filesystem uid it runs as: whichever the probe had when it created the segment.
// kNotFound when the process is gone; kIo when its namespace is not ours to see (another user's).
struct ProbeProcess {
  ProbeSegmentId id;
  std::array<uid_t, 4> uids{};
};
Result<ProbeProcess> probeProcessOf(const HostPaths& paths, pid_t pid);
// Field 22 of /proc/<pid>/stat; kNotFound when the process is gone.
Result<std::uint64_t> processStartTime(const HostPaths& paths, pid_t pid);

// A snapshot of one process's segment, read only from a regular file of the segment's size owned
// by root or one of `owners` (the process's uids), never following a link nor blocking on a FIFO.
// kNotFound when the process runs without the probe; kParse when the file is not a segment of
// this ABI version or not one to trust.
Result<fs_probe_segment> readProbeSegment(const std::filesystem::path& file,
                                          std::span<const uid_t> owners);

}  // namespace foresight::collect
