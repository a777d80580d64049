// libvirt: one connection (reopened when the daemon restarted), the guests' statistics, and the
// backend. A workload is a domain name. cpu sets the live vCPU count (ceil of the cores), memory
// the live balloon target (virDomainSetMemoryFlags). Both must stay within the domain's maximums,
// which this backend does not change (that needs a restart). disk_io sets the read and write byte
// limits of one disk (-o disk=vda; virDomainSetBlockIoTune), as the cgroup backends do of a device.
#include "foresight/allocate/libvirt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include <signal.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "foresight/allocate/backend.h"
#include "foresight/core/log.h"

namespace foresight::allocate {
namespace {

std::string lastError() {
  const char* msg = virGetLastErrorMessage();
  return msg ? msg : "unknown libvirt error";
}

// libvirt prints every error to stderr by default; errors are reported through Result instead.
void quietErrors(void*, virErrorPtr) {}

std::int64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct DomainDeleter {
  void operator()(virDomainPtr d) const { virDomainFree(d); }
};
using DomainPtr = std::unique_ptr<virDomain, DomainDeleter>;

// The statistics a guest is read from, in one call for all guests (virConnectGetAllDomainStats):
// five calls a guest made a round of 100 guests 500 calls to libvirtd. Not cpu-total: its time is
// every QEMU thread's, and device emulation's share is no demand for vCPUs (see GuestStats).
constexpr unsigned int kStatsGroups = VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU;

// A statistics record's numeric fields, and the sums over its vCPUs of vcpu.N.time and
// vcpu.N.delay (ns) in seconds (NaN without any; delay: libvirt before 7.9, or not QEMU).
struct RecordFields {
  std::map<std::string_view, double> values;
  double vcpu_seconds = NAN, vcpu_delay_seconds = NAN;
  explicit RecordFields(const virDomainStatsRecord& rec) {
    const auto add = [](double& sum, double ns) { sum = (std::isnan(sum) ? 0.0 : sum) + ns / 1e9; };
    for (int i = 0; i < rec.nparams; ++i) {
      const virTypedParameter& p = rec.params[i];
      const std::string_view field = p.field;
      double v = NAN;
      if (p.type == VIR_TYPED_PARAM_ULLONG) v = static_cast<double>(p.value.ul);
      else if (p.type == VIR_TYPED_PARAM_UINT) v = p.value.ui;
      else continue;
      if (field.starts_with("vcpu.") && field.ends_with(".time"))
        add(vcpu_seconds, v);
      else if (field.starts_with("vcpu.") && field.ends_with(".delay"))
        add(vcpu_delay_seconds, v);
      else
        values[field] = v;
    }
  }
  double operator[](std::string_view k) const {
    auto it = values.find(k);
    return it == values.end() ? NAN : it->second;
  }
};

double seconds(std::chrono::milliseconds d) { return std::chrono::duration<double>(d).count(); }

// What a late statistics call means, and what it does to the guest.
constexpr std::string_view kNotAnswering =
    "a guest's QEMU is not answering libvirt (stopped, or stuck on its storage: its balloon statistics are left "
    "out until it answers, and libvirt refuses changes to it meanwhile), or libvirtd itself is not";

struct RecordsDeleter {
  void operator()(virDomainStatsRecordPtr* r) const { virDomainStatsRecordListFree(r); }
};
using Records = std::unique_ptr<virDomainStatsRecordPtr[], RecordsDeleter>;

// Runs `call` on a thread of its own and waits at most `limit` for its result. libvirt cannot
// cancel a call, and one that asks a QEMU which stopped answering (stopped, or stuck in a hung
// storage back end) waits for its reply without end, as one to a libvirtd that hangs does: the
// loop would stop for every guest (found on a real guest, SIGSTOPped). A late call is left to
// finish there, and its result, which owns what it holds (T's destructor), is dropped when it
// does. `call` must hold what it uses (virConnectRef, virDomainRef, taken before) until it ends.
template <class T>
std::optional<T> callWithin(std::chrono::steady_clock::duration limit, std::function<T()> call) {
  struct Shared {
    std::mutex m;
    std::condition_variable cv;
    std::optional<T> result;
    bool abandoned = false;
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, call = std::move(call)] {
    T result = call();
    std::lock_guard lock(shared->m);
    if (shared->abandoned) return;  // `result` is dropped here
    shared->result = std::move(result);
    shared->cv.notify_one();
  }).detach();
  std::unique_lock lock(shared->m);
  if (!shared->cv.wait_for(lock, limit, [&] { return shared->result.has_value(); })) {
    shared->abandoned = true;
    return std::nullopt;
  }
  return std::move(shared->result);
}

// What a statistics call (virConnectGetAllDomainStats, virDomainListGetStats) returned: its
// records (n of them; n < 0: it failed, with libvirt's error).
struct StatsAnswer {
  int n = -1;
  Records records;
  std::string error;
  std::int64_t mono_ns = 0;  // the middle of the call: libvirt reads the guests one after another
};

// A statistics call within `limit` (callWithin). A late one asks a guest whose QEMU does not
// answer and holds that guest's job, which a NOWAIT call then passes over. `release` ends what
// the caller took for it (virConnectClose of a virConnectRef, virDomainFree of a virDomainRef).
std::optional<StatsAnswer> statsWithin(std::chrono::steady_clock::duration limit,
                                       std::function<int(virDomainStatsRecordPtr**)> call,
                                       std::function<void()> release) {
  return callWithin<StatsAnswer>(limit, [call = std::move(call), release = std::move(release)] {
    virDomainStatsRecordPtr* records = nullptr;
    const std::int64_t before = monotonicNs();
    StatsAnswer a;
    a.n = call(&records);
    a.error = a.n < 0 ? lastError() : "";  // libvirt's last error is per thread
    a.mono_ns = (before + monotonicNs()) / 2;
    a.records.reset(records);
    release();
    return a;
  });
}

// The sum of vcpu.N.delay of the domain's VCPU statistics, in seconds; NaN without any.
double vcpuDelaySeconds(virDomainPtr d) {
  virDomainPtr one[] = {d, nullptr};
  virDomainStatsRecordPtr* records = nullptr;
  if (virDomainListGetStats(one, VIR_DOMAIN_STATS_VCPU, &records, 0) < 0) return NAN;
  const double sum = records && *records ? RecordFields(**records).vcpu_delay_seconds : NAN;
  virDomainStatsRecordListFree(records);
  return sum;
}

// The vCPUs of a live domain XML that libvirt cannot unplug (see GuestStats::min_vcpus); 0 when
// the XML does not parse.
double bootVcpus(const char* xml, double vcpus) {
  constexpr int kQuiet = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
  std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc(
      xmlReadMemory(xml, static_cast<int>(std::strlen(xml)), "domain.xml", nullptr, kQuiet), xmlFreeDoc);
  if (!doc) return 0;
  std::unique_ptr<xmlXPathContext, decltype(&xmlXPathFreeContext)> ctx(xmlXPathNewContext(doc.get()),
                                                                         xmlXPathFreeContext);
  const auto number = [&ctx](const char* expr) {
    std::unique_ptr<xmlXPathObject, decltype(&xmlXPathFreeObject)> o(
        xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(expr), ctx.get()), xmlXPathFreeObject);
    return o ? xmlXPathCastToNumber(o.get()) : NAN;
  };
  if (!ctx || !(number("count(/domain/vcpus/vcpu)") > 0)) return vcpus;
  const double fixed = number("count(/domain/vcpus/vcpu[@enabled='yes' and @hotpluggable='no'])");
  return std::isfinite(fixed) ? std::max(fixed, 1.0) : 0;
}

