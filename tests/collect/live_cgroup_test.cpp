// Integration on this machine: a child with a known CPU, memory and I/O load runs in a cgroup the
// test creates; the collectors must report that load. Needs root and a cgroup v1 or v2 hierarchy
// with cpu/cpuacct/memory; skips with the reason otherwise.
#include <fcntl.h>
#include <sched.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <thread>
#include <vector>

#include "foresight/collect/collector.h"
#include "foresight/collect/kernel_files.h"
#include "foresight/collect/launch.h"
#include "foresight/collect/perf.h"
#include "foresight/collect/sampler.h"
#include "support/cleanup.h"
#include "support/host_sampler.h"
#include "support/test_cgroup.h"

using namespace foresight;
using namespace foresight::collect;
namespace fs = std::filesystem;

namespace {

using foresight::test_support::hostSampler;
using foresight::test_support::TestCgroup;

constexpr const char* kLocal = "cpu_throttled_local_seconds_total";

double processCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// Moves `child` into the test cgroup, samples the cgroup, then lets the child go on (a byte on
// `go_fd`): the sample is the "before" of the child's load.
Result<Sample> joinSampleAndRelease(TestCgroup& cg, pid_t child, Sampler& sampler, const Workload& w,
                                    int go_fd) {
  cg.join(child);
  auto before = sampler.sampleOne(w);
  // Released even when sampling failed, so that no child is left waiting.
  if (::write(go_fd, "g", 1) != 1) return fail(ErrorCode::kIo, "cannot release the child");
  return before;
}

// This host for the throttling tests: root and a cpu controller; detail rounds 1000 apart, so the
// few rounds a test takes after the first are not detail rounds (the tests check). Empty: usable.
std::string throttlingHost(CollectorContext& ctx) {
  if (::geteuid() != 0) return "needs root to create cgroups";
  ctx.clock_ticks = sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  ctx.detail_every = 1000;
  if (ctx.layout.version != CgroupVersion::kV2 && !(ctx.layout.v1("cpu") && ctx.layout.v1("cpuacct")))
    return "no cpu controller";
  return {};
}

// A child that burns CPU until killed; -1 when fork failed.
pid_t busyChild() {
  const pid_t child = ::fork();
  if (child == 0) {
    volatile double x = 0;
    for (;;) x = x + 1.0;
  }
  return child;
}

}  // namespace

