#pragma once
// A backend enforces allocations on one kind of workload (a cgroup, a VM, a pod, a VPA).
//
// Contract for every implementation:
//  - current() reads what is enforced now; unlimited resources are absent.
//  - apply() sets the resources present in `target` and leaves the others alone. It is idempotent
//    (applying what is already there changes nothing) and all-or-nothing: when a write fails
//    midway it restores what it had changed, so the previous allocation stays in place.
//  - usage() reports what the workload uses now, where the backend can see it (memory for the
//    safety rail of `foresight allocate`: the working set, less the page cache the kernel
//    reclaims first, where the backend can tell them apart); resources it cannot see are absent.
//
// Thread-safety: an instance is not thread-safe; use one per thread.

#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "foresight/allocate/allocation.h"
#include "foresight/core/registry.h"
#include "foresight/core/result.h"

namespace foresight::allocate {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Result<Allocation> current(const std::string& workload) = 0;
  virtual Status apply(const std::string& workload, const Allocation& target) = 0;
  // apply() with the range the forecast puts the need in (a plan's lower and upper quantiles),
  // for backends that take one: a VPA's lowerBound and upperBound, outside which its updater
  // replaces a pod's requests. Others apply the target alone.
  virtual Status applyWithin(const std::string& workload, const Allocation& target,
                             const Allocation& /*lower*/, const Allocation& /*upper*/) {
    return apply(workload, target);
  }
  virtual Result<Allocation> usage(const std::string& /*workload*/) { return Allocation{}; }
  // The unit in which the backend sets a resource, where it has one (libvirt: cpu in whole
  // vCPUs), for the planner to plan in; absent: any amount.
  virtual Allocation units() const { return {}; }
  // Whether a workload of this name is of the kind the backend manages, from the name alone (no
  // I/O): the systemd backend manages units only. A loop leaves the others alone.
  virtual Status manages(const std::string& /*workload*/) const { return ok(); }
  // The error of options the factory refused (see makeMisconfiguredBackend), so that a command
  // can report it as a bad argument before it reads or records anything.
  virtual Status configured() const { return ok(); }
  // Options that pin where changes went, as resolved from defaults when the backend was made (the
  // kubeconfig file, context and API server); stored with each audit record, so that a rollback
  // reaches the same place even after $KUBECONFIG or the current context changed.
  virtual std::map<std::string, std::string> pinned() const { return {}; }
  // The raw settings apply() may change, read before a change and stored with its audit record,
  // so that a rollback puts back exactly what was there, including what an Allocation cannot hold
  // (a write limit apart from the read limit, cgroup v2's memory.high, a VPA without a
  // recommendation yet). Null where the backend keeps none: a rollback then applies `before`.
  virtual Result<nlohmann::json> snapshot(const std::string& /*workload*/) {
    return nlohmann::json();
  }
  // Writes a snapshot() back, all-or-nothing as apply().
  virtual Status restore(const std::string& workload, const nlohmann::json& /*snapshot*/) {
    return fail(ErrorCode::kInternal, "{} {}: this backend keeps no snapshot", name(), workload);
  }
};

// key=value settings of a backend (e.g. root=/tmp/fixture, uri=test:///default), from the CLI
// (--option) or stored with an audit record so that a rollback reaches the same backend.
struct BackendOptions {
  std::map<std::string, std::string> values;

  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
  // Parses "key=value"; the error names the text.
  Status set(const std::string& key_value);
};

// Seconds in [0, 3600] from an option's text (a backend's timeouts); nullopt when it is not that.
std::optional<double> optionSeconds(const std::string& text);

using BackendRegistry = Registry<Backend, const BackendOptions&>;

// Adds cgroup-v1, cgroup-v2, systemd, auto, libvirt, kubernetes and dry-run.
void registerBackends(BackendRegistry& registry);

// The backend factories, for callers that do not go through the registry.
std::unique_ptr<Backend> makeCgroupV1Backend(const BackendOptions& options);
std::unique_ptr<Backend> makeCgroupV2Backend(const BackendOptions& options);
std::unique_ptr<Backend> makeSystemdBackend(const BackendOptions& options);
std::unique_ptr<Backend> makeLibvirtBackend(const BackendOptions& options);
// `auto`: a systemd unit's cgroup through systemd (where PID 1 is systemd), any other cgroup
// through the cgroup files.
std::unique_ptr<Backend> makeHostBackend(const BackendOptions& options);
std::unique_ptr<Backend> makeKubernetesBackend(const BackendOptions& options);
// A backend whose every call fails with `error`: what a factory returns when its options are
// wrong, so the mistake surfaces (naming the option) at the first use.
std::unique_ptr<Backend> makeMisconfiguredBackend(std::string name, Error error);
// Logs what it would do. With `inner`, current() and usage() read the real backend and apply()
// changes nothing; without, it remembers what it was asked to apply (for tests and demos).
std::unique_ptr<Backend> makeDryRunBackend(std::unique_ptr<Backend> inner);

}  // namespace foresight::allocate
