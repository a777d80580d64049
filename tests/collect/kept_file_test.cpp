// KeptFile (kernel files kept open and re-read with pread) and the collectors' fd caches: fresh
// content each read, missing files, the fd budget, fds released when processes and workloads go
// away (generated fixture trees under a temp dir); and on the live kernel (root only) an exited
// process, a reused pid and a cgroup removed and re-created under the same path.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "foresight/collect/kernel_files.h"
#include "foresight/collect/sampler.h"
#include "support/test_cgroup.h"

using namespace foresight;
using namespace foresight::collect;
namespace fs = std::filesystem;

namespace {

fs::path tempTree(const std::string& name) {
  fs::path d = fs::path(testing::TempDir()) / (name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// Rewrites in place (same inode), as the kernel's files change under a kept fd.
void rewrite(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::in | std::ios::out | std::ios::trunc) << text;
}

// A cgroup v2 host with `n` cgroups /w<i>, each holding process 1000+i.
fs::path v2Host(const std::string& name, int n) {
  const fs::path root = tempTree(name);
  const fs::path cg = root / "sys/fs/cgroup";
  write(cg / "cgroup.controllers", "cpu memory io\n");
  for (int i = 0; i < n; ++i) {
    const fs::path d = cg / std::string("w").append(std::to_string(i));
    const int pid = 1000 + i;
    write(d / "cgroup.procs", std::to_string(pid) + "\n");
    write(d / "cpu.stat",
          "usage_usec " + std::to_string(1000 * i) + "\nuser_usec 1\nsystem_usec 2\n");
    write(d / "memory.current", "4096\n");
    write(d / "memory.stat", "anon 1\nfile 2\ninactive_file 3\npgfault 4\npgmajfault 5\n");
    const fs::path p = root / "proc" / std::to_string(pid);
    write(p / "stat",
          std::to_string(pid) + " (x) S 1 1 1 0 -1 0 10 0 0 0 100 50 0 0 20 0 1 0 1 0 0\n");
    write(
        p / "status",
        "Name:\tx\nVmRSS:\t   8 kB\nvoluntary_ctxt_switches:\t3\nnonvoluntary_ctxt_switches:\t4\n");
    write(p / "schedstat", "1 2 3\n");
    write(p / "io", "read_bytes: 5\nwrite_bytes: 6\n");
  }
  return root;
}

Workload cgroupWorkload(int i) {
  const std::string path = "/w" + std::to_string(i);
  return {Workload::Kind::kCgroup, path, path, 0};
}

Sampler makeSampler(const fs::path& root, const std::vector<std::string>& collectors) {
  CollectorContext ctx;
  ctx.paths = HostPaths(root);
  ctx.layout = detectCgroupLayout(ctx.paths);
  ctx.detail_every = 1;  // these tests follow the per-process files round by round
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto s = Sampler::create(ctx, collectors, reg);
  EXPECT_TRUE(s.has_value());
  return std::move(*s);
}

}  // namespace

// First in the file: restoreFdLimit() restores the limit found by the first raise in the process
// (CTest runs every test in its own process; a whole-binary run runs this one first).
TEST(KeptFile, RaiseFdLimitLeavesRoomForTheRestOfTheProcessAndCanBeUndone) {
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_max <= 1024) GTEST_SKIP() << "hard limit too low to test raising";
  rl.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);
  const std::size_t limit = raiseFdLimit();
  EXPECT_EQ(limit, rl.rlim_max);
  EXPECT_LT(keptFdBudget(), limit);
  EXPECT_GE(limit - keptFdBudget(), 256u);
  restoreFdLimit();  // what a launched command's child does before exec
  rlimit now{};
  ::getrlimit(RLIMIT_NOFILE, &now);
  EXPECT_EQ(now.rlim_cur, 1024u);
  raiseFdLimit();
}

TEST(KeptFile, RereadsFromTheStartAndSeesNewContent) {
  const fs::path dir = tempTree("kept-reread");
  write(dir / "f", "first\n");
  const std::size_t before = keptFdCount();
  std::string buf;
  KeptFile f(dir / "f");
  ASSERT_EQ(f.read(buf).value_or(""), "first\n");
  EXPECT_TRUE(f.kept());
  EXPECT_EQ(keptFdCount(), before + 1);
  rewrite(dir / "f", "second, longer\n");
  EXPECT_EQ(f.read(buf).value_or(""), "second, longer\n");
  // Larger than the initial buffer: read whole.
  rewrite(dir / "f", std::string(20000, 'x'));
  EXPECT_EQ(f.read(buf).value_or("").size(), 20000u);
  f.close();
  EXPECT_EQ(keptFdCount(), before);
  fs::remove_all(dir);
}

