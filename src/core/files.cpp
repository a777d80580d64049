#include "foresight/core/files.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace foresight {

Status writeFileAtomically(const std::filesystem::path& path, std::string_view text) {
  return writeFileAtomically(path, [&](std::ostream& out) { out.write(text.data(), static_cast<std::streamsize>(text.size())); });
}

namespace {

// The mode a newly created file gets here: 0666 less the umask, read from /proc (umask(2) can
// only be read by setting it, which would race with other threads creating files).
mode_t newFileMode() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("Umask:")) return 0666 & ~static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  return 0644;
}

}  // namespace

Status writeFileAtomically(const std::filesystem::path& given, const std::function<void(std::ostream&)>& write) {
  std::error_code ec;
  // A symlink stays a link: the file it points to is replaced.
  const std::filesystem::path path =
      std::filesystem::is_symlink(given, ec) && std::filesystem::exists(given, ec)
          ? std::filesystem::canonical(given, ec)
          : given;
  // A name of its own beside the target, created exclusively (mkstemp): a fixed "FILE.tmp" could
  // be a link planted by another user, followed as root, or shared by two writers.
  std::string tmpl = path.string() + ".XXXXXX";
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return fail(ErrorCode::kIo, "{}: cannot create a temporary file beside it: {}", path.string(), std::strerror(errno));
  const std::filesystem::path tmp = tmpl;
  const auto discard = [&](const std::string& what, int err) {
    ::close(fd);
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return fail(ErrorCode::kIo, "{}: {}: {}", tmp.string(), what, std::strerror(err));
  };
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (out) write(out);
    out.flush();
    if (!out) return discard("cannot write", errno);
  }
  // The replaced file's permissions, or a new file's usual ones (mkstemp makes it 0600).
  struct stat old {};
  const mode_t mode = ::stat(path.c_str(), &old) == 0 ? (old.st_mode & 07777) : newFileMode();
  if (::fchmod(fd, mode) != 0) return discard("cannot set its mode", errno);
  // On disk before the rename, and the rename on disk after it: a crash leaves the old file or
  // the new one, never an empty one (XFS and ext4 without auto_da_alloc can otherwise).
  if (::fsync(fd) != 0) return discard("cannot flush to disk", errno);
  ::close(fd);
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;  // the rename's error is the one to report
    std::filesystem::remove(tmp, ignored);
    return fail(ErrorCode::kIo, "{}: cannot rename into place: {}", path.string(), ec.message());
  }
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ok();
}

Status checkOutputFile(const std::filesystem::path& path) {
  if (path.empty()) return fail(ErrorCode::kInvalidArgument, "an output file name is empty");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return fail(ErrorCode::kInvalidArgument, "{}: is a directory, not a file", path.string());
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  if (!std::filesystem::is_directory(dir, ec))
    return fail(ErrorCode::kNotFound, "{}: no such directory {}", path.string(), dir.string());
  if (::access(dir.c_str(), W_OK) != 0)
    return fail(ErrorCode::kIo, "{}: cannot write in {}: {}", path.string(), dir.string(), std::strerror(errno));
  return ok();
}

}  // namespace foresight
