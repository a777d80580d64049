// The closed loop of `foresight guests`: GuestSizer on simulated guests (a backend that keeps
// their vCPUs and balloon, a reader that runs them), on libvirt's test driver in this process, and
// the command as a user runs it against the same driver.
#include "foresight/loop/guests.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <thread>

#include <httplib.h>

#include "../support/capacity_advice.h"
#include "../support/captured_log.h"
#include "../support/libvirt_guest.h"
#include "../support/shell.h"
#include "foresight/allocate/audit.h"

namespace foresight::loop {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;

// Guests as a hypervisor runs them: each wants `demand` cores and uses what its vCPUs allow; the
// backend sets their vCPUs and balloon (whole vCPUs, as libvirt's).
struct Hypervisor {
  struct Guest {
    double vcpus = 4, max_vcpus = 4, min_vcpus = 0, memory = 4 * kGiB, max_memory = 8 * kGiB;
    double demand = 0, used = 1 * kGiB;  // used: NaN = no balloon statistics
    double host_share = 1;  // of what its vCPUs are ready to run, what a busy host lets them
    double cpu_seconds = 0, delay_seconds = 0;
    int applies = 0, cpu_applies = 0;
  };
  std::map<std::string, Guest> guests;
  std::int64_t now = 1'000'000;  // seconds: the wall clock and, in ns, the monotonic one
  bool fail = false;

  // Runs every guest for `seconds`.
  void advance(std::int64_t seconds) {
    now += seconds;
    for (auto& [name, g] : guests) {
      const double ready = std::min(g.demand, g.vcpus) * static_cast<double>(seconds);
      g.cpu_seconds += ready * g.host_share;
      g.delay_seconds += ready * (1 - g.host_share);
    }
  }
  GuestReader reader() {
    return [this]() -> Result<allocate::RunningGuests> {
      if (fail) return fail_(ErrorCode::kUnavailable, "libvirt: cannot connect to test");
      allocate::RunningGuests r;
      for (const auto& [name, g] : guests) {
        allocate::GuestStats s;
        s.name = name;
        s.mono_ns = now * 1'000'000'000;
        s.cpu_seconds = g.cpu_seconds;
        s.vcpu_delay_seconds = g.delay_seconds;
        s.vcpus = g.vcpus;
        s.max_vcpus = g.max_vcpus;
        s.min_vcpus = g.min_vcpus;
        s.memory_bytes = g.memory;
        s.max_memory_bytes = g.max_memory;
        s.guest_used_bytes = g.used;
        r.guests.push_back(s);
      }
      return r;
    };
  }
  static tl::unexpected<Error> fail_(ErrorCode code, const char* what) { return foresight::fail(code, "{}", what); }

  class Backend final : public allocate::Backend {
   public:
    explicit Backend(Hypervisor& h) : h_(h) {}
    std::string name() const override { return "libvirt"; }
    Result<allocate::Allocation> current(const std::string& workload) override {
      auto it = h_.guests.find(workload);
      if (it == h_.guests.end()) return foresight::fail(ErrorCode::kNotFound, "no domain '{}'", workload);
      allocate::Allocation a;
      a[Resource::kCpu] = it->second.vcpus;
      a[Resource::kMemory] = it->second.memory;
      return a;
    }
    Status apply(const std::string& workload, const allocate::Allocation& target) override {
      auto& g = h_.guests.at(workload);
      // As libvirt: nothing past the definition's maximums.
      if (target[Resource::kCpu] && *target[Resource::kCpu] > g.max_vcpus)
        return foresight::fail(ErrorCode::kInvalidArgument, "requested vcpus is greater than max allowable vcpus");
      if (target[Resource::kCpu] && *target[Resource::kCpu] < g.min_vcpus)
        return foresight::fail(ErrorCode::kInvalidArgument, "failed to find appropriate hotpluggable vcpus");
      if (target[Resource::kMemory] && *target[Resource::kMemory] > g.max_memory)
        return foresight::fail(ErrorCode::kInvalidArgument, "cannot set memory higher than max memory");
      if (target[Resource::kCpu]) {
        g.vcpus = std::ceil(*target[Resource::kCpu] - 1e-9);
        ++g.cpu_applies;
      }
      if (target[Resource::kMemory]) g.memory = *target[Resource::kMemory];
      ++g.applies;
      return ok();
    }
    allocate::Allocation units() const override {
      allocate::Allocation a;
      a[Resource::kCpu] = 1;
      return a;
    }