// libvirt's client writes to the daemon's socket without MSG_NOSIGNAL, and expects its caller to
// ignore SIGPIPE (virsh does): otherwise the first request after libvirtd restarted kills the
// process (found by the restart test). Only a default disposition is changed: a handler the
// program set stays.
void ignoreSigpipe() {
  struct sigaction now {};
  if (sigaction(SIGPIPE, nullptr, &now) == 0 && now.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
}

// A domain that stopped or was undefined between being listed and read.
bool gone() {
  const int code = virGetLastErrorCode();
  return code == VIR_ERR_NO_DOMAIN || code == VIR_ERR_OPERATION_INVALID;
}

}  // namespace

struct LibvirtConnection::Impl {
  std::string uri;
  virConnectPtr conn = nullptr;
  std::chrono::milliseconds answer_within = kAnswerWithin;  // an open's and a statistics call's
  // A connection opened on callWithin's thread; a late one is closed there.
  struct Opened {
    std::unique_ptr<virConnect, decltype(&virConnectClose)> conn{nullptr, virConnectClose};
    std::string error;
  };
  std::shared_ptr<std::atomic<bool>> opening = std::make_shared<std::atomic<bool>>(false);
  // Running domains (UUID -> domain ID, which a restart changes) whose vCPU unplug timed out in
  // libvirt through this connection: the backend records them, the reads report them.
  std::map<std::string, unsigned int> unplug_timed_out;
  // Running domains' GuestStats::min_vcpus (UUID -> domain ID, vCPUs).
  std::map<std::string, std::pair<unsigned int, double>> booted;
  bool told_one_by_one = false;

