#include "foresight/store/store.h"

#include <cmath>
#include <cstring>

#include "foresight/core/log.h"
#include "foresight/store/sqlite.h"

namespace foresight::store {
namespace {

// Schema version 2 (kSchemaVersion): times and bucket sizes in milliseconds.
const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS workloads (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS samples (
  workload INTEGER NOT NULL REFERENCES workloads(id),
  resolution_ms INTEGER NOT NULL,  -- 0: as sampled; else bucket milliseconds
  time_ms INTEGER NOT NULL,        -- Unix milliseconds
  cpu REAL, memory REAL, disk_io REAL, network REAL,
  PRIMARY KEY (workload, resolution_ms, time_ms)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fingerprints (
  workload INTEGER NOT NULL REFERENCES workloads(id),
  time_ms INTEGER NOT NULL,
  anomaly REAL NOT NULL,
  vector BLOB NOT NULL,  -- little-endian float64 array
  PRIMARY KEY (workload, time_ms)) WITHOUT ROWID;
)sql";

// Version 1 -> 2: seconds to milliseconds. The tables are rebuilt rather than updated in place:
// an UPDATE of a primary key column can collide with a row not yet updated.
const char* kMigrateV1 = R"sql(
ALTER TABLE samples RENAME TO samples_v1;
ALTER TABLE fingerprints RENAME TO fingerprints_v1;
%SCHEMA%
INSERT INTO samples(workload, resolution_ms, time_ms, cpu, memory, disk_io, network)
  SELECT workload, resolution * 1000, time * 1000, cpu, memory, disk_io, network FROM samples_v1;
INSERT INTO fingerprints(workload, time_ms, anomaly, vector)
  SELECT workload, time * 1000, anomaly, vector FROM fingerprints_v1;
DROP TABLE samples_v1;
DROP TABLE fingerprints_v1;
)sql";

void bindUsage(sqlite3_stmt* s, int first, const std::array<double, kResourceCount>& u) {
  for (std::size_t i = 0; i < kResourceCount; ++i) {
    if (std::isfinite(u[i])) sqlite3_bind_double(s, first + static_cast<int>(i), u[i]);
    else sqlite3_bind_null(s, first + static_cast<int>(i));
  }
}

}  // namespace

#define FS_SQL_FAIL(what) \
  fail(ErrorCode::kIo, "{}: {}: {}", file_.string(), what, sqlite3_errmsg(db_.get()))

Status Store::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    return fail(ErrorCode::kIo, "{}: {}", file_.string(), msg);
  }
  return ok();
}

