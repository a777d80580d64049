// cgroup backends against fixture trees (no root needed), and cgroup v1 against the real kernel
// when running as root with writable cpu and memory controllers.
#include "foresight/allocate/cgroup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <set>
#include <vector>

#include "foresight/allocate/cgroup_paths.h"
#include "test_util.h"

namespace foresight::allocate {
namespace {
namespace fs = std::filesystem;
using testing::readFile;
using testing::TempDir;
using testing::makeV2Fixture;
using testing::writeFile;

constexpr double kMiB = 1024.0 * 1024;

// Real files, plus a log of writes and an injected failure on chosen file names.
class RecordingFiles final : public CgroupFiles {
 public:
  explicit RecordingFiles(std::set<std::string> failing = {}) : failing_(std::move(failing)) {}
  Result<std::string> read(const fs::path& f) override { return real_->read(f); }
  Status write(const fs::path& f, const std::string& v) override {
    if (failing_.count(f.filename().string()) && !v.empty() && armed_) {
      armed_ = false;  // fail once: the undo write of the same file must go through
      return fail(ErrorCode::kIo, "{}: writing '{}' failed: Device or resource busy (injected)",
                  f.string(), v);
    }
    writes->push_back(f.filename().string() + "=" + v);
    return real_->write(f, v);
  }
  bool exists(const fs::path& p) override { return real_->exists(p); }

  std::shared_ptr<std::vector<std::string>> writes = std::make_shared<std::vector<std::string>>();

 private:
  std::unique_ptr<CgroupFiles> real_ = makeRealCgroupFiles();
  std::set<std::string> failing_;
  bool armed_ = true;
};

void makeV1Fixture(const fs::path& root, const std::string& w) {
  writeFile(root / "cpu" / w / "cpu.cfs_quota_us", "-1\n");
  writeFile(root / "cpu" / w / "cpu.cfs_period_us", "100000\n");
  writeFile(root / "memory" / w / "memory.limit_in_bytes", "9223372036854771712\n");
  writeFile(root / "memory" / w / "memory.usage_in_bytes", "104857600\n");
  writeFile(root / "blkio" / w / "blkio.throttle.read_bps_device", "");
  writeFile(root / "blkio" / w / "blkio.throttle.write_bps_device", "");
}

TEST(CgroupV1Fixture, UnlimitedReadsAsAbsent) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  auto b = makeCgroupV1Backend({tmp.path(), "8:0"}, makeRealCgroupFiles());
  auto cur = b->current("app");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_TRUE(cur->empty());
  auto use = b->usage("app");
  ASSERT_TRUE(use);
  EXPECT_EQ(*(*use)[Resource::kMemory], 104857600.0);
  // With memory.stat: the working set, less the hierarchy's inactive file pages.
  writeFile(tmp.path() / "memory/app/memory.stat", "cache 1000\ntotal_cache 4096000\ntotal_inactive_file 4096000\n");
  use = b->usage("app");
  ASSERT_TRUE(use);
  EXPECT_EQ(*(*use)[Resource::kMemory], 104857600.0 - 4096000);
}

TEST(CgroupV1Fixture, AppliesWritesKernelUnitsAndReadsBack) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  auto files = std::make_unique<RecordingFiles>();
  auto writes = files->writes;
  auto b = makeCgroupV1Backend({tmp.path(), "8:0"}, std::move(files));
  Allocation t;
  t[Resource::kCpu] = 1.5;
  t[Resource::kMemory] = 512 * kMiB;
  t[Resource::kDiskIo] = 10 * kMiB;
  ASSERT_TRUE(b->apply("app", t));
  EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "150000");
  EXPECT_EQ(readFile(tmp.path() / "memory/app/memory.limit_in_bytes"), "536870912");
  EXPECT_EQ(readFile(tmp.path() / "blkio/app/blkio.throttle.read_bps_device"), "8:0 10485760");
  EXPECT_EQ(readFile(tmp.path() / "blkio/app/blkio.throttle.write_bps_device"), "8:0 10485760");
  auto cur = b->current("app");
  ASSERT_TRUE(cur);
  EXPECT_EQ(*cur, t);
  // Idempotent: the same target writes nothing.
  writes->clear();
  ASSERT_TRUE(b->apply("app", t));
  EXPECT_TRUE(writes->empty()) << writes->front();
  // Unlimited removes the limits.
  Allocation u;
  u[Resource::kCpu] = INFINITY;
  u[Resource::kMemory] = INFINITY;
  ASSERT_TRUE(b->apply("app", u));
  EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(readFile(tmp.path() / "memory/app/memory.limit_in_bytes"), "-1");
}

