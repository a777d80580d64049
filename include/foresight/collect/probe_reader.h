#pragma once
// Reads the shared-memory segments of libforesight-probe.so (foresight/probe/probe_abi.h).
//
// Thread-safety: free functions.

#include <sys/types.h>

#include <filesystem>
#include <span>

#include "foresight/core/result.h"
#include "foresight/probe/probe_abi.h"

namespace foresight::collect {

std::filesystem::path probeSegmentPath(const std::filesystem::path& dir, pid_t pid);
// A snapshot of one process's segment, read only from a regular file of the segment's size owned
// by root or one of `owners` (the process's uids), never following a link nor blocking on a FIFO.
// kNotFound when the process runs without the probe; kParse when the file is not a segment of
// this ABI version or not one to trust.
Result<fs_probe_segment> readProbeSegment(const std::filesystem::path& file,
                                          std::span<const uid_t> owners);

}  // namespace foresight::collect
