#include "foresight/allocate/audit.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "foresight/core/log.h"
#include "foresight/store/sqlite.h"

namespace foresight::allocate {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS allocation_changes (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  time        INTEGER NOT NULL,
  workload    TEXT NOT NULL,
  backend     TEXT NOT NULL,
  options     TEXT NOT NULL,
  before      TEXT NOT NULL,
  after       TEXT NOT NULL,
  reason      TEXT NOT NULL,
  result      TEXT NOT NULL,
  rollback_of INTEGER REFERENCES allocation_changes(id),
  restore     TEXT,
  oom         TEXT
);
CREATE INDEX IF NOT EXISTS allocation_changes_workload ON allocation_changes(workload, id);
)sql";

using store::Statement;
Result<AuditRecord> readRow(sqlite3_stmt* s) {
  AuditRecord r;
  r.id = sqlite3_column_int64(s, 0);
  r.time = sqlite3_column_int64(s, 1);
  r.workload = store::columnText(s, 2);
  r.backend = store::columnText(s, 3);
  try {
    // Named: a range-for over items() of a temporary would dangle.
    const auto options = nlohmann::json::parse(store::columnText(s, 4));
    for (const auto& [k, v] : options.items()) r.options.values[k] = v.get<std::string>();
    auto before = allocationFromJson(nlohmann::json::parse(store::columnText(s, 5)));
    auto after = allocationFromJson(nlohmann::json::parse(store::columnText(s, 6)));
    if (!before) return tl::unexpected(before.error());
    if (!after) return tl::unexpected(after.error());
    r.before = *before;
    r.after = *after;
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::kParse, "audit record {}: {}", r.id, e.what());
  }
  r.reason = store::columnText(s, 7);
  r.result = store::columnText(s, 8);
  if (sqlite3_column_type(s, 9) != SQLITE_NULL) r.rollback_of = sqlite3_column_int64(s, 9);
  if (sqlite3_column_type(s, 10) != SQLITE_NULL) {
    r.restore = nlohmann::json::parse(store::columnText(s, 10), nullptr, false);
    if (r.restore.is_discarded())
      return fail(ErrorCode::kParse, "audit record {}: restore is not JSON", r.id);
  }
  if (sqlite3_column_type(s, 11) != SQLITE_NULL) {
    const auto oom = nlohmann::json::parse(store::columnText(s, 11), nullptr, false);
    if (!oom.is_object() || !oom.contains("time") || !oom.contains("demand") || !oom["time"].is_number() ||
        !oom["demand"].is_number())
      return fail(ErrorCode::kParse, "audit record {}: oom is not {{\"time\": ..., \"demand\": ...}}", r.id);
    r.oom = OomKill{oom["time"].get<std::int64_t>(), oom["demand"].get<double>()};
  }
  return r;
}

constexpr const char* kColumns =
    "id, time, workload, backend, options, before, after, reason, result, rollback_of, ";

}  // namespace