   private:
    Hypervisor& h_;
  };
};

AutoscalerConfig applying() {
  AutoscalerConfig c;
  c.apply = true;
  c.backend_name = "libvirt";
  return c;
}

TEST(GuestCpuDemand, AGuestThatKeptItsVcpusBusyWantsOneMore) {
  EXPECT_DOUBLE_EQ(guestCpuDemand(0.5, NAN, 2), 0.5);
  EXPECT_DOUBLE_EQ(guestCpuDemand(1.89, NAN, 2), 1.89);
  EXPECT_DOUBLE_EQ(guestCpuDemand(1.9, NAN, 2), 3.0);   // 95% of its 2 vCPUs
  EXPECT_DOUBLE_EQ(guestCpuDemand(2.05, NAN, 2), 3.0);  // QEMU's own threads count too
  EXPECT_DOUBLE_EQ(guestCpuDemand(3.5, NAN, 2), 3.5);   // more than that seen: what was seen
  EXPECT_TRUE(std::isnan(guestCpuDemand(NAN, 0.5, 2)));
  // Waiting for a busy host's CPUs counts as wanted: ran 1.2, waited 0.3 of 2 vCPUs.
  EXPECT_DOUBLE_EQ(guestCpuDemand(1.2, 0.3, 2), 1.5);
  EXPECT_DOUBLE_EQ(guestCpuDemand(1.2, 0.7, 2), 3.0);  // ready 95% of the time: saturated
  EXPECT_DOUBLE_EQ(guestCpuDemand(1.2, -0.1, 2), 1.2);
}

// The point of guestCpuDemand: a guest lowered to one vCPU in an idle hour and then busy uses
// exactly that one vCPU, so its usage alone would keep it there for good.
TEST(GuestSizer, ABusyGuestLoweredInAQuietHourGetsItsVcpusBack) {
  Hypervisor h;
  h.guests["web"].demand = 0.3;
  Autoscaler scaler(applying(), std::make_unique<Hypervisor::Backend>(h), std::nullopt);
  GuestSizer sizer(h.reader(), scaler);
  double lowest_memory = HUGE_VAL;
  for (int i = 0; i < 360; ++i, h.advance(10)) {  // an hour, every 10 s
    ASSERT_TRUE(sizer.round(h.now));
    lowest_memory = std::min(lowest_memory, h.guests["web"].memory);
  }
  EXPECT_EQ(h.guests["web"].vcpus, 1);  // 4 -> 3 -> 2 -> 1, one vCPU a step, cool-downs between
  // The balloon came down too, never below what the guest uses plus the margin.
  EXPECT_LT(h.guests["web"].memory, 2 * kGiB);
  EXPECT_GE(lowest_memory, 1.1 * kGiB + 64 * 1024 * 1024 - 1);
  h.guests["web"].demand = 1.8;
  for (int i = 0; i < 30; ++i, h.advance(10)) ASSERT_TRUE(sizer.round(h.now));
  EXPECT_GE(h.guests["web"].vcpus, 2) << "a saturated guest must be given vCPUs back";
  EXPECT_LE(h.guests["web"].vcpus, 4);
}

// On a busy host a guest's vCPUs wait for host CPUs: it wants 1.5 cores but runs 0.9 of them.
// Sized on what it ran, it would lose its second vCPU and want it back as soon as the host is
// quiet; what its vCPUs waited for counts, so it keeps both.
TEST(GuestSizer, WhatAGuestWaitedForOnABusyHostCountsAsWanted) {
  Hypervisor h;
  auto& g = h.guests["web"];
  g.vcpus = 2;
  g.demand = 1.5;
  g.host_share = 0.6;
  Autoscaler scaler(applying(), std::make_unique<Hypervisor::Backend>(h), std::nullopt);
  GuestSizer sizer(h.reader(), scaler);
  for (int i = 0; i < 180; ++i, h.advance(10)) ASSERT_TRUE(sizer.round(h.now));
  EXPECT_EQ(g.cpu_applies, 0);
  EXPECT_EQ(g.vcpus, 2);
}

// A guest at its maximum vCPUs stays there (the planner's ceiling): no change that libvirt would
// refuse round after round.
TEST(GuestSizer, AGuestAtItsMaximumVcpusIsNotRaisedPastThem) {
  Hypervisor h;
  auto& g = h.guests["db"];
  g.vcpus = g.max_vcpus = 2;
  g.demand = 5;
  Autoscaler scaler(applying(), std::make_unique<Hypervisor::Backend>(h), std::nullopt);
  GuestSizer sizer(h.reader(), scaler);
  for (int i = 0; i < 90; ++i, h.advance(10)) ASSERT_TRUE(sizer.round(h.now));
  EXPECT_EQ(g.vcpus, 2);
  EXPECT_GT(g.applies, 0);  // the balloon, but never the vCPUs
  EXPECT_EQ(g.cpu_applies, 0);
  bool seen = false;
  for (const auto& row : scaler.view())
    if (row.workload == "db" && row.resource == Resource::kCpu) {
      seen = true;
      EXPECT_GT(row.forecast, 2.5);  // it wants more: saturated at 2, so 3
      EXPECT_DOUBLE_EQ(*row.target, 2.0);
    }
  EXPECT_TRUE(seen);
}

using test_support::adviceOf;

// A guest saturated at its maximum vCPUs and using all but a sliver of its maximum memory, on a
// host with room: after a minute above them the advice is to raise both maximums (a boot-time
// setting the loop cannot change), by how much and with which command; on a host without room,
// where the capacity should come from; and nothing once the guest fits again.
TEST(GuestSizer, AGuestAboveItsMaximumsIsAdvisedToRaiseThem) {
  for (const double host_cpus : {16.0, 2.0}) {
    SCOPED_TRACE(host_cpus);
    test_support::CapturedLog log;
    Hypervisor h;
    auto& g = h.guests["db"];
    g.vcpus = g.max_vcpus = 2;
    g.demand = 5;
    g.memory = g.max_memory = 2 * kGiB;
    g.used = 1.98 * kGiB;
    AutoscalerConfig c = applying();
    c.advice = test_support::adviceOn(host_cpus, 60, raiseGuestMaximum);
    Autoscaler scaler(c, std::make_unique<Hypervisor::Backend>(h), std::nullopt);
    GuestSizer sizer(h.reader(), scaler);
    const auto round = [&] {
      auto r = sizer.round(h.now);
      ASSERT_TRUE(r);
      EXPECT_EQ(r->errors, 0u) << "a change past a maximum: " << log.text();
    };
    const auto planned = [&] {
      for (const auto& row : scaler.view())
        if (row.workload == "db" && row.target) return true;
      return false;
    };
    for (int i = 0; i < 30 && !planned(); ++i, h.advance(10)) round();
    ASSERT_TRUE(planned());
    EXPECT_EQ(adviceOf(scaler, "db"), "") << "not before a minute above";
    for (int i = 0; i < 7; ++i, h.advance(10)) round();
    const std::string advice = adviceOf(scaler, "db");
    if (host_cpus == 16) {
      // Saturated at 2 vCPUs, it is taken to want 3 (guestCpuDemand); the forecast's upper
      // quantile may round that up to 4.
      EXPECT_TRUE(advice.starts_with("raise its maximum vCPUs to 3 (") || advice.starts_with("raise its maximum vCPUs to 4 ("))
          << advice;
      EXPECT_NE(advice.find(", a maximum of 2, 16 CPUs on the host): virsh setvcpus db "), std::string::npos) << advice;
      EXPECT_NE(advice.find("; raise its maximum memory to "), std::string::npos) << advice;
      EXPECT_NE(advice.find("a maximum of 2048 MiB, 8192 MiB on the host): virsh setmaxmem db "), std::string::npos)
          << advice;
      EXPECT_EQ(log.count("db: the forecast does not fit its own ceiling; raise its maximum vCPUs"), 1) << log.text();
    } else {  // 3 cores do not fit a 2-CPU host: capacity from elsewhere, the cheapest way (a
              // small machine beside it for a day, $0.10 an hour; a move to big costs $0.40)
      EXPECT_EQ(advice, "add small on-demand ($2.40 over 24 h)");
      EXPECT_EQ(log.count("db: the forecast does not fit this host"), 1) << log.text();
    }
    EXPECT_EQ(g.vcpus, 2);
    g.demand = 0.5;
    g.used = 0.5 * kGiB;
    for (int i = 0; i < 30; ++i, h.advance(10)) round();
    EXPECT_EQ(adviceOf(scaler, "db"), "");
  }
}

// The commands the advice gives do what it says, on libvirt's test driver (one virsh session: the
// driver's state lasts a connection): the definition's maximums become the advised ones.
TEST(RaiseGuestMaximum, TheVirshCommandsItAdvisesSetTheMaximums) {
  if (test_support::runShell("command -v virsh").exit_code != 0) GTEST_SKIP() << "no virsh (Debian's libvirt-clients)";
  const auto command = [](const std::string& advice) {
    const auto from = advice.find("virsh "), to = advice.find(" --config");
    EXPECT_TRUE(from != std::string::npos && to != std::string::npos) << advice;
    return advice.substr(from + 6, to + 9 - from - 6);
  };
  const std::string cpu = command(raiseGuestMaximum("test", Resource::kCpu, 2.4, 2, 16.0));
  const std::string memory = command(raiseGuestMaximum("test", Resource::kMemory, 8.5 * kGiB, 8 * kGiB, std::nullopt));
  EXPECT_EQ(cpu, "setvcpus test 3 --maximum --config");
  const auto ran = test_support::runShell(
      fmt::format("virsh -c test:///default '{}; {}; dumpxml test --inactive'", cpu, memory));
  ASSERT_EQ(ran.exit_code, 0) << ran.all();
  EXPECT_NE(ran.out.find("<vcpu placement='static' current='2'>3</vcpu>"), std::string::npos) << ran.all();
  EXPECT_NE(ran.out.find("<memory unit='KiB'>8912896</memory>"), std::string::npos) << ran.all();  // 8704 MiB
}

// A guest that booted with 2 of its 4 vCPUs: idle, it comes down to those 2 and no further (libvirt
// unplugs only hot-plugged vCPUs), with no refused change, and the log says why once.
TEST(GuestSizer, AGuestKeepsTheVcpusItBootedWith) {
  test_support::CapturedLog log;
  Hypervisor h;
  auto& g = h.guests["web"];
  g.min_vcpus = 2;
  g.demand = 0.2;
  Autoscaler scaler(applying(), std::make_unique<Hypervisor::Backend>(h), std::nullopt);
  GuestSizer sizer(h.reader(), scaler);
  for (int i = 0; i < 360; ++i, h.advance(10)) {
    auto r = sizer.round(h.now);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->errors, 0u) << log.text();
  }
  EXPECT_EQ(g.vcpus, 2);
  EXPECT_EQ(log.count("web: not given fewer than the 2 vCPUs it booted with"), 1) << log.text();
}