TEST(LiveCgroup, MeasuresKnownCpuMemoryAndIoLoad) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  CollectorContext ctx;
  ctx.clock_ticks = sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  if (ctx.layout.version == CgroupVersion::kNone) GTEST_SKIP() << "no cgroup hierarchy mounted";
  if (ctx.layout.version != CgroupVersion::kV2 && !(ctx.layout.v1("cpuacct") && ctx.layout.v1("memory")))
    GTEST_SKIP() << "cgroup v1 without cpuacct and memory controllers";
  const std::string name = "foresight-test-" + std::to_string(::getpid());
  TestCgroup cg(ctx.layout, name);
  if (!cg.error().empty()) GTEST_SKIP() << "cannot create a cgroup: " << cg.error();

  constexpr double kCpuSeconds = 0.6;
  constexpr std::size_t kMemBytes = 64u << 20, kIoBytes = 16u << 20;
  const fs::path io_file = fs::path(FORESIGHT_SOURCE_DIR) / ("build-live-io-" + std::to_string(::getpid()));
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    if (::read(go[0], &c, 1) != 1) _exit(1);  // wait until moved into the cgroup
    const double start = processCpuSeconds();
    volatile double x = 0;
    while (processCpuSeconds() - start < kCpuSeconds) x = x + 1.0;
    std::vector<char> mem(kMemBytes);
    for (std::size_t i = 0; i < mem.size(); i += 4096) mem[i] = 1;  // touch every page
    int fd = ::open(io_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char> block(1 << 20, 'x');
    for (std::size_t done = 0; done < kIoBytes; done += block.size())
      if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) _exit(2);
    ::fsync(fd);  // write_bytes is counted when the pages reach the disk
    ::close(fd);
    // The child's own CPU clock brackets what the cgroup must have charged: at least what it
    // used since it was let go, at most all it used since fork.
    const double spent[2] = {start, processCpuSeconds()};
    if (::write(ready[1], spent, sizeof spent) != static_cast<ssize_t>(sizeof spent)) _exit(3);
    if (::read(go[0], &c, 1) != 1) _exit(4);  // stay alive (memory held) while sampled
    _exit(mem[4096] == 1 ? 0 : 5);
  }
  const Workload w{Workload::Kind::kCgroup, "/" + name, "/" + name, 0};
  auto sampler = hostSampler(ctx);
  ASSERT_TRUE(sampler);
  auto before = joinSampleAndRelease(cg, child, *sampler, w, go[1]);
  ASSERT_TRUE(before) << before.error().message;
  double spent[2];
  ASSERT_EQ(::read(ready[0], spent, sizeof spent), static_cast<ssize_t>(sizeof spent));
  auto after = sampler->sampleOne(w);
  ASSERT_TRUE(after) << after.error().message;
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  fs::remove(io_file);
  EXPECT_EQ(WEXITSTATUS(status), 0);

  const double cpu = after->get("cpu_usage_seconds_total") - before->get("cpu_usage_seconds_total");
  EXPECT_GE(cpu, kCpuSeconds);  // the child burnt at least this much CPU in the cgroup
  // Exactly the child's own CPU, whatever page-touching and writing cost on a loaded machine:
  // between its use since release and its use since fork, plus the syscall that reported it.
  EXPECT_GE(cpu, spent[1] - spent[0] - 1e-3);
  EXPECT_LE(cpu, spent[1] + 0.02);
  EXPECT_GE(after->get("memory_usage_bytes"), kMemBytes);
  EXPECT_GE(after->get("memory_anon_bytes"), kMemBytes);
  EXPECT_GE(after->get("proc_rss_bytes"), kMemBytes);
  const double written = after->get("proc_write_bytes_total") - before->get("proc_write_bytes_total");
  EXPECT_GE(written, kIoBytes);
  EXPECT_LT(written, kIoBytes * 1.5);
  EXPECT_EQ(after->get("proc_processes"), 1);
}

// A child that outgrows the cgroup's memory limit is OOM-killed; the collector counts the kill
// and resourceDemand turns it into VPA's bump of the limit.
TEST(LiveCgroup, OomKillIsCountedAndBecomesMemoryDemand) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  CollectorContext ctx;
  ctx.clock_ticks = sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  const bool v2 = ctx.layout.version == CgroupVersion::kV2;
  if (!v2 && !ctx.layout.v1("memory")) GTEST_SKIP() << "no memory controller";
  const std::string name = "foresight-oom-test-" + std::to_string(::getpid());
  TestCgroup cg(ctx.layout, name);
  if (!cg.error().empty()) GTEST_SKIP() << "cannot create a cgroup: " << cg.error();
  const fs::path mem = v2 ? ctx.layout.unified / name : *ctx.layout.v1("memory") / name;
  constexpr double kLimit = 32u << 20;
  auto write = [](const fs::path& f, const std::string& v) {
    std::ofstream o(f);
    o << v << '\n';
    o.flush();
    return static_cast<bool>(o);
  };
  ASSERT_TRUE(write(mem / (v2 ? "memory.max" : "memory.limit_in_bytes"), "33554432"));
  // No swap to escape into: the kill must come.
  if (v2) write(mem / "memory.swap.max", "0");
  else if (fs::exists(mem / "memory.memsw.limit_in_bytes")) write(mem / "memory.memsw.limit_in_bytes", "33554432");

  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char c;
    if (::read(go[0], &c, 1) != 1) _exit(1);
    std::vector<char> big(128u << 20);
    for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = 1;
    _exit(0);  // not reached under the limit
  }
  const Workload w{Workload::Kind::kCgroup, "/" + name, "/" + name, 0};
  auto sampler = hostSampler(ctx);
  ASSERT_TRUE(sampler);
  auto before = joinSampleAndRelease(cg, child, *sampler, w, go[1]);
  ASSERT_TRUE(before) << before.error().message;
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  auto after = sampler->sampleOne(w);
  ASSERT_TRUE(after) << after.error().message;

  ASSERT_TRUE(before->has("memory_oom_kills_total"));
  EXPECT_EQ(before->get("memory_oom_kills_total"), 0);
  EXPECT_GE(after->get("memory_oom_kills_total"), 1);
  EXPECT_EQ(after->get("memory_limit_bytes"), kLimit);
  const auto d = resourceDemand(*before, *after, resourceUsage(*before, *after), 8);
  EXPECT_DOUBLE_EQ(d[index(Resource::kMemory)], memoryDemandAfterOomKill(kLimit));
}