Result<AuditLog> AuditLog::open(const std::string& path, Mode mode) {
  const bool read_only = mode == Mode::kReadOnly;
  // A WAL database is read through its -shm file, which a reader without write access to the
  // folder cannot create when no writer has the trail open (no -wal file then). Such a trail is
  // read as immutable: nothing is writing it.
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  const bool immutable = read_only && !std::filesystem::exists(path + "-wal", ec) &&
                         ::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0;
  std::string name = path;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (immutable) {
    name = "file:";
    for (char c : path) name += c == '%' || c == '?' || c == '#' ? fmt::format("%{:02X}", c) : std::string(1, c);
    name += "?immutable=1";
    flags |= SQLITE_OPEN_URI;
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(name.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return fail(ErrorCode::kIo, "{}: cannot open audit database: {}", path, msg);
  }
  AuditLog log(db);
  // SQLite falls back to read-only on a write-protected file; a change would then be applied and
  // fail to be recorded. Refused before anything is applied.
  if (!read_only && sqlite3_db_readonly(db, "main") == 1)
    return fail(ErrorCode::kIo, "{}: the audit database can only be read (write-protected file)", path);
  // Another writer may hold the lock briefly.
  char* err = nullptr;
  if (read_only) {
    sqlite3_busy_timeout(db, store::kBusyTimeoutMs);
  } else {
    if (auto s = store::openWal(db, path); !s)
      return fail(ErrorCode::kIo, "cannot set up audit database: {}", s.error().message);
    if (sqlite3_exec(db, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      return fail(ErrorCode::kIo, "{}: cannot set up audit database: {}", path, msg);
    }
  }
  bool has_table = false, has_restore = false, has_oom = false;
  {
    Statement st;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(allocation_changes)", -1, &st.s, nullptr) !=
        SQLITE_OK)
      return fail(ErrorCode::kIo, "{}: cannot read the audit database: {}", path, sqlite3_errmsg(db));
    while (sqlite3_step(st.s) == SQLITE_ROW) {
      has_table = true;
      has_restore |= store::columnText(st.s, 1) == "restore";
      has_oom |= store::columnText(st.s, 1) == "oom";
    }
  }
  if (!has_table)
    return fail(ErrorCode::kParse, "{}: not an audit database (no allocation_changes table)", path);
  // A trail written before the restore or oom column existed gets it (NULL: those records roll
  // back through `before`, as they always did, and hold no kill); read-only, it is read without.
  log.has_restore_ = has_restore;
  log.has_oom_ = has_oom;
  for (auto [has, column] : {std::pair{&log.has_restore_, "restore"}, {&log.has_oom_, "oom"}}) {
    if (*has || read_only) continue;
    const std::string sql = fmt::format("ALTER TABLE allocation_changes ADD COLUMN {} TEXT", column);
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      return fail(ErrorCode::kIo, "{}: cannot add the {} column: {}", path, column, msg);
    }
    *has = true;
  }
  return log;
}

AuditLog::AuditLog(AuditLog&& o) noexcept : db_(o.db_), has_restore_(o.has_restore_), has_oom_(o.has_oom_) {
  o.db_ = nullptr;
}
AuditLog& AuditLog::operator=(AuditLog&& o) noexcept {
  if (this != &o) {
    sqlite3_close(db_);
    db_ = o.db_;
    has_restore_ = o.has_restore_;
    has_oom_ = o.has_oom_;
    o.db_ = nullptr;
  }
  return *this;
}
AuditLog::~AuditLog() { sqlite3_close(db_); }

Result<std::int64_t> AuditLog::append(const AuditRecord& r) {
  Statement st;
  const char* sql =
      "INSERT INTO allocation_changes (time, workload, backend, options, before, after, reason, "
      "result, rollback_of, restore, oom) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  if (sqlite3_prepare_v2(db_, sql, -1, &st.s, nullptr) != SQLITE_OK)
    return fail(ErrorCode::kIo, "audit: {}", sqlite3_errmsg(db_));
  nlohmann::json options(r.options.values);
  const std::string texts[] = {r.workload, r.backend, options.dump(), toJson(r.before).dump(),
                               toJson(r.after).dump(), r.reason, r.result};
  sqlite3_bind_int64(st.s, 1, r.time);
  for (int i = 0; i < 7; ++i)
    sqlite3_bind_text(st.s, i + 2, texts[i].c_str(), -1, SQLITE_TRANSIENT);
  if (r.rollback_of) sqlite3_bind_int64(st.s, 9, *r.rollback_of);
  else sqlite3_bind_null(st.s, 9);
  const std::string restore = r.restore.is_null() ? std::string() : r.restore.dump();
  if (r.restore.is_null()) sqlite3_bind_null(st.s, 10);
  else sqlite3_bind_text(st.s, 10, restore.c_str(), -1, SQLITE_TRANSIENT);
  const std::string oom = r.oom ? nlohmann::json{{"time", r.oom->time}, {"demand", r.oom->demand}}.dump() : "";
  if (!r.oom) sqlite3_bind_null(st.s, 11);
  else sqlite3_bind_text(st.s, 11, oom.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE)
    return fail(ErrorCode::kIo, "audit: cannot record change of {}: {}", r.workload,
                sqlite3_errmsg(db_));
  return sqlite3_last_insert_rowid(db_);
}

