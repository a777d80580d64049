#pragma once
// SQLite run store: where the profiler and the allocator record (fingerprint, environment, usage,
// outcome) as workloads run, and where the matcher reads its history from.
//
// Thread-safety: one RunStore per thread (it owns one SQLite connection).

#include <filesystem>
#include <memory>

#include "foresight/match/data.h"

struct sqlite3;

namespace foresight::match {

class RunStore {
 public:
  // kReadWrite creates the file and its tables when missing. kReadOnly, for readers, changes
  // nothing: a missing file, or a database without the store's tables, is an error.
  enum class Mode { kReadWrite, kReadOnly };
  static Result<RunStore> open(const std::filesystem::path& file, Mode mode = Mode::kReadWrite);

  RunStore(RunStore&&) noexcept;
  RunStore& operator=(RunStore&&) noexcept;
  ~RunStore();

  Status add(const Run& run);
  Status setFingerprint(const std::string& workload, const std::map<std::string, double>& features);
  Status setWorkloadInfo(const std::string& workload, const std::string& key,
                         const std::string& value);
  // Everything in the store, runs in insertion order.
  Result<RunHistory> load() const;

 private:
  RunStore(sqlite3* db, std::filesystem::path file);
  Status exec(const char* sql) const;

  sqlite3* db_ = nullptr;
  std::filesystem::path file_;
};

}  // namespace foresight::match
