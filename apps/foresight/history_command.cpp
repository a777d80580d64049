// `foresight history`: the allocation audit trail; --rollback ID restores what a change replaced.
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.h"
#include "foresight/allocate/audit.h"
#include "foresight/core/log.h"

namespace foresight::app {
namespace {

struct HistoryArgs {
  std::string db, workload;
  std::size_t limit = 20;
  std::optional<std::int64_t> rollback_id;
  bool json = false, force = false;
};

int runHistory(const HistoryArgs& a, const Builtins& builtins) {
  if (a.rollback_id && *a.rollback_id <= 0) {
    spdlog::error("--rollback {}: record ids are positive (see `foresight history`)",
                  *a.rollback_id);
    return 2;
  }
  // Opening creates a missing database: a mistyped --db would show an empty, "clean" trail.
  std::error_code ec;
  if (!std::filesystem::exists(a.db, ec)) {
    spdlog::error("{}: no such audit database (allocate creates it; pick another with --db or "
                  "FORESIGHT_AUDIT_DB)", a.db);
    return 1;
  }
  // Listing reads the trail as it is: an auditor may only have read access.
  auto log = allocate::AuditLog::open(a.db, a.rollback_id ? allocate::AuditLog::Mode::kReadWrite
                                                          : allocate::AuditLog::Mode::kReadOnly);
  if (!log) {
    spdlog::error("{}", log.error().message);
    return 1;
  }
  if (a.rollback_id) {
    const std::int64_t target = *a.rollback_id;
    auto id = allocate::rollback(*log, builtins.backends, target, a.force);
    if (!id) {
      spdlog::error("rollback of #{}: {}", target, id.error().message);
      return 1;
    }
    auto rec = log->get(*id);
    if (rec)
      std::cout << fmt::format("#{} rolled back #{}: {} {} -> {}\n", *id, target,
                               rec->workload, allocate::format(rec->before),
                               allocate::format(rec->after));
    return 0;
  }
  auto records = log->list(a.workload, a.limit);
  if (!records) {
    spdlog::error("{}", records.error().message);
    return 1;
  }
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : *records)
      out.push_back({{"id", r.id},
                     {"time", r.time},
                     {"workload", r.workload},
                     {"backend", r.backend},
                     {"options", r.options.values},
                     {"before", allocate::toJson(r.before)},
                     {"after", allocate::toJson(r.after)},
                     {"reason", r.reason},
                     {"result", r.result},
                     {"rollback_of", r.rollback_of ? nlohmann::json(*r.rollback_of) : nullptr}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("{:>5}  {:<20}  {:<24}  {:<10}  {:<28}  {:<28}  {:<6}  {}\n", "id",
                           "time", "workload", "backend", "before", "after", "result", "reason");
  for (const auto& r : *records)
    std::cout << fmt::format("{:>5}  {:<20}  {:<24}  {:<10}  {:<28}  {:<28}  {:<6}  {}\n", r.id,
                             isoUtc(r.time), r.workload, r.backend, allocate::format(r.before),
                             allocate::format(r.after), r.ok() ? "ok" : "FAILED",
                             r.ok() ? r.reason : r.reason + " [" + r.result + "]");
  return 0;
}

}  // namespace

void addHistoryCommand(CLI::App& app, Builtins& builtins) {
  auto a = std::make_shared<HistoryArgs>();
  a->db = defaultAuditDb();
  auto* cmd = app.add_subcommand("history", "Show allocation changes; --rollback ID undoes one.");
  cmd->add_option("--db", a->db, "audit database (env FORESIGHT_AUDIT_DB)")->capture_default_str();
  cmd->add_option("--workload", a->workload, "only this workload");
  cmd->add_option("--limit", a->limit, "newest N records (0 = all)")->capture_default_str();
  cmd->add_flag("--json", a->json, "JSON instead of a table");
  cmd->add_option("--rollback", a->rollback_id,
                  "restore the allocation change ID replaced, through the same backend");
  cmd->add_flag("--force", a->force,
                "roll back even if the resources were changed again since that record");
  cmd->callback([a, &builtins] {
    const int rc = runHistory(*a, builtins);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace foresight::app