Result<Store> Store::open(const std::filesystem::path& file) {
  Store st;
  st.file_ = file;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  st.db_.reset(db);
  if (rc != SQLITE_OK) {
    return fail(ErrorCode::kIo, "{}: cannot open: {}", file.string(),
                db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  }
  // SQLite falls back to read-only on a write-protected file: the agent would then run and record
  // nothing. Refused at start-up, naming the file.
  if (sqlite3_db_readonly(db, "main") == 1)
    return fail(ErrorCode::kIo, "{}: the history database can only be read (write-protected file)",
                file.string());
  // WAL (openWal); synchronous=NORMAL is durable against process crashes (an OS crash may lose
  // the last commit).
  if (auto s = openWal(db, file.string()); !s) return tl::unexpected(s.error());
  if (auto s = st.exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"); !s) return tl::unexpected(s.error());
  const auto readVersion = [&]() -> Result<int> {
    // Finalized before any migration: a pending statement would lock the tables it drops.
    Statement v;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &v.s, nullptr);
    if (sqlite3_step(v.s) != SQLITE_ROW)
      return fail(ErrorCode::kIo, "{}: cannot read schema version (not a SQLite file?)", file.string());
    const int version = sqlite3_column_int(v.s, 0);
    if (version > kSchemaVersion)
      return fail(ErrorCode::kParse, "{}: schema version {} is newer than this build's {}",
                  file.string(), version, kSchemaVersion);
    return version;
  };
  auto version = readVersion();
  if (!version) return tl::unexpected(version.error());
  if (*version < kSchemaVersion) {
    // Version 0 is an empty file; a version 1 file is migrated in place. One transaction: a
    // failure (or a crash) leaves the file as it was. The version is read again inside it:
    // another process opening the same file may have migrated it meanwhile.
    if (auto s = st.exec("BEGIN IMMEDIATE;"); !s) return tl::unexpected(s.error());
    version = readVersion();
    if (!version) {
      (void)st.exec("ROLLBACK");
      return tl::unexpected(version.error());
    }
    std::string steps;
    if (*version == 0) steps = kSchema;
    if (*version == 1) {
      steps = kMigrateV1;
      steps.replace(steps.find("%SCHEMA%"), 8, kSchema);
    }
    const std::string sql = steps + "PRAGMA user_version=" + std::to_string(kSchemaVersion) + "; COMMIT;";
    if (auto s = st.exec(*version < kSchemaVersion ? sql.c_str() : "COMMIT;"); !s) {
      (void)st.exec("ROLLBACK");
      return fail(ErrorCode::kIo, "{} (migrating schema version {} to {})", s.error().message,
                  *version, kSchemaVersion);
    }
  }
  return st;
}

Result<std::int64_t> Store::workloadId(const std::string& name) {
  Statement ins;
  sqlite3_prepare_v2(db_.get(), "INSERT OR IGNORE INTO workloads(name) VALUES (?)", -1, &ins.s, nullptr);
  sqlite3_bind_text(ins.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(ins.s) != SQLITE_DONE) return FS_SQL_FAIL("insert workload");
  Statement sel;
  sqlite3_prepare_v2(db_.get(), "SELECT id FROM workloads WHERE name = ?", -1, &sel.s, nullptr);
  sqlite3_bind_text(sel.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(sel.s) != SQLITE_ROW) return FS_SQL_FAIL("select workload");
  return sqlite3_column_int64(sel.s, 0);
}

Status Store::addSamples(const std::vector<SampleRow>& rows) {
  if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
  Statement ins;
  sqlite3_prepare_v2(db_.get(),
                     "INSERT OR REPLACE INTO samples(workload,resolution_ms,time_ms,cpu,memory,disk_io,network) "
                     "VALUES (?,0,?,?,?,?,?)", -1, &ins.s, nullptr);
  for (const auto& r : rows) {
    auto id = workloadId(r.workload);
    if (!id) { exec("ROLLBACK"); return tl::unexpected(id.error()); }
    sqlite3_reset(ins.s);
    sqlite3_bind_int64(ins.s, 1, *id);
    sqlite3_bind_int64(ins.s, 2, r.time_ms);
    bindUsage(ins.s, 3, r.usage);
    if (sqlite3_step(ins.s) != SQLITE_DONE) {
      auto e = FS_SQL_FAIL("insert sample");
      exec("ROLLBACK");
      return e;
    }
  }
  return exec("COMMIT");
}

Status Store::addFingerprint(const std::string& workload, const fingerprint::Fingerprint& f) {
  auto id = workloadId(workload);
  if (!id) return tl::unexpected(id.error());
  Statement ins;
  sqlite3_prepare_v2(db_.get(),
                     "INSERT OR REPLACE INTO fingerprints(workload,time_ms,anomaly,vector) VALUES (?,?,?,?)",
                     -1, &ins.s, nullptr);
  sqlite3_bind_int64(ins.s, 1, *id);
  sqlite3_bind_int64(ins.s, 2, f.time_ms);
  sqlite3_bind_double(ins.s, 3, f.anomaly);
  sqlite3_bind_blob(ins.s, 4, f.vector.data(), static_cast<int>(f.vector.size() * sizeof(double)),
                    SQLITE_TRANSIENT);
  if (sqlite3_step(ins.s) != SQLITE_DONE) return FS_SQL_FAIL("insert fingerprint");
  return ok();
}

Result<std::vector<SampleRow>> Store::samples(const std::string& workload, std::int64_t from_ms,
                                              std::int64_t to_ms, std::int64_t resolution_ms) {
  Statement q;
  sqlite3_prepare_v2(db_.get(),
                     "SELECT s.time_ms, s.cpu, s.memory, s.disk_io, s.network FROM samples s "
                     "JOIN workloads w ON w.id = s.workload WHERE w.name = ? AND s.resolution_ms = ? "
                     "AND s.time_ms >= ? AND s.time_ms < ? ORDER BY s.time_ms", -1, &q.s, nullptr);
  sqlite3_bind_text(q.s, 1, workload.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(q.s, 2, resolution_ms);
  sqlite3_bind_int64(q.s, 3, from_ms);
  sqlite3_bind_int64(q.s, 4, to_ms);
  std::vector<SampleRow> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    SampleRow r{workload, sqlite3_column_int64(q.s, 0), {}};
    for (int i = 0; i < 4; ++i) {
      r.usage[i] = sqlite3_column_type(q.s, i + 1) == SQLITE_NULL ? NAN : sqlite3_column_double(q.s, i + 1);
    }
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return FS_SQL_FAIL("select samples");
  return out;
}

Result<std::vector<StoredFingerprint>> Store::fingerprints(const std::string& workload,
                                                          std::int64_t from_ms, std::int64_t to_ms) {
  Statement q;
  sqlite3_prepare_v2(db_.get(),
                     "SELECT f.time_ms, f.anomaly, f.vector FROM fingerprints f JOIN workloads w ON "
                     "w.id = f.workload WHERE w.name = ? AND f.time_ms >= ? AND f.time_ms < ? "
                     "ORDER BY f.time_ms", -1, &q.s, nullptr);
  sqlite3_bind_text(q.s, 1, workload.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(q.s, 2, from_ms);
  sqlite3_bind_int64(q.s, 3, to_ms);
  std::vector<StoredFingerprint> out;
  int rc;
  while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
    StoredFingerprint f{workload, sqlite3_column_int64(q.s, 0), sqlite3_column_double(q.s, 1), {}};
    const int bytes = sqlite3_column_bytes(q.s, 2);
    f.vector.resize(static_cast<std::size_t>(bytes) / sizeof(double));
    if (bytes > 0) std::memcpy(f.vector.data(), sqlite3_column_blob(q.s, 2), f.vector.size() * sizeof(double));
    out.push_back(std::move(f));
  }
  if (rc != SQLITE_DONE) return FS_SQL_FAIL("select fingerprints");
  return out;
}

Result<std::vector<std::string>> Store::workloads() {
  Statement q;
  sqlite3_prepare_v2(db_.get(), "SELECT name FROM workloads ORDER BY name", -1, &q.s, nullptr);
  std::vector<std::string> out;
  while (sqlite3_step(q.s) == SQLITE_ROW)
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(q.s, 0)));
  return out;
}