// A workload that reads a 96 MiB file over and over under 60 MiB thrashes its page cache and
// stalls on memory (PSI). Under a limit of its own, the kernel counts the charges that hit it
// (memory_limit_hits_total) and the stall is the cgroup's. Under a parent's 60 MiB, with 62 MiB
// of its own, it runs at over 90 % of its own limit and stalls as much, but never hits that
// limit: raising it would not help, and the stall does not count.
TEST(LiveCgroup, AMemoryStallCountsOnlyWhereTheCgroupsOwnLimitIsHit) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  CollectorContext ctx;
  ctx.clock_ticks = sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  ctx.detail_every = 1;  // every round reads memory.stat, the limit hits and PSI
  const bool v2 = ctx.layout.version == CgroupVersion::kV2;
  if (!v2 && !ctx.layout.v1("memory")) GTEST_SKIP() << "no memory controller";
  if (!fs::exists("/proc/pressure/memory")) GTEST_SKIP() << "needs a kernel with PSI (/proc/pressure/memory)";
  const fs::path mem_root = v2 ? ctx.layout.unified : *ctx.layout.v1("memory");
  const fs::path file =
      test_support::removedAtExit(fs::current_path() / ("foresight-thrash-" + std::to_string(::getpid())));
  {
    std::ofstream o(file, std::ios::binary);
    const std::vector<char> mib(1 << 20, 1);
    for (int i = 0; i < 96; ++i) o.write(mib.data(), static_cast<std::streamsize>(mib.size()));
    ASSERT_TRUE(o) << "cannot write " << file;
  }
  const auto limit = [&](const std::string& cg, const char* bytes) {
    std::ofstream(mem_root / cg / (v2 ? "memory.max" : "memory.limit_in_bytes")) << bytes << '\n';
  };
  // Two samples 2 s apart of `cg` while a child thrashes the file in it, after 1 s to fill it.
  auto thrashIn = [&](TestCgroup& cg, const std::string& path) -> std::pair<Result<Sample>, Result<Sample>> {
    const int fd = ::open(file.c_str(), O_RDONLY);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // charged to the cgroup that reads it next
    ::close(fd);
    int go[2];
    if (::pipe(go) != 0) return {fail(ErrorCode::kIo, "pipe"), fail(ErrorCode::kIo, "pipe")};
    const pid_t child = ::fork();
    if (child == 0) {
      char c;
      if (::read(go[0], &c, 1) != 1) _exit(1);
      std::vector<char> buf(1 << 20);
      for (;;) {
        const int in = ::open(file.c_str(), O_RDONLY);
        while (::read(in, buf.data(), buf.size()) > 0) {}
        ::close(in);
      }
    }
    cg.join(child);
    [[maybe_unused]] const auto released = ::write(go[1], "g", 1);
    const Workload w{Workload::Kind::kCgroup, path, path, 0};
    auto sampler = hostSampler(ctx);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    auto a = sampler ? sampler->sampleOne(w) : Result<Sample>(tl::unexpected(sampler.error()));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    auto b = sampler ? sampler->sampleOne(w) : Result<Sample>(tl::unexpected(sampler.error()));
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::close(go[0]);
    ::close(go[1]);
    return {std::move(a), std::move(b)};
  };

  const std::string own = "foresight-stall-own-" + std::to_string(::getpid());
  const std::string parent = "foresight-stall-parent-" + std::to_string(::getpid());
  {
    TestCgroup cg(ctx.layout, own);
    if (!cg.error().empty()) GTEST_SKIP() << "cannot create a cgroup: " << cg.error();
    limit(own, "62914560");  // 60 MiB
    auto [a, b] = thrashIn(cg, "/" + own);
    ASSERT_TRUE(a && b) << (a ? b.error().message : a.error().message);
    if (!b->has("psi_memory_some_seconds_total")) GTEST_SKIP() << "no PSI file in the cgroup";
    ASSERT_TRUE(b->has("memory_limit_hits_total"));
    EXPECT_GT(b->get("memory_limit_hits_total"), a->get("memory_limit_hits_total"));
    EXPECT_GT(b->get("psi_memory_some_seconds_total"), a->get("psi_memory_some_seconds_total"));
    EXPECT_GT(memoryStallAtLimit(*a, *b), 0.0);
  }
  TestCgroup p(ctx.layout, parent), c(ctx.layout, parent + "/app");
  ASSERT_TRUE(p.error().empty() && c.error().empty()) << p.error() << c.error();
  if (v2) std::ofstream(ctx.layout.unified / parent / "cgroup.subtree_control") << "+memory\n";
  limit(parent, "62914560");        // 60 MiB
  limit(parent + "/app", "65011712");  // 62 MiB
  auto [a, b] = thrashIn(c, "/" + parent + "/app");
  ASSERT_TRUE(a && b) << (a ? b.error().message : a.error().message);
  // Over 90 % of its own limit, stalled, and not one charge at its own limit.
  ASSERT_GE(b->get("memory_usage_bytes"), 0.9 * b->get("memory_limit_bytes"));
  EXPECT_GT(b->get("psi_memory_some_seconds_total"), a->get("psi_memory_some_seconds_total"));
  EXPECT_EQ(b->get("memory_limit_hits_total"), a->get("memory_limit_hits_total"));
  EXPECT_EQ(memoryStallAtLimit(*a, *b), 0.0);
}

