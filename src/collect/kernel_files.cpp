#include "foresight/collect/kernel_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace foresight::collect {

Result<std::string> readKernelFile(const std::filesystem::path& path) {
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
    if (out.size() > (1u << 20)) break;
  }
  ::close(fd);
  return out;
}

std::optional<double> parseNumber(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (s.empty()) return std::nullopt;
  if (s == "max") return std::numeric_limits<double>::infinity();
  // Integers first: counters exceed 2^53 rarely, but from_chars on double loses nothing here.
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
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

void forEachKeyValue(std::string_view text,
                     const std::function<void(std::string_view, double)>& fn) {
  forEachLine(text, [&](std::string_view line) {
    std::size_t sep = line.find_first_of(" \t:");
    if (sep == std::string_view::npos || sep == 0) return;
    std::string_view key = line.substr(0, sep);
    std::string_view rest = line.substr(sep + 1);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t' || rest.front() == ':'))
      rest.remove_prefix(1);
    // "/proc/<pid>/status" values may carry a unit ("1744 kB"); the number is the first field.
    auto v = parseNumber(field(rest, 0));
    fn(key, v ? *v : std::numeric_limits<double>::quiet_NaN());
  });
}

std::optional<std::string_view> readAt(int dirfd, const char* name, std::string& buf) {
  const int f = ::openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (f < 0) return std::nullopt;
  if (buf.size() < 8192) buf.resize(8192);
  std::size_t len = 0;
  for (;;) {
    const ssize_t n = ::read(f, buf.data() + len, buf.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
    if (len == buf.size()) buf.resize(buf.size() * 2);
  }
  ::close(f);
  return std::string_view(buf.data(), len);
}

}  // namespace foresight::collect