// A guest's first read gives no sample (no rate yet); a guest that stopped is forgotten; a guest
// that restarted between two rounds (cpu time back) gives no cpu rate for that interval.
TEST(GuestSizer, SamplesFromTheSecondReadForgetsStoppedGuestsAndSkipsARestart) {
  Hypervisor h;
  h.guests["a"].demand = 1;
  h.guests["b"].demand = 1;
  h.guests["b"].used = NAN;  // so that a restart leaves nothing to feed
  AutoscalerConfig c;
  c.min_samples = 1;
  c.min_history_seconds = 0;
  Autoscaler scaler(c, std::make_unique<Hypervisor::Backend>(h), std::nullopt);
  GuestSizer sizer(h.reader(), scaler);
  auto r = sizer.round(h.now);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->guests, 2u);
  EXPECT_EQ(r->samples, 0u);
  h.advance(10);
  r = sizer.round(h.now);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->samples, 2u);
  EXPECT_EQ(r->plans, 2u);
  h.advance(10);
  h.guests["b"].cpu_seconds = 0.5;  // restarted: its cpu time began again
  r = sizer.round(h.now);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->samples, 1u);
  h.guests.erase("a");
  h.advance(10);
  r = sizer.round(h.now);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->guests, 1u);
  for (const auto& row : scaler.view()) EXPECT_NE(row.workload, "a");
  h.fail = true;
  EXPECT_FALSE(sizer.round(h.now + 10));
}

