#pragma once
// Audit trail of allocation changes in SQLite (WAL mode, so `foresight history` can read while an
// allocator writes). Every change goes through applyAndRecord(): before, after, reason and
// result are stored whether the backend succeeded or not.
//
// Thread-safety: one AuditLog per thread (SQLite connection in the default serialized mode, but
// the statements here are not shared across threads by design). Several processes may open the
// same file.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "foresight/allocate/backend.h"
#include "foresight/allocate/planner.h"

struct sqlite3;

namespace foresight::allocate {

struct AuditRecord {
  std::int64_t id = 0;
  std::int64_t time = 0;  // Unix seconds
  std::string workload;
  std::string backend;          // registry name, e.g. cgroup-v1
  BackendOptions options;       // so a rollback reaches the same backend
  // before: the whole allocation read before the change. after: the changed resources only, as
  // read back after a successful apply (backends round), or as requested when it failed.
  Allocation before, after;
  std::string reason;
  std::string result;           // "ok" or "failed: <error>"
  std::optional<std::int64_t> rollback_of;
  nlohmann::json restore;  // the backend's snapshot() before the change; null when it keeps none
  // The OOM kill whose hold (the planner's oom-floor) was in force when the change was made, so
  // that a restarted loop holds it for the rest of its time.
  std::optional<OomKill> oom;
  bool ok() const { return result == "ok"; }
};

class AuditLog {
 public:
  // kReadWrite creates a missing database and migrates an older one; kReadOnly (listing) opens an
  // existing one as it is, so an auditor without write access can read the trail, and reading
  // changes nothing in the file.
  enum class Mode { kReadWrite, kReadOnly };
  static Result<AuditLog> open(const std::string& path, Mode mode = Mode::kReadWrite);
  AuditLog(AuditLog&&) noexcept;
  AuditLog& operator=(AuditLog&&) noexcept;
  ~AuditLog();

  Result<std::int64_t> append(const AuditRecord& record);
  Result<AuditRecord> get(std::int64_t id) const;
  // Newest first; empty workload = all.
  Result<std::vector<AuditRecord>> list(const std::string& workload, std::size_t limit) const;

 private:
  explicit AuditLog(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
  bool has_restore_ = true;  // false: a read-only trail from before the restore column
  bool has_oom_ = true;      // false: a read-only trail from before the oom column
  std::string columns() const;  // the SELECT list, NULL for a column the trail lacks
};

// Reads current, applies `target` (within `lower`..`upper` where given: Backend::applyWithin),
// records the outcome. Returns the record id, or the backend's error (after recording it) when
// the apply failed.
Result<std::int64_t> applyAndRecord(Backend& backend, const std::string& backend_name,
                                    const BackendOptions& options, AuditLog& log,
                                    const std::string& workload, const Allocation& target,
                                    const std::string& reason, const Allocation* lower = nullptr,
                                    const Allocation* upper = nullptr, std::optional<OomKill> oom = std::nullopt);

// Puts back the allocation record `id` replaced: the settings the backend snapshot before it
// (Backend::snapshot), or else the resources it changed at their `before` values (absent =
// unlimited), through the backend and options it recorded. The rollback
// is itself recorded (rollback_of = id). Refuses when those resources no longer hold what the
// record set (something changed them since), unless `force`.
Result<std::int64_t> rollback(AuditLog& log, const BackendRegistry& registry, std::int64_t id,
                              bool force = false);

}  // namespace foresight::allocate