TEST(KeptFile, ReopenModeKeepsTheDirectoryAndOpensTheFileEachRead) {
  const fs::path dir = tempTree("kept-reopen");
  write(dir / "cg" / "cgroup.procs", "1\n");
  const std::size_t before = keptFdCount();
  std::string buf;
  KeptFile f(dir / "cg" / "cgroup.procs", KeptFile::Mode::kReopen);
  EXPECT_EQ(f.read(buf).value_or(""), "1\n");
  EXPECT_EQ(keptFdCount(), before + 1);  // the directory
  // A new file under the name (a kept file fd would still read the old one).
  write(dir / "cg" / "next", "1\n2\n");
  fs::rename(dir / "cg" / "next", dir / "cg" / "cgroup.procs");
  EXPECT_EQ(f.read(buf).value_or(""), "1\n2\n");
  // The directory is removed: gone, and nothing kept.
  fs::remove_all(dir / "cg");
  EXPECT_FALSE(f.read(buf));
  EXPECT_TRUE(f.gone());
  EXPECT_EQ(keptFdCount(), before);
  // Missing from the start is not gone.
  KeptFile missing(dir / "nope" / "cgroup.procs", KeptFile::Mode::kReopen);
  EXPECT_FALSE(missing.read(buf));
  EXPECT_FALSE(missing.gone());
  fs::remove_all(dir);
}

TEST(KeptFile, MissingFileIsRetriedEveryKMissingRetryReads) {
  const fs::path dir = tempTree("kept-missing");
  std::string buf;
  KeptFile f(dir / "later");
  EXPECT_FALSE(f.read(buf));
  EXPECT_FALSE(f.gone());  // missing is not gone
  write(dir / "later", "1\n");
  unsigned reads = 1;
  while (!f.read(buf) && reads < 10 * KeptFile::kMissingRetry) ++reads;
  EXPECT_EQ(reads, KeptFile::kMissingRetry);
  EXPECT_TRUE(f.kept());
  EXPECT_FALSE(KeptFile().read(buf));  // no path (a controller that is not mounted)
  fs::remove_all(dir);
}

TEST(KeptFile, PastTheBudgetFilesAreReadWithoutKeepingThem) {
  const fs::path dir = tempTree("kept-budget");
  write(dir / "a", "a\n");
  write(dir / "b", "b\n");
  const std::size_t before = keptFdCount();
  setKeptFdBudget(before + 1);
  std::string buf;
  KeptFile a(dir / "a"), b(dir / "b");
  EXPECT_EQ(a.read(buf).value_or(""), "a\n");
  EXPECT_EQ(b.read(buf).value_or(""), "b\n");  // read all the same
  EXPECT_TRUE(a.kept());
  EXPECT_FALSE(b.kept());
  EXPECT_EQ(keptFdCount(), before + 1);
  a.close();
  EXPECT_EQ(b.read(buf).value_or(""), "b\n");
  EXPECT_TRUE(b.kept());  // the freed slot is used
  b.close();
  raiseFdLimit();  // resets the budget from the limit
  EXPECT_GT(keptFdBudget(), before + 1);
  fs::remove_all(dir);
}

TEST(FindKeys, WantedKeysOnlyWithUnitsAndColons) {
  const std::string_view keys[3] = {"VmRSS", "voluntary_ctxt_switches", "absent"};
  double v[3];
  findKeys("Name:\tcat\nVmRSS:\t    1744 kB\nvoluntary_ctxt_switches:\t3\n", keys, v);
  EXPECT_DOUBLE_EQ(v[0], 1744);
  EXPECT_DOUBLE_EQ(v[1], 3);
  EXPECT_TRUE(std::isnan(v[2]));
  const std::string_view io[2] = {"read_bytes", "rss"};
  double w[2];
  findKeys("rchar: 7\nread_bytes: 40960\nrss 1\ntotal_rss 2\n", io, w);
  EXPECT_DOUBLE_EQ(w[0], 40960);
  EXPECT_DOUBLE_EQ(w[1], 1);  // exact key: "total_rss" is another key
  EXPECT_EQ(parseNumber("-1"), -1.0);
  EXPECT_EQ(parseNumber("18446744073709551615"), 18446744073709551615.0);  // past int64: as double
  EXPECT_EQ(parseNumber("0.5"), 0.5);
}