// cpu.stat is read every round for a cgroup with a CFS quota of its own, whose throttling is what
// makes its cpu demand exceed its usage; without one the file holds zeros and is read in the
// detail rounds only (on cgroup v1; v2's cpu.stat also carries the usage, so it is read always).
// A quota set between detail rounds is read in the next round when the setter says so
// (refreshLimits, as `foresight run` does after applying a limit).
TEST(LiveCgroup, ThrottlingIsReadEveryRoundUnderAQuotaFromTheRoundAfterItIsSet) {
  CollectorContext ctx;
  if (auto why = throttlingHost(ctx); !why.empty()) GTEST_SKIP() << why;
  const bool v2 = ctx.layout.version == CgroupVersion::kV2;
  const std::string base = "foresight-quota-test-" + std::to_string(::getpid());
  TestCgroup limited(ctx.layout, base + "-q"), free(ctx.layout, base + "-f");
  if (!limited.error().empty()) GTEST_SKIP() << "cannot create a cgroup: " << limited.error();
  ASSERT_TRUE(free.error().empty()) << free.error();
  const fs::path cpu = v2 ? ctx.layout.unified / (base + "-q") : *ctx.layout.v1("cpu") / (base + "-q");

  std::vector<pid_t> children;
  for (TestCgroup* cg : {&limited, &free}) {
    children.push_back(busyChild());
    ASSERT_GT(children.back(), 0);
    cg->join(children.back());
  }
  const Workload q{Workload::Kind::kCgroup, "/" + base + "-q", "/" + base + "-q", 0};
  const Workload f{Workload::Kind::kCgroup, "/" + base + "-f", "/" + base + "-f", 0};
  auto sampler = hostSampler(ctx);
  ASSERT_TRUE(sampler);
  std::vector<Sampler::Round> rounds;
  for (int i = 0; i < 3; ++i) {
    rounds.push_back(sampler->sample({q, f}));
    if (i == 0) {  // the quota comes after the first round, as the allocator sets it
      std::ofstream(cpu / (v2 ? "cpu.max" : "cpu.cfs_quota_us")) << (v2 ? "10000 100000\n" : "10000\n");
      sampler->refreshLimits(q.id);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  for (pid_t c : children) ::kill(c, SIGKILL);
  for (pid_t c : children) ::waitpid(c, nullptr, 0);

  for (const auto& r : rounds) ASSERT_EQ(r.samples.size(), 2u);
  EXPECT_TRUE(rounds[0].samples[0].detail);  // a workload's first sample reads everything
  EXPECT_TRUE(rounds[0].samples[1].has("cpu_throttled_seconds_total"));
  // cpu.stat.local where the kernel has it (6.6+), else cpu.stat.
  const char* throttled = rounds[0].samples[0].has(kLocal) ? kLocal : "cpu_throttled_seconds_total";
  for (int i : {1, 2}) {
    const Sample& s = rounds[i].samples[0];
    ASSERT_FALSE(s.detail);
    ASSERT_TRUE(s.has(throttled)) << "round " << i << " " << throttled;
    EXPECT_GT(s.get(throttled), rounds[i - 1].samples[0].get(throttled))
        << "round " << i << ": a busy loop at 0.1 core is throttled";
    EXPECT_EQ(s.get("cpu_limit_cores"), 0.1);
    const auto d = resourceDemand(rounds[i - 1].samples[0], s, resourceUsage(rounds[i - 1].samples[0], s), 64);
    EXPECT_GT(d[index(Resource::kCpu)], 0.5) << "throttled time is demand";
    EXPECT_FALSE(rounds[i].samples[1].has(kLocal)) << "read without a quota";
    if (!v2) {
      EXPECT_FALSE(rounds[i].samples[1].has("cpu_throttled_seconds_total")) << "read without a quota";
    }
  }
}

// A workload without a quota of its own under a parent with one: its own cpu.stat shows no
// throttling, cpu.stat.local does (kernel 6.6+), and the throttled time is its demand.
TEST(LiveCgroup, ThrottlingByAnAncestorsQuotaIsDemand) {
  CollectorContext ctx;
  if (auto why = throttlingHost(ctx); !why.empty()) GTEST_SKIP() << why;
  const bool v2 = ctx.layout.version == CgroupVersion::kV2;
  const std::string parent = "foresight-parent-quota-test-" + std::to_string(::getpid());
  TestCgroup p(ctx.layout, parent), c(ctx.layout, parent + "/app");
  if (!p.error().empty() || !c.error().empty()) GTEST_SKIP() << "cannot create cgroups: " << p.error() << c.error();
  if (v2) std::ofstream(ctx.layout.unified / parent / "cgroup.subtree_control") << "+cpu\n";
  const fs::path pcpu = v2 ? ctx.layout.unified / parent : *ctx.layout.v1("cpu") / parent;
  std::ofstream(pcpu / (v2 ? "cpu.max" : "cpu.cfs_quota_us")) << (v2 ? "10000 100000\n" : "10000\n");
  if (!fs::exists(pcpu / "app" / "cpu.stat.local")) GTEST_SKIP() << "kernel without cpu.stat.local (6.6+)";

  const pid_t child = busyChild();
  ASSERT_GT(child, 0);
  c.join(child);
  const Workload w{Workload::Kind::kCgroup, "/" + parent + "/app", "/" + parent + "/app", 0};
  auto sampler = hostSampler(ctx);
  ASSERT_TRUE(sampler);
  std::vector<Sampler::Round> rounds;
  for (int i = 0; i < 3; ++i) {
    rounds.push_back(sampler->sample({w}));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);

  for (const auto& r : rounds) ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_TRUE(std::isinf(rounds[0].samples[0].get("cpu_limit_cores")) || v2) << "no quota of its own";
  for (int i : {1, 2}) {
    const Sample& prev = rounds[i - 1].samples[0];
    const Sample& s = rounds[i].samples[0];
    ASSERT_FALSE(s.detail);
    ASSERT_TRUE(s.has(kLocal)) << "round " << i;
    EXPECT_GT(s.get(kLocal), prev.get(kLocal)) << "round " << i;
    const auto u = resourceUsage(prev, s);
    EXPECT_LT(u[index(Resource::kCpu)], 0.3) << "held to about 0.1 core by the parent";
    EXPECT_GT(resourceDemand(prev, s, u, 64)[index(Resource::kCpu)], 0.5) << "throttled time is demand";
  }
}

// A cgroup pinned to one CPU: the collectors report it and it bounds cpu demand on a larger host.
TEST(LiveCgroup, CpusetOfOneCpuBoundsCpuDemand) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  CollectorContext ctx;
  ctx.clock_ticks = sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  const bool v2 = ctx.layout.version == CgroupVersion::kV2;
  fs::path parent;
  if (v2) {
    std::ifstream in(ctx.layout.unified / "cgroup.subtree_control");
    std::string c;
    while (in >> c && c != "cpuset") {}
    if (c != "cpuset") GTEST_SKIP() << "cpuset not enabled for the root's children (not changed here)";
    parent = ctx.layout.unified;
  } else if (auto d = ctx.layout.v1("cpuset")) {
    parent = *d;
  } else {
    GTEST_SKIP() << "no cpuset controller";
  }
  const std::string name = "foresight-test-cpuset-" + std::to_string(::getpid());
  TestCgroup cg(ctx.layout, name);
  if (!cg.error().empty()) GTEST_SKIP() << "cannot create a cgroup: " << cg.error();
  const fs::path dir = parent / name;
  std::error_code ec;
  if (!v2) fs::create_directory(dir, ec);
  ASSERT_FALSE(ec) << dir << ": " << ec.message();
  struct Remove {
    fs::path d;
    bool own;
    ~Remove() { if (own) ::rmdir(d.c_str()); }
  } remove{dir, !v2};
  // v1 needs mems set before cpus mean anything; copy the parent's.
  if (!v2) {
    std::string mems;
    std::getline(std::ifstream(parent / "cpuset.mems"), mems);
    std::ofstream(dir / "cpuset.mems") << mems << '\n';
  }
  std::ofstream(dir / "cpuset.cpus") << "0\n";
  const Workload w{Workload::Kind::kCgroup, "/" + name, "/" + name, 0};
  auto sampler = hostSampler(ctx);
  ASSERT_TRUE(sampler);
  auto a = sampler->sampleOne(w);
  ASSERT_TRUE(a) << a.error().message;
  ASSERT_TRUE(a->has("cpuset_cpus")) << dir;
  EXPECT_EQ(a->get("cpuset_cpus"), 1);
  // 3 s of throttling per second on a 1-CPU cpuset of an 8-CPU host: demand is at most 1 core.
  Sample before{"w", 0, {}}, after{"w", 1'000'000'000, {}};
  before.add("cpu_throttled_seconds_total", 0);
  after.add("cpu_throttled_seconds_total", 3);
  after.add("cpuset_cpus", a->get("cpuset_cpus"));
  std::array<double, kResourceCount> u{};
  u[index(Resource::kCpu)] = 0.5;
  EXPECT_DOUBLE_EQ(resourceDemand(before, after, u, 8)[index(Resource::kCpu)], 1.0);
}

// Stopping a launched command takes the children it started with it, also ones it left running
// when it exited: any of them would outlive the recording and keep its cgroup (rmdir EBUSY).
// On a hybrid host the command's cgroup is made on the unified side too, and goes with the others.
TEST(LiveLaunch, StoppingACommandEndsItsChildrenAndRemovesItsCgroup) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  CollectorContext ctx;
  ctx.layout = detectCgroupLayout(ctx.paths);
  if (ctx.layout.version == CgroupVersion::kNone) GTEST_SKIP() << "no cgroup hierarchy mounted";
  auto comm = [](pid_t p) {  // "" once the process is gone (or a zombie, which holds nothing)
    auto stat = readKernelFile("/proc/" + std::to_string(p) + "/stat");
    if (!stat || stat->find(") Z") != std::string::npos) return std::string();
    auto c = readKernelFile("/proc/" + std::to_string(p) + "/comm");
    return c ? *c : std::string();
  };
  for (const char* script : {"sleep 100; echo done", "sleep 100 & exit 0"}) {
    fs::path dir, unified;
    pid_t sleeper = -1;
    {
      auto l = LaunchedWorkload::start(ctx, {"sh", "-c", script});
      ASSERT_TRUE(l) << l.error().message;
      if (l->workload().kind != Workload::Kind::kCgroup) GTEST_SKIP() << "cannot create a cgroup";
      dir = cgroupPath(ctx.layout.reference(), l->workload().cgroup);
      for (int i = 0; i < 500 && sleeper < 0; ++i) {
        if (auto text = readKernelFile(dir / "cgroup.procs"))
          for (pid_t p : parsePids(*text))
            if (comm(p) == "sleep\n") sleeper = p;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_GT(sleeper, 0) << script << ": the child never showed up in " << dir;
      if (ctx.layout.version == CgroupVersion::kHybrid && !ctx.layout.unified.empty()) {
        // Placed on the unified side too, where a hybrid host keeps PSI (and perf's cgroup events).
        unified = ctx.layout.unified / dir.filename();
        const auto procs = readKernelFile(unified / "cgroup.procs");
        ASSERT_TRUE(procs) << unified;
        const auto pids = parsePids(*procs);
        EXPECT_NE(std::find(pids.begin(), pids.end(), sleeper), pids.end()) << unified;
        ctx.clock_ticks = sysconf(_SC_CLK_TCK);
        auto sampler = test_support::hostSampler(ctx);
        ASSERT_TRUE(sampler);
        auto s = sampler->sampleOne(l->workload());
        ASSERT_TRUE(s) << s.error().message;
        if (fs::exists(unified / "cpu.pressure")) {
          EXPECT_TRUE(s->has("psi_cpu_some_seconds_total")) << "no PSI read from " << unified;
        }
      }
    }
    EXPECT_EQ(comm(sleeper), "") << script << ": the child outlived the command's end";
    EXPECT_FALSE(fs::exists(dir)) << script;
    if (!unified.empty()) {
      EXPECT_FALSE(fs::exists(unified)) << script;
    }
    if (comm(sleeper) == "sleep\n") {  // failed: leave nothing behind
      ::kill(sleeper, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const std::string name = dir.filename().string();
      ::rmdir((ctx.layout.unified / name).c_str());
      for (const char* c : {"cpu", "cpuacct", "memory", "blkio", "pids"})
        if (auto d = ctx.layout.v1(c)) ::rmdir((*d / name).c_str());
    }
  }
}

// As PID 1 of a pid namespace (a container's entrypoint), the agent is given the orphans of the
// command's tree: exited() reaps them, and still reports the command's own exit code.
TEST(LiveLaunch, AsPid1TheOrphansOfTheCommandAreReaped) {
  const pid_t outer = ::fork();
  ASSERT_GE(outer, 0);
  if (outer == 0) {
    if (::unshare(CLONE_NEWPID) != 0) _exit(77);
    const pid_t init = ::fork();  // PID 1 of the new namespace
    if (init < 0) _exit(78);
    if (init == 0) {
      CollectorContext ctx;  // no hierarchy: a process tree, nothing to clean up
      // The shell ends at once; its background sleep is orphaned and ends 0.1 s later.
      auto l = LaunchedWorkload::start(ctx, {"sh", "-c", "sleep 0.1 & exit 3"});
      if (!l) _exit(10);
      bool done = false;
      for (int i = 0; i < 300 && !done; ++i) {
        done = l->exited();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (!done) _exit(11);
      if (l->exitCode() != 3) _exit(12);
      for (int i = 0; i < 50; ++i) {  // half a second for the sleep to end, calling as a loop would
        l->exited();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      errno = 0;
      const pid_t zombie = ::waitpid(-1, nullptr, WNOHANG);
      _exit(zombie == -1 && errno == ECHILD ? 0 : 13);
    }
    int st = 0;
    ::waitpid(init, &st, 0);
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 79);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(outer, &st, 0), outer);
  ASSERT_TRUE(WIFEXITED(st));
  if (WEXITSTATUS(st) == 77) GTEST_SKIP() << "cannot make a pid namespace (needs root)";
  // 10: no start; 11: the command never seen to end; 12: wrong exit code; 13: a zombie left.
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(LivePerf, SoftwareCountersWorkAndRefusedHardwareIsReported) {
  CollectorContext ctx;
  ctx.clock_ticks = sysconf(_SC_CLK_TCK);
  auto perf = makePerfCollector(ctx, systemPerfOpener());
  Workload self{Workload::Kind::kProcessTree, "self", "", ::getpid()};
  Sample a, b;
  ASSERT_TRUE(perf->collect(self, {::getpid()}, a));
  if (a.get("perf_task_clock_supported") == 0) GTEST_SKIP() << "perf_event_open refused (paranoid?)";
  volatile double x = 0;
  const double start = processCpuSeconds();
  while (processCpuSeconds() - start < 0.05) x = x + 1;
  ASSERT_TRUE(perf->collect(self, {::getpid()}, b));
  EXPECT_GE(b.get("perf_task_clock_seconds_total") - a.get("perf_task_clock_seconds_total"), 0.04);
  // Each hardware event is either counted or reported as refused, never silently absent.
  for (const char* e : {"cycles", "instructions", "cache_misses"}) {
    const std::string sup = std::string("perf_") + e + "_supported";
    const std::string tot = std::string("perf_") + e + "_total";
    ASSERT_TRUE(b.has(sup)) << sup;
    EXPECT_EQ(b.has(tot), b.get(sup) == 1) << e;
  }
}

// A cgroup of the unified (v2) hierarchy holding a busy child: its cgroup task-clock rises with
// the CPU the child burns (measured from the child's /proc/PID/stat).
TEST(LivePerf, CgroupTaskClockFollowsTheCpuBurnedInIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  CollectorContext ctx;
  ctx.clock_ticks = sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  if (ctx.layout.unified.empty()) GTEST_SKIP() << "no unified (v2) hierarchy";
  const std::string name = "foresight-perf-test-" + std::to_string(::getpid());
  const fs::path dir = ctx.layout.unified / name;
  std::error_code ec;
  if (!fs::create_directory(dir, ec)) GTEST_SKIP() << dir << ": " << ec.message();
  pid_t child = ::fork();
  if (child == 0) {
    volatile unsigned long x = 0;
    for (;;) x = x + 1;
  }
  auto cleanup = [&] {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ::rmdir(dir.c_str());
  };
  std::ofstream(dir / "cgroup.procs") << child << '\n';
  auto childCpu = [&] {  // utime + stime, in seconds
    std::ifstream in("/proc/" + std::to_string(child) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::istringstream rest(text.substr(text.rfind(')') + 2));
    std::string f;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> f; ++i)
      if (i >= 14) ticks += std::stod(f);
    return ticks / static_cast<double>(ctx.clock_ticks);
  };
  auto perf = makePerfCollector(ctx, systemPerfOpener());
  const Workload w{Workload::Kind::kCgroup, "/" + name, "/" + name, 0};
  Sample a, b;
  ASSERT_TRUE(perf->collect(w, {child}, a));
  const double cpu0 = childCpu();
  if (a.get("perf_cgroup_supported") != 1 || !a.has("perf_task_clock_seconds_total")) {
    cleanup();
    GTEST_SKIP() << "cgroup perf events unavailable here";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(perf->collect(w, {child}, b));
  const double burned = childCpu() - cpu0;
  cleanup();
  const double counted = b.get("perf_task_clock_seconds_total") - a.get("perf_task_clock_seconds_total");
  ASSERT_GT(burned, 0.2);  // even on a loaded host the child runs
  // /proc ticks have 1/HZ resolution and are sampled at slightly different instants.
  EXPECT_NEAR(counted, burned, 0.15 * burned + 0.05) << "burned " << burned << " s";
}