  ~Impl() {
    if (conn) virConnectClose(conn);
  }
  Result<virConnectPtr> get() {
    if (conn && virConnectIsAlive(conn) == 1) return conn;
    if (conn) {
      spdlog::warn("libvirt: the connection to {} was lost; connecting again", uri);
      virConnectClose(conn);
      conn = nullptr;
    }
    virSetErrorFunc(nullptr, quietErrors);
    ignoreSigpipe();
    // Opening waits for libvirtd as any call does: within answer_within, and while a late open
    // still waits, no other is started (one thread, not one a round, for a libvirtd that hangs).
    if (*opening)
      return fail(ErrorCode::kUnavailable, "libvirt: {} has not answered a connection opened more than {:g} s ago",
                  uri, seconds(answer_within));
    *opening = true;
    auto opened = callWithin<Opened>(answer_within, [uri = uri, opening = opening] {
      Opened o;
      o.conn.reset(virConnectOpen(uri.c_str()));
      if (!o.conn) o.error = lastError();
      *opening = false;
      return o;
    });
    if (!opened)
      return fail(ErrorCode::kUnavailable, "libvirt: cannot connect to {}: no answer within {:g} s", uri,
                  seconds(answer_within));
    if (!opened->conn) return fail(ErrorCode::kUnavailable, "libvirt: cannot connect to {}: {}", uri, opened->error);
    conn = opened->conn.release();
    return conn;
  }
  // Leaves the connection to a statistics call that is late (statsWithin), which holds a reference
  // to it until it returns; the next call opens another. Calls made beside the late one on the
  // same connection waited too, at times until it returned (libvirt 9.0: a domain lookup 34–49 s,
  // while the same on another connection took 1–2 ms).
  void leaveToLateCall() {
    if (conn) virConnectClose(conn);  // our reference: the late call's keeps it open
    conn = nullptr;
  }
  // After a call failed: whether the connection was dead and is open again, for the call to be
  // made once more. A client learns that the daemon restarted only at its next request, which
  // fails; without this, every restart of libvirtd would cost the loop a round.
  bool reopened() { return conn && virConnectIsAlive(conn) != 1 && get().has_value(); }
  Result<DomainPtr> domain(const std::string& name) {
    auto c = get();
    if (!c) return tl::unexpected(c.error());
    virDomainPtr d = virDomainLookupByName(*c, name.c_str());
    if (d) return DomainPtr(d);
    // reopened() asks libvirt again, which clears its last error: keep this one.
    int code = virGetLastErrorCode();
    std::string error = lastError();
    if (code != VIR_ERR_NO_DOMAIN && reopened()) {
      if ((d = virDomainLookupByName(conn, name.c_str()))) return DomainPtr(d);
      code = virGetLastErrorCode();
      error = lastError();
    }
    if (code == VIR_ERR_NO_DOMAIN) return fail(ErrorCode::kNotFound, "libvirt {}: no domain '{}': {}", uri, name, error);
    return fail(ErrorCode::kIo, "libvirt {}: cannot look up domain '{}': {}", uri, name, error);
  }
  // What virDomainGetInfo alone tells: vCPUs, balloon and its maximum.
  Result<GuestStats> readInfo(virDomainPtr d, const std::string& name) {
    virDomainInfo info;
    if (virDomainGetInfo(d, &info) < 0)
      return fail(gone() ? ErrorCode::kNotFound : ErrorCode::kIo, "libvirt {} domain '{}': cannot read info: {}",
                  uri, name, lastError());
    GuestStats g;
    g.name = name;
    g.mono_ns = monotonicNs();
    g.vcpus = info.nrVirtCpu;
    g.memory_bytes = static_cast<double>(info.memory) * 1024.0;  // KiB
    g.max_memory_bytes = static_cast<double>(info.maxMem) * 1024.0;
    return g;
  }
  // GuestStats::min_vcpus of a guest running `vcpus`; 0 when its XML cannot be read. The vCPUs a
  // guest booted with stay while it runs, so its XML (the largest reply) is read once per run.
  double minVcpus(virDomainPtr d, double vcpus) {
    const std::string uuid = uuidOf(d);
    const unsigned int id = virDomainGetID(d);
    if (auto it = booted.find(uuid); it != booted.end() && it->second.first == id) return it->second.second;
    char* xml = virDomainGetXMLDesc(d, 0);
    if (!xml) return 0;
    const double n = bootVcpus(xml, vcpus);
    free(xml);  // the caller's, as virDomainGetXMLDesc documents
    if (n > 0 && !uuid.empty()) booted[uuid] = {id, n};
    return n;
  }
  static std::string uuidOf(virDomainPtr d) {
    char uuid[VIR_UUID_STRING_BUFLEN];
    return virDomainGetUUIDString(d, uuid) < 0 ? std::string() : std::string(uuid);
  }
  void unplugTimedOut(virDomainPtr d) {
    if (auto uuid = uuidOf(d); !uuid.empty()) unplug_timed_out[uuid] = virDomainGetID(d);
  }
  bool hasUnplugTimedOut(virDomainPtr d) const {
    auto it = unplug_timed_out.find(uuidOf(d));
    return it != unplug_timed_out.end() && it->second == virDomainGetID(d);
  }
  // Everything GuestStats holds, a call for each part: for drivers whose statistics lack a group.
  Result<GuestStats> readByCalls(virDomainPtr d, const std::string& name) {
    auto info = readInfo(d, name);
    if (!info) return info;
    GuestStats& g = *info;
    std::vector<virVcpuInfo> vcpus(static_cast<std::size_t>(std::max(0.0, g.vcpus)));
    const int n_vcpus = virDomainGetVcpus(d, vcpus.data(), static_cast<int>(vcpus.size()), nullptr, 0);
    for (int i = 0; i < n_vcpus; ++i)
      g.cpu_seconds = (std::isnan(g.cpu_seconds) ? 0.0 : g.cpu_seconds) + static_cast<double>(vcpus[i].cpuTime) / 1e9;
    const int max_vcpus = virDomainGetVcpusFlags(d, static_cast<unsigned>(VIR_DOMAIN_AFFECT_LIVE) | VIR_DOMAIN_VCPU_MAXIMUM);
    g.max_vcpus = max_vcpus > 0 ? max_vcpus : g.vcpus;
    g.min_vcpus = minVcpus(d, g.vcpus);
    g.unplug_timed_out = hasUnplugTimedOut(d);
    g.vcpu_delay_seconds = vcpuDelaySeconds(d);
    virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
    const int n = virDomainMemoryStats(d, stats, VIR_DOMAIN_MEMORY_STAT_NR, 0);
    double available = NAN, usable = NAN, unused = NAN;
    for (int i = 0; i < n; ++i) {
      const double kib = static_cast<double>(stats[i].val);
      if (stats[i].tag == VIR_DOMAIN_MEMORY_STAT_AVAILABLE) available = kib;
      if (stats[i].tag == VIR_DOMAIN_MEMORY_STAT_USABLE) usable = kib;
      if (stats[i].tag == VIR_DOMAIN_MEMORY_STAT_UNUSED) unused = kib;
    }
    g.guest_used_bytes = guestUsedBytes(available, usable, unused);
    return info;
  }
  // Everything GuestStats holds, from a statistics record (kStatsGroups): nullopt when it lacks the
  // balloon or vCPU figures (a driver without those groups, as libvirt's test driver).
  std::optional<GuestStats> fromRecord(const virDomainStatsRecord& rec, const std::string& name, std::int64_t mono_ns) {
    const RecordFields f(rec);
    for (std::string_view needed : {"vcpu.current", "vcpu.maximum", "balloon.current", "balloon.maximum"})
      if (!f.values.contains(needed)) return std::nullopt;
    if (std::isnan(f.vcpu_seconds)) return std::nullopt;
    GuestStats g;
    g.name = name;
    g.mono_ns = mono_ns;
    g.cpu_seconds = f.vcpu_seconds;
    g.vcpus = f["vcpu.current"];
    g.max_vcpus = f["vcpu.maximum"];
    g.min_vcpus = minVcpus(rec.dom, g.vcpus);
    g.unplug_timed_out = hasUnplugTimedOut(rec.dom);
    g.vcpu_delay_seconds = f.vcpu_delay_seconds;
    g.memory_bytes = f["balloon.current"] * 1024.0;  // KiB, as all of the balloon's figures
    g.max_memory_bytes = f["balloon.maximum"] * 1024.0;
    g.guest_used_bytes = guestUsedBytes(f["balloon.available"], f["balloon.usable"], f["balloon.unused"]);
    return g;
  }
  // One guest: its statistics record, else call by call. NOWAIT as runningGuests().
  Result<GuestStats> read(virDomainPtr d, const std::string& name) {
    virDomainRef(d);
    auto a = statsWithin(
        answer_within,
        [d](virDomainStatsRecordPtr** records) {
          virDomainPtr one[] = {d, nullptr};
          return virDomainListGetStats(one, kStatsGroups, records, VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
        },
        [d] { virDomainFree(d); });
    if (!a) {
      leaveToLateCall();
      return fail(ErrorCode::kUnavailable, "libvirt {} domain '{}': its statistics did not come within {:g} s: {}", uri,
                  name, seconds(answer_within), kNotAnswering);
    }
    if (a->n > 0 && a->records && a->records[0])
      if (auto g = fromRecord(*a->records[0], name, a->mono_ns)) return *g;
    return readByCalls(d, name);
  }
  // GuestStats::guest_used_bytes from the balloon driver's statistics (KiB; NaN: not reported).
  static double guestUsedBytes(double available, double usable, double unused) {
    const double spare = std::isfinite(usable) ? usable : unused;
    return std::isfinite(available) && std::isfinite(spare) && spare <= available ? (available - spare) * 1024.0 : NAN;
  }
};

LibvirtConnection::LibvirtConnection(std::string uri, std::chrono::milliseconds answer_within)
    : uri_(std::move(uri)), impl_(std::make_unique<Impl>()) {
  impl_->uri = uri_;
  impl_->answer_within = answer_within;
}
LibvirtConnection::~LibvirtConnection() = default;

Result<GuestStats> LibvirtConnection::guest(const std::string& name) {
  auto d = impl_->domain(name);
  if (!d) return tl::unexpected(d.error());
  return impl_->read(d->get(), name);
}

Result<RunningGuests> LibvirtConnection::runningGuests() {
  // NOWAIT: a guest whose QEMU does not answer while another client waits on it holds libvirt's
  // job for it, and without the flag the call waited 30 s for that job, every round, before it
  // read the others; with it, that guest comes without its balloon driver's figures.
  constexpr unsigned int kRunning = VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE | VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT;
  const auto ask = [this](virConnectPtr conn) {
    virConnectRef(conn);
    return statsWithin(
        impl_->answer_within,
        [conn](virDomainStatsRecordPtr** records) {
          return virConnectGetAllDomainStats(conn, kStatsGroups, records, kRunning);
        },
        [conn] { virConnectClose(conn); });
  };
  // A call that is late waits on a guest whose QEMU does not answer, and holds its job: the next
  // (on a new connection) passes that guest over (NOWAIT) and reads the others, so a hang costs
  // one wait, not every round. Each late call gets past one such guest; two in a row fail the round.
  const auto askAgainIfLate = [&]() -> Result<StatsAnswer> {
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto conn = impl_->get();
      if (!conn) return tl::unexpected(conn.error());
      auto a = ask(*conn);
      if (a) return std::move(*a);
      impl_->leaveToLateCall();
      spdlog::warn("libvirt {}: the running domains' statistics did not come within {:g} s: {}{}", uri_,
                   seconds(impl_->answer_within), kNotAnswering, attempt == 0 ? "; asking again, past it" : "");
    }
    return fail(ErrorCode::kUnavailable, "libvirt {}: the running domains' statistics did not come within {:g} s, twice: {}",
                uri_, seconds(impl_->answer_within), kNotAnswering);
  };
  auto a = askAgainIfLate();
  if (a && a->n < 0 && impl_->reopened()) a = askAgainIfLate();
  if (!a) return tl::unexpected(a.error());
  if (a->n < 0)
    return fail(ErrorCode::kIo, "libvirt {}: cannot read the running domains' statistics: {}", uri_, a->error);
  const int n = a->n;
  virDomainStatsRecordPtr* records = a->records.get();
  const std::int64_t mono_ns = a->mono_ns;
  RunningGuests out;
  std::set<std::string> running;
  for (int i = 0; i < n; ++i) {
    virDomainPtr d = records[i]->dom;
    const char* name = virDomainGetName(d);
    if (!name) continue;
    running.insert(Impl::uuidOf(d));
    auto g = impl_->fromRecord(*records[i], name, mono_ns);
    if (g) {
      out.guests.push_back(std::move(*g));
      continue;
    }
    ++out.read_by_calls;
    auto read = impl_->readByCalls(d, name);
    if (read)
      out.guests.push_back(std::move(*read));
    else if (read.error().code != ErrorCode::kNotFound)
      out.errors.push_back(std::move(read.error()));
  }
  std::erase_if(impl_->booted, [&](const auto& e) { return !running.contains(e.first); });
  std::erase_if(impl_->unplug_timed_out, [&](const auto& e) { return !running.contains(e.first); });
  if (out.read_by_calls > 0 && !std::exchange(impl_->told_one_by_one, true))
    spdlog::info("libvirt {}: the driver's statistics lack a guest's vCPU or balloon figures; such guests are "
                 "read a call for each figure",
                 uri_);
  return out;
}

