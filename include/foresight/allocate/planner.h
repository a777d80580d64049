#pragma once
// The planner turns a forecast and the current allocation into a target allocation, one
// resource at a time, and records why for every resource.
//
// Rules, in the order they apply (the Decision's `rule` names the one that fixed the target):
//   no-forecast   the forecast has no values for this resource: keep the current allocation.
//   forecast      desired = max over the horizon of the forecast's `quantile` level, times
//                 (1 + headroom).
//   min-bound / max-bound   desired is clamped to the workload's [min, max], min raised to
//                 PlanInput::floor and max lowered to PlanInput::ceiling where they are tighter
//                 (what the workload can be given at all).
//   usage-floor   memory only: never below current usage * (1 + usage_margin) + usage_margin_abs,
//                 even when that exceeds max or a step limit (the kernel would reclaim or OOM);
//                 but not above PlanInput::ceiling, which the backend cannot set past at all
//                 (max-bound then).
//   oom-floor     memory only: for oom_hold_seconds after an OOM kill, never below the demand
//                 that kill implied (PlanInput::oom), capped at max. Like usage-floor it beats
//                 hysteresis and cooldown, so a killed workload is not shrunk back into the kill.
//   pressure      memory only: while the workload stalls on memory (PSI `some`) at its current
//                 limit for more than pressure_threshold of the time (PlanInput::stall), never
//                 below that limit, and above it by Senpai's back-off; beats hysteresis and
//                 cooldown, capped at max.
//   initial       nothing is enforced now (unlimited): set desired.
//   hysteresis    |desired - current| <= hysteresis * current: keep (no flapping).
//   cooldown      the last change of this resource was less than cooldown_up / cooldown_down
//                 seconds ago: keep. Neither keeps a current value outside [min, max] (an
//                 operator lowered max or raised min): the step limits pace it in.
//   max-step-up / max-step-down   one change moves at most max_step_up (default +100%) or
//                 max_step_down (default -10%) of the current value: up fast, down slowly.
//                 Where the backend sets whole units (PlanInput::units), the target is then
//                 rounded up to one, and a step down is at least one unit.
//
// Thread-safety: Planner is immutable after construction; plan() is safe to call concurrently.

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <span>
#include <vector>

#include "foresight/allocate/allocation.h"
#include "foresight/predict/forecast.h"

namespace foresight::allocate {

struct ResourcePolicy {
  double quantile = 0.95;      // the risk level: the chance demand exceeds the target ~ 1 - q
  double headroom = 0.0;       // fraction added on top of the quantile
  double hysteresis = 0.10;    // relative dead band around the current value
  double max_step_up = 1.0;    // at most +100% per change
  double max_step_down = 0.10; // at most -10% per change
  std::int64_t cooldown_up_seconds = 0;
  std::int64_t cooldown_down_seconds = 300;
  double min = 0.0;
  double max = std::numeric_limits<double>::infinity();
  // Memory safety rail (ignored for other resources).
  double usage_margin = 0.10;      // relative
  double usage_margin_abs = 64.0 * 1024 * 1024;  // bytes
  // How long an OOM kill's demand stays a floor: a day, the half-life with which the Kubernetes
  // VPA recommender decays the bumped sample an OOM kill adds to its memory histogram.
  std::int64_t oom_hold_seconds = 86400;
  // The share of time a workload may stall on memory (PSI `some`) at its limit before the limit
  // counts as too tight: Senpai's (oomd) default target, 10 ms in each 6 s. 1 turns the rule off.
  double pressure_threshold = 0.01 / 6;
  // Quantile levels reported as the plan's lower/upper bounds (e.g. a VPA's lowerBound and
  // upperBound); they do not change the target.
  double lower_quantile = 0.5;
  double upper_quantile = 0.99;
};

// The built-in policies: all as ResourcePolicy, but cpu never below 0.025 cores, the Kubernetes
// VPA recommender's floor (--pod-recommendation-min-cpu-millicores=25): a CFS quota near zero
// would leave an idle workload that wakes up throttled while the limit climbs back.
inline std::array<ResourcePolicy, kResourceCount> defaultPolicies() {
  std::array<ResourcePolicy, kResourceCount> p{};
  p[index(Resource::kCpu)].min = 0.025;
  return p;
}

struct PlannerConfig {
  std::array<ResourcePolicy, kResourceCount> policies = defaultPolicies();
  std::size_t horizon_steps = 0;  // how many forecast steps to cover; 0 = the whole horizon

