#include "foresight/loop/guests.h"

#include <cmath>
#include <string_view>

#include "foresight/core/log.h"

namespace foresight::loop {

double guestCpuDemand(double usage, double delay, double vcpus) {
  if (!std::isfinite(usage)) return usage;
  const double ready = usage + (std::isfinite(delay) ? std::max(0.0, delay) : 0.0);
  if (vcpus <= 0 || ready < kGuestSaturated * vcpus) return ready;
  return std::max(ready, vcpus + 1.0);
}

std::string raiseGuestMaximum(const std::string& guest, Resource r, double wanted, double ceiling,
                              std::optional<double> host) {
  constexpr double kMiB = 1024.0 * 1024.0;
  constexpr std::string_view kRestart = "in force once it is shut down and started again";
  if (r == Resource::kCpu) {
    const double vcpus = std::ceil(wanted - 1e-9);
    return fmt::format("raise its maximum vCPUs to {:g} ({:.2f} cores forecast, a maximum of {:g}{}): virsh setvcpus {} "
                       "{:g} --maximum --config, {}",
                       vcpus, wanted, ceiling, host ? fmt::format(", {:g} CPUs on the host", *host) : "", guest, vcpus,
                       kRestart);
  }
  const double mib = std::ceil(wanted / kMiB - 1e-9);
  return fmt::format("raise its maximum memory to {:g} MiB ({:.0f} MiB forecast, a maximum of {:.0f} MiB{}): virsh "
                     "setmaxmem {} {:g}M --config, {}",
                     mib, wanted / kMiB, ceiling / kMiB,
                     host ? fmt::format(", {:.0f} MiB on the host", *host / kMiB) : "", guest, mib, kRestart);
}

GuestSizer::GuestSizer(GuestReader read, Autoscaler& autoscaler)
    : read_(std::move(read)), autoscaler_(autoscaler) {}

Result<GuestSizer::Round> GuestSizer::round(std::int64_t now) {
  auto read = read_();
  if (!read) return tl::unexpected(read.error());
  Round r;
  r.guests = read->guests.size();
  for (const auto& e : read->errors) {
    ++r.errors;
    spdlog::warn("guests: {}", e.message);
  }
  std::set<std::string> running;
  for (auto& g : read->guests) {
    running.insert(g.name);
    const bool has_memory = std::isfinite(g.guest_used_bytes);
    auto prev = last_.find(g.name);
    if (has_memory) {
      told_[g.name].erase(Told::kNoMemoryStatistics);
    } else if (prev != last_.end() && std::isfinite(prev->second.guest_used_bytes)) {
      // One round without them, after rounds with: its QEMU did not answer libvirt at once (another
      // client held the guest), not worth a warning unless it lasts.
      spdlog::debug("guests: {}: no memory statistics this round", g.name);
    } else if (firstTime(g.name, Told::kNoMemoryStatistics)) {
      spdlog::warn("guests: {}: its balloon driver reports no memory statistics, so its memory is left as it "
                   "is (a virtio memballoon with a stats period: virsh dommemstat {} --period 10 --live --config; "
                   "a guest that has one: its QEMU has not answered libvirt)",
                   g.name, g.name);
    }
    if (prev == last_.end()) {
      last_.emplace(g.name, std::move(g));
      continue;
    }
    const double seconds = static_cast<double>(g.mono_ns - prev->second.mono_ns) / 1e9;
    // Per second since the last read; a counter going back (the guest was restarted between two
    // rounds) gives this interval no rate.
    const auto rate = [seconds](double now, double before) {
      return seconds > 0 && now - before >= 0 ? (now - before) / seconds : NAN;
    };
    const double cpu = rate(g.cpu_seconds, prev->second.cpu_seconds);
    const double delay = rate(g.vcpu_delay_seconds, prev->second.vcpu_delay_seconds);
    // The vCPUs it ran with: the loop changes them right after a read, so the interval since had
    // what this read finds.
    const double vcpus = g.vcpus;
    prev->second = std::move(g);
    const auto& cur = prev->second;
    if (std::isnan(cpu) && !has_memory) continue;
    std::array<double, kResourceCount> usage{NAN, NAN, NAN, NAN};
    usage[index(Resource::kCpu)] = cpu;
    usage[index(Resource::kMemory)] = cur.guest_used_bytes;
    auto demand = usage;
    demand[index(Resource::kCpu)] = guestCpuDemand(cpu, delay, vcpus);
    Bounds bounds;
    if (cur.max_vcpus > 0) bounds.ceiling[Resource::kCpu] = cur.max_vcpus;
    if (cur.max_memory_bytes > 0) bounds.ceiling[Resource::kMemory] = cur.max_memory_bytes;
    if (cur.min_vcpus > 0) bounds.floor[Resource::kCpu] = cur.min_vcpus;
    if (cur.unplug_timed_out) {
      bounds.floor[Resource::kCpu] = cur.vcpus;
      if (firstTime(cur.name, Told::kUnplugTimedOut))
        spdlog::warn("guests: {}: a vCPU unplug timed out in libvirt (the guest did not complete the eject); its "
                     "vCPUs are not lowered again until it restarts",
                     cur.name);
    }
    if (cur.min_vcpus > 1 && firstTime(cur.name, Told::kBootVcpus))
      spdlog::info("guests: {}: not given fewer than the {:g} vCPUs it booted with, which libvirt does not unplug "
                   "(booted with fewer, <vcpu current='1'>{:g}</vcpu>, it gets the others hot-plugged as it needs them)",
                   cur.name, cur.min_vcpus, cur.max_vcpus);
    const auto why = left_alone_ ? left_alone_(cur.name) : std::nullopt;
    if (!why) told_[cur.name].erase(Told::kLeftAlone);
    else if (firstTime(cur.name, Told::kLeftAlone))
      spdlog::info("guests: {}: left alone (planned and shown, never resized): {}", cur.name, *why);
    ++r.samples;
    auto plan = autoscaler_.observe(cur.name, now, usage, demand, bounds, why.has_value());
    if (!plan) {
      ++r.errors;
      spdlog::warn("guests: {}", plan.error().message);
    } else if (*plan) {
      ++r.plans;
    }
  }
  for (auto it = last_.begin(); it != last_.end();) {
    if (running.contains(it->first)) {
      ++it;
      continue;
    }
    autoscaler_.forget(it->first);
    told_.erase(it->first);
    it = last_.erase(it);
  }
  return r;
}

}  // namespace foresight::loop
