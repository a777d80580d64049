#pragma once
// History store in SQLite (WAL journal): resource samples per workload at full and downsampled
// resolution, and fingerprints. Every write is one transaction, so a crash loses at most the
// batch in flight and never leaves a torn row. The schema is versioned (PRAGMA user_version);
// opening a newer schema than this build knows is an error, an older one is migrated.
// Times are Unix milliseconds (schema version 2; version 1 stored seconds, so samples taken less
// than a second apart collided on the primary key and all but one were lost).
//
// Thread-safety: a Store owns one connection; use it from one thread at a time.

#include <sqlite3.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "foresight/core/resource.h"
#include "foresight/core/result.h"
#include "foresight/fingerprint/fingerprint.h"

namespace foresight::store {

inline constexpr int kSchemaVersion = 2;

struct SampleRow {
  std::string workload;
  std::int64_t time_ms = 0;  // Unix milliseconds (start of the bucket for downsampled rows)
  std::array<double, kResourceCount> usage{};  // NaN = missing (stored as NULL)
};

struct StoredFingerprint {
  std::string workload;
  std::int64_t time_ms = 0;  // Unix milliseconds
  double anomaly = 0;
  std::vector<double> vector;
};

// In seconds, as configured (YAML `retention`); applied in milliseconds.
struct Retention {
  std::int64_t raw_seconds = 86400;             // full-resolution samples kept this long
  std::int64_t bucket_seconds = 60;             // then averaged into buckets of this size
  std::int64_t downsampled_seconds = 30 * 86400;
  std::int64_t fingerprint_seconds = 30 * 86400;
};

class Store {
 public:
  static Result<Store> open(const std::filesystem::path& file);
  Store(Store&&) noexcept = default;
  Store& operator=(Store&&) noexcept = default;

  Status addSamples(const std::vector<SampleRow>& rows);
  Status addFingerprint(const std::string& workload, const fingerprint::Fingerprint& f);
  // Rows with from_ms <= time_ms < to_ms. resolution_ms 0: full resolution; otherwise the
  // downsampled bucket size (Retention::bucket_seconds * 1000).
  Result<std::vector<SampleRow>> samples(const std::string& workload, std::int64_t from_ms,
                                         std::int64_t to_ms, std::int64_t resolution_ms = 0);
  Result<std::vector<StoredFingerprint>> fingerprints(const std::string& workload,
                                                      std::int64_t from_ms, std::int64_t to_ms);
  Result<std::vector<std::string>> workloads();
  // Averages full-resolution samples older than now - raw_seconds into buckets, then deletes
  // what is past each retention. One transaction. A raw sample in a bucket averaged before
  // (it arrived late) is dropped with a warning; the bucket is kept.
  Status applyRetention(std::int64_t now_ms, const Retention& r);

 private:
  struct Closer { void operator()(sqlite3* db) const { sqlite3_close_v2(db); } };
  Store() = default;
  Status exec(const char* sql);
  Result<std::int64_t> workloadId(const std::string& name);
  std::unique_ptr<sqlite3, Closer> db_;
  std::filesystem::path file_;
};

}  // namespace foresight::store