// Without balloon statistics the loop cannot tell what the guest uses: its memory is left as it
// is (said once, with how to turn them on), while its vCPUs are still sized.
TEST(GuestSizer, AGuestWithoutBalloonStatisticsKeepsItsMemory) {
  test_support::CapturedLog log;
  Hypervisor h;
  auto& g = h.guests["legacy"];
  g.used = NAN;
  g.demand = 0.2;
  Autoscaler scaler(applying(), std::make_unique<Hypervisor::Backend>(h), std::nullopt);
  GuestSizer sizer(h.reader(), scaler);
  for (int i = 0; i < 120; ++i, h.advance(10)) ASSERT_TRUE(sizer.round(h.now));
  EXPECT_EQ(g.memory, 4 * kGiB);
  EXPECT_LT(g.vcpus, 4);
  EXPECT_EQ(log.count("legacy: its balloon driver reports no memory statistics"), 1) << log.text();
  EXPECT_EQ(log.count("virsh dommemstat legacy --period"), 1) << log.text();
}

// A guest whose statistics miss one round (its QEMU did not answer libvirt at once) is not warned
// about; two rounds in a row are.
TEST(GuestSizer, OneRoundWithoutBalloonStatisticsIsNoNews) {
  test_support::CapturedLog log;
  Hypervisor h;
  auto& g = h.guests["busy"];
  Autoscaler scaler(applying(), std::make_unique<Hypervisor::Backend>(h), std::nullopt);
  GuestSizer sizer(h.reader(), scaler);
  const auto round = [&](double used) {
    g.used = used;
    ASSERT_TRUE(sizer.round(h.now));
    h.advance(10);
  };
  const double none = std::numeric_limits<double>::quiet_NaN();
  for (double used : {1 * kGiB, 1 * kGiB, none, 1 * kGiB, none, 1 * kGiB}) round(used);
  EXPECT_EQ(log.count("busy: its balloon driver reports no memory statistics"), 0) << log.text();
  round(none);
  round(none);
  round(none);
  EXPECT_EQ(log.count("busy: its balloon driver reports no memory statistics"), 1) << log.text();
}

