#include "foresight/match/store.h"

#include <sqlite3.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "foresight/store/sqlite.h"

namespace foresight::match {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  workload TEXT NOT NULL, env TEXT NOT NULL, completed INTEGER NOT NULL,
  runtime_s REAL, cost REAL, throughput REAL, usage_json TEXT);
CREATE TABLE IF NOT EXISTS fingerprints(
  workload TEXT NOT NULL, feature TEXT NOT NULL, value REAL NOT NULL,
  PRIMARY KEY(workload, feature));
CREATE TABLE IF NOT EXISTS workload_info(
  workload TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY(workload, key));
)sql";

using foresight::store::Statement;

}  // namespace

RunStore::RunStore(sqlite3* db, std::filesystem::path file) : db_(db), file_(std::move(file)) {}
RunStore::RunStore(RunStore&& o) noexcept : db_(std::exchange(o.db_, nullptr)), file_(o.file_) {}
RunStore& RunStore::operator=(RunStore&& o) noexcept {
  if (this != &o) {
    sqlite3_close(db_);
    db_ = std::exchange(o.db_, nullptr);
    file_ = o.file_;
  }
  return *this;
}
RunStore::~RunStore() { sqlite3_close(db_); }

Result<RunStore> RunStore::open(const std::filesystem::path& file, Mode mode) {
  const bool read_only = mode == Mode::kReadOnly;
  std::error_code ec;
  if (read_only && !std::filesystem::is_regular_file(file, ec))
    return fail(ErrorCode::kNotFound, "{}: no such run store", file.string());
  sqlite3* db = nullptr;
  const int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (sqlite3_open_v2(file.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return fail(ErrorCode::kIo, "{}: cannot open the run store: {}", file.string(), msg);
  }
  RunStore store(db, file);
  if (!read_only) {
    // As the history store and the audit trail: WAL, a writer does not block `match` reading.
    if (auto s = foresight::store::openWal(db, file.string()); !s) return tl::unexpected(s.error());
    if (auto s = store.exec(kSchema); !s) return tl::unexpected(s.error());
    return store;
  }
  sqlite3_busy_timeout(db, foresight::store::kBusyTimeoutMs);
  Statement st;
  if (sqlite3_prepare_v2(db,
                         "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                         "('runs', 'fingerprints', 'workload_info')",
                         -1, &st.s, nullptr) != SQLITE_OK ||
      sqlite3_step(st.s) != SQLITE_ROW)
    return fail(ErrorCode::kIo, "{}: cannot open the run store: {}", file.string(),
                sqlite3_errmsg(db));
  if (sqlite3_column_int(st.s, 0) != 3)
    return fail(ErrorCode::kParse,
                "{}: not a run store (it lacks the runs, fingerprints and workload_info tables)",
                file.string());
  return store;
}

Status RunStore::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return fail(ErrorCode::kIo, "{}: {}", file_.string(), msg);
  }
  return ok();
}

Status RunStore::add(const Run& run) {
  Statement st;
  const char* sql =
      "INSERT INTO runs(workload, env, completed, runtime_s, cost, throughput, usage_json) "
      "VALUES(?,?,?,?,?,?,?)";
  if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK)
    return fail(ErrorCode::kIo, "{}: {}", file_.string(), sqlite3_errmsg(db_));
  sqlite3_bind_text(st.s, 1, run.workload.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, run.env.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st.s, 3, run.completed ? 1 : 0);
  sqlite3_bind_double(st.s, 4, run.runtime_s);
  if (run.cost) sqlite3_bind_double(st.s, 5, *run.cost); else sqlite3_bind_null(st.s, 5);
  if (run.throughput) sqlite3_bind_double(st.s, 6, *run.throughput); else sqlite3_bind_null(st.s, 6);
  const std::string usage = nlohmann::json(run.usage).dump();
  sqlite3_bind_text(st.s, 7, usage.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE)
    return fail(ErrorCode::kIo, "{}: cannot add a run of '{}': {}", file_.string(), run.workload,
                sqlite3_errmsg(db_));
  return ok();
}