std::string AuditLog::columns() const {
  return fmt::format("{}{}, {}", kColumns, has_restore_ ? "restore" : "NULL", has_oom_ ? "oom" : "NULL");
}

Result<AuditRecord> AuditLog::get(std::int64_t id) const {
  Statement st;
  const std::string sql = fmt::format("SELECT {} FROM allocation_changes WHERE id = ?", columns());
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK)
    return fail(ErrorCode::kIo, "audit: {}", sqlite3_errmsg(db_));
  sqlite3_bind_int64(st.s, 1, id);
  const int rc = sqlite3_step(st.s);
  if (rc == SQLITE_DONE) return fail(ErrorCode::kNotFound, "audit record {} does not exist", id);
  if (rc != SQLITE_ROW) return fail(ErrorCode::kIo, "audit: {}", sqlite3_errmsg(db_));
  return readRow(st.s);
}

Result<std::vector<AuditRecord>> AuditLog::list(const std::string& workload,
                                                std::size_t limit) const {
  Statement st;
  const std::string sql =
      // One workload's by the (workload, id) index: "?1 = '' OR workload = ?1" would scan them all.
      fmt::format("SELECT {} FROM allocation_changes {} ORDER BY id DESC LIMIT ?2", columns(),
                  workload.empty() ? "WHERE ?1 = ''" : "WHERE workload = ?1");
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st.s, nullptr) != SQLITE_OK)
    return fail(ErrorCode::kIo, "audit: {}", sqlite3_errmsg(db_));
  sqlite3_bind_text(st.s, 1, workload.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 2, limit == 0 ? -1 : static_cast<std::int64_t>(limit));
  std::vector<AuditRecord> out;
  int rc;
  while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
    auto r = readRow(st.s);
    if (!r) return tl::unexpected(r.error());
    out.push_back(std::move(*r));
  }
  if (rc != SQLITE_DONE) return fail(ErrorCode::kIo, "audit: {}", sqlite3_errmsg(db_));
  return out;
}