// The planner file's leave_alone: planned and shown, never resized.
TEST(GuestSizer, AGuestLeftAloneIsPlannedButNeverResized) {
  test_support::CapturedLog log;
  Hypervisor h;
  h.guests["db"].demand = 0.2;
  h.guests["web"].demand = 0.2;
  Autoscaler scaler(applying(), std::make_unique<Hypervisor::Backend>(h), std::nullopt);
  GuestSizer sizer(h.reader(), scaler);
  sizer.leaveAlone([](const std::string& guest) -> std::optional<std::string> {
    if (guest == "db") return std::string("it matches the planner policies' leave_alone 'db'");
    return std::nullopt;
  });
  for (int i = 0; i < 120; ++i, h.advance(10)) ASSERT_TRUE(sizer.round(h.now));
  EXPECT_EQ(h.guests["db"].applies, 0);
  EXPECT_EQ(h.guests["db"].vcpus, 4);
  EXPECT_GT(h.guests["web"].applies, 0);
  bool shown = false;
  for (const auto& row : scaler.view()) shown = shown || (row.workload == "db" && row.rule.find("(left alone)") != std::string::npos);
  EXPECT_TRUE(shown);
  EXPECT_EQ(log.count("db: left alone"), 1) << log.text();
}

// In this process, through libvirt's test driver: the guest's balloon driver says it uses half of
// its 3 GiB, so the balloon comes down a step (10%) and libvirt holds the new size.
TEST(GuestSizer, ResizesATestDriverGuestThroughLibvirt) {
  test_support::TestDriverGuest guest("sizer-web", 2, 4, 3072, 4096, true);
  ASSERT_TRUE(guest.running());
  AutoscalerConfig c = applying();
  c.min_samples = 3;
  c.min_history_seconds = 0;
  c.resources = {Resource::kMemory};
  allocate::BackendOptions o;
  o.values["uri"] = "test:///default";
  Autoscaler scaler(c, allocate::makeLibvirtBackend(o), std::nullopt);
  auto conn = std::make_shared<allocate::LibvirtConnection>("test:///default");
  GuestSizer sizer([conn] { return conn->runningGuests(); }, scaler);
  for (int i = 0; i < 4; ++i) {
    auto r = sizer.round(1'000'000 + 10 * i);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->errors, 0u);
  }
  auto now = conn->guest("sizer-web");
  ASSERT_TRUE(now) << now.error().message;
  EXPECT_NEAR(now->memory_bytes, 0.9 * 3 * kGiB, 1024);  // libvirt sets KiB
}

