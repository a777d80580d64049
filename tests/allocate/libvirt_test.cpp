// libvirt backend against libvirt's built-in test driver (test:///default: no daemon). Its
// default domain "test" starts with 2 vCPUs (2 maximum), 2 GiB current and 8 GiB maximum memory.
#include <gtest/gtest.h>

#include <time.h>

#include <cmath>

#include "../support/libvirt_guest.h"
#include "foresight/allocate/audit.h"
#include "foresight/allocate/libvirt.h"
#include "test_util.h"

namespace foresight::allocate {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

std::unique_ptr<Backend> testDriver() {
  BackendOptions o;
  o.values["uri"] = "test:///default";
  return makeLibvirtBackend(o);
}

// The test domain's disk vda, as a backend with -o disk=vda manages its I/O.
std::unique_ptr<Backend> testDriverDisk() {
  BackendOptions o;
  o.values["uri"] = "test:///default";
  o.values["disk"] = "vda";
  return makeLibvirtBackend(o);
}

// A disk's limit needs the disk (-o disk) and a positive value, and names the disk it cannot find.
// (libvirt's test driver refuses every byte limit without a burst maximum, which QEMU does not:
// the limits themselves are tested on a real guest, tests/loop/real_guest_test.cpp.)
TEST(Libvirt, ADiskLimitNeedsItsDiskAndAPositiveValue) {
  Allocation t;
  t[Resource::kDiskIo] = INFINITY;
  auto st = testDriver()->apply("test", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("-o disk=TARGET"), std::string::npos) << st.error().message;
  BackendOptions o;
  o.values["uri"] = "test:///default";
  o.values["disk"] = "vdz";
  st = makeLibvirtBackend(o)->apply("test", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("disk 'vdz'"), std::string::npos) << st.error().message;
  auto b = testDriverDisk();
  auto cur = b->current("test");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_FALSE((*cur)[Resource::kDiskIo]);  // vda has none
  ASSERT_TRUE(b->apply("test", t));         // none asked, none there: nothing to do
  t[Resource::kDiskIo] = 0;
  st = b->apply("test", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("disk_io must be positive"), std::string::npos) << st.error().message;
}

// A guest that booted with one vCPU and was given a second (hot-plugged): down to one again.
TEST(Libvirt, ReadsAndSetsVcpusAndBalloon) {
  test_support::TestDriverGuest guest("sets-web", 2, 4, 2048, 4096, false, 1);
  ASSERT_TRUE(guest.running());
  auto b = testDriver();
  auto cur = b->current("sets-web");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_EQ(*(*cur)[Resource::kCpu], 2.0);
  EXPECT_EQ(*(*cur)[Resource::kMemory], 2 * kGiB);
  Allocation t;
  t[Resource::kCpu] = 0.6;  // rounds up to 1 vCPU
  t[Resource::kMemory] = 1 * kGiB;
  ASSERT_TRUE(b->apply("sets-web", t));
  cur = b->current("sets-web");
  ASSERT_TRUE(cur);
  EXPECT_EQ(*(*cur)[Resource::kCpu], 1.0);
  EXPECT_EQ(*(*cur)[Resource::kMemory], 1 * kGiB);
  ASSERT_TRUE(b->apply("sets-web", t));  // idempotent
}

// Fewer vCPUs than a guest booted with is refused before anything changes: libvirt unplugs only
// hot-plugged ones, and would refuse after the balloon moved, without saying why. libvirt's
// default test domain booted with both of its two.
TEST(Libvirt, FewerVcpusThanTheGuestBootedWithAreRefusedBeforeAnyChange) {
  auto b = testDriver();
  auto before = b->current("test");
  ASSERT_TRUE(before);
  Allocation t;
  t[Resource::kCpu] = 1;
  t[Resource::kMemory] = 1.5 * kGiB;
  auto st = b->apply("test", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("domain 'test': cannot go below the 2 vCPUs it booted with"), std::string::npos)
      << st.error().message;
  EXPECT_EQ(*b->current("test"), *before);
}

TEST(Libvirt, FailedVcpuChangeRestoresMemory) {
  auto b = testDriver();
  auto before = b->current("test");
  ASSERT_TRUE(before);
  Allocation t;
  t[Resource::kMemory] = 1.5 * kGiB;
  t[Resource::kCpu] = 64;  // above the domain's maximum: libvirt refuses
  auto st = b->apply("test", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("domain 'test'"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("memory restored"), std::string::npos) << st.error().message;
  auto after = b->current("test");
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, *before);
}

// The audit trail records what libvirt enforces (whole vCPUs), so the rollback check passes.
TEST(Libvirt, AuditRecordsTheRoundedVcpusAndRollsBack) {
  testing::TempDir tmp;
  auto log = AuditLog::open((tmp.path() / "a.db").string());
  ASSERT_TRUE(log);
  BackendRegistry registry("backend");
  registerBackends(registry);
  BackendOptions o;
  o.values["uri"] = "test:///default";
  auto b = registry.create("libvirt", o);
  ASSERT_TRUE(b);
  test_support::TestDriverGuest guest("audit-web", 2, 4, 2048, 4096, false, 1);
  ASSERT_TRUE(guest.running());
  Allocation t;
  t[Resource::kCpu] = 0.6;
  auto id = applyAndRecord(**b, "libvirt", o, *log, "audit-web", t, "r");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*log->get(*id)->after[Resource::kCpu], 1.0);
  // The rollback opens its own connection; test:///default state is shared within the process.
  auto rb = rollback(*log, registry, *id);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(*(*(*b)->current("audit-web"))[Resource::kCpu], 2.0);
}

