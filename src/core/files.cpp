#include "foresight/core/files.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include <unistd.h>

namespace foresight {

Status writeFileAtomically(const std::filesystem::path& path, std::string_view text) {
  return writeFileAtomically(path, [&](std::ostream& out) { out.write(text.data(), static_cast<std::streamsize>(text.size())); });
}

Status writeFileAtomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (out) write(out);
    out.flush();
    if (!out) {
      const int err = errno;
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      return fail(ErrorCode::kIo, "{}: cannot write: {}", tmp.string(), std::strerror(err));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;  // the rename's error is the one to report
    std::filesystem::remove(tmp, ignored);
    return fail(ErrorCode::kIo, "{}: cannot rename into place: {}", path.string(), ec.message());
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
