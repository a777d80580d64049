#pragma once
// Secrets a long-running process reads from files that are rotated under it: the agent's TLS
// certificate (cert-manager), its bearer token, a Kubernetes service-account token (the kubelet
// replaces a projected token well before its hour is up). client-go and Prometheus re-read such
// files as they run; so does Foresight, through this one class.

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/core/result.h"

namespace foresight {

// What stat(2) tells of a file's content, following symlinks: a rename over it, a Secret volume's
// `..data` symlink swap and a rewrite in place each change it. All zero for a file that is gone.
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  long long mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

inline FileStamp fileStamp(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
}

// A value loaded from files and loaded again whenever one of them changes. The first load's error
// is returned (a start that should be refused); after that, files that no longer load (a rotation
// half done, a typo) keep the last good value, logged once per change, and are tried again when
// they change next. Two stat calls per file per use: cheap beside a TLS handshake or a request.
// Thread-safe; a value handed out stays valid while its holder keeps it.
template <typename T>
class Reloading {
 public:
  using Loader = std::function<Result<T>()>;
  // `what` names the value in the log ("bearer_token_file /etc/foresight/token").
  Reloading(std::vector<std::filesystem::path> files, Loader load, std::string what)
      : files_(std::move(files)), load_(std::move(load)), what_(std::move(what)) {}

  Result<std::shared_ptr<const T>> current() {
    std::lock_guard lock(mu_);
    std::vector<FileStamp> now;
    now.reserve(files_.size());
    // Stamped before the load: a change during the load shows as a new stamp at the next use.
    for (const auto& f : files_) now.push_back(fileStamp(f));
    if (value_ && now == stamps_) return value_;
    stamps_ = std::move(now);
    auto loaded = load_();
    if (loaded) {
      if (value_) spdlog::info("{}: changed, reloaded", what_);
      value_ = std::make_shared<const T>(std::move(*loaded));
    } else if (value_) {
      spdlog::warn("{}: changed, but {}; keeping the one loaded before", what_, loaded.error().message);
    } else {
      return tl::unexpected(loaded.error());
    }
    return value_;
  }

 private:
  std::mutex mu_;
  std::vector<std::filesystem::path> files_;
  Loader load_;
  std::string what_;
  std::vector<FileStamp> stamps_;
  std::shared_ptr<const T> value_;
};

// A token file (readTokenFile) read again when it changes: the agent's bearer token, a
// Kubernetes service-account token. `what` names it in the log.
inline std::shared_ptr<Reloading<std::string>> reloadingTokenFile(const std::filesystem::path& file,
                                                                 std::string what) {
  return std::make_shared<Reloading<std::string>>(std::vector{file}, [file] { return readTokenFile(file); },
                                                  std::move(what));
}

}  // namespace foresight
