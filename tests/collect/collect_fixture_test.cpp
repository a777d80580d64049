// Collectors against captured /proc and cgroup files (tests/collect/fixtures/README.md). Expected
// values are read off the fixture files by hand.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "foresight/collect/collector.h"
#include "foresight/collect/kernel_files.h"
#include "foresight/collect/perf.h"
#include "foresight/collect/sampler.h"
#include "support/captured_log.h"
#include "support/cleanup.h"

using namespace foresight;
using namespace foresight::collect;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = std::string(FORESIGHT_SOURCE_DIR) + "/tests/collect/fixtures";

CollectorContext contextAt(const std::string& root) {
  CollectorContext c{HostPaths(root), {}, 100};
  c.layout = detectCgroupLayout(c.paths);
  return c;
}
CollectorContext context(const std::string& name) { return contextAt(kFixtures + "/" + name); }

Sample collectWith(const CollectorContext& ctx, const std::string& collector, const Workload& w) {
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto sampler = Sampler::create(ctx, {collector}, reg);
  EXPECT_TRUE(sampler.has_value());
  auto s = sampler->sampleOne(w);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
  return s ? *s : Sample{};
}

Workload cgroupWorkload(const std::string& path) {
  return {Workload::Kind::kCgroup, path, path, 0};
}

}  // namespace

TEST(KernelFiles, ParsesNumbersMaxAndEmpty) {
  EXPECT_EQ(parseNumber("123\n"), 123.0);
  EXPECT_TRUE(std::isinf(*parseNumber("max\n")));
  EXPECT_FALSE(parseNumber("").has_value());
  EXPECT_FALSE(parseNumber("12abc").has_value());
  EXPECT_EQ(countCpuList("0-3,8,10-11\n"), 7);
  EXPECT_EQ(countCpuList("5"), 1);
  EXPECT_FALSE(countCpuList("\n").has_value());  // an empty cpuset
  EXPECT_FALSE(countCpuList("3-1").has_value());
  EXPECT_FALSE(countCpuList("0-3,x").has_value());
  EXPECT_EQ(parseCpuList("0,2-3\n"), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(parseCpuList("7"), (std::vector<int>{7}));
  EXPECT_EQ(parseCpuList("0-1,4-5"), (std::vector<int>{0, 1, 4, 5}));
  for (const char* bad : {"", "\n", "3-1", "1,,2", "-1", "0-", "a", "0-70000"})
    EXPECT_FALSE(parseCpuList(bad).has_value()) << bad;
  auto missing = readKernelFile(kFixtures + "/v1/proc/99999/stat");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message.find("99999/stat"), std::string::npos);
}

// A file whose reads come short before its end, as seq_file's do when its next record (a
// mountinfo line of an overlay mount, kilobytes long) would not fit the page: a FIFO written in
// two parts. readKernelFileToEnd reads until read() returns 0.
TEST(KernelFiles, ReadsToTheEndPastAShortRead) {
  const std::string fifo = testing::TempDir() + "/short-reads-" + std::to_string(::getpid());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ::signal(SIGPIPE, SIG_IGN);  // a reader that stops early fails the second write, not the process
  std::thread writer([&] {
    const int fd = ::open(fifo.c_str(), O_WRONLY);
    const std::string part(1000, 'x');
    EXPECT_EQ(::write(fd, part.data(), part.size()), 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the reader's first read returns 1000
    EXPECT_EQ(::write(fd, part.data(), part.size()), 1000);
    ::close(fd);
  });
  auto text = readKernelFileToEnd(fifo);
  writer.join();
  std::remove(fifo.c_str());
  ASSERT_TRUE(text) << text.error().message;
  EXPECT_EQ(text->size(), 2000u);
}

// proc(5)'s example line, a root, a bind mount over a tmpfs, two mounts stacked on one point and
// an escaped space.
TEST(KernelFiles, FindsTheMountOfAPathByItsLongestMountPoint) {
  const std::string mountinfo =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
      "40 22 0:45 / /var/tmp rw - tmpfs tmpfs rw\n"
      "41 40 8:1 /srv/cache /var/tmp/cache rw - ext4 /dev/sda1 rw\n"
      "50 22 8:16 / /data rw - xfs /dev/sdb rw\n"
      "51 50 0:53 / /data rw - nfs4 server:/export rw\n"
      "60 22 0:60 / /mnt/my\\040disk rw - fuse.sshfs host: rw\n";
  EXPECT_EQ(mountDeviceOf(mountinfo, "/etc/hosts"), "8:1");
  EXPECT_EQ(mountDeviceOf(mountinfo, "/"), "8:1");
  EXPECT_EQ(mountDeviceOf(mountinfo, "/mnt2/a.img"), "98:0");
  EXPECT_EQ(mountDeviceOf(mountinfo, "/mnt22/a.img"), "8:1");  // not under /mnt2: whole components
  EXPECT_EQ(mountDeviceOf(mountinfo, "/var/tmp/x.img"), "0:45");
  EXPECT_EQ(mountDeviceOf(mountinfo, "/var/tmp/cache/x.img"), "8:1");
  EXPECT_EQ(mountDeviceOf(mountinfo, "/data/disk.img (deleted)"), "0:53");  // the one on top
  EXPECT_EQ(mountDeviceOf(mountinfo, "/mnt/my disk/x.img"), "0:60");
  EXPECT_EQ(mountDeviceOf(mountinfo, "/mnt/my\\040disk/x.img"), "8:1");  // paths come unescaped
  EXPECT_FALSE(mountDeviceOf(mountinfo, "data/disk.img"));
  EXPECT_FALSE(mountDeviceOf("", "/etc/hosts"));
}

TEST(Layout, DetectsHybridV1AndV2AndNone) {
  auto v1 = context("v1").layout;
  EXPECT_EQ(v1.version, CgroupVersion::kHybrid);
  for (const char* c : {"cpu", "cpuacct", "memory", "blkio", "pids"}) EXPECT_TRUE(v1.v1(c)) << c;
  EXPECT_EQ(context("v2").layout.version, CgroupVersion::kV2);
  EXPECT_EQ(detectCgroupLayout(HostPaths(kFixtures + "/nonexistent")).version, CgroupVersion::kNone);
}

TEST(Discovery, ListsCgroupsAndPopulatedOnes) {
  auto v2 = context("v2");
  auto all = discoverCgroups(v2.paths, v2.layout, 8, false);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].id, "/system.slice");
  EXPECT_EQ((*all)[1].id, "/system.slice/app.service");
  auto populated = discoverCgroups(v2.paths, v2.layout, 8, true);
  ASSERT_TRUE(populated);
  ASSERT_EQ(populated->size(), 1u);
  EXPECT_EQ((*populated)[0].id, "/system.slice/app.service");
  auto shallow = discoverCgroups(v2.paths, v2.layout, 1, false);
  ASSERT_TRUE(shallow);
  EXPECT_EQ(shallow->size(), 1u);

  auto v1 = context("v1");
  auto v1all = discoverCgroups(v1.paths, v1.layout, 8, false);
  ASSERT_TRUE(v1all);
  ASSERT_EQ(v1all->size(), 1u);
  EXPECT_EQ((*v1all)[0].cgroup, "/fs-fixture");
  auto none = discoverCgroups(HostPaths(kFixtures + "/nonexistent"), {}, 8, false);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kUnavailable);
}

// /proc/PID/cgroup as cgroups(7) gives it on v1 (a line per hierarchy), hybrid and v2 (0::): the
// paths, ':' inside a path kept, the root left out; a process without the file has none.
TEST(Discovery, TheCgroupsAProcessIsIn) {
  const fs::path root = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                    ("own-cgroup-" + std::to_string(::getpid())));
  fs::create_directories(root / "proc/42");
  std::ofstream(root / "proc/42/cgroup") << "12:pids:/system.slice/foresight-agent.service\n"
                                            "4:memory:/system.slice/foresight-agent.service\n"
                                            "3:cpu,cpuacct:/odd:name\n"
                                            "1:name=systemd:/system.slice/foresight-agent.service\n"
                                            "2:cpuset:/\n"
                                            "0::/\n";
  EXPECT_EQ(cgroupsOfProcess(HostPaths(root), 42),
            (std::set<std::string>{"/system.slice/foresight-agent.service", "/odd:name"}));
  fs::create_directories(root / "proc/43");
  std::ofstream(root / "proc/43/cgroup") << "0::/user.slice/user-0.slice/session-1.scope\n";
  EXPECT_EQ(cgroupsOfProcess(HostPaths(root), 43), (std::set<std::string>{"/user.slice/user-0.slice/session-1.scope"}));
  EXPECT_TRUE(cgroupsOfProcess(HostPaths(root), 44).empty());
}