TEST(Sampler, KeptFdsAreBoundedAndReleasedWhenWorkloadsAndProcessesLeave) {
  constexpr int kN = 200;
  const fs::path root = v2Host("kept-bound", kN);
  const std::size_t base = keptFdCount();
  {
    Sampler sampler = makeSampler(root, {"cgroup.v2", "procfs"});
    std::vector<Workload> all;
    for (int i = 0; i < kN; ++i) all.push_back(cgroupWorkload(i));
    auto r = sampler.sample(all);
    ASSERT_EQ(r.samples.size(), static_cast<std::size_t>(kN));
    EXPECT_DOUBLE_EQ(r.samples[7].get("cpu_usage_seconds_total"), 0.007);
    EXPECT_DOUBLE_EQ(r.samples[7].get("proc_rss_bytes"), 8 * 1024);
    EXPECT_DOUBLE_EQ(r.samples[7].get("proc_involuntary_ctxsw_total"), 4);
    // cgroup.procs + the 3 cgroup files present (cpu.max, memory.max, io.stat, PSI are
    // missing) + the process's stat, schedstat, status, io.
    const std::size_t per = 1 + 3 + 4;
    EXPECT_EQ(keptFdCount() - base, kN * per);
    // Rounds do not add fds.
    for (int round = 0; round < 3; ++round) sampler.sample(all);
    EXPECT_EQ(keptFdCount() - base, kN * per);
    // Content changes are seen through the kept fds.
    rewrite(root / "sys/fs/cgroup/w7/cpu.stat", "usage_usec 9000000\n");
    EXPECT_DOUBLE_EQ(sampler.sample(all).samples[7].get("cpu_usage_seconds_total"), 9.0);
    // A process leaves its cgroup: its four files are closed.
    rewrite(root / "sys/fs/cgroup/w0/cgroup.procs", "");
    auto r2 = sampler.sample(all);
    EXPECT_DOUBLE_EQ(r2.samples[0].get("proc_processes"), 0);
    EXPECT_EQ(keptFdCount() - base, kN * per - 4);
    // Half the workloads are no longer sampled: everything they held is closed.
    all.resize(kN / 2);
    sampler.sample(all);
    EXPECT_EQ(keptFdCount() - base, kN / 2 * per - 4);
    sampler.sample({});
    EXPECT_EQ(keptFdCount(), base);
  }
  fs::remove_all(root);
}

TEST(Sampler, DegradesToOpenReadCloseWhenTheFdBudgetIsSpent) {
  const fs::path root = v2Host("kept-degrade", 20);
  const std::size_t base = keptFdCount();
  Sampler sampler = makeSampler(root, {"cgroup.v2", "procfs"});  // create() resets the budget
  setKeptFdBudget(base + 30);                                    // room for about 3 of 20 workloads
  std::vector<Workload> all;
  for (int i = 0; i < 20; ++i) all.push_back(cgroupWorkload(i));
  for (int round = 0; round < 3; ++round) {
    auto r = sampler.sample(all);
    ASSERT_EQ(r.samples.size(), 20u);
    EXPECT_EQ(r.errors, 0u);
    for (int i = 0; i < 20; ++i) {
      EXPECT_DOUBLE_EQ(r.samples[i].get("cpu_usage_seconds_total"), i * 1e-3) << i;
      EXPECT_DOUBLE_EQ(r.samples[i].get("proc_processes"), 1) << i;
    }
    EXPECT_EQ(keptFdCount(), base + 30);
  }
  sampler.sample({});
  EXPECT_EQ(keptFdCount(), base);
  raiseFdLimit();
  fs::remove_all(root);
}

// ---- live kernel (root) ----

namespace {

pid_t spawnSleeper(std::size_t touch_bytes = 0) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (touch_bytes > 0) {
      char* p = static_cast<char*>(std::malloc(touch_bytes));
      if (p) std::memset(p, 1, touch_bytes);
      asm volatile("" : : "r"(p) : "memory");  // keep the stores: nothing reads them
    }
    ::pause();
    _exit(0);
  }
  return pid;
}

void reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

