#pragma once
// Reads the shared-memory segments of libforesight-probe.so (foresight/probe/probe_abi.h).
//
// Thread-safety: free functions.

#include <sys/types.h>

#include <filesystem>

#include "foresight/core/result.h"
#include "foresight/probe/probe_abi.h"

namespace foresight::collect {

std::filesystem::path probeSegmentPath(const std::filesystem::path& dir, pid_t pid);
// A snapshot of one process's segment. kNotFound when the process runs without the probe;
// kParse when the file is not a segment of this ABI version.
Result<fs_probe_segment> readProbeSegment(const std::filesystem::path& file);

}  // namespace foresight::collect