// A v1 host without a memory hierarchy (or a workload only in the cpu one): a cpu change reads
// and writes the cpu hierarchy alone (it failed reading memory.limit_in_bytes).
TEST(CgroupV1Fixture, ACpuChangeNeedsNoMemoryHierarchy) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  fs::remove_all(tmp.path() / "memory");
  auto b = makeCgroupV1Backend({tmp.path(), ""}, makeRealCgroupFiles());
  Allocation t;
  t[Resource::kCpu] = 0.5;
  auto st = b->apply("app", t);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "50000");
  t[Resource::kMemory] = 512 * kMiB;  // memory itself still needs it, and nothing is half-applied
  st = b->apply("app", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("memory.limit_in_bytes"), std::string::npos) << st.error().message;
  EXPECT_FALSE(fs::exists(tmp.path() / "memory"));
}

TEST(CgroupV1Fixture, MemoryIsWrittenFirstAndARefusalChangesNothing) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  writeFile(tmp.path() / "cpu/app/cpu.cfs_quota_us", "100000\n");
  writeFile(tmp.path() / "memory/app/memory.limit_in_bytes", "1073741824\n");
  auto files = std::make_unique<RecordingFiles>(std::set<std::string>{"memory.limit_in_bytes"});
  auto writes = files->writes;
  auto b = makeCgroupV1Backend({tmp.path(), ""}, std::move(files));
  Allocation t;
  t[Resource::kCpu] = 2;
  t[Resource::kMemory] = 64 * kMiB;
  auto st = b->apply("app", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("memory.limit_in_bytes"), std::string::npos)
      << st.error().message;
  EXPECT_TRUE(writes->empty());
  EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "100000");
  EXPECT_EQ(readFile(tmp.path() / "memory/app/memory.limit_in_bytes"), "1073741824");
}

TEST(CgroupV1Fixture, FailedCpuWriteRestoresMemory) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  writeFile(tmp.path() / "cpu/app/cpu.cfs_quota_us", "100000\n");
  writeFile(tmp.path() / "memory/app/memory.limit_in_bytes", "1073741824\n");
  auto files = std::make_unique<RecordingFiles>(std::set<std::string>{"cpu.cfs_quota_us"});
  auto writes = files->writes;
  auto b = makeCgroupV1Backend({tmp.path(), ""}, std::move(files));
  Allocation t;
  t[Resource::kCpu] = 2;
  t[Resource::kMemory] = 2048 * kMiB;
  auto st = b->apply("app", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("cpu.cfs_quota_us"), std::string::npos);
  EXPECT_NE(st.error().message.find("restored"), std::string::npos);
  const std::vector<std::string> expected = {"memory.limit_in_bytes=2147483648",
                                             "memory.limit_in_bytes=1073741824"};
  EXPECT_EQ(*writes, expected);
  EXPECT_EQ(readFile(tmp.path() / "memory/app/memory.limit_in_bytes"), "1073741824");
  EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "100000");
}

TEST(CgroupV1Fixture, RejectsPathsOutsideTheHierarchyAndNamesMissingFiles) {
  TempDir tmp;
  auto b = makeCgroupV1Backend({tmp.path(), ""}, makeRealCgroupFiles());
  EXPECT_FALSE(b->current("../etc"));
  EXPECT_FALSE(b->current("/abs"));
  auto cur = b->current("missing");
  ASSERT_FALSE(cur);
  EXPECT_NE(cur.error().message.find("cpu/missing/cpu.cfs_quota_us"), std::string::npos)
      << cur.error().message;
}