// A cgroup removed while discovery walks the hierarchy (its listing fails) loses only itself and
// what is below it; the ones not yet reached are still found, else each would be reported gone.
TEST(Discovery, ACgroupRemovedDuringTheWalkDoesNotHideTheRest) {
  const fs::path root = fs::path(testing::TempDir()) / ("discovery-" + std::to_string(::getpid()));
  fs::remove_all(root);
  for (const char* d : {"a/x", "b/y", "c/z"}) fs::create_directories(root / d);
  CgroupLayout layout;
  layout.version = CgroupVersion::kV2;
  layout.unified = root;
  const auto system = systemSubdirLister();
  auto removed_a = [&](const fs::path& dir) -> Result<std::vector<fs::path>> {
    if (dir == root / "a") return fail(ErrorCode::kIo, "{}: No such file or directory", dir.string());
    return system(dir);
  };
  auto found = discoverCgroups(HostPaths(root), layout, 8, false, removed_a);
  fs::remove_all(root);
  ASSERT_TRUE(found) << found.error().message;
  std::vector<std::string> ids;
  for (const auto& w : *found) ids.push_back(w.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"/a", "/b", "/b/y", "/c", "/c/z"}));
}

TEST(Selectors, PidCgroupAndCommandLine) {
  auto v1 = context("v1");
  auto byPid = selectWorkloads(v1.paths, v1.layout, "pid:8110");
  ASSERT_TRUE(byPid);
  EXPECT_EQ((*byPid)[0].kind, Workload::Kind::kProcessTree);
  EXPECT_EQ((*byPid)[0].root_pid, 8110);
  EXPECT_EQ(selectWorkloads(v1.paths, v1.layout, "pid:99999").error().code, ErrorCode::kNotFound);
  auto byCmd = selectWorkloads(v1.paths, v1.layout, "cmd:^sleep");
  ASSERT_TRUE(byCmd);
  EXPECT_EQ((*byCmd)[0].id, "pid-8110");
  EXPECT_FALSE(selectWorkloads(v1.paths, v1.layout, "cmd:nomatch"));
  EXPECT_TRUE(selectWorkloads(v1.paths, v1.layout, "cgroup:/fs-fixture"));
  EXPECT_EQ(selectWorkloads(v1.paths, v1.layout, "cgroup:/nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(selectWorkloads(v1.paths, v1.layout, "bogus").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(selectWorkloads(v1.paths, v1.layout, "cmd:(").error().code, ErrorCode::kInvalidArgument);
}

TEST(CgroupV1, ReadsCpuMemoryBlkioAndHybridPsi) {
  auto s = collectWith(context("v1"), "cgroup.v1", cgroupWorkload("/fs-fixture"));
  EXPECT_DOUBLE_EQ(s.get("cpu_usage_seconds_total"), 0.578901279);
  EXPECT_DOUBLE_EQ(s.get("cpu_user_seconds_total"), 0.57);
  EXPECT_DOUBLE_EQ(s.get("cpu_throttled_periods_total"), 0);
  EXPECT_TRUE(std::isinf(s.get("cpu_limit_cores")));  // quota -1
  EXPECT_DOUBLE_EQ(s.get("memory_usage_bytes"), 798720);
  EXPECT_TRUE(std::isinf(s.get("memory_limit_bytes")));
  EXPECT_DOUBLE_EQ(s.get("memory_anon_bytes"), 114688);
  EXPECT_DOUBLE_EQ(s.get("memory_file_bytes"), 262144);
  EXPECT_DOUBLE_EQ(s.get("memory_working_set_bytes"), 798720 - 147456);
  EXPECT_DOUBLE_EQ(s.get("memory_faults_total"), 980);
  EXPECT_DOUBLE_EQ(s.get("memory_major_faults_total"), 3);
  EXPECT_DOUBLE_EQ(s.get("memory_oom_kills_total"), 2);  // not oom_kill_disable's 0
  ASSERT_TRUE(s.has("memory_swap_bytes"));  // total_swap: the capture's host had swap accounting
  EXPECT_DOUBLE_EQ(s.get("memory_swap_bytes"), 0);
  EXPECT_DOUBLE_EQ(s.get("memory_anon_refaults_total"), 7);  // total_, not the cgroup's own 0
  EXPECT_DOUBLE_EQ(s.get("memory_file_refaults_total"), 41);  // total_, not its own 40
  EXPECT_DOUBLE_EQ(s.get("memory_pages_out_total"), 510);     // total_pgpgout, not its own 506
  ASSERT_TRUE(s.has("memory_limit_hits_total"));  // memory.failcnt: no limit, no hits
  EXPECT_DOUBLE_EQ(s.get("memory_limit_hits_total"), 0);
  EXPECT_DOUBLE_EQ(s.get("cpuset_cpus"), 1);  // cpuset.effective_cpus "1", not cpuset.cpus "0-1"
  EXPECT_DOUBLE_EQ(s.get("io_read_bytes_total"), 40960);  // vda's lines only: not "Total", not dm's
  EXPECT_DOUBLE_EQ(s.get("io_write_bytes_total"), 20971520);
  EXPECT_DOUBLE_EQ(s.get("io_read_ops_total"), 10);
  EXPECT_DOUBLE_EQ(s.get("io_write_ops_total"), 20);
  EXPECT_DOUBLE_EQ(s.get("psi_cpu_some_seconds_total"), 51.748131);
  EXPECT_DOUBLE_EQ(s.get("psi_cpu_full_seconds_total"), 0);
  EXPECT_FALSE(s.has("psi_memory_some_seconds_total"));  // no memory.pressure captured
}

TEST(CgroupV2, ReadsEveryFile) {
  auto s = collectWith(context("v2"), "cgroup.v2", cgroupWorkload("/system.slice/app.service"));
  EXPECT_DOUBLE_EQ(s.get("cpu_usage_seconds_total"), 2.5);
  EXPECT_DOUBLE_EQ(s.get("cpu_system_seconds_total"), 0.5);
  EXPECT_DOUBLE_EQ(s.get("cpu_periods_total"), 100);
  EXPECT_DOUBLE_EQ(s.get("cpu_throttled_periods_total"), 7);
  EXPECT_DOUBLE_EQ(s.get("cpu_throttled_seconds_total"), 0.35);
  EXPECT_DOUBLE_EQ(s.get("cpu_limit_cores"), 0.5);
  EXPECT_DOUBLE_EQ(s.get("memory_usage_bytes"), 104857600);
  EXPECT_TRUE(std::isinf(s.get("memory_limit_bytes")));  // "max"
  EXPECT_DOUBLE_EQ(s.get("memory_high_bytes"), 94371840);
  EXPECT_DOUBLE_EQ(s.get("memory_working_set_bytes"), 104857600 - 10485760);
  EXPECT_DOUBLE_EQ(s.get("memory_anon_bytes"), 52428800);
  EXPECT_DOUBLE_EQ(s.get("memory_major_faults_total"), 78);
  EXPECT_DOUBLE_EQ(s.get("memory_oom_kills_total"), 1);  // not oom's 2 or oom_group_kill's 0
  EXPECT_DOUBLE_EQ(s.get("memory_swap_bytes"), 2097152);  // memory.swap.current
  EXPECT_DOUBLE_EQ(s.get("memory_anon_refaults_total"), 12);
  EXPECT_DOUBLE_EQ(s.get("memory_file_refaults_total"), 5);
  EXPECT_DOUBLE_EQ(s.get("memory_pages_out_total"), 4096);  // pgsteal, not pgsteal_kswapd
  EXPECT_DOUBLE_EQ(s.get("memory_limit_hits_total"), 7);  // its own max 4 + high 3, not memory.events' 12
  EXPECT_DOUBLE_EQ(s.get("cpuset_cpus"), 3);  // "0-1,4"
  EXPECT_DOUBLE_EQ(s.get("io_read_bytes_total"), 1048576 + 4096);  // two disks, not the dm device
  EXPECT_DOUBLE_EQ(s.get("io_write_ops_total"), 128);
  EXPECT_DOUBLE_EQ(s.get("psi_io_full_seconds_total"), 0.25);
  EXPECT_DOUBLE_EQ(s.get("psi_memory_some_seconds_total"), 0.02);
}

// I/O to a device-mapper device (252:0, LVM and the like) is accounted on it and again on the
// disk below it (254:0): both cgroup versions summed the two.
TEST(CgroupIo, ADeviceStackedOnAnotherIsNotCountedTwice) {
  auto v1 = collectWith(context("v1"), "cgroup.v1", cgroupWorkload("/fs-fixture"));
  EXPECT_DOUBLE_EQ(v1.get("io_write_bytes_total"), 20971520);
  EXPECT_DOUBLE_EQ(v1.get("io_write_ops_total"), 20);
  auto v2 = collectWith(context("v2"), "cgroup.v2", cgroupWorkload("/system.slice/app.service"));
  EXPECT_DOUBLE_EQ(v2.get("io_write_bytes_total"), 8388608);
  EXPECT_DOUBLE_EQ(v2.get("io_read_ops_total"), 16 + 1);
}

// I/O to a loop device is done again by its worker on the backing file, charged to the same
// cgroup, so it reaches the disk below the file: the loop device counts as stacked when that file
// is on a filesystem with a block device, and as a disk when it is not (tmpfs, overlay) or when
// its backing file cannot be found. A copy of the v2 fixture with a loop device 7:0 added.
TEST(CgroupIo, ALoopDeviceIsStackedOnTheDiskOfItsBackingFile) {
  const fs::path root = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                    ("loop-fixture-" + std::to_string(::getpid())));
  fs::remove_all(root);
  fs::copy(kFixtures + "/v2", root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  const fs::path cg = root / "sys/fs/cgroup/system.slice/app.service";
  std::ofstream(cg / "io.stat", std::ios::app) << "7:0 rbytes=0 wbytes=65536 rios=0 wios=16 dbytes=0 dios=0\n";
  fs::create_directories(root / "sys/dev/block/7:0/loop");
  fs::create_directories(root / "sys/dev/block/8:1");  // the disk under "/"
  // The agent's mounts, with the fixture's root where the host's is. None of the files below
  // exists: the mount is found by the path alone.
  const std::string r = root.string();
  fs::create_directories(root / "proc/self");
  std::ofstream(root / "proc/self/mountinfo")
      << "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
      << "30 22 8:1 / " << r << " rw - ext4 /dev/sda1 rw\n"
      << "31 30 0:53 / " << r << "/images/nfs rw - nfs4 server:/export rw\n"
      << "32 30 0:45 / " << r << "/images/tmp rw - tmpfs tmpfs rw\n";
  auto backedBy = [&](const std::string& file) {
    std::ofstream(root / "sys/dev/block/7:0/loop/backing_file", std::ios::trunc) << file << "\n";
    return collectWith(contextAt(root), "cgroup.v2", cgroupWorkload("/system.slice/app.service"));
  };
  constexpr double kDisks = 8388608, kLoop = 65536;  // the fixture's disks; the loop device's line

  // A file on a disk: its I/O is in that disk's line. So is a deleted one's, still on its disk.
  EXPECT_DOUBLE_EQ(backedBy("/images/disk.img").get("io_write_bytes_total"), kDisks);
  EXPECT_DOUBLE_EQ(backedBy("/images/gone.img (deleted)").get("io_write_bytes_total"), kDisks);
  EXPECT_DOUBLE_EQ(backedBy("/images/tmp2/disk.img").get("io_write_bytes_total"), kDisks);
  // On filesystems without a block device (NFS, tmpfs): the loop device is the bottom, counted.
  EXPECT_DOUBLE_EQ(backedBy("/images/nfs/disk.img").get("io_write_bytes_total"), kDisks + kLoop);
  EXPECT_DOUBLE_EQ(backedBy("/images/tmp/disk.img").get("io_write_bytes_total"), kDisks + kLoop);
  // Not an absolute path, or no mountinfo: not understood, counted.
  EXPECT_DOUBLE_EQ(backedBy("images/disk.img").get("io_write_ops_total"), 128 + 16);
  fs::remove(root / "proc/self/mountinfo");
  EXPECT_DOUBLE_EQ(backedBy("/images/disk.img").get("io_write_bytes_total"), kDisks + kLoop);
}

TEST(CgroupV2, EmptyAndMissingFilesAreNotErrors) {
  auto s = collectWith(context("v2"), "cgroup.v2", cgroupWorkload("/system.slice/noio.service"));
  EXPECT_DOUBLE_EQ(s.get("io_read_bytes_total"), 0);  // empty io.stat
  EXPECT_FALSE(s.has("cpu_limit_cores"));             // no cpu.max
  EXPECT_FALSE(s.has("psi_cpu_some_seconds_total"));  // no PSI
  EXPECT_FALSE(s.has("memory_oom_kills_total"));      // no memory.events
  EXPECT_FALSE(s.has("cpuset_cpus"));                 // cpuset controller not enabled
  EXPECT_DOUBLE_EQ(s.get("collector_errors_total"), 0);
}

TEST(Sampler, VanishedCgroupIsNotFoundAndListedAsGone) {
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto ctx = context("v2");
  auto sampler = Sampler::create(ctx, defaultCollectors(ctx.layout), reg);
  ASSERT_TRUE(sampler);
  auto round = sampler->sample({cgroupWorkload("/system.slice/app.service"), cgroupWorkload("/gone")});
  ASSERT_EQ(round.samples.size(), 1u);
  ASSERT_EQ(round.gone.size(), 1u);
  EXPECT_EQ(round.gone[0], "/gone");
  EXPECT_EQ(round.errors, 0u);
  EXPECT_FALSE(Sampler::create(ctx, {"nope"}, reg));
}

// A workload that drops out of discovery between rounds (its cgroup emptied or removed, the usual
// end) is reported gone too, so the agent drops its gauges; before, only a read that failed was.
TEST(Sampler, AWorkloadNoLongerDiscoveredIsListedAsGone) {
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto ctx = context("v2");
  auto sampler = Sampler::create(ctx, defaultCollectors(ctx.layout), reg);
  ASSERT_TRUE(sampler);
  const Workload app = cgroupWorkload("/system.slice/app.service");
  const Workload other = cgroupWorkload("/system.slice/noio.service");
  auto first = sampler->sample({app, other});
  EXPECT_EQ(first.samples.size(), 2u);
  EXPECT_TRUE(first.gone.empty());
  auto second = sampler->sample({app});
  EXPECT_EQ(second.samples.size(), 1u);
  ASSERT_EQ(second.gone.size(), 1u);
  EXPECT_EQ(second.gone[0], other.id);
  EXPECT_TRUE(sampler->sample({app}).gone.empty());  // reported once
}

TEST(Procfs, SumsProcessesAndSkipsVanishedPids) {
  // cgroup.procs lists 8110 and 99999; 99999 has no /proc entry.
  auto s = collectWith(context("v1"), "procfs", cgroupWorkload("/fs-fixture"));
  EXPECT_DOUBLE_EQ(s.get("proc_processes"), 1);
  EXPECT_DOUBLE_EQ(s.get("proc_vanished"), 1);
  EXPECT_DOUBLE_EQ(s.get("proc_cpu_user_seconds_total"), 2.5);
  EXPECT_DOUBLE_EQ(s.get("proc_cpu_system_seconds_total"), 0.5);
  EXPECT_DOUBLE_EQ(s.get("proc_run_delay_seconds_total"), 315038e-9);
  EXPECT_DOUBLE_EQ(s.get("proc_rss_bytes"), 1744.0 * 1024);
  EXPECT_DOUBLE_EQ(s.get("proc_minor_faults_total"), 132);
  EXPECT_DOUBLE_EQ(s.get("proc_major_faults_total"), 1);
  EXPECT_DOUBLE_EQ(s.get("proc_read_bytes_total"), 40960);
  EXPECT_DOUBLE_EQ(s.get("proc_voluntary_ctxsw_total"), 3);
  EXPECT_DOUBLE_EQ(s.get("proc_threads"), 1);
  EXPECT_DOUBLE_EQ(s.get("proc_fds_file"), 2);
  EXPECT_DOUBLE_EQ(s.get("proc_fds_socket"), 2);
  EXPECT_DOUBLE_EQ(s.get("proc_fds_pipe"), 1);
  EXPECT_DOUBLE_EQ(s.get("proc_fds_other"), 1);
}

TEST(Procfs, ExitedProcessTreeIsNotFound) {
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto sampler = Sampler::create(context("v1"), {"procfs"}, reg);
  auto s = sampler->sampleOne({Workload::Kind::kProcessTree, "pid-99999", "", 99999});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kNotFound);
}

TEST(Net, NamespaceOfTheProcessAndHostFallback) {
  auto s = collectWith(context("v1"), "net", cgroupWorkload("/fs-fixture"));
  EXPECT_DOUBLE_EQ(s.get("net_rx_bytes_total"), 98714535);  // eth0 + ifb*, not lo
  EXPECT_DOUBLE_EQ(s.get("net_tx_packets_total"), 1112);
  EXPECT_DOUBLE_EQ(s.get("net_host_fallback"), 0);
  EXPECT_DOUBLE_EQ(s.get("net_namespace"), 4026531833);  // proc/8110/ns/net -> net:[4026531833]
  // A second workload in the same namespace (proc/8110/ns/net) is served from the same reading.
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto net = reg.create("net", context("v1"));
  Sample a, b;
  ASSERT_TRUE((*net)->collect(cgroupWorkload("/x"), {8110}, a));
  ASSERT_TRUE((*net)->collect(cgroupWorkload("/y"), {8110}, b));
  EXPECT_EQ(a.metrics.size(), b.metrics.size());
  EXPECT_DOUBLE_EQ(b.get("net_rx_bytes_total"), 98714535);
  auto empty = collectWith(context("v2"), "net", cgroupWorkload("/system.slice/noio.service"));
  EXPECT_DOUBLE_EQ(empty.get("net_host_fallback"), 1);
  EXPECT_DOUBLE_EQ(empty.get("net_rx_bytes_total"), 98714535);
}

// The host's counters standing in for a workload that lost its last process, or a process in
// another namespace, are another counter: no rate across the switch (it read as a burst of the
// difference between the two), and rates again from the next interval on one source.
TEST(Rates, NetworkCountersFromAnotherSourceAreAReset) {
  auto sample = [](std::int64_t s, double bytes, double fallback, double ns) {
    Sample x{"w", s * 1'000'000'000, {}};
    x.add("net_rx_bytes_total", bytes);
    x.add("net_tx_bytes_total", 0);
    x.add("net_host_fallback", fallback);
    if (!std::isnan(ns)) x.add("net_namespace", ns);
    return x;
  };
  const Sample own = sample(1, 1000, 0, 4026531833), host = sample(2, 97e6, 1, NAN),
               host_later = sample(3, 97e6 + 500, 1, NAN), other_ns = sample(4, 5000, 0, 4026532000),
               own_later = sample(2, 3000, 0, 4026531833);
  EXPECT_DOUBLE_EQ(resourceUsage(own, own_later)[index(Resource::kNetwork)], 2000);
  EXPECT_TRUE(std::isnan(resourceUsage(own, host)[index(Resource::kNetwork)]));
  EXPECT_DOUBLE_EQ(resourceUsage(host, host_later)[index(Resource::kNetwork)], 500);
  EXPECT_TRUE(std::isnan(resourceUsage(host_later, other_ns)[index(Resource::kNetwork)]));
  EXPECT_TRUE(std::isnan(resourceUsage(own, other_ns)[index(Resource::kNetwork)]));
}

namespace {
// A file standing in for a perf fd: read() returns what the collector asks the kernel for (the
// count, time enabled and time running).
void writePerfCounter(const std::string& file, std::uint64_t value, std::uint64_t enabled,
                      std::uint64_t running) {
  const std::uint64_t r[3] = {value, enabled, running};
  FILE* f = std::fopen(file.c_str(), "wb");
  ASSERT_TRUE(f) << file;
  std::fwrite(r, sizeof r, 1, f);
  std::fclose(f);
}
}  // namespace

TEST(Perf, RefusedEventsDegradeOnceAndTheRestWorks) {
  test_support::CapturedLog log;
  int hardware_calls = 0;
  const std::string counter = testing::TempDir() + "/perf-counter";
  writePerfCounter(counter, 5'000'000'000, 1000, 1000);  // task-clock, in ns
  PerfOpener opener = [&](perf_event_attr& attr, pid_t, int, unsigned long) -> int {
    if (attr.type == PERF_TYPE_HARDWARE) {
      ++hardware_calls;
      return -ENOENT;  // what a VM without a PMU answers
    }
    return ::open(counter.c_str(), O_RDONLY | O_CLOEXEC);
  };
  auto perf = makePerfCollector(context("v1"), opener);
  Sample a, b;
  ASSERT_TRUE(perf->collect({Workload::Kind::kProcessTree, "pid-1", "", 1}, {1}, a));
  ASSERT_TRUE(perf->collect({Workload::Kind::kProcessTree, "pid-2", "", 2}, {2}, b));
  EXPECT_EQ(hardware_calls, 4);  // four hardware events, asked once each, not per workload
  EXPECT_EQ(log.count("perf: the kernel refuses"), 1) << log.text();  // one line for the four
  EXPECT_EQ(log.count("refuses events 'cycles', 'instructions', 'cache-references', 'cache-misses' "
                      "(No such file or directory); continuing without them"), 1) << log.text();
  EXPECT_DOUBLE_EQ(a.get("perf_cycles_supported"), 0);
  EXPECT_DOUBLE_EQ(b.get("perf_instructions_supported"), 0);
  EXPECT_FALSE(a.has("perf_cycles_total"));
  EXPECT_DOUBLE_EQ(a.get("perf_task_clock_supported"), 1);
  EXPECT_DOUBLE_EQ(a.get("perf_task_clock_seconds_total"), 5.0);
  std::remove(counter.c_str());
}

TEST(Perf, CgroupWorkloadsGetOneEventPerCpuInTheUnifiedHierarchy) {
  const std::string counter = testing::TempDir() + "/perf-counter-cg";
  writePerfCounter(counter, 2'000'000'000, 1000, 1000);
  std::vector<int> cpus;
  PerfOpener opener = [&](perf_event_attr& attr, pid_t, int cpu, unsigned long flags) -> int {
    if (attr.type == PERF_TYPE_HARDWARE) return -ENOENT;
    EXPECT_TRUE(flags & PERF_FLAG_PID_CGROUP);
    EXPECT_EQ(attr.inherit, 0u);
    cpus.push_back(cpu);
    return ::open(counter.c_str(), O_RDONLY | O_CLOEXEC);
  };
  auto perf = makePerfCollector(context("v1"), opener);  // hybrid: unified/fs-fixture exists
  Sample s;
  ASSERT_TRUE(perf->collect(cgroupWorkload("/fs-fixture"), {8110}, s));
  // The online CPUs of the fixture's sys/devices/system/cpu/online, "0,2-3": not CPU 1, where
  // the event would fail; CPUs 0..N-1 were asked for, N being how many are online.
  EXPECT_EQ(cpus, (std::vector<int>{0, 2, 3}));
  EXPECT_DOUBLE_EQ(s.get("perf_cgroup_supported"), 1);
  EXPECT_DOUBLE_EQ(s.get("perf_task_clock_seconds_total"), 2.0 * 3);  // summed over CPUs
  // A cgroup with no unified-side directory: said unsupported, nothing opened, not an error.
  cpus.clear();
  Sample t;
  ASSERT_TRUE(perf->collect(cgroupWorkload("/v1-only"), {}, t));
  EXPECT_TRUE(cpus.empty());
  EXPECT_DOUBLE_EQ(t.get("perf_cgroup_supported"), 0);
  EXPECT_FALSE(t.has("perf_task_clock_seconds_total"));
  // Without the kernel's list of online CPUs (the v2 fixture has none): the same.
  Sample u;
  ASSERT_TRUE(makePerfCollector(context("v2"), opener)->collect(cgroupWorkload("/system.slice/app.service"), {}, u));
  EXPECT_TRUE(cpus.empty());
  EXPECT_DOUBLE_EQ(u.get("perf_cgroup_supported"), 0);
  std::remove(counter.c_str());
}

// A CPU brought online after a cgroup's events were opened (a vCPU hot-added, as the libvirt
// backend does) is counted from the next round, and one taken offline is dropped: the events are
// opened again on the CPUs online, and the counter goes on from the counts so far instead of
// back to 0. Pipes stand in for the
// event fds, so each round the test hands every event the count the kernel would.
TEST(Perf, ACpuOnlinedLaterIsCountedAndTheCounterDoesNotGoBack) {
  namespace fs = std::filesystem;
  const fs::path root = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                    ("perf-hotplug-" + std::to_string(::getpid())));
  fs::remove_all(root);
  fs::copy(kFixtures + "/v1", root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  const fs::path online = root / "sys/devices/system/cpu/online";  // "0,2-3"
  const CollectorContext ctx = contextAt(root.string());
  std::vector<std::pair<int, int>> events;  // (cpu, the write end of its pipe), in opening order
  PerfOpener opener = [&](perf_event_attr& attr, pid_t, int cpu, unsigned long) -> int {
    if (attr.type == PERF_TYPE_HARDWARE) return -ENOENT;  // task-clock only
    int p[2];
    if (::pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) return -errno;
    events.emplace_back(cpu, p[1]);
    return p[0];
  };
  // Every event from `first` on reads `ns` of task-clock (the cumulative count of its own CPU).
  auto count = [&](std::size_t first, std::uint64_t ns) {
    for (std::size_t e = first; e < events.size(); ++e) {
      const std::uint64_t r[3] = {ns, 1000, 1000};
      ASSERT_EQ(::write(events[e].second, r, sizeof r), static_cast<ssize_t>(sizeof r));
    }
  };
  auto perf = makePerfCollector(ctx, opener);
  auto round = [&] {
    Sample s;
    s.detail = true;
    EXPECT_TRUE(perf->collect(cgroupWorkload("/fs-fixture"), {8110}, s));
    return s;
  };
  auto cpusOf = [&](std::size_t first) {
    std::vector<int> cpus;
    for (std::size_t e = first; e < events.size(); ++e) cpus.push_back(events[e].first);
    return cpus;
  };
  // Opened in the first round, on CPUs 0, 2 and 3.
  Sample s1;
  s1.detail = true;
  ASSERT_TRUE(perf->collect(cgroupWorkload("/fs-fixture"), {8110}, s1));
  ASSERT_EQ(cpusOf(0), (std::vector<int>{0, 2, 3}));
  count(0, 1'000'000'000);
  EXPECT_DOUBLE_EQ(round().get("perf_task_clock_seconds_total"), 3.0);
  count(0, 2'000'000'000);
  EXPECT_DOUBLE_EQ(round().get("perf_task_clock_seconds_total"), 6.0);
  // CPU 1 comes online. The old events are read a last time (2.5 s each), then the events are
  // opened on all four CPUs and count from 0.
  std::ofstream(online) << "0-3\n";
  count(0, 2'500'000'000);
  const std::size_t reopened = events.size();
  Sample s3 = round();
  ASSERT_EQ(cpusOf(reopened), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_FALSE(s3.has("perf_task_clock_seconds_total"));  // the new events have no count yet here
  count(reopened, 1'000'000'000);
  EXPECT_DOUBLE_EQ(round().get("perf_task_clock_seconds_total"), 7.5 + 4.0);
  // Nothing changes: nothing is opened again.
  count(reopened, 1'500'000'000);
  EXPECT_DOUBLE_EQ(round().get("perf_task_clock_seconds_total"), 7.5 + 6.0);
  EXPECT_EQ(events.size(), reopened + 4);
  // CPU 1 goes offline again, and this time the events give no count when it is noticed: what
  // they gave last (6 s) is carried over.
  std::ofstream(online) << "0,2-3\n";
  const std::size_t again = events.size();
  EXPECT_FALSE(round().has("perf_task_clock_seconds_total"));
  ASSERT_EQ(cpusOf(again), (std::vector<int>{0, 2, 3}));
  count(again, 1'000'000'000);
  EXPECT_DOUBLE_EQ(round().get("perf_task_clock_seconds_total"), 7.5 + 6.0 + 3.0);
  for (const auto& [cpu, fd] : events) ::close(fd);
}

// With more events than counters the kernel multiplexes them: a count covers only the share of
// the time its event ran, and was summed as is (a third of the cycles here).
TEST(Perf, ScaledCountUndoesMultiplexing) {
  EXPECT_DOUBLE_EQ(*scaledCount(1000, 3000, 1000), 3000);
  EXPECT_DOUBLE_EQ(*scaledCount(1000, 1000, 1000), 1000);  // ran all the time
  EXPECT_DOUBLE_EQ(*scaledCount(0, 0, 0), 0);              // not enabled yet
  EXPECT_FALSE(scaledCount(0, 5000, 0).has_value());       // enabled, never on a counter
  EXPECT_DOUBLE_EQ(*scaledCount(3, 4, 3), 4);
}

TEST(Perf, CountersAreReadWithTheirTimesAndScaled) {
  const std::string dir = testing::TempDir();
  writePerfCounter(dir + "/perf-mux", 1000, 3000, 1000);             // ran a third of the time
  writePerfCounter(dir + "/perf-never", 0, 3000, 0);                 // never got a counter
  writePerfCounter(dir + "/perf-clock", 2'000'000'000, 4000, 4000);  // software: not multiplexed
  PerfOpener opener = [&](perf_event_attr& attr, pid_t, int, unsigned long) -> int {
    EXPECT_EQ(attr.read_format, PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING);
    const char* file = attr.type == PERF_TYPE_SOFTWARE                  ? "/perf-clock"
                       : attr.config == PERF_COUNT_HW_CACHE_REFERENCES ? "/perf-never"
                                                                        : "/perf-mux";
    return ::open((dir + file).c_str(), O_RDONLY | O_CLOEXEC);
  };
  auto perf = makePerfCollector(context("v1"), opener);
  Sample s;
  ASSERT_TRUE(perf->collect({Workload::Kind::kProcessTree, "pid-1", "", 1}, {1}, s));
  EXPECT_DOUBLE_EQ(s.get("perf_cycles_total"), 3000);
  EXPECT_DOUBLE_EQ(s.get("perf_instructions_total"), 3000);
  EXPECT_DOUBLE_EQ(s.get("perf_cache_references_supported"), 1);
  EXPECT_FALSE(s.has("perf_cache_references_total"));  // unknown, not 0
  EXPECT_DOUBLE_EQ(s.get("perf_task_clock_seconds_total"), 2.0);
  for (const char* f : {"/perf-mux", "/perf-never", "/perf-clock"}) std::remove((dir + f).c_str());
}

// Rates are taken over the monotonic clock: a wall clock stepped back (NTP) or forward (a VM
// resumed) between two samples used to give no rate, or one divided by the step.
TEST(Rates, AreTakenOverTheMonotonicClockNotTheWallClock) {
  Sample a{"w", 1'000'000'000'000, {}}, b{"w", 900'000'000'000, {}}, c{"w", 1'500'000'000'000, {}};
  a.mono_ns = 5'000'000'000;
  b.mono_ns = 7'000'000'000;  // 2 s later, while the wall clock went back 100 s
  c.mono_ns = 9'000'000'000;  // 2 s later, while it jumped forward 600 s
  a.add("cpu_usage_seconds_total", 10);
  b.add("cpu_usage_seconds_total", 14);
  c.add("cpu_usage_seconds_total", 18);
  EXPECT_DOUBLE_EQ(counterRate(a, b, "cpu_usage_seconds_total"), 2.0);
  EXPECT_DOUBLE_EQ(counterRate(b, c, "cpu_usage_seconds_total"), 2.0);
  // A metric carried forward from a detail round keeps its monotonic read time.
  Sample last;
  carryForward(last, a);
  Sample d{"w", 1'600'000'000'000, {}};
  d.mono_ns = 11'000'000'000;
  d.add("memory_usage_bytes", 1);
  carryForward(last, d);
  const Metric* kept = last.find("cpu_usage_seconds_total");
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->time_ns, 5'000'000'000);
}

TEST(Rates, CountersBecomeRatesAndResets) {
  Sample a{"w", 1'000'000'000, {}}, b{"w", 3'000'000'000, {}};
  a.add("cpu_usage_seconds_total", 10);
  b.add("cpu_usage_seconds_total", 13);
  a.add("proc_read_bytes_total", 100);
  b.add("proc_read_bytes_total", 50);  // a process exited
  a.add("proc_write_bytes_total", 0);
  b.add("proc_write_bytes_total", 0);
  a.add("net_rx_bytes_total", 0); b.add("net_rx_bytes_total", 2000);
  a.add("net_tx_bytes_total", 0); b.add("net_tx_bytes_total", 2000);
  b.add("memory_working_set_bytes", 4096);
  EXPECT_DOUBLE_EQ(counterRate(a, b, "cpu_usage_seconds_total"), 1.5);
  EXPECT_DOUBLE_EQ(counterRate(a, b, "proc_read_bytes_total"), 0.0);
  EXPECT_TRUE(std::isnan(counterRate(a, b, "absent_total")));
  auto u = resourceUsage(a, b);
  EXPECT_DOUBLE_EQ(u[0], 1.5);
  EXPECT_DOUBLE_EQ(u[1], 4096);
  EXPECT_DOUBLE_EQ(u[2], 0.0);
  EXPECT_DOUBLE_EQ(u[3], 2000);
}

// A cgroup at its cpu quota: usage reads as the quota, the throttled time is the rest of demand.
TEST(Rates, DemandAddsTheThrottledTimeToCpu) {
  Sample a{"w", 1'000'000'000, {}}, b{"w", 3'000'000'000, {}};
  a.add("cpu_usage_seconds_total", 10); b.add("cpu_usage_seconds_total", 12);      // 1 core
  a.add("cpu_throttled_seconds_total", 4); b.add("cpu_throttled_seconds_total", 5);  // 0.5 s/s
  b.add("memory_working_set_bytes", 4096);
  const auto u = resourceUsage(a, b);
  const auto d = resourceDemand(a, b, u, 8);
  EXPECT_DOUBLE_EQ(u[0], 1.0);
  EXPECT_DOUBLE_EQ(d[0], 1.5);
  EXPECT_DOUBLE_EQ(d[1], 4096);  // memory has no held-back share to add
  // Throttled time is summed over CPUs: on a 1.2-CPU host it cannot add more than 0.2 cores.
  EXPECT_DOUBLE_EQ(resourceDemand(a, b, u, 1.2)[0], 1.2);
  // ... and never takes the usage itself down.
  EXPECT_DOUBLE_EQ(cpuDemand(1.0, 0.5, 0.5), 1.0);
  // A cpuset narrower than the host bounds it too; a wider one does not lift the host's bound.
  auto withCpuset = [&](double n) {
    Sample c = b;
    c.add("cpuset_cpus", n);
    return resourceDemand(a, c, u, 1.2)[0];
  };
  EXPECT_DOUBLE_EQ(withCpuset(1), 1.0);
  EXPECT_DOUBLE_EQ(withCpuset(16), 1.2);
  // Without throttling counters (a process tree, or no cpu controller) demand is usage.
  Sample c{"w", 1'000'000'000, {}}, e{"w", 3'000'000'000, {}};
  c.add("cpu_usage_seconds_total", 10); e.add("cpu_usage_seconds_total", 12);
  EXPECT_DOUBLE_EQ(resourceDemand(c, e, resourceUsage(c, e), 8)[0], 1.0);
}

// A cgroup under a memory limit of its own that swaps: what it swapped is demand the limit held
// out (the working set alone fits the limit it thrashes under). Without a limit of its own, the
// swap is the host's doing, not the limit's.
// Swap counts while the workload reads it back (anonymous refaults in the interval), and where
// that is not known; swap nothing reads back is cold pages the limit keeps out.
TEST(Rates, DemandCountsTheSwapOfALimitedCgroupWhileItIsReadBack) {
  constexpr double kMiB = 1024 * 1024;
  auto demand = [&](double working_set, double swap, double limit, double refaults_before = NAN,
                    double refaults = NAN) {
    Sample a{"w", 1'000'000'000, {}}, b{"w", 2'000'000'000, {}};
    if (!std::isnan(working_set)) b.add("memory_working_set_bytes", working_set);
    if (!std::isnan(swap)) b.add("memory_swap_bytes", swap);
    if (!std::isnan(refaults_before)) a.add("memory_anon_refaults_total", refaults_before);
    if (!std::isnan(refaults)) b.add("memory_anon_refaults_total", refaults);
    b.add("memory_limit_bytes", limit);
    return resourceDemand(a, b, resourceUsage(a, b), 8)[index(Resource::kMemory)];
  };
  EXPECT_DOUBLE_EQ(demand(100 * kMiB, 50 * kMiB, 120 * kMiB, 10, 500), 150 * kMiB);  // thrashing
  EXPECT_DOUBLE_EQ(demand(100 * kMiB, 50 * kMiB, 120 * kMiB, 500, 500), 100 * kMiB);  // cold swap
  EXPECT_DOUBLE_EQ(demand(100 * kMiB, 50 * kMiB, 120 * kMiB), 150 * kMiB);  // kernel before 5.9
  EXPECT_DOUBLE_EQ(demand(100 * kMiB, 50 * kMiB, 120 * kMiB, NAN, 500), 150 * kMiB);  // first interval
  EXPECT_DOUBLE_EQ(demand(100 * kMiB, 0, 120 * kMiB, 10, 500), 100 * kMiB);
  EXPECT_DOUBLE_EQ(demand(100 * kMiB, NAN, 120 * kMiB, 10, 500), 100 * kMiB);  // no swap accounting
  EXPECT_DOUBLE_EQ(demand(100 * kMiB, 50 * kMiB, std::numeric_limits<double>::infinity(), 10, 500),
                   100 * kMiB);
  EXPECT_TRUE(std::isnan(demand(NAN, 50 * kMiB, 120 * kMiB, 10, 500)));  // no working set this round
}

// The share of time stalled on memory counts where the cgroup ran at its own limit (usage at least
// 90 % of memory.max, or of memory.high where lower); below it the stalls are the host's: 0.
TEST(Rates, MemoryStallCountsOnlyAtTheCgroupsOwnLimit) {
  constexpr double kMiB = 1024 * 1024;
  const double inf = std::numeric_limits<double>::infinity();
  // Two samples 2 s apart; NaN leaves a figure out.
  auto samples = [](double usage, double limit, double high, double stalled_before, double stalled,
                    double hits) {
    std::pair<Sample, Sample> p{Sample{"w", 1'000'000'000, {}}, Sample{"w", 3'000'000'000, {}}};
    auto& [a, b] = p;
    if (!std::isnan(stalled_before)) a.add("psi_memory_some_seconds_total", stalled_before);
    if (!std::isnan(stalled)) b.add("psi_memory_some_seconds_total", stalled);
    if (!std::isnan(hits)) {
      a.add("memory_limit_hits_total", 100);
      b.add("memory_limit_hits_total", 100 + hits);
    }
    if (!std::isnan(usage)) b.add("memory_usage_bytes", usage);
    if (!std::isnan(limit)) b.add("memory_limit_bytes", limit);
    if (!std::isnan(high)) b.add("memory_high_bytes", high);
    return p;
  };
  auto stall = [&](double usage, double limit, double high = NAN, double stalled_before = 1.0,
                   double stalled = 1.5, double hits = NAN) {
    const auto [a, b] = samples(usage, limit, high, stalled_before, stalled, hits);
    return memoryStallAtLimit(a, b);
  };
  EXPECT_DOUBLE_EQ(stall(95 * kMiB, 100 * kMiB), 0.25);             // 0.5 s stalled in 2 s
  EXPECT_DOUBLE_EQ(stall(90 * kMiB, 100 * kMiB), 0.25);             // 90 %: at it
  EXPECT_DOUBLE_EQ(stall(80 * kMiB, 100 * kMiB), 0.0);              // the host's stalls
  EXPECT_DOUBLE_EQ(stall(80 * kMiB, 100 * kMiB, 85 * kMiB), 0.25);  // at memory.high
  EXPECT_DOUBLE_EQ(stall(80 * kMiB, inf, 85 * kMiB), 0.25);         // memory.high alone
  EXPECT_DOUBLE_EQ(stall(80 * kMiB, inf, inf), 0.0);                // no limit
  EXPECT_DOUBLE_EQ(stall(80 * kMiB, NAN), 0.0);                     // no limit read
  EXPECT_DOUBLE_EQ(stall(NAN, 100 * kMiB), 0.0);                    // no usage read
  EXPECT_TRUE(std::isnan(stall(95 * kMiB, 100 * kMiB, NAN, NAN)));  // PSI: nothing to compare with
  EXPECT_TRUE(std::isnan(stall(95 * kMiB, 100 * kMiB, NAN, 1.0, NAN)));  // not read this round
  // Where the kernel's count of charges that hit the cgroup's own limit is read, it decides.
  EXPECT_DOUBLE_EQ(stall(95 * kMiB, 100 * kMiB, NAN, 1.0, 1.5, 0), 0.0);    // an ancestor's limit
  EXPECT_DOUBLE_EQ(stall(80 * kMiB, 100 * kMiB, NAN, 1.0, 1.5, 3), 0.25);   // hit, then freed some
  EXPECT_DOUBLE_EQ(stall(80 * kMiB, 100 * kMiB, 85 * kMiB, 1.0, 1.5, 3), 0.25);  // memory.high's
  EXPECT_DOUBLE_EQ(stall(80 * kMiB, inf, inf, 1.0, 1.5, 3), 0.0);           // no limit of its own
  // What is not at its own limit is the host's or an ancestor's: memoryStallElsewhere.
  auto elsewhere = [&](double usage, double limit, double hits) {
    const auto [a, b] = samples(usage, limit, NAN, 1.0, 1.5, hits);
    return memoryStallElsewhere(a, b);
  };
  EXPECT_DOUBLE_EQ(elsewhere(95 * kMiB, 100 * kMiB, 0), 0.25);    // an ancestor's limit
  EXPECT_DOUBLE_EQ(elsewhere(95 * kMiB, 100 * kMiB, 3), 0.0);     // its own
  EXPECT_DOUBLE_EQ(elsewhere(50 * kMiB, inf, NAN), 0.25);         // no limit of its own
  EXPECT_DOUBLE_EQ(elsewhere(95 * kMiB, 100 * kMiB, NAN), 0.0);   // at 90 %: its own

  // Wall clock 1001 s and 1003 s; the interval clock (monotonic) 1 s and 3 s.
  Sample a{"w", 1'001'000'000'000, {}}, b{"w", 1'003'000'000'000, {}};
  a.mono_ns = 1'000'000'000;
  b.mono_ns = 3'000'000'000;
  a.add("psi_memory_some_seconds_total", 1.0);
  b.add("psi_memory_some_seconds_total", 1.5);
  b.add("memory_usage_bytes", 95 * kMiB);
  b.add("memory_limit_bytes", 100 * kMiB);
  b.add("cpuset_cpus", 2);
  const auto l = limitReadings(a, b);
  EXPECT_DOUBLE_EQ(l.cpuset_cpus, 2);
  EXPECT_DOUBLE_EQ(l.memory_limit, 100 * kMiB);
  EXPECT_DOUBLE_EQ(l.memory_stall, 0.25);
  EXPECT_DOUBLE_EQ(l.memory_stall_since, 1001.0);  // the last PSI read, on the wall clock
  EXPECT_DOUBLE_EQ(l.memory_stall_elsewhere, 0.0);  // all of it at its own limit
}

// At its limit, a workload that reads a file once stalls in reclaim as one that thrashes does, and
// no limit cures it: the stall counts by the share of the pages out that were read back.
TEST(Rates, MemoryStallAtTheLimitCountsByTheShareOfPagesOutReadBack) {
  constexpr double kMiB = 1024 * 1024;
  // 0.5 s stalled in 2 s at the limit; counters in pages, from 1000 each before.
  auto stall = [&](double anon_back, double file_back, double out) {
    Sample a{"w", 1'000'000'000, {}}, b{"w", 3'000'000'000, {}};
    a.add("psi_memory_some_seconds_total", 1.0);
    b.add("psi_memory_some_seconds_total", 1.5);
    b.add("memory_usage_bytes", 95 * kMiB);
    b.add("memory_limit_bytes", 100 * kMiB);
    for (auto [name, delta] : {std::pair{"memory_anon_refaults_total", anon_back},
                               std::pair{"memory_file_refaults_total", file_back},
                               std::pair{"memory_pages_out_total", out}}) {
      if (std::isnan(delta)) continue;
      a.add(name, 1000);
      b.add(name, 1000 + delta);
    }
    return memoryStallAtLimit(a, b);
  };
  EXPECT_DOUBLE_EQ(stall(0, 0, 5000), 0.0);           // a stream read once: nothing came back
  EXPECT_DOUBLE_EQ(stall(0, 5000, 5000), 0.25);       // thrashing: all of it came back
  EXPECT_DOUBLE_EQ(stall(0, 1000, 4000), 0.0625);     // a quarter came back
  EXPECT_DOUBLE_EQ(stall(500, 500, 4000), 0.0625);    // swap read back counts as file does
  EXPECT_DOUBLE_EQ(stall(0, 16000, 1000), 0.25);      // v1 counts folios out, refaults in pages
  EXPECT_DOUBLE_EQ(stall(0, 10, 0), 0.25);            // read back, nothing out this interval
  EXPECT_DOUBLE_EQ(stall(0, 0, 0), 0.25);             // reclaim freed nothing: the limit holds it
  EXPECT_DOUBLE_EQ(stall(NAN, NAN, NAN), 0.25);       // no counters (before 5.9): all of it
  EXPECT_DOUBLE_EQ(stall(0, 0, NAN), 0.25);           // no pages out read: all of it
}

// An OOM kill hides how much memory the workload wanted: demand becomes VPA's bump of the limit.
TEST(Rates, DemandAfterANewOomKillIsTheLimitBumpedAsVpaDoes) {
  auto pair = [](double kills_before, double kills, double limit) {
    Sample a{"w", 1'000'000'000, {}}, b{"w", 2'000'000'000, {}};
    if (!std::isnan(kills_before)) a.add("memory_oom_kills_total", kills_before);
    if (!std::isnan(kills)) b.add("memory_oom_kills_total", kills);
    b.add("memory_limit_bytes", limit);
    b.add("memory_working_set_bytes", std::isfinite(limit) ? 0.9 * limit : 0.9e9);
    return resourceDemand(a, b, resourceUsage(a, b), 8)[index(Resource::kMemory)];
  };
  EXPECT_DOUBLE_EQ(pair(0, 1, 1e9), 1.2e9);                                  // x 1.2
  EXPECT_DOUBLE_EQ(pair(3, 4, 1e8), 1e8 + 100.0 * 1024 * 1024);               // at least +100 MiB
  EXPECT_DOUBLE_EQ(pair(1, 1, 1e9), 0.9e9);                                  // no new kill
  EXPECT_DOUBLE_EQ(pair(NAN, 1, 1e9), 0.9e9);                                // nothing to compare with
  EXPECT_DOUBLE_EQ(pair(0, 1, std::numeric_limits<double>::infinity()), 0.9e9);  // no limit: not ours
  EXPECT_DOUBLE_EQ(memoryDemandAfterOomKill(1e9), 1.2e9);
}

TEST(Rates, DerivedRatiosOnlyWhenInputsMoved) {
  Sample a{"w", 0, {}}, b{"w", 1'000'000'000, {}};
  a.add("perf_cycles_total", 1000); b.add("perf_cycles_total", 5000);
  a.add("perf_instructions_total", 0); b.add("perf_instructions_total", 6000);
  a.add("perf_cache_references_total", 10); b.add("perf_cache_references_total", 110);
  a.add("perf_cache_misses_total", 1); b.add("perf_cache_misses_total", 6);
  a.add("cpu_periods_total", 100); b.add("cpu_periods_total", 110);
  a.add("cpu_throttled_periods_total", 7); b.add("cpu_throttled_periods_total", 10);
  a.add("psi_memory_some_seconds_total", 2.0); b.add("psi_memory_some_seconds_total", 2.1);
  b.add("memory_usage_bytes", 95); b.add("memory_limit_bytes", 100);
  auto d = derivedMetrics(a, b);
  Sample m{"w", 0, d};
  EXPECT_DOUBLE_EQ(m.get("ipc"), 1.5);        // 6000 / 4000
  EXPECT_DOUBLE_EQ(m.get("cpi"), 4000.0 / 6000.0);
  EXPECT_DOUBLE_EQ(m.get("cache_miss_ratio"), 0.05);  // 5 / 100
  EXPECT_DOUBLE_EQ(m.get("cpu_throttled_ratio"), 0.3);
  EXPECT_NEAR(m.get("memory_stall_at_limit_ratio"), 0.1, 1e-12);  // 0.1 s in 1 s, at the limit
  // No perf counters (this VM): no ratios, rather than zeros.
  Sample c{"w", 0, {}}, e{"w", 1'000'000'000, {}};
  c.add("cpu_periods_total", 5); e.add("cpu_periods_total", 5);
  EXPECT_TRUE(derivedMetrics(c, e).empty());
}

namespace {

// A writable copy of the v1 fixture with `n` cgroups /tier-0 .. /tier-{n-1}, each a copy of
// /fs-fixture in every hierarchy, so a test can change files between rounds.
CollectorContext tieredFixture(const std::string& name, int n) {
  namespace fs = std::filesystem;
  const fs::path root = test_support::removedAtExit(fs::path(testing::TempDir()) / name);
  fs::remove_all(root);
  fs::copy(kFixtures + "/v1", root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  for (const auto& h : fs::directory_iterator(root / "sys/fs/cgroup")) {
    if (!fs::is_directory(h.path() / "fs-fixture")) continue;
    for (int i = 0; i < n; ++i)
      fs::copy(h.path() / "fs-fixture", h.path() / ("tier-" + std::to_string(i)),
               fs::copy_options::recursive);
  }
  return contextAt(root.string());
}

void writeFile(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

}  // namespace

namespace {

// Records the pid list and tier each collect gets, to show which rounds read cgroup.procs.
class PidSpy final : public Collector {
 public:
  struct Seen { bool detail; std::vector<pid_t> pids; };
  explicit PidSpy(std::map<std::string, std::vector<Seen>>& seen) : seen_(seen) {}
  const char* name() const override { return "spy"; }
  Status collect(const Workload& w, const std::vector<pid_t>& pids, Sample& out) override {
    seen_[w.id].push_back({out.detail, pids});
    return ok();
  }

 private:
  std::map<std::string, std::vector<Seen>>& seen_;
};

}  // namespace

TEST(Tiered, DetailFilesEveryNRoundsStaggeredCheapOnesEveryRound) {
  constexpr int kWorkloads = 12;
  constexpr unsigned kN = 4;
  auto ctx = tieredFixture("tiered-stagger", kWorkloads);
  ctx.detail_every = kN;
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  // perf with /dev/zero standing in for every event fd: each read() gives a count of 0, so a
  // perf metric in a sample shows that round read the events.
  reg.add("perf-fake", "", [](const CollectorContext& c) {
    return makePerfCollector(c, [](perf_event_attr&, pid_t, int, unsigned long) {
      return ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
    });
  });
  std::map<std::string, std::vector<PidSpy::Seen>> seen;
  reg.add("spy", "", [&seen](const CollectorContext&) { return std::make_unique<PidSpy>(seen); });
  auto sampler = Sampler::create(ctx, {"cgroup.v1", "procfs", "net", "perf-fake", "spy"}, reg);
  ASSERT_TRUE(sampler);
  std::vector<Workload> ws;
  for (int i = 0; i < kWorkloads; ++i) ws.push_back(cgroupWorkload("/tier-" + std::to_string(i)));
  // PSI (the fixture's hybrid unified side) and the perf cgroup events are detail files.
  const char* kDetail[] = {"cpu_user_seconds_total", "memory_anon_bytes", "memory_faults_total",
                           "memory_working_set_bytes",
                           "io_read_bytes_total", "proc_cpu_user_seconds_total", "proc_processes",
                           "net_rx_bytes_total", "psi_cpu_some_seconds_total",
                           "psi_io_some_seconds_total", "perf_cgroup_supported",
                           "perf_task_clock_seconds_total"};
  // What the forecaster and the allocator consume each period, and the limits as last read.
  const char* kEveryRound[] = {"cpu_usage_seconds_total", "memory_usage_bytes", "cpu_limit_cores"};
  // Throttling: cpu.stat.local (which the fixture has) every round under a CFS quota of the
  // cgroup's own (even-numbered workloads here), a detail file without one; cpu.stat's counters,
  // read for the demand only where there is no cpu.stat.local, in the detail rounds.
  const char* kLocalThrottling = "cpu_throttled_local_seconds_total";
  const char* kThrottling[] = {"cpu_periods_total", "cpu_throttled_periods_total"};
  for (int i = 0; i < kWorkloads; i += 2)
    writeFile(ctx.layout.v1("cpu").value() / ("tier-" + std::to_string(i)) / "cpu.cfs_quota_us", "50000\n");
  const std::filesystem::path procs_dir = ctx.layout.reference();
  std::map<std::string, std::vector<int>> detail_rounds;
  std::map<int, int> per_round;
  for (int r = 0; r < 1 + 3 * static_cast<int>(kN); ++r) {
    // A pid that names the round joins every cgroup: only a fresh cgroup.procs read shows it.
    for (const auto& w : ws) writeFile(procs_dir / w.cgroup.substr(1) / "cgroup.procs",
                                       "8110\n" + std::to_string(100000 + r) + "\n");
    auto round = sampler->sample(ws);
    ASSERT_EQ(round.samples.size(), ws.size());
    for (const auto& s : round.samples) {
      for (const char* m : kEveryRound) EXPECT_TRUE(s.has(m)) << s.workload << " round " << r << " " << m;
      const bool quota = std::stoi(s.workload.substr(s.workload.rfind('-') + 1)) % 2 == 0;
      EXPECT_EQ(s.get("cpu_limit_cores"), quota ? 0.5 : HUGE_VAL) << s.workload;
      EXPECT_EQ(s.has(kLocalThrottling), quota || s.detail) << s.workload << " round " << r;
      for (const char* m : kThrottling) EXPECT_EQ(s.has(m), s.detail) << s.workload << " round " << r << " " << m;
      for (const char* m : kDetail) EXPECT_EQ(s.has(m), s.detail) << s.workload << " round " << r << " " << m;
      if (s.detail) {
        detail_rounds[s.workload].push_back(r);
        ++per_round[r];
      }
    }
  }
  for (const auto& [w, rounds] : detail_rounds) {
    ASSERT_GE(rounds.size(), 2u) << w;
    EXPECT_EQ(rounds[0], 0) << w;  // the first sample reads everything
    // After the first, exactly every kN rounds.
    for (std::size_t i = 2; i < rounds.size(); ++i) EXPECT_EQ(rounds[i] - rounds[i - 1], static_cast<int>(kN)) << w;
    EXPECT_EQ(rounds.size(), 4u) << w;  // round 0, then 3 in 12 rounds
  }
  // Staggered: after round 0 no round reads every workload's detail, and each reads some.
  int busiest = 0;
  for (int r = 1; r <= static_cast<int>(kN); ++r) busiest = std::max(busiest, per_round[r]);
  EXPECT_LT(busiest, kWorkloads);
  int total = 0;
  for (int r = 1; r <= static_cast<int>(kN); ++r) total += per_round[r];
  EXPECT_EQ(total, kWorkloads);  // one detail read per workload per kN rounds
  // cgroup.procs is read in a workload's detail rounds only; between them the collectors get the
  // list of its last detail round.
  for (const auto& [w, calls] : seen) {
    ASSERT_EQ(calls.size(), 1 + 3 * kN) << w;
    const auto& rounds = detail_rounds[w];
    for (int r = 0; r < static_cast<int>(calls.size()); ++r) {
      const int read_at = *(std::upper_bound(rounds.begin(), rounds.end(), r) - 1);
      EXPECT_EQ(calls[r].detail, read_at == r) << w << " round " << r;
      EXPECT_EQ(calls[r].pids, (std::vector<pid_t>{8110, 100000 + read_at})) << w << " round " << r;
    }
  }

  // detail_every = 1: everything every round.
  auto every = tieredFixture("tiered-every", 2);
  every.detail_every = 1;
  auto s1 = Sampler::create(every, {"cgroup.v1", "procfs", "net", "perf-fake"}, reg);
  ASSERT_TRUE(s1);
  for (int r = 0; r < 3; ++r)
    for (const auto& s : s1->sample({cgroupWorkload("/tier-0"), cgroupWorkload("/tier-1")}).samples) {
      EXPECT_TRUE(s.detail);
      for (const char* m : kDetail) EXPECT_TRUE(s.has(m)) << m;
    }
}

// On v2 an ancestor whose cpu.max is "max" sets no quota: cpu.stat.local stays a detail file for a
// cgroup without a quota of its own (it was read every round: "max" parses as +inf, taken for a
// quota). Under an ancestor with a quota it is read every round.
TEST(Tiered, AnUnlimitedAncestorOnV2IsNoQuota) {
  namespace fs = std::filesystem;
  const fs::path root = fs::path(testing::TempDir()) / ("v2-ancestors-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::copy(kFixtures + "/v2", root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  const fs::path slice = root / "sys/fs/cgroup/system.slice";
  writeFile(slice / "cpu.max", "max 100000\n");
  writeFile(slice / "app.service/cpu.max", "max 100000\n");
  writeFile(slice / "app.service/cpu.stat.local", "throttled_usec 1000\n");
  CollectorContext ctx = context("v2");
  ctx.paths = HostPaths(root.string());
  ctx.layout = detectCgroupLayout(ctx.paths);
  ctx.detail_every = 10;
  const auto rounds = [&] {  // a new sampler each time: ancestors' quotas are kept for a while
    CollectorRegistry reg("collector");
    registerCollectors(reg);
    auto sampler = Sampler::create(ctx, {"cgroup.v2"}, reg);
    EXPECT_TRUE(sampler);
    int detail = 0, local = 0;
    for (int r = 0; r < 12; ++r) {
      const auto round = sampler->sample({cgroupWorkload("/system.slice/app.service")});
      const Sample& x = round.samples.at(0);
      detail += x.detail;
      local += x.has("cpu_throttled_local_seconds_total");
    }
    return std::pair{detail, local};
  };
  const auto [detail, unlimited] = rounds();
  EXPECT_EQ(unlimited, detail);
  writeFile(slice / "cpu.max", "200000 100000\n");
  EXPECT_EQ(rounds().second, 12);
  fs::remove_all(root);
}

TEST(Tiered, RatesSpanTheLongerIntervalAndMissingIsNotZero) {
  constexpr unsigned kN = 3;
  auto ctx = tieredFixture("tiered-rates", 1);
  ctx.detail_every = kN;
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto sampler = Sampler::create(ctx, {"cgroup.v1", "procfs"}, reg);
  ASSERT_TRUE(sampler);
  const Workload w = cgroupWorkload("/tier-0");
  const std::filesystem::path mem = ctx.paths.root() / "sys/fs/cgroup/memory/tier-0";
  const std::filesystem::path acct = ctx.paths.root() / "sys/fs/cgroup/cpuacct/tier-0";
  std::string stat_text;
  {
    std::ifstream in(mem / "memory.stat");
    stat_text.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto setFaults = [&](int faults) {
    std::string t = stat_text;
    const std::string key = "total_pgfault 980";
    t.replace(t.find(key), key.size(), "total_pgfault " + std::to_string(faults));
    writeFile(mem / "memory.stat", t);
  };
  Sample last;
  Sample first_detail;
  bool have_first = false, checked = false;
  int skipped = 0;  // rounds without detail since the last detail read
  std::int64_t cpu_ns = 1'000'000'000;
  for (int r = 0; r < 2 * static_cast<int>(kN) + 1 && !checked; ++r) {
    // Between rounds: 0.5 s of CPU and 100 faults per round.
    writeFile(acct / "cpuacct.usage", std::to_string(cpu_ns) + "\n");
    setFaults(1000 + 100 * r);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto round = sampler->sample({w});
    ASSERT_EQ(round.samples.size(), 1u);
    const Sample& s = round.samples[0];
    if (r > 0) {
      // The cheap counter's rate is over the last round only.
      const double dt = static_cast<double>(s.intervalNs() - last.intervalNs()) / 1e9;
      EXPECT_NEAR(counterRate(last, s, "cpu_usage_seconds_total"), 0.5 / dt, 1e-6 / dt);
      const auto u = resourceUsage(last, s);
      EXPECT_FALSE(std::isnan(u[index(Resource::kCpu)]));
      if (!s.detail) {
        // No fresh detail value: missing (NaN), not a zero rate and not a repeated value.
        EXPECT_TRUE(std::isnan(counterRate(last, s, "memory_faults_total")));
        EXPECT_TRUE(std::isnan(u[index(Resource::kDiskIo)]));
        EXPECT_TRUE(std::isnan(u[index(Resource::kMemory)]));  // the working set needs memory.stat
      } else {
        EXPECT_FALSE(std::isnan(u[index(Resource::kMemory)]));
      }
      if (!s.detail) {
      } else if (have_first && skipped > 0) {
        // Over the whole span since the previous detail read, however many rounds that was.
        const double span = static_cast<double>(s.intervalNs() - first_detail.intervalNs()) / 1e9;
        const double faults = s.get("memory_faults_total") - first_detail.get("memory_faults_total");
        EXPECT_DOUBLE_EQ(faults, 100.0 * (skipped + 1));
        EXPECT_NEAR(counterRate(last, s, "memory_faults_total"), faults / span, 1e-6 * faults / span);
        checked = true;
      }
    }
    if (s.detail) {
      first_detail = s;
      have_first = true;
      skipped = 0;
    } else {
      ++skipped;
    }
    cpu_ns += 500'000'000;
    carryForward(last, s);
  }
  EXPECT_TRUE(checked);
}

TEST(Rates, CarryForwardKeepsEachValueWithItsOwnTime) {
  Sample a{"w", 1'000'000'000, {}}, b{"w", 2'000'000'000, {}}, c{"w", 3'000'000'000, {}};
  a.add("cpu_usage_seconds_total", 0);
  a.add("memory_faults_total", 0);
  b.add("cpu_usage_seconds_total", 1);  // a round without detail: no faults
  c.add("cpu_usage_seconds_total", 1.5);
  c.add("memory_faults_total", 400);
  Sample last;
  carryForward(last, a);
  EXPECT_TRUE(std::isnan(counterRate(last, b, "memory_faults_total")));
  carryForward(last, b);
  EXPECT_DOUBLE_EQ(last.get("memory_faults_total"), 0);  // still the value read at a
  EXPECT_DOUBLE_EQ(counterRate(last, c, "cpu_usage_seconds_total"), 0.5);       // over 1 s
  EXPECT_DOUBLE_EQ(counterRate(last, c, "memory_faults_total"), 200);           // over 2 s
  carryForward(last, c);
  EXPECT_EQ(last.time_ns, 3'000'000'000);
  EXPECT_EQ(last.metrics.size(), 2u);
}