Status RunStore::setFingerprint(const std::string& workload,
                                const std::map<std::string, double>& features) {
  if (auto s = exec("BEGIN"); !s) return s;
  for (const auto& [name, value] : features) {
    Statement st;
    if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO fingerprints VALUES(?,?,?)", -1, &st.s,
                           nullptr) != SQLITE_OK ||
        sqlite3_bind_text(st.s, 1, workload.c_str(), -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(st.s, 2, name.c_str(), -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_double(st.s, 3, value) != SQLITE_OK || sqlite3_step(st.s) != SQLITE_DONE) {
      auto err = fail(ErrorCode::kIo, "{}: cannot store fingerprint of '{}': {}", file_.string(),
                      workload, sqlite3_errmsg(db_));
      (void)exec("ROLLBACK");
      return err;
    }
  }
  return exec("COMMIT");
}

Status RunStore::setWorkloadInfo(const std::string& workload, const std::string& key,
                                 const std::string& value) {
  Statement st;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO workload_info VALUES(?,?,?)", -1, &st.s,
                         nullptr) != SQLITE_OK)
    return fail(ErrorCode::kIo, "{}: {}", file_.string(), sqlite3_errmsg(db_));
  sqlite3_bind_text(st.s, 1, workload.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 3, value.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE)
    return fail(ErrorCode::kIo, "{}: {}", file_.string(), sqlite3_errmsg(db_));
  return ok();
}

Result<RunHistory> RunStore::load() const {
  RunHistory h;
  {
    Statement st;
    if (sqlite3_prepare_v2(db_,
                           "SELECT id, workload, env, completed, runtime_s, cost, throughput, "
                           "usage_json FROM runs ORDER BY id",
                           -1, &st.s, nullptr) != SQLITE_OK)
      return fail(ErrorCode::kIo, "{}: {}", file_.string(), sqlite3_errmsg(db_));
    while (sqlite3_step(st.s) == SQLITE_ROW) {
      Run run;
      const auto id = sqlite3_column_int64(st.s, 0);
      run.workload = foresight::store::columnText(st.s, 1);
      run.env = foresight::store::columnText(st.s, 2);
      run.completed = sqlite3_column_int(st.s, 3) != 0;
      run.runtime_s = sqlite3_column_type(st.s, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st.s, 4);
      if (sqlite3_column_type(st.s, 5) != SQLITE_NULL) run.cost = sqlite3_column_double(st.s, 5);
      if (sqlite3_column_type(st.s, 6) != SQLITE_NULL)
        run.throughput = sqlite3_column_double(st.s, 6);
      const auto usage = foresight::store::columnText(st.s, 7);
      if (!usage.empty()) {
        auto j = nlohmann::json::parse(usage, nullptr, false);
        if (j.is_discarded() || !j.is_object())
          return fail(ErrorCode::kParse, "{}: runs row {}: usage_json is not a JSON object",
                      file_.string(), id);
        for (auto& [k, v] : j.items())
          if (v.is_number()) run.usage[k] = v.get<double>();
      }
      h.workload_info[run.workload];
      h.runs.push_back(std::move(run));
    }
  }
  {
    Statement st;
    if (sqlite3_prepare_v2(db_, "SELECT workload, feature, value FROM fingerprints", -1, &st.s,
                           nullptr) != SQLITE_OK)
      return fail(ErrorCode::kIo, "{}: {}", file_.string(), sqlite3_errmsg(db_));
    while (sqlite3_step(st.s) == SQLITE_ROW)
      h.fingerprints[foresight::store::columnText(st.s, 0)][foresight::store::columnText(st.s, 1)] = sqlite3_column_double(st.s, 2);
  }
  {
    Statement st;
    if (sqlite3_prepare_v2(db_, "SELECT workload, key, value FROM workload_info", -1, &st.s,
                           nullptr) != SQLITE_OK)
      return fail(ErrorCode::kIo, "{}: {}", file_.string(), sqlite3_errmsg(db_));
    while (sqlite3_step(st.s) == SQLITE_ROW)
      h.workload_info[foresight::store::columnText(st.s, 0)][foresight::store::columnText(st.s, 1)] = foresight::store::columnText(st.s, 2);
  }
  return h;
}

}  // namespace foresight::match