TEST(CgroupV2Fixture, AppliesAndReadsBack) {
  TempDir tmp;
  makeV2Fixture(tmp.path(), "svc/web");
  CgroupConfig c{tmp.path(), "259:0", 0.5};
  auto b = makeCgroupV2Backend(c, makeRealCgroupFiles());
  auto cur = b->current("svc/web");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_TRUE(cur->empty());
  Allocation t;
  t[Resource::kCpu] = 0.5;
  t[Resource::kMemory] = 256 * kMiB;
  t[Resource::kDiskIo] = 1000000;
  ASSERT_TRUE(b->apply("svc/web", t));
  EXPECT_EQ(readFile(tmp.path() / "svc/web/cpu.max"), "50000 100000");
  EXPECT_EQ(readFile(tmp.path() / "svc/web/memory.max"), "268435456");
  EXPECT_EQ(readFile(tmp.path() / "svc/web/memory.high"), "134217728");
  EXPECT_EQ(readFile(tmp.path() / "svc/web/io.max"), "259:0 rbps=1000000 wbps=1000000");
  cur = b->current("svc/web");
  ASSERT_TRUE(cur);
  EXPECT_EQ(*cur, t);
}

TEST(CgroupV2Fixture, RefusesMemoryBelowUsageWithoutWriting) {
  TempDir tmp;
  makeV2Fixture(tmp.path(), "w");
  auto files = std::make_unique<RecordingFiles>();
  auto writes = files->writes;
  auto b = makeCgroupV2Backend({tmp.path(), ""}, std::move(files));
  Allocation t;
  t[Resource::kMemory] = 50 * kMiB;  // usage is 100 MiB
  auto st = b->apply("w", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("memory.current"), std::string::npos) << st.error().message;
  EXPECT_TRUE(writes->empty());
  EXPECT_EQ(readFile(tmp.path() / "w/memory.max"), "max");
}

// Page cache the kernel can drop is not usage the limit must stay above: a workload with 3 GiB in
// memory.current but 2 GiB of it inactive file pages takes a limit above its 1 GiB working set
// (before, every plan for such a workload was refused, its cpu change with it). Below the working
// set is still refused.
TEST(CgroupV2Fixture, InactivePageCacheDoesNotBlockALimitAboveTheWorkingSet) {
  TempDir tmp;
  makeV2Fixture(tmp.path(), "w");
  writeFile(tmp.path() / "w/memory.current", "3221225472\n");
  writeFile(tmp.path() / "w/memory.stat",
            "anon 1073741824\nfile 2147483648\nactive_file 0\ninactive_file 2147483648\n");
  auto b = makeCgroupV2Backend({tmp.path(), ""}, makeRealCgroupFiles());
  Allocation t;
  t[Resource::kCpu] = 0.5;
  t[Resource::kMemory] = 1248 * kMiB;
  auto st = b->apply("w", t);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(readFile(tmp.path() / "w/memory.max"), "1308622848");
  EXPECT_EQ(readFile(tmp.path() / "w/cpu.max"), "50000 100000");
  t[Resource::kMemory] = 1000 * kMiB;
  st = b->apply("w", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("below the working set 1073741824"), std::string::npos) << st.error().message;
}

TEST(CgroupV2Fixture, LoweringWritesHighBeforeMaxAndUndoesOnFailure) {
  TempDir tmp;
  makeV2Fixture(tmp.path(), "w");
  writeFile(tmp.path() / "w/memory.max", "1073741824\n");
  writeFile(tmp.path() / "w/memory.high", "1073741824\n");
  auto files = std::make_unique<RecordingFiles>(std::set<std::string>{"memory.max"});
  auto writes = files->writes;
  auto b = makeCgroupV2Backend({tmp.path(), ""}, std::move(files));
  Allocation t;
  t[Resource::kMemory] = 512 * kMiB;
  auto st = b->apply("w", t);
  ASSERT_FALSE(st);
  const std::vector<std::string> expected = {"memory.high=536870912", "memory.high=1073741824"};
  EXPECT_EQ(*writes, expected);
  EXPECT_EQ(readFile(tmp.path() / "w/memory.high"), "1073741824");
  EXPECT_EQ(readFile(tmp.path() / "w/memory.max"), "1073741824");
}