CollectorContext liveContext() {
  CollectorContext ctx;
  ctx.clock_ticks = ::sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  ctx.detail_every = 1;  // these tests follow the per-process files round by round
  return ctx;
}

}  // namespace

// A kernel file of many records is read whole: seq_file hands out about a page per read whatever
// the buffer, and a short read was taken as the end (cgroup.procs of 900 processes gave 682 pids,
// /proc/PID/net/dev of 60 interfaces lost the traffic). The maps of a child made long: 400
// mappings of alternating protection, which the kernel cannot merge. A child's, not this
// process's own: this one's maps change while it runs (its allocator, and ASan's, map memory).
TEST(LiveKeptFile, AFileOfManyPagesIsReadWhole) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const long page = ::sysconf(_SC_PAGESIZE);
    void* area = ::mmap(nullptr, static_cast<std::size_t>(page) * 400, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bool ok = area != MAP_FAILED;
    for (int i = 0; ok && i < 400; i += 2)
      ok = ::mprotect(static_cast<char*>(area) + i * page, static_cast<std::size_t>(page), PROT_NONE) == 0;
    const char c = ok ? '1' : '0';
    [[maybe_unused]] auto n = ::write(ready[1], &c, 1);
    ::pause();
    _exit(0);
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(c, '1');
  const std::string maps = (HostPaths().procPid(pid) / "maps").string();
  std::stringstream expected;
  expected << std::ifstream(maps).rdbuf();
  ASSERT_GT(expected.str().size(), 16384u);
  auto once = readKernelFile(maps);
  ASSERT_TRUE(once) << once.error().message;
  EXPECT_EQ(*once, expected.str());
  std::string buf;
  KeptFile kept(maps);
  for (int read = 0; read < 2; ++read) {  // the open, then the pread of the kept fd
    auto text = kept.read(buf);
    ASSERT_TRUE(text);
    EXPECT_EQ(*text, expected.str()) << "read " << read;
  }
  reap(pid);
}

TEST(LiveKeptFile, ExitedProcessIsGoneAndItsFdClosed) {
  const pid_t pid = spawnSleeper();
  ASSERT_GT(pid, 0);
  const std::size_t before = keptFdCount();
  std::string buf;
  KeptFile f(HostPaths().procPid(pid) / "stat");
  ASSERT_TRUE(f.read(buf));
  EXPECT_TRUE(f.kept());
  reap(pid);
  EXPECT_FALSE(f.read(buf));
  EXPECT_TRUE(f.gone());
  EXPECT_FALSE(f.kept());
  EXPECT_EQ(keptFdCount(), before);
}

TEST(LiveKeptFile, ReusedPidIsReadAsTheNewProcess) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to steer pid allocation (ns_last_pid)";
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto procfs = reg.create("procfs", liveContext());
  ASSERT_TRUE(procfs);
  const Workload w{Workload::Kind::kCgroup, "/reuse", "/reuse", 0};
  // Other processes on the machine fork too: try a few times to get the same pid back.
  for (int attempt = 0; attempt < 20; ++attempt) {
    const pid_t a = spawnSleeper();
    Sample first;
    ASSERT_TRUE((*procfs)->collect(w, {a}, first));
    ASSERT_DOUBLE_EQ(first.get("proc_processes"), 1);
    reap(a);
    { std::ofstream("/proc/sys/kernel/ns_last_pid") << (a - 1); }
    const pid_t b = spawnSleeper(64 << 20);  // a different process: 64 MiB resident
    if (b != a) {
      reap(b);
      continue;
    }
    double rss = 0;
    for (int i = 0; i < 100 && rss < (32 << 20); ++i) {  // until the child has touched its memory
      ::usleep(10000);
      Sample s;
      ASSERT_TRUE((*procfs)->collect(w, {b}, s));
      EXPECT_DOUBLE_EQ(s.get("proc_processes"), 1);  // not "vanished" through the old fds
      EXPECT_DOUBLE_EQ(s.get("proc_vanished"), 0);
      rss = s.get("proc_rss_bytes");
    }
    EXPECT_GE(rss, 32 << 20);  // the new process's memory, not the old one's
    reap(b);
    (*procfs)->forget(w.id);
    return;
  }
  GTEST_SKIP() << "the pid was never reused (busy machine)";
}

