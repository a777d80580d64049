#pragma once
// What the two closed loops, `run` (this host's cgroups) and `recommend` (Kubernetes VPAs), set up
// alike: planner policies from a file, the live forecasters, the live view.

#include <memory>
#include <string>

#include "foresight/allocate/audit.h"
#include "foresight/loop/autoscaler.h"

#include "foresight/allocate/planner.h"
#include "foresight/core/reload.h"
#include "foresight/server/http.h"

namespace CLI {
class App;
}

namespace foresight::app {

// The planner policies, from a file read again when it changes: bounds edited during an incident
// apply at once, without a restart that would drop every workload's history, cool-downs and OOM
// holds.
class PlannerFile {
 public:
  // `path` missing: an error, unless it is the shipped file's default path (a binary copied
  // without its data files), where the built-in policies apply, warned. `command` prefixes the log.
  static Result<PlannerFile> open(const std::string& path, const std::string& command);
  // The policies in force: the file's as last read well (changed() moves them on).
  const allocate::PlannerConfigs& current() const { return *applied_; }
  // The file's policies when they changed since the last call (a file that no longer parses keeps
  // the ones in force, warned with file and line); null otherwise. Cheap: a stat when unchanged.
  std::shared_ptr<const allocate::PlannerConfigs> changed();
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<Reloading<allocate::PlannerConfigs>> file_;  // null: built-in policies
  std::shared_ptr<const allocate::PlannerConfigs> applied_;
  std::string path_, command_;
};

// --bearer-token-file, --tls-cert-file, --tls-key-file and --tls-client-ca-file of the command's
// HTTP endpoint into `o` (server/http.h); `overrides` names what they override, if anything.
void addEndpointSecurityOptions(CLI::App& cmd, server::HttpOptions& o, const std::string& overrides = "");

// --quantile: one risk level for every resource of every policy (0: leave them).
void overrideQuantile(allocate::PlannerConfigs& policies, double quantile);

// The audit trail of the changes a loop applies: opened with --apply, none in dry-run.
Result<std::optional<allocate::AuditLog>> auditTrail(bool apply, const std::string& path);

// The live view: per workload and resource, the usage, the forecast, the limit in force, the
// target and the rule that decided it; `empty` is printed when no workload has a plan yet.
void printView(const loop::Autoscaler& scaler, const std::string& empty);

}  // namespace foresight::app
