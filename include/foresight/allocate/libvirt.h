#pragma once
// libvirt guests as the libvirt backend and `foresight guests` see them: one connection, and what a
// running guest uses and is given, read through libvirt's public API (no daemon-specific files).
//
// Thread-safety: a LibvirtConnection is used by one thread at a time. Its opens and statistics
// calls run on threads of their own (see kAnswerWithin), which touch only libvirt's thread-safe
// handles.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "foresight/allocate/allocation.h"
#include "foresight/core/result.h"

namespace foresight::allocate {

struct GuestStats {
  std::string name;
  std::int64_t mono_ns = 0;   // CLOCK_MONOTONIC when read: cpu rates are taken over it
  // Cumulative cpu time of its vCPUs' threads (vcpu.N.time). Not QEMU's other threads: their
  // device emulation is no demand for vCPUs, and counted against the vCPUs it would make a guest
  // with heavy I/O look saturated. A vCPU unplugged takes its time out: the sum can go back.
  double cpu_seconds = NAN;
  double vcpus = 0, max_vcpus = 0;                // live vCPUs and the most it can be given
  // The fewest it can be given: the vCPUs it booted with, which libvirt does not unplug
  // (hotpluggable='no' in its live XML's <vcpus>; every one where the XML lists none, as for a
  // guest booted with all of its maximum). 0: not known.
  double min_vcpus = 0;
  // A vCPU unplug asked of this running guest through this connection (the libvirt backend made
  // on it) timed out in libvirt: the guest did not complete the eject, and libvirt's count may not
  // be the guest's. Until it restarts, it is not asked again.
  bool unplug_timed_out = false;
  // Cumulative time its vCPUs were ready to run but waited for a host CPU (the run_delay of their
  // threads, libvirt's vcpu.N.delay, summed): cpu it wanted and did not get. NaN where the driver
  // does not report it (libvirt before 7.9, or not QEMU).
  double vcpu_delay_seconds = NAN;
  double memory_bytes = NAN, max_memory_bytes = NAN;  // live balloon size and its maximum
  // What the guest's own kernel uses, from its virtio balloon driver: available - usable (usable:
  // MemAvailable, what it can give up without swapping; guests before Linux 4.16 report only
  // unused, MemFree, so their page cache counts too). NaN without a balloon driver reporting
  // statistics (no stats period set), or, read by runningGuests(), whose QEMU did not answer at
  // once: the host's view (QEMU's RSS) keeps every page the guest ever touched and says nothing
  // about what it needs now.
  double guest_used_bytes = NAN;
};

struct RunningGuests {
  std::vector<GuestStats> guests;
  std::vector<Error> errors;  // guests listed but not read (a guest that stopped meanwhile is not one)
  // Guests read a call at a time, as the driver's statistics lacked a figure (libvirt's test
  // driver); 0 where one call read them all (QEMU).
  std::size_t read_by_calls = 0;
};

// A libvirt connection opened on first use and opened again when libvirt reports it dead (the
// daemon restarted), so that a long-running loop outlives libvirtd's restarts. Opening it sets
// SIGPIPE to be ignored where it has its default disposition, as libvirt's client needs.
class LibvirtConnection {
 public:
  // How long opening a connection and a statistics call may take by default: libvirt's own wait
  // for a guest's job. A QEMU that stopped answering holds a call that asks it without end, and a
  // libvirtd that hangs every call; past this the call is left to finish on its own, with the
  // connection it was made on (the next call opens another), and its answer discarded. While a
  // late open still waits, calls fail at once. Healthy, 8 guests take 40 ms (docs/results.md).
  static constexpr std::chrono::seconds kAnswerWithin{30};

  explicit LibvirtConnection(std::string uri, std::chrono::milliseconds answer_within = kAnswerWithin);
  ~LibvirtConnection();
  LibvirtConnection(const LibvirtConnection&) = delete;
  LibvirtConnection& operator=(const LibvirtConnection&) = delete;

  const std::string& uri() const { return uri_; }
  // One guest by domain name: kNotFound when there is no such domain; kUnavailable when its
  // statistics did not come within `answer_within`.
  Result<GuestStats> guest(const std::string& name);
  // Every running guest, in one call to libvirt (virConnectGetAllDomainStats) where its driver's
  // statistics hold every figure. A guest libvirt cannot query at once (its QEMU does not answer
  // another client) comes without guest_used_bytes rather than holding the others. A guest whose
  // QEMU does not answer at all makes the call late: it is asked again once, past that guest, so
  // the round waits `answer_within` once per hang. Fails when they cannot be listed, or the call is
  // late twice (libvirtd does not answer).
  Result<RunningGuests> runningGuests();
  // The host the guests run on, as its hypervisor reports it (virNodeGetInfo): its active CPUs
  // and its memory. kUnavailable when it did not come within `answer_within`.
  Result<Allocation> host();

 private:
  struct Impl;
  friend class LibvirtBackend;  // sets vCPUs and balloon on the same connection
  std::string uri_;
  std::unique_ptr<Impl> impl_;
};

class Backend;
struct BackendOptions;
// The libvirt backend (backend.h's makeLibvirtBackend) on a connection shared with a reader
// (`foresight guests`): one connection to libvirtd, and what the backend learns of a guest (an
// unplug that timed out) the reads report. The connection's URI stands for the option's.
std::unique_ptr<Backend> makeLibvirtBackend(const BackendOptions& options, std::shared_ptr<LibvirtConnection> conn);

}  // namespace foresight::allocate
