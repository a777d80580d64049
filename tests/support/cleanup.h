#pragma once
// Temporary files and folders a test binary makes, removed when the binary ends: also after a
// failed ASSERT, which skips the rest of its test, and for SQLite's -wal and -shm files, which
// stay while a database is still open at the test's end.
#include <filesystem>
#include <mutex>
#include <vector>

namespace foresight::test_support {

inline std::filesystem::path removedAtExit(std::filesystem::path path) {
  static struct Paths {
    std::mutex mutex;
    std::vector<std::filesystem::path> paths;
    ~Paths() {
      std::error_code ignored;
      for (const auto& p : paths) std::filesystem::remove_all(p, ignored);
    }
  } registry;
  const std::lock_guard lock(registry.mutex);
  registry.paths.push_back(path);
  return path;
}

// A SQLite database and the files SQLite keeps beside it.
inline std::filesystem::path databaseRemovedAtExit(std::filesystem::path path) {
  for (const char* ext : {"-wal", "-shm", "-journal"}) removedAtExit(path.string() + ext);
  return removedAtExit(std::move(path));
}

}  // namespace foresight::test_support