Result<Allocation> LibvirtConnection::host() {
  auto c = impl_->get();
  if (!c) return tl::unexpected(c.error());
  // Within answer_within, as the statistics calls: a libvirtd that hangs would hold the loop here.
  struct NodeAnswer {
    int rc = -1;
    virNodeInfo info{};
    std::string error;
  };
  auto ask = [this](virConnectPtr conn) {
    virConnectRef(conn);  // the call's own, should it be left late
    return callWithin<NodeAnswer>(impl_->answer_within, [conn] {
      NodeAnswer a;
      a.rc = virNodeGetInfo(conn, &a.info);
      if (a.rc < 0) a.error = lastError();  // per thread
      virConnectClose(conn);
      return a;
    });
  };
  auto a = ask(*c);
  if (a && a->rc < 0 && impl_->reopened()) a = ask(impl_->conn);
  if (!a) {
    impl_->leaveToLateCall();
    return fail(ErrorCode::kUnavailable, "libvirt {}: the host's CPUs and memory did not come within {:g} s: libvirtd "
                "is not answering", uri_, seconds(impl_->answer_within));
  }
  if (a->rc < 0) return fail(ErrorCode::kIo, "libvirt {}: cannot read the host's CPUs and memory: {}", uri_, a->error);
  Allocation r;
  r[Resource::kCpu] = a->info.cpus;
  r[Resource::kMemory] = static_cast<double>(a->info.memory) * 1024.0;  // KiB
  return r;
}

