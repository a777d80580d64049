#pragma once
// Small readers for the kernel's text files (/proc, cgroupfs) and parsers that work in place (no
// iostreams: the agent reads thousands of these per second). Files read every sampling round go
// through KeptFile; readKernelFile is for one-off reads.
//
// Thread-safety: the free functions have no shared state; the kept-fd budget is atomic; a KeptFile
// is used by one thread at a time.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "foresight/core/result.h"

namespace foresight::collect {

// The whole file (kernel files are small; capped at 1 MiB). A missing file or process is
// kNotFound, any other failure kIo; both name the path.
Result<std::string> readKernelFile(const std::filesystem::path& path);
// The same, read until read() returns 0 and uncapped: for files whose records can be longer than
// readKernelFile's early end allows, such as mountinfo (an overlay mount's line runs to
// kilobytes, and a Kubernetes node's file to megabytes).
Result<std::string> readKernelFileToEnd(const std::filesystem::path& path);

// The device ("MAJ:MIN") of the filesystem an absolute `path` lies on, from a /proc/PID/mountinfo
// text (proc(5)): the mount whose mount point is the longest whole-component prefix of the path,
// the last listed where mounts are stacked on one point. Mount points are unescaped (\040 is a
// space). The path is taken as written (no symlinks followed, nothing looked up), so asking never
// touches the file's filesystem. nullopt for a relative path or a text without a matching mount.
std::optional<std::string> mountDeviceOf(std::string_view mountinfo, std::string_view path);

// One number; "max" (cgroup v2 "no limit") is +infinity. nullopt for empty or malformed text.
std::optional<double> parseNumber(std::string_view text);

// The CPUs a kernel CPU list names ("0-3,8,10-11\n": cpuset.cpus.effective,
// /sys/devices/system/cpu/online and the like; Documentation/admin-guide/cgroup-v2.rst,
// Documentation/ABI/testing/sysfs-devices-system-cpu), in the list's order, and how many.
// nullopt for empty or malformed text, or a CPU number from 65536 on.
std::optional<std::vector<int>> parseCpuList(std::string_view text);
std::optional<int> countCpuList(std::string_view text);

// The values of `keys` in a "key value" text (memory.stat, cpu.stat, /proc/<pid>/io with its
// "key: value", /proc/<pid>/status with its "key:\tvalue kB"): out[i] is the first number after
// keys[i], NaN when the key is absent or its value is not a number. Only the wanted lines are
// parsed, and the scan stops once every key is found (the agent's hottest parser).
void findKeys(std::string_view text, std::span<const std::string_view> keys, std::span<double> out);

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

// The fields of a /proc/PID/stat text after the command name, which may hold spaces and
// parentheses: they start after the last ')'. field(*statFields(s), n - 3) is proc(5)'s field n
// (3: state). nullopt without a ')'.
std::optional<std::string_view> statFields(std::string_view stat);

// A kernel file read every round through an fd kept open: pread() at offset 0 makes seq_file
// (procfs, cgroupfs) generate fresh text, so a round costs one syscall per file instead of
// openat/read/read/close and a path lookup (docs/results.md, "Agent cost per sampling round").
//
// A kept fd stays bound to the object it was opened on: once a process exits its /proc/PID files
// fail with ESRCH even if the pid is reused, and a removed cgroup's files fail with ENODEV. read()
// then closes the fd and reports gone(); the owner drops its cache for that process or cgroup and
// re-opens by path, which reaches the new process or cgroup.
// Kept fds are bounded by keptFdBudget(); past it, files are read with open/read/close.
class KeptFile {
 public:
  // kReopen keeps an O_PATH fd on the file's directory instead and opens the file with openat()
  // at each read, for files whose kept fd would serve stale text (cgroup v1's cgroup.procs); it
  // still saves the path walk, the costliest part of opening a cgroup file.
  enum class Mode { kKeep, kReopen };
  KeptFile() = default;
  explicit KeptFile(std::filesystem::path path, Mode mode = Mode::kKeep);
  KeptFile(KeptFile&& o) noexcept;
  KeptFile& operator=(KeptFile&& o) noexcept;
  KeptFile(const KeptFile&) = delete;
  KeptFile& operator=(const KeptFile&) = delete;
  ~KeptFile() { close(); }

  // The file's text (in buf, which grows to fit). nullopt when the file is missing, unreadable,
  // or gone. A missing file is retried every kMissingRetry reads only (controllers can be enabled
  // later, but most missing files stay missing).
  std::optional<std::string_view> read(std::string& buf);
  // The last read failed because the process or cgroup behind an open fd went away.
  bool gone() const { return gone_; }
  bool kept() const { return fd_ >= 0; }
  const std::filesystem::path& path() const { return path_; }
  void close();

  static constexpr unsigned kMissingRetry = 32;

 private:
  std::optional<std::string_view> reopen(std::string& buf);

  std::filesystem::path path_;
  std::string name_;  // kReopen: the file name under the kept directory fd
  Mode mode_ = Mode::kKeep;
  int fd_ = -1;
  bool gone_ = false;
  unsigned missing_ = 0;  // reads to skip before trying a missing file again
};

// How many fds all KeptFiles together may hold: by default the RLIMIT_NOFILE soft limit minus a
// reserve (an eighth, at least 256) for the rest of the process (database, HTTP, perf events).
std::size_t keptFdBudget();
void setKeptFdBudget(std::size_t n);  // tests; raiseFdLimit() resets it from the new limit
std::size_t keptFdCount();
// Raises the RLIMIT_NOFILE soft limit to the hard limit (the agent keeps ~12 fds per workload)
// and resets the budget. Returns the soft limit now in force.
std::size_t raiseFdLimit();
// Puts back the soft limit found by the first raiseFdLimit(). Async-signal-safe: called in a
// launched command's child before exec, so the command runs with the limit it would have had.
void restoreFdLimit();

}  // namespace foresight::collect