TEST(CgroupV1Fixture, MemoryRoundsUpToWholePages) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  auto b = makeCgroupV1Backend({tmp.path(), ""}, makeRealCgroupFiles());
  Allocation t;
  t[Resource::kMemory] = 1000;  // less than a page: must not become 0
  ASSERT_TRUE(b->apply("app", t));
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_EQ(readFile(tmp.path() / "memory/app/memory.limit_in_bytes"), std::to_string(page));
  t[Resource::kMemory] = static_cast<double>(page) * 10 + 1;
  ASSERT_TRUE(b->apply("app", t));
  EXPECT_EQ(readFile(tmp.path() / "memory/app/memory.limit_in_bytes"), std::to_string(page * 11));
}

TEST(CgroupV1Fixture, AmountsBeyondWhatTheFilesTakeAreRefusedWithoutWriting) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  auto b = makeCgroupV1Backend({tmp.path(), ""}, makeRealCgroupFiles());
  for (double bad : {1e30, 0.0, -1.0, std::nan("")}) {
    Allocation t;
    t[Resource::kMemory] = bad;  // 1e30 once wrapped to a 0-byte limit
    auto st = b->apply("app", t);
    EXPECT_FALSE(st) << bad;
    EXPECT_EQ(readFile(tmp.path() / "memory/app/memory.limit_in_bytes"), "9223372036854771712") << bad;
  }
  Allocation cpu;
  cpu[Resource::kCpu] = 0;
  EXPECT_FALSE(b->apply("app", cpu));
  EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "-1");
}

// A cpu figure whose quota is beyond the kernel's maximum (2^44 - 1 us) is refused, naming the
// workload; before, 1e17 cores wrapped in the integer conversion and became the 1 ms minimum
// (0.01 cores), applied and reported as done.
TEST(CgroupV1Fixture, ACpuQuotaBeyondTheKernelsMaximumIsRefusedNotWrapped) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  auto b = makeCgroupV1Backend({tmp.path(), ""}, makeRealCgroupFiles());
  for (double cores : {1e17, 1e9}) {
    Allocation t;
    t[Resource::kCpu] = cores;
    auto st = b->apply("app", t);
    ASSERT_FALSE(st) << cores;
    EXPECT_NE(st.error().message.find("cgroup-v1 app"), std::string::npos) << st.error().message;
    EXPECT_NE(st.error().message.find("maximum"), std::string::npos) << st.error().message;
    EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "-1") << cores;
  }
  Allocation most;  // the largest that fits: 2^44 - 1 us per 100 ms
  most[Resource::kCpu] = (0x1p44 - 1) / 100000;
  ASSERT_TRUE(b->apply("app", most));
  EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "17592186044415");
}

TEST(CgroupV2Fixture, ACpuQuotaBeyondTheKernelsMaximumIsRefusedNotWrapped) {
  TempDir tmp;
  makeV2Fixture(tmp.path(), "w");
  auto b = makeCgroupV2Backend({tmp.path(), ""}, makeRealCgroupFiles());
  Allocation t;
  t[Resource::kCpu] = 1e17;
  auto st = b->apply("w", t);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("cgroup-v2 w"), std::string::npos) << st.error().message;
  EXPECT_EQ(readFile(tmp.path() / "w/cpu.max"), "max 100000");
}

TEST(CgroupV1Fixture, RefusalsNameTheWorkloadAndAFirstFailedWriteClaimsNoRestore) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  auto b = makeCgroupV1Backend({tmp.path(), ""}, makeRealCgroupFiles());
  Allocation huge;
  huge[Resource::kMemory] = 0x1p62;
  auto st = b->apply("app", huge);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("cgroup-v1 app: memory"), std::string::npos)
      << st.error().message;
  EXPECT_NE(st.error().message.find("4 EiB"), std::string::npos) << st.error().message;

  auto files = std::make_unique<RecordingFiles>(std::set<std::string>{"memory.limit_in_bytes"});
  auto b2 = makeCgroupV1Backend({tmp.path(), ""}, std::move(files));
  Allocation t;
  t[Resource::kMemory] = 64 * kMiB;
  st = b2->apply("app", t);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message.find("restored"), std::string::npos) << st.error().message;
}