// The command as a user runs it: libvirt's default test domain (2 GiB, of which its balloon
// driver reports 1 GiB in use) is ballooned down a step, the change audited with the connection
// a rollback needs; /metrics shows the rounds and the plans.
TEST(GuestsCommand, ResizesATestDriverGuestAndAuditsIt) {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("foresight-guests-{}", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto log = dir / "log";
  test_support::Ran ran;
  std::thread command([&] {
    ran = test_support::runShell(fmt::format(
        "'{}' guests -c test:///default --period 0.2 --duration 4 --min-history 0 --apply --audit '{}' "
        "--no-view --listen 127.0.0.1:0 > '{}' 2>&1",
        FORESIGHT_BIN, (dir / "audit.db").string(), log.string()));
  });
  std::string metrics;
  const std::string want = R"(foresight_plan_target_memory_bytes{workload="test"})";
  for (int i = 0; i < 80 && metrics.find(want) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int port = test_support::loggedPort(log);
    if (port == 0) continue;
    httplib::Client http("127.0.0.1", port);
    if (auto res = http.Get("/metrics"); res && res->status == 200) metrics = res->body;
  }
  command.join();
  std::ifstream in(log);
  const std::string out((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(ran.exit_code, 0) << out;
  EXPECT_NE(metrics.find(want), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("foresight_guests_rounds_total "), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("foresight_guests_running 1"), std::string::npos) << metrics;
  auto audit = allocate::AuditLog::open((dir / "audit.db").string());
  ASSERT_TRUE(audit) << audit.error().message;
  auto records = audit->list("", 100);
  ASSERT_TRUE(records) << records.error().message;
  ASSERT_FALSE(records->empty()) << out;
  const auto& first = records->back();  // newest first
  EXPECT_EQ(first.workload, "test");
  EXPECT_EQ(first.backend, "libvirt");
  EXPECT_EQ(first.options.get("uri"), "test:///default");
  EXPECT_DOUBLE_EQ(*first.before[Resource::kMemory], 2 * kGiB);
  EXPECT_NEAR(*first.after[Resource::kMemory], 0.9 * 2 * kGiB, 1024);
  // A connection that fails is said at once, naming it.
  const auto wrong = test_support::runShell(fmt::format("'{}' guests -c test:///no/such.xml --no-view --listen ''", FORESIGHT_BIN));
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.all().find("cannot connect to test:///no/such.xml"), std::string::npos) << wrong.all();
  const auto no_catalog = test_support::runShell(
      fmt::format("'{}' guests -c test:///default --catalog /no/such.yaml --no-view --listen ''", FORESIGHT_BIN));
  EXPECT_EQ(no_catalog.exit_code, 1);
  EXPECT_NE(no_catalog.all().find("--catalog /no/such.yaml: no such file"), std::string::npos) << no_catalog.all();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace foresight::loop
