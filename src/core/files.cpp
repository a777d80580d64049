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

Result<AtomicFile> AtomicFile::create(const std::filesystem::path& given) {
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
  AtomicFile f;
  f.path_ = path;
  f.tmp_ = tmpl;
  f.out_ = std::make_unique<std::ofstream>(f.tmp_, std::ios::binary | std::ios::trunc);
  const int err = errno;
  ::close(fd);  // the stream has it open: one descriptor per file, as a recording holds many
  if (!*f.out_) return fail(ErrorCode::kIo, "{}: cannot open for writing: {}", f.tmp_.string(), std::strerror(err));
  return f;
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), out_(std::move(o.out_)) {
  o.tmp_.clear();
}

AtomicFile& AtomicFile::operator=(AtomicFile&& o) noexcept {
  if (this != &o) {
    discard();
    path_ = std::move(o.path_);
    tmp_ = std::move(o.tmp_);
    out_ = std::move(o.out_);
    o.tmp_.clear();
  }
  return *this;
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() {
  if (tmp_.empty()) return;
  if (out_ && out_->is_open()) out_->close();
  std::error_code ignored;
  std::filesystem::remove(tmp_, ignored);
  tmp_.clear();
}

Status AtomicFile::pause() {
  if (tmp_.empty()) return fail(ErrorCode::kInternal, "{}: already committed or discarded", path_.string());
  if (paused()) return ok();
  out_->flush();
  if (*out_) out_->close();
  if (!*out_) return fail(ErrorCode::kIo, "{}: cannot write: {}", tmp_.string(), std::strerror(errno));
  return ok();
}

Status AtomicFile::resume() {
  if (tmp_.empty()) return fail(ErrorCode::kInternal, "{}: already committed or discarded", path_.string());
  if (!paused()) return ok();
  out_->open(tmp_, std::ios::binary | std::ios::app);
  if (!*out_) return fail(ErrorCode::kIo, "{}: cannot reopen for writing: {}", tmp_.string(), std::strerror(errno));
  return ok();
}

Status AtomicFile::commit() {
  if (tmp_.empty()) return fail(ErrorCode::kInternal, "{}: already committed or discarded", path_.string());
  const auto failed = [&](const std::string& what, int err) {
    Status s = fail(ErrorCode::kIo, "{}: {}: {}", tmp_.string(), what, std::strerror(err));
    discard();
    return s;
  };
  if (!paused()) {  // a paused file was flushed and closed, and its error reported, by pause()
    out_->flush();
    if (!*out_) return failed("cannot write", errno);
    out_->close();
    if (!*out_) return failed("cannot write", errno);
  }
  const int fd = ::open(tmp_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return failed("cannot reopen", errno);
  // The replaced file's permissions, or a new file's usual ones (mkstemp makes it 0600).
  struct stat old {};
  const mode_t mode = ::stat(path_.c_str(), &old) == 0 ? (old.st_mode & 07777) : newFileMode();
  // On disk before the rename, and the rename on disk after it: a crash leaves the old file or
  // the new one, never an empty one (XFS and ext4 without auto_da_alloc can otherwise).
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return failed("cannot set its mode or flush it to disk", err);
  }
  ::close(fd);
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) {
    discard();  // the rename's error is the one to report
    return fail(ErrorCode::kIo, "{}: cannot rename into place: {}", path_.string(), ec.message());
  }
  tmp_.clear();
  const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : ".";
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ok();
}

Status writeFileAtomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write) {
  auto f = AtomicFile::create(path);
  if (!f) return tl::unexpected(f.error());
  write(f->out());
  return f->commit();
}

Result<std::string> readTokenFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot read: {}", path.string(), std::strerror(errno));
  std::string line;
  std::getline(in, line);
  const auto first = line.find_first_not_of(" \t\r");
  if (first == std::string::npos) return fail(ErrorCode::kInvalidArgument, "{}: its first line is empty", path.string());
  return line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
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