// io.max holds a limit per direction. A target equal to the read limit alone used to count as
// "no change": nothing was written, and the unchanged write limit was reported as applied.
TEST(CgroupV2Fixture, DiskIoComparesBothDirections) {
  TempDir tmp;
  makeV2Fixture(tmp.path(), "w");
  writeFile(tmp.path() / "w/io.max", "259:0 rbps=4194304 wbps=8388608 riops=max wiops=max\n");
  auto files = std::make_unique<RecordingFiles>();
  auto writes = files->writes;
  auto b = makeCgroupV2Backend({tmp.path(), "259:0"}, std::move(files));
  Allocation t;
  t[Resource::kDiskIo] = 4194304;
  ASSERT_TRUE(b->apply("w", t));
  EXPECT_EQ(readFile(tmp.path() / "w/io.max"), "259:0 rbps=4194304 wbps=4194304");
  const std::vector<std::string> expected = {"io.max=259:0 rbps=4194304 wbps=4194304"};
  EXPECT_EQ(*writes, expected);
  ASSERT_TRUE(b->apply("w", t));  // now the same in both directions: nothing to write
  EXPECT_EQ(writes->size(), 1u);
}

TEST(CgroupV2Fixture, RaisingWritesMaxBeforeHigh) {
  TempDir tmp;
  makeV2Fixture(tmp.path(), "w");
  writeFile(tmp.path() / "w/memory.max", "268435456\n");
  writeFile(tmp.path() / "w/memory.high", "268435456\n");
  auto files = std::make_unique<RecordingFiles>();
  auto writes = files->writes;
  auto b = makeCgroupV2Backend({tmp.path(), ""}, std::move(files));
  Allocation t;
  t[Resource::kMemory] = 512 * kMiB;
  ASSERT_TRUE(b->apply("w", t));
  const std::vector<std::string> expected = {"memory.max=536870912", "memory.high=536870912"};
  EXPECT_EQ(*writes, expected);
}

// ---- The real kernel (cgroup v1) ------------------------------------------------------------

class RealCgroupV1 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
    root_ = defaultCgroupRoot();
    for (const char* c : {"cpu", "memory"})
      if (!fs::exists(root_ / c / "cpu.cfs_quota_us") &&
          !fs::exists(root_ / c / "memory.limit_in_bytes"))
        GTEST_SKIP() << "no cgroup v1 " << c << " controller at " << (root_ / c);
    name_ = "foresight-test-" + std::to_string(::getpid());
    for (const char* c : {"cpu", "memory"}) {
      std::error_code ec;
      fs::create_directory(root_ / c / name_, ec);
      if (ec) GTEST_SKIP() << "cannot create " << (root_ / c / name_) << ": " << ec.message();
      made_.push_back(root_ / c / name_);
    }
  }
  void TearDown() override {
    for (const auto& d : made_) ::rmdir(d.c_str());
  }
  fs::path root_;
  std::string name_;
  std::vector<fs::path> made_;
};