class LibvirtBackend final : public Backend {
 public:
  LibvirtBackend(const BackendOptions& o, std::shared_ptr<LibvirtConnection> conn)
      : conn_(std::move(conn)), balloon_wait_text_(o.get("balloon_wait", "10")), disk_(o.get("disk", "")) {
    balloon_wait_ = optionSeconds(balloon_wait_text_).value_or(-1);
  }

  std::string name() const override { return "libvirt"; }

  Status configured() const override {
    if (balloon_wait_ < 0)
      return fail(ErrorCode::kInvalidArgument, "libvirt option balloon_wait='{}': expected seconds in [0, 3600]",
                  balloon_wait_text_);
    return ok();
  }

  Result<Allocation> current(const std::string& workload) override {
    auto dom = conn_->impl_->domain(workload);
    if (!dom) return tl::unexpected(dom.error());
    auto g = conn_->impl_->readInfo(dom->get(), workload);
    if (!g) return tl::unexpected(g.error());
    Allocation a;
    a[Resource::kCpu] = g->vcpus;
    a[Resource::kMemory] = g->memory_bytes;
    if (!disk_.empty()) {
      const std::string what = fmt::format("libvirt {} domain '{}'", conn_->uri(), workload);
      if (auto st = answering(dom->get(), what, "its disk's limit not read"); !st) return tl::unexpected(st.error());
      auto limit = diskLimit(dom->get(), what);
      if (!limit) return tl::unexpected(limit.error());
      a[Resource::kDiskIo] = *limit;
    }
    return a;
  }

