#include "foresight/collect/kernel_files.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace foresight::collect {

namespace {

// Whether a read of n bytes into `room` ended the file. seq_file (procfs, cgroupfs) hands out at
// most about a page of records per call whatever the buffer: it stops when the next record would
// overflow its page, so a partial read leaves less than one record of that page unused. Every
// record of the files read here is under 512 bytes, so a read that leaves more of the page is the
// end, and saves the read() that would return 0 (two files of every workload are read each
// round). A short read was once taken as the end whatever its size: cgroup.procs of 900
// processes gave 682 pids, and /proc/PID/net/dev of 60 interfaces lost the traffic.
bool surelyWhole(std::size_t n, std::size_t room) {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  constexpr std::size_t kMaxRecord = 512;
  return n < room && n + kMaxRecord < page;
}

Result<std::string> readFile(const std::filesystem::path& path, bool to_end) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ESRCH || e == ENOTDIR) {
      return fail(ErrorCode::kNotFound, "{}: {}", path.string(), std::strerror(e));
    }
    return fail(ErrorCode::kIo, "{}: {}", path.string(), std::strerror(e));
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      // A process that exits while we read its files yields ESRCH: it is gone, not broken.
      if (e == ESRCH || e == ENOENT) {
        return fail(ErrorCode::kNotFound, "{}: {}", path.string(), std::strerror(e));
      }
      return fail(ErrorCode::kIo, "{}: {}", path.string(), std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (!to_end && (surelyWhole(static_cast<std::size_t>(n), sizeof buf) || out.size() > (1u << 20))) break;
  }
  ::close(fd);
  return out;
}
}  // namespace

Result<std::string> readKernelFile(const std::filesystem::path& path) { return readFile(path, false); }
Result<std::string> readKernelFileToEnd(const std::filesystem::path& path) { return readFile(path, true); }

std::optional<double> parseNumber(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  if (s.empty()) return std::nullopt;
  if (s == "max") return std::numeric_limits<double>::infinity();
  // Integers first (every counter the agent reads is one; the integer parser is several times
  // faster), then anything else from_chars accepts as a double.
  long long i = 0;
  if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
      ec == std::errc() && p == s.data() + s.size()) {
    return static_cast<double>(i);
  }
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

namespace {

// Calls fn(lo, hi) for each range of a CPU list; false when the list is empty or malformed. By
// hand: the format is two lines of grammar, and no packaged library parses it.
template <typename Fn>
bool forEachCpuRange(std::string_view s, Fn&& fn) {
  constexpr int kMaxCpu = 65535;  // above any kernel's NR_CPUS; bounds what a list can expand to
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  if (s.empty()) return false;
  while (!s.empty()) {
    std::size_t comma = s.find(',');
    std::string_view range = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    std::size_t dash = range.find('-');
    int lo = 0, hi = 0;
    auto num = [](std::string_view t, int& v) {
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      return !t.empty() && ec == std::errc() && p == t.data() + t.size() && v >= 0 && v <= kMaxCpu;
    };
    if (!num(range.substr(0, dash), lo)) return false;
    hi = lo;
    if (dash != std::string_view::npos && !num(range.substr(dash + 1), hi)) return false;
    if (hi < lo) return false;
    fn(lo, hi);
  }
  return true;
}

}  // namespace

std::optional<std::vector<int>> parseCpuList(std::string_view s) {
  std::vector<int> cpus;
  if (!forEachCpuRange(s, [&](int lo, int hi) {
        for (int c = lo; c <= hi; ++c) cpus.push_back(c);
      }))
    return std::nullopt;
  return cpus;
}

std::optional<int> countCpuList(std::string_view s) {
  int count = 0;
  if (!forEachCpuRange(s, [&](int lo, int hi) { count += hi - lo + 1; })) return std::nullopt;
  return count;
}

std::string_view field(std::string_view line, std::size_t n) {
  std::size_t i = 0, k = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (start == i) break;
    if (k++ == n) return line.substr(start, i - start);
  }
  return {};
}