TEST_F(RealCgroupV1, WritesReadsBackAndRemovesLimits) {
  auto b = makeCgroupV1Backend({root_, ""}, makeRealCgroupFiles());
  auto cur = b->current(name_);
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_TRUE(cur->empty()) << format(*cur);
  Allocation t;
  t[Resource::kCpu] = 0.5;
  t[Resource::kMemory] = 64 * kMiB;
  ASSERT_TRUE(b->apply(name_, t));
  EXPECT_EQ(readFile(root_ / "cpu" / name_ / "cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(readFile(root_ / "memory" / name_ / "memory.limit_in_bytes"), "67108864");
  cur = b->current(name_);
  ASSERT_TRUE(cur);
  EXPECT_EQ(*cur, t);
  ASSERT_TRUE(b->apply(name_, t));  // idempotent
  Allocation u;
  u[Resource::kCpu] = INFINITY;
  u[Resource::kMemory] = INFINITY;
  ASSERT_TRUE(b->apply(name_, u));
  EXPECT_EQ(readFile(root_ / "cpu" / name_ / "cpu.cfs_quota_us"), "-1");
  cur = b->current(name_);
  ASSERT_TRUE(cur);
  EXPECT_TRUE(cur->empty()) << format(*cur);
}

TEST_F(RealCgroupV1, InjectedCpuFailureRestoresTheKernelMemoryLimit) {
  auto b0 = makeCgroupV1Backend({root_, ""}, makeRealCgroupFiles());
  Allocation start;
  start[Resource::kCpu] = 1;
  start[Resource::kMemory] = 128 * kMiB;
  ASSERT_TRUE(b0->apply(name_, start));
  auto b = makeCgroupV1Backend(
      {root_, ""}, std::make_unique<RecordingFiles>(std::set<std::string>{"cpu.cfs_quota_us"}));
  Allocation t;
  t[Resource::kCpu] = 2;
  t[Resource::kMemory] = 256 * kMiB;
  ASSERT_FALSE(b->apply(name_, t));
  EXPECT_EQ(readFile(root_ / "memory" / name_ / "memory.limit_in_bytes"), "134217728");
  EXPECT_EQ(readFile(root_ / "cpu" / name_ / "cpu.cfs_quota_us"), "100000");
}

// A process in the cgroup holds 64 MiB of anonymous memory; with no swap the kernel cannot
// reclaim it, so lowering the limit to 16 MiB fails (EBUSY). The old limits must stay.
TEST_F(RealCgroupV1, KernelRefusalBelowUsageLeavesOldLimits) {
  int to_child[2], to_parent[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(to_parent), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char c;
    if (::read(to_child[0], &c, 1) != 1) ::_exit(1);
    const std::size_t n = 64 << 20;
    auto* p = static_cast<volatile char*>(::malloc(n));
    for (std::size_t i = 0; i < n; i += 4096) p[i] = 1;
    if (::write(to_parent[1], "r", 1) != 1) ::_exit(1);
    ::read(to_child[0], &c, 1);  // wait until killed
    ::_exit(0);
  }
  testing::writeFile(root_ / "memory" / name_ / "cgroup.procs", std::to_string(pid));
  ASSERT_EQ(::write(to_child[1], "g", 1), 1);
  char c;
  ASSERT_EQ(::read(to_parent[0], &c, 1), 1);

  auto b = makeCgroupV1Backend({root_, ""}, makeRealCgroupFiles());
  auto use = b->usage(name_);
  ASSERT_TRUE(use);
  const bool has_swap = testing::readFile("/proc/swaps").find('\n') != std::string::npos;
  Allocation t;
  t[Resource::kCpu] = 0.5;
  t[Resource::kMemory] = 16 * kMiB;
  auto st = b->apply(name_, t);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) ::close(fd);
  if (has_swap) GTEST_SKIP() << "swap is on: the kernel can meet the lower limit by swapping";
  EXPECT_GE(*(*use)[Resource::kMemory], 64 * kMiB);
  ASSERT_FALSE(st) << "the kernel accepted a limit below usage";
  EXPECT_NE(st.error().message.find("memory.limit_in_bytes"), std::string::npos)
      << st.error().message;
  auto cur = b->current(name_);
  ASSERT_TRUE(cur);
  EXPECT_FALSE((*cur)[Resource::kMemory]) << format(*cur);
  EXPECT_FALSE((*cur)[Resource::kCpu]) << format(*cur);
}

}  // namespace
}  // namespace foresight::allocate

namespace foresight::allocate {
namespace {

TEST(CgroupOptions, BadOptionsNameTheOption) {
  BackendOptions o;
  o.values["root"] = "/nonexistent";
  o.values["memory_high_ratio"] = "1.5";
  auto cur = makeCgroupV2Backend(o)->current("w");
  ASSERT_FALSE(cur);
  EXPECT_NE(cur.error().message.find("memory_high_ratio='1.5'"), std::string::npos);
  o.values.erase("memory_high_ratio");
  o.values["io_device"] = "sda";
  cur = makeCgroupV1Backend(o)->current("w");
  ASSERT_FALSE(cur);
  EXPECT_NE(cur.error().message.find("io_device='sda'"), std::string::npos);
  // A misspelt key through the registry (as -o gives it) is refused, not ignored: `rooot` would
  // otherwise leave the live hierarchy as the root.
  BackendRegistry registry("backend");
  registerBackends(registry);
  BackendOptions typo;
  typo.values["rooot"] = "/tmp/fixture";
  auto made = registry.create("cgroup-v1", typo);
  ASSERT_FALSE(made);
  EXPECT_NE(made.error().message.find("backend 'cgroup-v1' has no option 'rooot' (its options: root, io_device)"),
            std::string::npos) << made.error().message;
}

}  // namespace
}  // namespace foresight::allocate