TEST(Libvirt, ErrorsNameTheDomain) {
  auto b = testDriver();
  auto cur = b->current("no-such-vm");
  ASSERT_FALSE(cur);
  EXPECT_EQ(cur.error().code, ErrorCode::kNotFound);
  EXPECT_NE(cur.error().message.find("no-such-vm"), std::string::npos);
  Allocation t;
  t[Resource::kMemory] = 64 * kGiB;  // above the 8 GiB maximum
  auto st = b->apply("test", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("'test'"), std::string::npos);
}

const GuestStats* find(const RunningGuests& r, const std::string& name) {
  for (const auto& g : r.guests)
    if (g.name == name) return &g;
  return nullptr;
}

// The cpu time of a guest's vCPUs, as virDomainGetVcpus gives it (the test driver's: a clock).
double vcpuSeconds(const char* name) {
  virConnectPtr c = virConnectOpen("test:///default");
  virDomainPtr d = c ? virDomainLookupByName(c, name) : nullptr;
  double sum = NAN;
  virVcpuInfo info[8];
  if (const int n = d ? virDomainGetVcpus(d, info, 8, nullptr, 0) : -1; n > 0) {
    sum = 0;
    for (int i = 0; i < n; ++i) sum += static_cast<double>(info[i].cpuTime) / 1e9;
  }
  if (d) virDomainFree(d);
  if (c) virConnectClose(c);
  return sum;
}

// What `foresight guests` reads of each running guest: its vCPUs and balloon with their maximums,
// its vCPUs' cpu time, and what its balloon driver says it uses (available - usable), absent
// without one.
TEST(Libvirt, ReadsEveryRunningGuestAndWhatItsBalloonDriverReports) {
  test_support::TestDriverGuest reporting("reads-web", 2, 4, 3072, 4096, true);
  test_support::TestDriverGuest silent("reads-db", 1, 2, 1024, 2048, false);
  ASSERT_TRUE(reporting.running() && silent.running());
  LibvirtConnection conn("test:///default");
  const double vcpu_seconds_before = vcpuSeconds("reads-web");
  auto first = conn.runningGuests();
  const double vcpu_seconds_after = vcpuSeconds("reads-web");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->errors.empty());
  // The test driver's statistics hold a guest's state only: each is read a call for each figure.
  EXPECT_EQ(first->read_by_calls, first->guests.size());
  const GuestStats* web = find(*first, "reads-web");
  const GuestStats* db = find(*first, "reads-db");
  ASSERT_TRUE(web && db);
  EXPECT_EQ(web->vcpus, 2);
  EXPECT_EQ(web->max_vcpus, 4);
  EXPECT_EQ(web->min_vcpus, 2);  // its XML lists no hot-pluggable vCPUs: those it booted with stay
  EXPECT_EQ(web->memory_bytes, 3 * kGiB);
  EXPECT_EQ(web->max_memory_bytes, 4 * kGiB);
  EXPECT_GE(web->cpu_seconds, vcpu_seconds_before);
  EXPECT_LE(web->cpu_seconds, vcpu_seconds_after);
  EXPECT_EQ(web->guest_used_bytes, 1.5 * kGiB);  // the driver's usable is half the balloon
  EXPECT_TRUE(std::isnan(db->guest_used_bytes));
  EXPECT_EQ(db->max_vcpus, 2);
  timespec pause{0, 20'000'000};
  nanosleep(&pause, nullptr);
  auto again = conn.guest("reads-web");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_GT(again->mono_ns, web->mono_ns);
  EXPECT_GT(again->cpu_seconds, web->cpu_seconds);
  silent.destroy();
  auto after = conn.runningGuests();
  ASSERT_TRUE(after);
  EXPECT_FALSE(find(*after, "reads-db"));  // stopped: not listed, and no error
  EXPECT_TRUE(after->errors.empty());
  EXPECT_EQ(conn.guest("reads-nothing").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(LibvirtConnection("test:///no/such/file.xml").runningGuests().error().code, ErrorCode::kUnavailable);
}

