#pragma once
// `foresight guests`: the closed loop for libvirt guests. Each round reads every running guest
// (allocate::LibvirtConnection), turns its last two reads into usage and feeds the autoscaler as
// workload "<domain name>"; the autoscaler's backend (libvirt) sets the guest's live vCPUs and
// balloon, within the maximums its definition gives (which need a restart to change).
//
// Thread-safety: none; one thread calls round().

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "foresight/allocate/libvirt.h"
#include "foresight/loop/autoscaler.h"

namespace foresight::loop {

using GuestReader = std::function<Result<allocate::RunningGuests>()>;

// A guest's cpu demand over an interval in which it used `usage` cores with `vcpus` vCPUs, and
// its vCPUs waited `delay` cores' worth for a host CPU (NaN: not known): what its vCPUs were ready
// to run, usage + delay. A guest whose vCPUs were that busy (at least kGuestSaturated of them) may
// have wanted more, and the host cannot tell how much (its run queue is inside the guest, unlike a
// cgroup's throttled time), so it is taken to want one vCPU more: enough for the planner to raise
// it a step, and no more than was seen. Without this, a guest lowered in a quiet phase would never
// be given its vCPUs back.
inline constexpr double kGuestSaturated = 0.95;
double guestCpuDemand(double usage, double delay, double vcpus);

// The capacity advice for a guest whose forecast exceeds a maximum of its definition but not the
// host (CapacityAdvice::raise_ceiling): the maximum to give it and the virsh command that does it.
// The maximums are boot-time settings, so the advice says the guest must be started again.
std::string raiseGuestMaximum(const std::string& guest, Resource r, double wanted, double ceiling,
                              std::optional<double> host);

class GuestSizer {
 public:
  GuestSizer(GuestReader read, Autoscaler& autoscaler);

  // Guests planned for and shown but never resized (the planner file's leave_alone): the reason,
  // or nullopt.
  void leaveAlone(std::function<std::optional<std::string>(const std::string& guest)> why) {
    left_alone_ = std::move(why);
  }

  struct Round {
    std::size_t guests = 0;   // running guests read
    std::size_t samples = 0;  // fed to the autoscaler (a guest's first read gives none: no rate yet)
    std::size_t plans = 0;    // samples that gave a plan (enough history)
    std::size_t errors = 0;   // guests not read or not planned for (logged)
  };
  // One round at `now` (Unix seconds). Fails only when the guests cannot be listed.
  Result<Round> round(std::int64_t now);

 private:
  GuestReader read_;
  Autoscaler& autoscaler_;
  std::function<std::optional<std::string>(const std::string&)> left_alone_;
  std::map<std::string, allocate::GuestStats> last_;  // by guest: the previous read
  // What was logged of each guest, once until it stops or (where it can) the cause goes.
  enum class Told { kNoMemoryStatistics, kLeftAlone, kBootVcpus, kUnplugTimedOut };
  std::map<std::string, std::set<Told>> told_;
  bool firstTime(const std::string& guest, Told what) { return told_[guest].insert(what).second; }
};

}  // namespace foresight::loop