namespace {
std::int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Applies `target`, or writes back `restore_from` (a rollback of a record with a snapshot; then
// `target` is what that snapshot holds in Allocation terms, for the record).
Result<std::int64_t> applyRecorded(Backend& backend, AuditRecord rec, AuditLog& log,
                                   const Allocation& target,
                                   const nlohmann::json* restore_from = nullptr,
                                   const Allocation* lower = nullptr, const Allocation* upper = nullptr) {
  // The snapshot first: a backend that answers current() from its last read (systemd) then gives
  // `before` from the same, fresh read.
  auto snap = backend.snapshot(rec.workload);
  auto before = backend.current(rec.workload);
  if (!before) return tl::unexpected(before.error());
  if (snap) {
    rec.restore = std::move(*snap);
  } else {
    // The change can still be rolled back through `before`, as records without a snapshot are.
    spdlog::warn("{} {}: no snapshot of the settings before the change: {}", rec.backend,
                 rec.workload, snap.error().message);
  }
  rec.time = nowSeconds();
  rec.before = *before;
  rec.after = target;
  auto st = restore_from         ? backend.restore(rec.workload, *restore_from)
            : lower && upper     ? backend.applyWithin(rec.workload, target, *lower, *upper)
                                 : backend.apply(rec.workload, target);
  rec.result = st ? "ok" : "failed: " + st.error().message;
  if (st) {
    // Record what the backend enforces now (after its rounding: pages, millicores, whole vCPUs),
    // so a later rollback can tell whether anything changed since.
    if (auto now = backend.current(rec.workload)) {
      for (Resource r : kAllResources)
        if (target[r]) rec.after[r] = (*now)[r] ? (*now)[r] : std::optional<double>(INFINITY);
    }
  }
  auto id = log.append(rec);
  if (!id) {
    // A change that is not on record cannot be rolled back by id: put the previous setting back.
    if (st) {
      Allocation undo;
      for (Resource r : kAllResources)
        if (target[r]) undo[r] = rec.before[r].value_or(INFINITY);
      auto undone = rec.restore.is_null() ? backend.apply(rec.workload, undo)
                                          : backend.restore(rec.workload, rec.restore);
      return fail(id.error().code, "{} {}: not applied: the audit trail refused the record ({}){}",
                  rec.backend, rec.workload, id.error().message,
                  undone ? "; the previous setting is back"
                         : fmt::format("; and putting the previous setting back failed, the change "
                                       "stays in force unrecorded: {}",
                                       undone.error().message));
    }
    return fail(id.error().code, "{} {}: {} and not recorded: {}", rec.backend, rec.workload,
                rec.result, id.error().message);
  }
  if (!st) return tl::unexpected(st.error());
  return *id;
}
}  // namespace

Result<std::int64_t> applyAndRecord(Backend& backend, const std::string& backend_name,
                                    const BackendOptions& options, AuditLog& log,
                                    const std::string& workload, const Allocation& target,
                                    const std::string& reason, const Allocation* lower,
                                    const Allocation* upper, std::optional<OomKill> oom) {
  AuditRecord rec;
  rec.oom = oom;
  rec.workload = workload;
  rec.backend = backend_name;
  rec.options = options;
  for (auto& [key, value] : backend.pinned()) rec.options.values[key] = value;
  rec.reason = reason;
  return applyRecorded(backend, std::move(rec), log, target, nullptr, lower, upper);
}

namespace {
// Backends round (pages, millicores, whole vCPUs): compare with that much slack.
bool roughlyEqual(Resource r, const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b) return !a && !b;
  if (std::isinf(*a) || std::isinf(*b)) return std::isinf(*a) && std::isinf(*b);
  const double slack = r == Resource::kCpu ? 0.0011 : r == Resource::kMemory ? 4096.0 : 1.0;
  return std::fabs(*a - *b) <= std::max(slack, 1e-3 * std::fabs(*b));
}
}  // namespace

Result<std::int64_t> rollback(AuditLog& log, const BackendRegistry& registry, std::int64_t id,
                              bool force) {
  auto rec = log.get(id);
  if (!rec) return tl::unexpected(rec.error());
  if (!rec->ok())
    return fail(ErrorCode::kInvalidArgument,
                "audit record {} did not change anything ({}); nothing to roll back", id,
                rec->result);
  auto backend = registry.create(rec->backend, rec->options);
  if (!backend) return tl::unexpected(backend.error());
  Allocation target;
  for (Resource r : kAllResources)
    if (rec->after[r]) target[r] = rec->before[r].value_or(INFINITY);
  if (!force) {
    auto now = (*backend)->current(rec->workload);
    if (!now) return tl::unexpected(now.error());
    for (Resource r : kAllResources) {
      if (!rec->after[r]) continue;
      // An absent value reads back as unlimited.
      const auto have = (*now)[r] ? (*now)[r] : std::optional<double>(INFINITY);
      if (!roughlyEqual(r, have, rec->after[r]))
        return fail(ErrorCode::kInvalidArgument,
                    "{} {}: {} changed since #{} (now {}, #{} set {}); not rolled back (--force to "
                    "override)", rec->backend, rec->workload, name(r), id, format(*now), id,
                    format(rec->after));
    }
  }
  AuditRecord out;
  out.workload = rec->workload;
  out.backend = rec->backend;
  out.options = rec->options;
  out.reason = fmt::format("rollback of #{} ({})", id, rec->reason);
  out.rollback_of = id;
  return applyRecorded(**backend, std::move(out), log, target,
                       rec->restore.is_null() ? nullptr : &rec->restore);
}

}  // namespace foresight::allocate