namespace {
// mountinfo escapes space, tab, newline and backslash in paths as \ooo (octal).
std::string unescapeOctal(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto octal = [&](std::size_t k) { return s[k] >= '0' && s[k] <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}
}  // namespace

std::optional<std::string> mountDeviceOf(std::string_view mountinfo, std::string_view path) {
  if (path.empty() || path.front() != '/') return std::nullopt;
  std::optional<std::string> device;
  std::size_t best = 0;
  forEachLine(mountinfo, [&](std::string_view line) {
    const std::string point = unescapeOctal(field(line, 4));  // "ID PARENT MAJ:MIN ROOT POINT ..."
    if (point.empty() || point.front() != '/') return;
    const bool under = point == "/" || (path.starts_with(point) &&
                                        (path.size() == point.size() || path[point.size()] == '/'));
    // >=: a mount listed later is stacked on top of an earlier one at the same point.
    if (under && point.size() >= best) {
      best = point.size();
      device = std::string(field(line, 2));
    }
  });
  return device;
}

std::optional<std::string_view> statFields(std::string_view stat) {
  const std::size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  return stat.substr(close + 1);
}

void findKeys(std::string_view text, std::span<const std::string_view> keys,
              std::span<double> out) {
  std::fill(out.begin(), out.end(), std::numeric_limits<double>::quiet_NaN());
  std::size_t left = keys.size(), pos = 0;
  while (left > 0 && pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    const std::size_t sep = line.find_first_of(" \t:");
    if (sep == std::string_view::npos || sep == 0) continue;
    const std::string_view key = line.substr(0, sep);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (key != keys[i] || !std::isnan(out[i])) continue;
      std::string_view rest = line.substr(sep + 1);
      while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t' || rest.front() == ':'))
        rest.remove_prefix(1);
      // "/proc/<pid>/status" values may carry a unit ("1744 kB"); the number is the first field.
      if (auto v = parseNumber(field(rest, 0))) {
        out[i] = *v;
        --left;
      }
      break;
    }
  }
}

namespace {

std::size_t budgetFromLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1u << 16;
  const std::size_t soft = rl.rlim_cur;
  const std::size_t reserve = std::max<std::size_t>(256, soft / 8);
  return soft > reserve ? soft - reserve : 0;
}

std::atomic<std::size_t> g_budget{static_cast<std::size_t>(-1)};  // -1: not computed yet
std::atomic<std::size_t> g_kept{0};
constexpr rlim_t kUnset = static_cast<rlim_t>(-2);  // RLIM_INFINITY is -1
std::atomic<rlim_t> g_original_soft{kUnset};        // the soft limit before the first raise

bool takeFd() {
  std::size_t budget = keptFdBudget();
  std::size_t n = g_kept.load(std::memory_order_relaxed);
  while (n < budget) {
    if (g_kept.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}
void giveFd() { g_kept.fetch_sub(1, std::memory_order_relaxed); }

// The process or cgroup behind an open fd is gone (ESRCH: /proc/PID of an exited process;
// ENODEV: a removed cgroup's kernfs file).
bool goneErrno(int e) { return e == ESRCH || e == ENODEV || e == ENOENT; }

// The whole text from offset 0, in as many preads as it takes. -errno on failure.
ssize_t preadWhole(int fd, std::string& buf) {
  if (buf.size() < 8192) buf.resize(8192);
  std::size_t got = 0;
  for (;;) {
    if (got == buf.size()) {
      if (buf.size() >= (1u << 20)) return static_cast<ssize_t>(got);
      buf.resize(buf.size() * 2);
    }
    const std::size_t room = buf.size() - got;
    const ssize_t n = ::pread(fd, buf.data() + got, room, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    got += static_cast<std::size_t>(n);
    if (n == 0 || surelyWhole(static_cast<std::size_t>(n), room)) return static_cast<ssize_t>(got);
  }
}

}  // namespace

std::size_t keptFdBudget() {
  std::size_t b = g_budget.load(std::memory_order_relaxed);
  if (b == static_cast<std::size_t>(-1)) {
    b = budgetFromLimit();
    g_budget.store(b, std::memory_order_relaxed);
  }
  return b;
}
void setKeptFdBudget(std::size_t n) { g_budget.store(n, std::memory_order_relaxed); }
std::size_t keptFdCount() { return g_kept.load(std::memory_order_relaxed); }

std::size_t raiseFdLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && g_original_soft.load() == kUnset) {
    g_original_soft.store(rl.rlim_cur);
  }
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  g_budget.store(budgetFromLimit(), std::memory_order_relaxed);
  return rl.rlim_cur == RLIM_INFINITY ? static_cast<std::size_t>(-1) : rl.rlim_cur;
}