TEST(LiveKeptFile, RemovedCgroupIsGoneAndARecreatedOneIsReadAgain) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  CollectorContext ctx = liveContext();
  if (ctx.layout.version == CgroupVersion::kNone) GTEST_SKIP() << "no cgroup hierarchy";
  const std::string name = "foresight-kept-" + std::to_string(::getpid());
  // Removed by its destructor also after a failed ASSERT, which leaves the test early.
  test_support::TestCgroup cg(ctx.layout, name);
  if (!cg.error().empty()) GTEST_SKIP() << "cannot create a cgroup: " << cg.error();
  auto make = [&] { cg.create(); };
  auto remove = [&] { cg.remove(); };
  // detail_every 1, then tiered with the rounds after the first practically never detail
  // rounds: cgroup.procs is not read there, and the removal must show through the cgroup files.
  for (unsigned every : {1u, 1000000u}) {
    SCOPED_TRACE("detail_every " + std::to_string(every));
    ctx.detail_every = every;
    make();
    CollectorRegistry reg("collector");
    registerCollectors(reg);
    auto sampler = Sampler::create(ctx, defaultCollectors(ctx.layout), reg);
    ASSERT_TRUE(sampler);
    const std::size_t base = keptFdCount();
    const Workload w{Workload::Kind::kCgroup, "/" + name, "/" + name, 0};
    auto r = sampler->sample({w});
    ASSERT_EQ(r.samples.size(), 1u);
    EXPECT_TRUE(r.samples[0].has("memory_usage_bytes"));
    EXPECT_GT(keptFdCount(), base);
    remove();
    r = sampler->sample({w});
    EXPECT_EQ(r.samples.size(), 0u);
    ASSERT_EQ(r.gone.size(), 1u);
    EXPECT_EQ(keptFdCount(), base);  // forgotten: nothing kept for it
    // Kept fds of the removed cgroup fail (ENODEV) and a new cgroup under the path is read.
    make();
    r = sampler->sample({w});
    ASSERT_EQ(r.samples.size(), 1u);
    r = sampler->sample({w});  // re-created again between two rounds, without a round in between
    remove();
    make();
    r = sampler->sample({w});
    ASSERT_EQ(r.samples.size(), 1u) << "re-created cgroup not found again";
    EXPECT_TRUE(r.samples[0].has("memory_usage_bytes"));
    EXPECT_EQ(r.errors, 0u);
    sampler->sample({});
    EXPECT_EQ(keptFdCount(), base);
    remove();
  }
}

namespace {

// Adds a process to a fresh cgroup between rounds closer together than a second; every round
// must count the processes added so far.
void expectJoinsSeen(const CollectorContext& ctx) {
  const fs::path ref = ctx.layout.reference();
  const std::string name = "foresight-join-" + std::to_string(::getpid());
  ASSERT_TRUE(fs::create_directory(ref / name)) << ref / name;
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto sampler = Sampler::create(ctx, {"procfs"}, reg);
  ASSERT_TRUE(sampler);
  const Workload w{Workload::Kind::kCgroup, "/" + name, "/" + name, 0};
  std::vector<pid_t> children;
  for (int k = 0; k < 3; ++k) {
    auto r = sampler->sample({w});
    ASSERT_EQ(r.samples.size(), 1u);
    EXPECT_DOUBLE_EQ(r.samples[0].get("proc_processes"), k) << ref << " round " << k;
    children.push_back(spawnSleeper());
    std::ofstream(ref / name / "cgroup.procs") << children.back() << '\n';
    ::usleep(100000);
  }
  for (pid_t p : children) {
    std::ofstream(ref / "cgroup.procs") << p << '\n';
    reap(p);
  }
  ::rmdir((ref / name).c_str());
}

}  // namespace

// cgroup v1 serves a kept cgroup.procs fd a stale pid list (the sampler reads it by path there);
// v2 is read through a kept fd. On a hybrid host both are checked, v2 on the unified hierarchy.
TEST(LiveKeptFile, ProcessesThatJoinACgroupLaterAreSeen) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  CollectorContext ctx = liveContext();
  if (ctx.layout.version == CgroupVersion::kNone) GTEST_SKIP() << "no cgroup hierarchy";
  expectJoinsSeen(ctx);
  if (ctx.layout.version == CgroupVersion::kHybrid) {
    CollectorContext v2 = ctx;
    v2.layout.version = CgroupVersion::kV2;
    v2.layout.controllers.clear();
    expectJoinsSeen(v2);
  }
}