Status Store::applyRetention(std::int64_t now_ms, const Retention& r) {
  if (r.bucket_seconds <= 0) return fail(ErrorCode::kInvalidArgument, "retention: bucket_seconds must be > 0");
  const std::int64_t bucket_ms = r.bucket_seconds * 1000;
  // Whole buckets only: a bucket is averaged once all of its raw samples are past retention.
  const std::int64_t raw_cut = (now_ms - r.raw_seconds * 1000) / bucket_ms * bucket_ms;
  if (auto s = exec("BEGIN IMMEDIATE"); !s) return s;
  // A raw sample that arrives after its bucket was averaged (a clock stepped back, a late import)
  // is dropped: the bucket's mean of the samples it was made from stands. It cannot be merged in,
  // as a bucket does not keep how many samples it averages.
  Statement late;
  sqlite3_prepare_v2(db_.get(),
                     "SELECT count(*) FROM samples r WHERE r.resolution_ms = 0 AND r.time_ms < ?2 AND "
                     "EXISTS (SELECT 1 FROM samples d WHERE d.workload = r.workload AND "
                     "d.resolution_ms = ?1 AND d.time_ms = (r.time_ms / ?1) * ?1)", -1, &late.s, nullptr);
  sqlite3_bind_int64(late.s, 1, bucket_ms);
  sqlite3_bind_int64(late.s, 2, raw_cut);
  if (sqlite3_step(late.s) != SQLITE_ROW) {
    auto e = FS_SQL_FAIL("retention");
    exec("ROLLBACK");
    return e;
  }
  if (const auto n = sqlite3_column_int64(late.s, 0))
    spdlog::warn("{}: {} raw sample(s) arrived after their {} s bucket was averaged; dropped, the "
                 "bucket kept", file_.string(), n, r.bucket_seconds);
  Statement agg;
  sqlite3_prepare_v2(db_.get(),
                     "INSERT OR IGNORE INTO samples(workload,resolution_ms,time_ms,cpu,memory,disk_io,network) "
                     "SELECT workload, ?1, (time_ms / ?1) * ?1, avg(cpu), avg(memory), avg(disk_io), "
                     "avg(network) FROM samples WHERE resolution_ms = 0 AND time_ms < ?2 "
                     "GROUP BY workload, time_ms / ?1", -1, &agg.s, nullptr);
  sqlite3_bind_int64(agg.s, 1, bucket_ms);
  sqlite3_bind_int64(agg.s, 2, raw_cut);
  Statement del;
  sqlite3_prepare_v2(db_.get(),
                     "DELETE FROM samples WHERE (resolution_ms = 0 AND time_ms < ?1) OR "
                     "(resolution_ms <> 0 AND time_ms < ?2)", -1, &del.s, nullptr);
  sqlite3_bind_int64(del.s, 1, raw_cut);
  sqlite3_bind_int64(del.s, 2, now_ms - r.downsampled_seconds * 1000);
  Statement delf;
  sqlite3_prepare_v2(db_.get(), "DELETE FROM fingerprints WHERE time_ms < ?", -1, &delf.s, nullptr);
  sqlite3_bind_int64(delf.s, 1, now_ms - r.fingerprint_seconds * 1000);
  for (sqlite3_stmt* s : {agg.s, del.s, delf.s}) {
    if (sqlite3_step(s) != SQLITE_DONE) {
      auto e = FS_SQL_FAIL("retention");
      exec("ROLLBACK");
      return e;
    }
  }
  return exec("COMMIT");
}

}  // namespace foresight::store