  // Memory only, and only where the guest's balloon driver reports it: the safety rail must not
  // take QEMU's RSS (every page the guest ever touched) for what the guest needs.
  Result<Allocation> usage(const std::string& workload) override {
    auto g = conn_->guest(workload);
    if (!g) return tl::unexpected(g.error());
    Allocation a;
    if (std::isfinite(g->guest_used_bytes)) a[Resource::kMemory] = g->guest_used_bytes;
    return a;
  }

  Allocation units() const override {
    Allocation a;
    a[Resource::kCpu] = 1;  // vCPUs
    return a;
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    if (auto st = configured(); !st) return st;
    const std::string what = fmt::format("libvirt {} domain '{}'", conn_->uri(), workload);
    if (target[Resource::kNetwork])
      return fail(ErrorCode::kInvalidArgument, "{}: network is not managed by this backend", what);
    if (target[Resource::kDiskIo] && disk_.empty())
      return fail(ErrorCode::kInvalidArgument,
                  "{}: disk_io needs the disk to throttle: -o disk=TARGET (as virsh domblklist lists it, e.g. vda)",
                  what);
    if (target[Resource::kDiskIo] && !(*target[Resource::kDiskIo] > 0))
      return fail(ErrorCode::kInvalidArgument, "{}: disk_io must be positive (or max)", what);
    for (Resource r : {Resource::kCpu, Resource::kMemory})
      if (target[r] && (std::isinf(*target[r]) || *target[r] <= 0))
        return fail(ErrorCode::kInvalidArgument, "{}: {} must be a positive finite value", what,
                    foresight::name(r));
    auto dom = conn_->impl_->domain(workload);
    if (!dom) return tl::unexpected(dom.error());
    virDomainPtr d = dom->get();
    if (auto st = answering(d, what, "nothing changed"); !st) return st;
    auto now = conn_->impl_->readInfo(d, workload);
    if (!now) return tl::unexpected(now.error());

    // The vCPUs asked for (whole ones), if any. A count and a flag: an optional here made GCC 12
    // warn (-Wmaybe-uninitialized, falsely) once apply() grew the disk's limit.
    const bool set_vcpus = target[Resource::kCpu].has_value();
    const unsigned vcpus = set_vcpus ? static_cast<unsigned>(std::ceil(*target[Resource::kCpu] - 1e-9)) : 0;
    // Refused before anything changes: libvirt would refuse it after the balloon moved, with a
    // message that does not say why ("failed to find appropriate hotpluggable vcpus").
    if (set_vcpus && vcpus < now->vcpus)
      if (const double fewest = conn_->impl_->minVcpus(d, now->vcpus); vcpus < fewest)
        return fail(ErrorCode::kInvalidArgument,
                    "{}: cannot go below the {:g} vCPUs it booted with (libvirt unplugs only hot-plugged vCPUs)", what,
                    fewest);

    // The disk first (the readiest to refuse, the surest to set back), memory second, vCPUs last;
    // what changed goes back when a later change fails.
    std::optional<std::optional<double>> disk_before;  // set once the disk's limit changed
    if (target[Resource::kDiskIo]) {
      auto before = diskLimit(d, what);
      if (!before) return tl::unexpected(before.error());
      const double asked = *target[Resource::kDiskIo];
      if (std::isinf(asked) ? before->has_value() : before->value_or(0) != std::round(asked)) {
        if (auto st = setDiskLimit(d, asked, what); !st) return st;
        disk_before = *before;
      }
    }
    // Appended to the error of a later change that failed: the disk's limit set back.
    const auto diskRestored = [&]() -> std::string {
      if (!disk_before) return "";
      auto st = setDiskLimit(d, disk_before->value_or(INFINITY), what);
      return st ? " (disk limit restored)" : "; restoring the disk limit failed too: " + st.error().message;
    };
    bool memory_changed = false;
    unsigned long old_kib = static_cast<unsigned long>(now->memory_bytes / 1024.0);
    if (target[Resource::kMemory]) {
      const auto kib = static_cast<unsigned long>(*target[Resource::kMemory] / 1024.0);
      if (kib != old_kib) {
        if (virDomainSetMemoryFlags(d, kib, VIR_DOMAIN_AFFECT_LIVE) < 0) {
          std::string err = fmt::format("{}: cannot set memory to {} KiB: {}", what, kib, lastError());
          return fail(ErrorCode::kIo, "{}{}", err, diskRestored());
        }
        memory_changed = true;
        const auto reached = waitForBalloon(d, kib);  // nullopt: not read, the read back tells
        if (reached && near(*reached, old_kib) && !near(kib, old_kib)) {
          std::string err = fmt::format(
              "{}: the guest did not move its balloon towards {} KiB within {} s (no balloon driver?)", what, kib,
              balloon_wait_);
          if (virDomainSetMemoryFlags(d, old_kib, VIR_DOMAIN_AFFECT_LIVE) < 0)
            err += fmt::format("; setting the target back to {} KiB failed: {}", old_kib, lastError());
          else
            err += "; its target set back";
          return fail(ErrorCode::kUnavailable, "{}{}", err, diskRestored());
        }
        if (reached && !near(*reached, kib))
          spdlog::warn("{}: the guest took its balloon to {} KiB of the {} KiB asked within {} s", what, *reached, kib,
                       balloon_wait_);
      }
    }
    if (set_vcpus) {
      if (vcpus != static_cast<unsigned>(now->vcpus) &&
          virDomainSetVcpusFlags(d, vcpus, VIR_DOMAIN_AFFECT_LIVE) < 0) {
        std::string err = fmt::format("{}: cannot set {} vCPUs: {}", what, vcpus, lastError());
        if (virGetLastErrorCode() == VIR_ERR_OPERATION_TIMEOUT && vcpus < now->vcpus)
          conn_->impl_->unplugTimedOut(d);  // after reading the error: its calls reset it
        if (memory_changed) {
          if (virDomainSetMemoryFlags(d, old_kib, VIR_DOMAIN_AFFECT_LIVE) < 0)
            err += fmt::format("; restoring memory to {} KiB failed too: {}", old_kib, lastError());
          else
            err += " (memory restored)";
        }
        return fail(ErrorCode::kIo, "{}{}", err, diskRestored());
      }
    }
    return ok();
  }