void restoreFdLimit() {
  const rlim_t original = g_original_soft.load();
  rlimit rl{};
  if (original == kUnset || ::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = original;
  ::setrlimit(RLIMIT_NOFILE, &rl);
}

KeptFile::KeptFile(std::filesystem::path path, Mode mode) : path_(std::move(path)), mode_(mode) {
  if (mode_ == Mode::kReopen) name_ = path_.filename().string();
}

KeptFile::KeptFile(KeptFile&& o) noexcept
    : path_(std::move(o.path_)),
      name_(std::move(o.name_)),
      mode_(o.mode_),
      fd_(std::exchange(o.fd_, -1)),
      gone_(o.gone_),
      missing_(o.missing_) {}

KeptFile& KeptFile::operator=(KeptFile&& o) noexcept {
  if (this != &o) {
    close();
    path_ = std::move(o.path_);
    name_ = std::move(o.name_);
    mode_ = o.mode_;
    fd_ = std::exchange(o.fd_, -1);
    gone_ = o.gone_;
    missing_ = o.missing_;
  }
  return *this;
}

void KeptFile::close() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  giveFd();
}

std::optional<std::string_view> KeptFile::read(std::string& buf) {
  gone_ = false;
  if (path_.empty()) return std::nullopt;  // e.g. a v1 controller that is not mounted
  if (mode_ == Mode::kReopen) return reopen(buf);
  if (fd_ >= 0) {
    const ssize_t n = preadWhole(fd_, buf);
    if (n >= 0) return std::string_view(buf.data(), static_cast<std::size_t>(n));
    close();
    gone_ = goneErrno(static_cast<int>(-n));
    return std::nullopt;
  }
  if (missing_ > 0) {
    --missing_;
    return std::nullopt;
  }
  const bool keep = takeFd();
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (keep) giveFd();
    // Out of fds is not "missing": try again next read.
    if (errno != EMFILE && errno != ENFILE) missing_ = kMissingRetry - 1;
    return std::nullopt;
  }
  const ssize_t n = preadWhole(fd, buf);
  if (keep && n >= 0) {
    fd_ = fd;
  } else {
    ::close(fd);  // past the budget (or unreadable): open/read/close, nothing kept
    if (keep) giveFd();
  }
  if (n < 0) {
    if (!goneErrno(static_cast<int>(-n))) missing_ = kMissingRetry - 1;  // e.g. EACCES
    return std::nullopt;
  }
  return std::string_view(buf.data(), static_cast<std::size_t>(n));
}

std::optional<std::string_view> KeptFile::reopen(std::string& buf) {
  const bool fresh = fd_ < 0;
  if (fresh) {
    if (missing_ > 0) {
      --missing_;
      return std::nullopt;
    }
    if (takeFd()) {
      fd_ = ::open(path_.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd_ < 0) {
        giveFd();
        if (errno != EMFILE && errno != ENFILE) missing_ = kMissingRetry - 1;
        return std::nullopt;
      }
    }
  }
  // Past the budget there is no directory fd: open by path.
  const int f = fd_ >= 0 ? ::openat(fd_, name_.c_str(), O_RDONLY | O_CLOEXEC)
                         : ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (f < 0) {
    const int e = errno;
    if (e == EMFILE || e == ENFILE) return std::nullopt;
    // Missing under a directory kept from an earlier read: the directory (cgroup) was removed.
    gone_ = !fresh && fd_ >= 0 && goneErrno(e);
    close();
    if (!gone_) missing_ = kMissingRetry - 1;
    return std::nullopt;
  }
  const ssize_t n = preadWhole(f, buf);
  ::close(f);
  if (n < 0) {
    gone_ = goneErrno(static_cast<int>(-n));
    close();
    return std::nullopt;
  }
  return std::string_view(buf.data(), static_cast<std::size_t>(n));
}

}  // namespace foresight::collect