  ResourcePolicy& operator[](Resource r) { return policies[index(r)]; }
  const ResourcePolicy& operator[](Resource r) const { return policies[index(r)]; }
};

// An OOM kill under a finite memory limit and the demand it implies
// (collect::memoryDemandAfterOomKill of the limit it was killed at).
struct OomKill {
  std::int64_t time = 0;  // Unix seconds
  double demand = 0;      // bytes
};

// The OOM kill that a memory demand above usage stands for: collect::resourceDemand lifts memory
// demand above usage (or gives one where usage was not read) only after a new kill.
std::optional<OomKill> oomKillFromDemand(std::int64_t now, double usage, double demand);

// How long a workload stalled on memory while at its memory limit: PSI `some` (the share of wall
// time in which some of its tasks waited on reclaim, refaults or swap-in) over the last measured
// interval, and the limit it ran at. Stalls under a limit above usage are the host's, and those of
// a stream that reads nothing back are reclaim no limit ends; a higher limit cures neither, so
// whoever measures counts them out (collect::memoryStallAtLimit).
struct MemoryStall {
  double share = 0;
  double limit = 0;  // bytes
  std::int64_t since = 0;  // Unix seconds: when the interval began
};

struct PlanInput {
  const predict::Forecast* forecast = nullptr;
  Allocation current;  // what is enforced now (absent = unlimited)
  Allocation usage;    // what is used now (memory feeds the safety rail)
  std::optional<OomKill> oom;  // the latest OOM kill (memory's oom-floor)
  // The latest memory stall measured (memory's pressure rule); ignored unless measured at the
  // current limit over an interval with no change of it: a stall under another limit says
  // nothing about this one.
  std::optional<MemoryStall> stall;
  // What this workload can be given at all, where less than the policy's max: cpu, the CPUs of
  // its cpuset (a quota above them limits nothing); a libvirt guest's maximum vCPUs and memory.
  Allocation ceiling;
  // The least this workload can be given, where more than the policy's min: a libvirt guest's
  // vCPUs present at boot, which libvirt does not unplug.
  Allocation floor;
  // The unit a backend sets a resource in, where it has one (a libvirt guest's cpu: whole vCPUs;
  // Backend::units): the target is rounded up to it, and a step down smaller than one unit, which
  // would round back to the current value every time, is one unit.
  Allocation units;
  std::array<std::optional<std::int64_t>, kResourceCount> last_change{};  // Unix seconds
  std::int64_t now = 0;                                                   // Unix seconds
};

struct Decision {
  Resource resource = Resource::kCpu;
  std::optional<double> current;
  double forecast = NAN;  // the quantile the rule started from (max over the horizon)
  double desired = NAN;   // after headroom, bounds and the usage floor
  double lower = NAN;     // max over the horizon of the lower_quantile
  double upper = NAN;     // max over the horizon of the upper_quantile
  std::optional<double> target;  // what to enforce; equals current when nothing changes
  bool change = false;
  std::string rule;
  std::string reason;  // one line for people
};

struct Plan {
  std::string workload;
  std::int64_t time = 0;
  std::vector<Decision> decisions;
  Allocation target;  // only the resources that change
  Allocation lower, upper;  // forecast bounds of every forecast resource (see ResourcePolicy)
  bool hasChanges() const { return !target.empty(); }
  std::string reason() const;  // the changing decisions' reasons, joined
};

// Planner policies from YAML (see config/planner.yaml): code defaults, then `defaults:`, then
// `workloads: <workload>:` overrides; per resource the ResourcePolicy field names. memory and
// byte-valued fields take numbers or sizes ("8G"); `max: null` is unbounded. Unknown keys are
// errors naming the file and key.
Result<PlannerConfig> parsePlannerConfig(const std::string& yaml_text, const std::string& origin,
                                         const std::string& workload = "");
Result<PlannerConfig> loadPlannerConfig(const std::string& path, const std::string& workload = "");
// The whole file: the defaults and each workload's policies (the defaults with its override).
// Every `workloads:` section is checked, whichever workloads run.
struct PlannerConfigs {
  PlannerConfig defaults;
  std::map<std::string, PlannerConfig> workloads;
  // `leave_alone:` fnmatch(3) patterns ('*' crosses '/') of the workloads `foresight run` plans for
  // and shows but never resizes. Built in: what an operator needs to reach and repair the
  // host (remote login, logins, the journal, the system bus, and the login sessions themselves),
  // where a limit set from quiet days would throttle or kill it on the first busy one, an
  // incident; and the daemons every container on the host depends on (kubelet and the container
  // runtimes), whose loss takes all of them down. The file's list replaces this one.
  std::vector<std::string> leave_alone = {"system.slice/ssh.service",
                                          "system.slice/sshd.service",
                                          "system.slice/systemd-logind.service",
                                          "system.slice/systemd-journald.service",
                                          "system.slice/dbus.service",
                                          "system.slice/dbus-broker.service",
                                          "user.slice/*",
                                          "system.slice/kubelet.service",
                                          "system.slice/containerd.service",
                                          "system.slice/docker.service",
                                          "system.slice/crio.service"};
  const PlannerConfig& of(const std::string& workload) const;  // its own, else the defaults
  // The first `leave_alone` pattern `workload` (a backend's name, e.g. system.slice/ssh.service)
  // matches, or none.
  std::optional<std::string> leftAlone(const std::string& workload) const;
};
Result<PlannerConfigs> parsePlannerConfigs(const std::string& yaml_text, const std::string& origin);
Result<PlannerConfigs> loadPlannerConfigs(const std::string& path);

// The quantile levels the planner reads for `resources` (each one's target and reported bounds),
// ascending and distinct: what a forecast handed to it must carry.
std::vector<double> plannerLevels(const PlannerConfig& config, std::span<const Resource> resources);

class Planner {
 public:
  explicit Planner(PlannerConfig config) : config_(std::move(config)) {}
  Plan plan(const PlanInput& input) const;
  const PlannerConfig& config() const { return config_; }

 private:
  PlannerConfig config_;
};

}  // namespace foresight::allocate