 private:
  // libvirt reports the balloon's actual size, which the guest's driver moves towards the target at
  // its own pace (seconds for gigabytes; never without a driver): wait for it, so that what is
  // read back (and audited) is what the guest has. Returns the size reached (KiB), if read.
  std::optional<unsigned long> waitForBalloon(virDomainPtr d, unsigned long kib) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(balloon_wait_);
    for (;;) {
      virDomainInfo info;
      if (virDomainGetInfo(d, &info) < 0) return std::nullopt;
      if (near(info.memory, kib) || std::chrono::steady_clock::now() >= until) return info.memory;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  // The disk's limit in bytes/s per direction (read_bytes_sec; set with write_bytes_sec, as the
  // cgroup backends set both directions); nullopt: none.
  Result<std::optional<double>> diskLimit(virDomainPtr d, const std::string& what) const {
    int n = 0;
    if (virDomainGetBlockIoTune(d, disk_.c_str(), nullptr, &n, VIR_DOMAIN_AFFECT_LIVE) < 0)
      return fail(ErrorCode::kIo, "{}: cannot read the I/O limits of disk '{}': {}", what, disk_, lastError());
    std::vector<virTypedParameter> params(static_cast<std::size_t>(n));
    if (virDomainGetBlockIoTune(d, disk_.c_str(), params.data(), &n, VIR_DOMAIN_AFFECT_LIVE) < 0)
      return fail(ErrorCode::kIo, "{}: cannot read the I/O limits of disk '{}': {}", what, disk_, lastError());
    unsigned long long bps = 0;
    const int found = virTypedParamsGetULLong(params.data(), n, VIR_DOMAIN_BLOCK_IOTUNE_READ_BYTES_SEC, &bps);
    virTypedParamsClear(params.data(), n);  // its strings (the group's name) are the caller's
    if (found < 0) return fail(ErrorCode::kIo, "{}: disk '{}': {}", what, disk_, lastError());
    return bps > 0 ? std::optional<double>(static_cast<double>(bps)) : std::nullopt;  // 0: none
  }
  // Sets it; +infinity removes it (0 to libvirt).
  Status setDiskLimit(virDomainPtr d, double bps, const std::string& what) const {
    const auto v = std::isinf(bps) ? 0ULL : static_cast<unsigned long long>(std::llround(bps));
    virTypedParameterPtr params = nullptr;
    int n = 0, max = 0;
    virTypedParamsAddULLong(&params, &n, &max, VIR_DOMAIN_BLOCK_IOTUNE_READ_BYTES_SEC, v);
    virTypedParamsAddULLong(&params, &n, &max, VIR_DOMAIN_BLOCK_IOTUNE_WRITE_BYTES_SEC, v);
    const int rc = virDomainSetBlockIoTune(d, disk_.c_str(), params, n, VIR_DOMAIN_AFFECT_LIVE);
    virTypedParamsFree(params, n);
    if (rc < 0)
      return fail(ErrorCode::kIo, "{}: cannot set the I/O limit of disk '{}' to {} bytes/s: {}", what, disk_, v,
                  lastError());
    return ok();
  }
  // Fails when the guest's QEMU has had a command of libvirt's pending for kNotAnsweringMs: a change,
  // and a disk's limit read, need the guest's job, which that command holds, and libvirt would
  // wait 30 s for it and fail ("cannot acquire state change lock"). Said at once instead; oVirt's
  // vdsm likewise asks this state before it sends a guest commands.
  static Status answering(virDomainPtr d, const std::string& what, std::string_view so) {
    virDomainControlInfo control{};
    if (virDomainGetControlInfo(d, &control, 0) == 0 && control.state == VIR_DOMAIN_CONTROL_OCCUPIED &&
        control.stateTime >= kNotAnsweringMs)
      return fail(ErrorCode::kUnavailable,
                  "{}: its QEMU has not answered a command of libvirt's for {:.0f} s (stopped, or stuck on its "
                  "storage); {}",
                  what, static_cast<double>(control.stateTime) / 1000.0, so);
    return ok();
  }
  // A QEMU answers a command in milliseconds; one pending for 5 s is not answering.
  static constexpr unsigned long long kNotAnsweringMs = 5000;
  // Within a MiB: the driver moves the balloon in pages, and QEMU reports it in bytes.
  static bool near(unsigned long a, unsigned long b) { return (a > b ? a - b : b - a) <= 1024; }

  std::shared_ptr<LibvirtConnection> conn_;
  std::string balloon_wait_text_;
  double balloon_wait_ = 10;
  std::string disk_;  // the disk whose I/O disk_io limits (its target, e.g. vda); "" = none
};

std::unique_ptr<Backend> makeLibvirtBackend(const BackendOptions& options) {
  return makeLibvirtBackend(options, std::make_shared<LibvirtConnection>(options.get("uri", "qemu:///system")));
}

std::unique_ptr<Backend> makeLibvirtBackend(const BackendOptions& options, std::shared_ptr<LibvirtConnection> conn) {
  return std::make_unique<LibvirtBackend>(options, std::move(conn));
}

}  // namespace foresight::allocate