// The vCPUs a guest booted with are read from its XML once while it runs, and again once it has
// been started again, which may have changed them.
TEST(Libvirt, AGuestStartedAgainIsReadAgainForTheVcpusItBootedWith) {
  const std::string uuid = "6d1c3d9a-4a5e-4b0f-9d1e-2f6a8c7b5e41";
  LibvirtConnection conn("test:///default");
  {
    test_support::TestDriverGuest hotplugged("restarts-web", 2, 4, 1024, 2048, false, 1, uuid);
    ASSERT_TRUE(hotplugged.running());
    auto g = conn.guest("restarts-web");
    ASSERT_TRUE(g) << g.error().message;
    EXPECT_EQ(g->min_vcpus, 1);
    auto all = conn.runningGuests();
    ASSERT_TRUE(all) << all.error().message;
    ASSERT_TRUE(find(*all, "restarts-web"));
    EXPECT_EQ(find(*all, "restarts-web")->min_vcpus, 1);
  }
  test_support::TestDriverGuest booted_with_both("restarts-web", 2, 4, 1024, 2048, false, 0, uuid);
  ASSERT_TRUE(booted_with_both.running());
  auto g = conn.guest("restarts-web");
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->min_vcpus, 2);
}

// The host the capacity advice of `foresight guests` weighs against: the test driver's node, as
// `virsh -c test:///default nodeinfo` shows it (16 CPUs, 3145728 KiB).
TEST(Libvirt, ReadsTheHostsCpusAndMemory) {
  LibvirtConnection conn("test:///default");
  auto host = conn.host();
  ASSERT_TRUE(host) << host.error().message;
  EXPECT_EQ((*host)[Resource::kCpu], 16);
  EXPECT_EQ((*host)[Resource::kMemory], 3145728.0 * 1024);
  auto wrong = LibvirtConnection("test:///no/such/file.xml").host();
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("test:///no/such/file.xml"), std::string::npos) << wrong.error().message;
}

// The safety rail of `foresight allocate` sees the guest's own use, and nothing where the guest
// does not say: QEMU's RSS is not what it needs.
TEST(Libvirt, UsageIsWhatTheGuestReportsInUse) {
  test_support::TestDriverGuest reporting("usage-web", 1, 2, 2048, 4096, true);
  test_support::TestDriverGuest silent("usage-db", 1, 2, 2048, 4096, false);
  auto b = testDriver();
  auto used = b->usage("usage-web");
  ASSERT_TRUE(used) << used.error().message;
  EXPECT_EQ(*(*used)[Resource::kMemory], 1 * kGiB);
  EXPECT_FALSE((*used)[Resource::kCpu]);
  used = b->usage("usage-db");
  ASSERT_TRUE(used) << used.error().message;
  EXPECT_TRUE(used->empty());
  EXPECT_EQ(*b->units()[Resource::kCpu], 1.0);
}

}  // namespace
}  // namespace foresight::allocate
