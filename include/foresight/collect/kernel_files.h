#pragma once
// Small readers for the kernel's text files (/proc, cgroupfs). They read with one open/read/close
// (no iostreams: the agent reads thousands of these per second) and parse in place.
//
// Thread-safety: free functions without shared state.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "foresight/core/result.h"

namespace foresight::collect {

// The whole file (kernel files are small; capped at 1 MiB). A missing file or process is
// kNotFound, any other failure kIo; both name the path.
Result<std::string> readKernelFile(const std::filesystem::path& path);

// One number; "max" (cgroup v2 "no limit") is +infinity. nullopt for empty or malformed text.
std::optional<double> parseNumber(std::string_view text);

// Calls fn(key, value) for each "key value" line (memory.stat, cpu.stat, /proc/<pid>/io with its
// "key: value", /proc/<pid>/status). Lines without a numeric value are passed with value NaN.
void forEachKeyValue(std::string_view text,
                     const std::function<void(std::string_view, double)>& fn);

// Calls fn(line) for each line of text, without the newline (a template: it runs on every file
// of every sampling round).
template <typename Fn>
void forEachLine(std::string_view text, Fn&& fn) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    fn(text.substr(pos, end - pos));
    pos = end + 1;
  }
}

// Splits on spaces/tabs; returns the n-th field (0-based) or empty.
std::string_view field(std::string_view line, std::size_t n);

// Reads `name` under an open directory into `buf` (openat: no path walk per file, which matters at
// thousands of reads a round). nullopt when the file is missing or unreadable.
std::optional<std::string_view> readAt(int dirfd, const char* name, std::string& buf);

}  // namespace foresight::collect
