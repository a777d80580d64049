#pragma once
// Which cgroups are systemd units: shared by the systemd backend and the host's `auto` backend,
// which sends those to systemd and the others to the cgroup files.

#include <optional>
#include <string>

namespace foresight::allocate {

// A unit, and the D-Bus interface of its type that carries the cgroup properties.
struct SystemdUnit {
  std::string name, interface;
};

// The unit a workload names: a unit name (nginx.service), or the cgroup path systemd gives a unit,
// which is its slices and then the unit (system.slice/nginx.service). Only the six unit types with
// resource control count (systemd.resource-control(5)). Any other cgroup is nullopt, including
// one below a unit: a delegated subtree, or a user manager's units under user@1000.service, which
// PID 1 does not know by those names.
std::optional<SystemdUnit> systemdUnitOf(const std::string& workload);

}  // namespace foresight::allocate