namespace foresight::allocate {
namespace {

TEST(DryRun, ReadsTheRealBackendAndChangesNothing) {
  TempDir tmp;
  makeV1Fixture(tmp.path(), "app");
  writeFile(tmp.path() / "cpu/app/cpu.cfs_quota_us", "100000\n");
  auto dry = makeDryRunBackend(makeCgroupV1Backend({tmp.path(), ""}, makeRealCgroupFiles()));
  EXPECT_EQ(dry->name(), "dry-run(cgroup-v1)");
  Allocation t;
  t[Resource::kCpu] = 3;
  ASSERT_TRUE(dry->apply("app", t));
  EXPECT_EQ(readFile(tmp.path() / "cpu/app/cpu.cfs_quota_us"), "100000");
  auto cur = dry->current("app");
  ASSERT_TRUE(cur);
  EXPECT_EQ(*(*cur)[Resource::kCpu], 1.0);
  // Without a real backend it remembers what it was asked for.
  auto mem = makeDryRunBackend(nullptr);
  ASSERT_TRUE(mem->apply("w", t));
  EXPECT_EQ(*mem->current("w"), t);
}

}  // namespace
}  // namespace foresight::allocate

namespace foresight::allocate {
namespace {

// The first real disk's MAJ:MIN (not loop, ram or zram); empty when there is none.
std::string firstDiskDevice() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/block", ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("loop", 0) == 0 || n.rfind("ram", 0) == 0 || n.rfind("zram", 0) == 0) continue;
    const std::string dev = readFile(e.path() / "dev");
    if (!dev.empty()) return dev;
  }
  return "";
}

TEST(RealCgroupV1Blkio, ThrottlesAndUnthrottlesADisk) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  const fs::path root = defaultCgroupRoot();
  if (!fs::exists(root / "blkio" / "blkio.throttle.read_bps_device"))
    GTEST_SKIP() << "no cgroup v1 blkio controller at " << (root / "blkio");
  const std::string dev = firstDiskDevice();
  if (dev.empty()) GTEST_SKIP() << "no disk in /sys/block";
  const std::string name = "foresight-test-io-" + std::to_string(::getpid());
  std::vector<fs::path> made;
  for (const char* c : {"cpu", "memory", "blkio"}) {
    std::error_code ec;
    fs::create_directory(root / c / name, ec);
    if (ec) {
      for (const auto& d : made) ::rmdir(d.c_str());
      GTEST_SKIP() << "cannot create " << (root / c / name) << ": " << ec.message();
    }
    made.push_back(root / c / name);
  }
  auto b = makeCgroupV1Backend({root, dev}, makeRealCgroupFiles());
  Allocation t;
  t[Resource::kDiskIo] = 1048576;
  auto st = b->apply(name, t);
  const std::string read_rule = readFile(root / "blkio" / name / "blkio.throttle.read_bps_device");
  const std::string write_rule = readFile(root / "blkio" / name / "blkio.throttle.write_bps_device");
  auto cur = b->current(name);
  t[Resource::kDiskIo] = INFINITY;
  auto st2 = b->apply(name, t);
  const std::string after = readFile(root / "blkio" / name / "blkio.throttle.read_bps_device");
  auto cur2 = b->current(name);
  for (const auto& d : made) ::rmdir(d.c_str());
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(read_rule, dev + " 1048576");
  EXPECT_EQ(write_rule, dev + " 1048576");
  ASSERT_TRUE(cur);
  EXPECT_EQ((*cur)[Resource::kDiskIo], 1048576.0);
  ASSERT_TRUE(st2) << st2.error().message;
  EXPECT_EQ(after, "");
  ASSERT_TRUE(cur2);
  EXPECT_FALSE((*cur2)[Resource::kDiskIo]);
}

}  // namespace
}  // namespace foresight::allocate
