// libforesight-probe.so loaded into a program with known I/O (probe_target.c): counts, bytes,
// errors and histogram totals per call class, across fork and exec, and read back by the agent's
// probe collector.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "foresight/collect/collector.h"
#include "foresight/collect/probe_reader.h"

using namespace foresight;
using namespace foresight::collect;
namespace fs = std::filesystem;

namespace {

// Runs probe_target (in mode, if given) with the probe preloaded; returns its pid and exit status.
std::pair<pid_t, int> runTarget(const std::string& probe_dir, const std::string& data_file,
                                const char* mode = nullptr) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("LD_PRELOAD", FORESIGHT_PROBE_LIB, 1);
    ::setenv("FORESIGHT_PROBE_DIR", probe_dir.c_str(), 1);
    ::setenv("FORESIGHT_PROBE_KEEP", "1", 1);
    if (mode)
      ::execl(FORESIGHT_PROBE_TARGET, FORESIGHT_PROBE_TARGET, mode, data_file.c_str(), nullptr);
    else
      ::execl(FORESIGHT_PROBE_TARGET, FORESIGHT_PROBE_TARGET, data_file.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

std::vector<uid_t> myUids() { return {::geteuid()}; }

// The segment of pid (as the process sees its pid) in dir; empty when there is none.
fs::path segmentOf(const fs::path& dir, pid_t pid) {
  for (const auto& e : fs::directory_iterator(dir)) {
    auto id = parseProbeSegmentName(e.path().filename().string());
    if (id && id->pid == pid) return e.path();
  }
  return {};
}

ProbeSegmentId idOf(pid_t pid) {
  auto proc = probeProcessOf(HostPaths(), pid);
  EXPECT_TRUE(proc) << proc.error().message;
  return proc ? proc->id : ProbeSegmentId{};
}

// A valid, empty segment for id.
fs_probe_segment emptySegment(const ProbeSegmentId& id) {
  fs_probe_segment seg{};
  seg.magic = FS_PROBE_MAGIC;
  seg.version = FS_PROBE_VERSION;
  seg.classes = FS_PROBE_CLASSES;
  seg.pid = id.pid;
  seg.start = id.start;
  seg.pidns = id.pidns;
  seg.execs = 1;
  return seg;
}

void writeSegment(const fs::path& file, const fs_probe_segment& seg) {
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(&seg), sizeof seg);
}

fs::path writeSegment(const fs::path& dir, const fs_probe_segment& seg, const ProbeSegmentId& id) {
  const fs::path file = probeSegmentPath(dir, id);
  writeSegment(file, seg);
  return file;
}

std::unique_ptr<Collector> probeCollector(const fs::path& dir) {
  CollectorContext ctx;
  ctx.probe_dir = dir;
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto probe = reg.create("probe", ctx);
  EXPECT_TRUE(probe);
  return probe ? std::move(*probe) : nullptr;
}

Workload tree(pid_t pid) { return {Workload::Kind::kProcessTree, "t", "", pid}; }

// A reader blocked in open() would hang the test: SIGALRM ends it as a failure instead.
struct Watchdog {
  Watchdog() { ::alarm(60); }
  ~Watchdog() { ::alarm(0); }
};

// probe_target "hold" with the probe: it and its child do their writes, say their pids, close
// stdout and wait for stdin to close. With namespaces (CLONE_NEWPID, CLONE_NEWTIME) it runs in
// new ones: as pid 1 of a new pid namespace; with boot time a day ahead of ours.
struct Held {
  pid_t pid = -1;     // the target, as this process numbers it
  std::string lines;  // what the two printed
  int stdin_fd = -1;
  pid_t waited = -1;  // this process's child: the target, or the namespace's parent

  // Lets both finish; the target's exit status.
  int release() {
    if (stdin_fd >= 0) ::close(stdin_fd);
    stdin_fd = -1;
    int status = 0;
    if (waited > 0 && ::waitpid(waited, &status, 0) != waited) return -1;
    waited = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  ~Held() { release(); }
};
using HeldPtr = std::unique_ptr<Held>;

// nullopt when the pid namespace cannot be made (not root).
HeldPtr hold(const fs::path& dir, int namespaces) {
  int in[2], out[2], report[2];
  if (::pipe(in) != 0 || ::pipe(out) != 0 || ::pipe(report) != 0) return nullptr;
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(report[0]);
    if (namespaces && ::unshare(namespaces) != 0) _exit(77);
    if (namespaces & CLONE_NEWTIME) {
      std::ofstream offsets("/proc/self/timens_offsets");
      if (!(offsets << "boottime 86400 0\n" << std::flush)) _exit(77);
    }
    const pid_t target = namespaces ? ::fork() : 0;
    if (target == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      for (int fd : {in[0], out[1], report[1]}) ::close(fd);
      ::setenv("LD_PRELOAD", FORESIGHT_PROBE_LIB, 1);
      ::setenv("FORESIGHT_PROBE_DIR", dir.c_str(), 1);
      ::execl(FORESIGHT_PROBE_TARGET, FORESIGHT_PROBE_TARGET, "hold", nullptr);
      _exit(127);
    }
    // The namespace's first process: report its pid as numbered out here, then wait for it.
    ::close(in[0]);
    ::close(out[1]);
    if (::write(report[1], &target, sizeof target) != sizeof target) _exit(1);
    int status = 0;
    ::waitpid(target, &status, 0);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(report[1]);
  auto h = std::make_unique<Held>();
  h->stdin_fd = in[1];
  h->waited = child;
  h->pid = child;
  if (namespaces && ::read(report[0], &h->pid, sizeof h->pid) != sizeof h->pid) {
    ::close(report[0]);
    ::close(out[0]);
    return nullptr;
  }
  ::close(report[0]);
  // Both close stdout once their calls are counted.
  char buf[256];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;)
    h->lines.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  return h;
}

std::uint64_t histTotal(const fs_probe_counters& c) {
  return std::accumulate(std::begin(c.hist), std::end(c.hist), std::uint64_t{0});
}

// Whether this process is in the initial pid namespace, where the collector removes the stale
// segments of other pid namespaces (PROC_PID_INIT_INO, include/linux/proc_ns.h).
bool seesEveryProcess() {
  struct stat st {};
  return ::stat("/proc/self/ns/pid", &st) == 0 && st.st_ino == 0xEFFFFFFCu;
}

fs::path freshDir(const std::string& name) {
  const fs::path dir = fs::path(testing::TempDir()) / (name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST(Probe, CountsKnownIoAcrossForkAndExec) {
  const fs::path dir = freshDir("probe");
  const std::string data = (dir / "data").string();
  auto [pid, rc] = runTarget(dir.string(), data);
  ASSERT_EQ(rc, 0);
  std::string child_text;
  std::ifstream(data + ".child") >> child_text;
  ASSERT_FALSE(child_text.empty());
  const pid_t child = std::stoi(child_text);

  const fs::path file = segmentOf(dir, pid);
  ASSERT_FALSE(file.empty());
  auto seg = readProbeSegment(file, myUids());
  ASSERT_TRUE(seg) << seg.error().message;
  EXPECT_EQ(seg->pid, pid);
  // The name and the header agree, and name this namespace.
  const auto id = parseProbeSegmentName(file.filename().string());
  ASSERT_TRUE(id);
  EXPECT_EQ(seg->start, id->start);
  EXPECT_EQ(seg->pidns, idOf(::getpid()).pidns);
  EXPECT_EQ(seg->execs, 2u);  // the first image and the one after exec
  const auto& c = seg->c;
  EXPECT_EQ(c[FS_PROBE_READ].calls, 50u);
  EXPECT_EQ(c[FS_PROBE_READ].bytes, 50u * 1000);
  // 100 x 4096 to the data file, the child's pid to the .child file, 7 x 10 after exec.
  EXPECT_EQ(c[FS_PROBE_WRITE].calls, 100u + 1 + 7);
  EXPECT_EQ(c[FS_PROBE_WRITE].bytes, 100u * 4096 + child_text.size() + 70);
  EXPECT_EQ(c[FS_PROBE_FSYNC].calls, 10u);
  EXPECT_EQ(c[FS_PROBE_SEND].calls, 20u);
  EXPECT_EQ(c[FS_PROBE_SEND].bytes, 20u * 64);
  EXPECT_EQ(c[FS_PROBE_RECV].bytes, 20u * 64);
  EXPECT_EQ(c[FS_PROBE_CONNECT].calls, 1u);
  EXPECT_EQ(c[FS_PROBE_CONNECT].errors, 1u);  // refused
  EXPECT_EQ(c[FS_PROBE_PIPE].calls, 1u);
  EXPECT_EQ(c[FS_PROBE_SOCKET].calls, 2u);  // socketpair + socket
  EXPECT_EQ(c[FS_PROBE_ACCEPT].calls, 0u);
  for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
    EXPECT_EQ(histTotal(c[k]), c[k].calls) << fs_probe_class_name(k);
  }
  EXPECT_GT(c[FS_PROBE_FSYNC].total_ns, 0u);

  const fs::path child_file = segmentOf(dir, child);
  ASSERT_FALSE(child_file.empty());
  auto cs = readProbeSegment(child_file, myUids());
  ASSERT_TRUE(cs) << cs.error().message;
  // Its own segment, not the parent's. Not told apart by start time: that is in clock ticks
  // (10 ms), and a child forked within one tick of its parent starts in the same tick.
  EXPECT_EQ(cs->pid, child);
  EXPECT_NE(child_file, file);
  EXPECT_EQ(cs->c[FS_PROBE_WRITE].calls, 5u);
  EXPECT_EQ(cs->c[FS_PROBE_WRITE].bytes, 15u);
  EXPECT_EQ(cs->c[FS_PROBE_READ].calls, 0u);
  fs::remove_all(dir);
}

TEST(Probe, CollectorSumsTheLiveProcessesOfAWorkload) {
  const fs::path dir = freshDir("probe-live");
  auto held = hold(dir, 0);
  ASSERT_TRUE(held);
  std::map<char, pid_t> pids;
  std::istringstream lines(held->lines);
  for (std::string tag, pid; lines >> tag >> pid;) pids[tag[0]] = std::stoi(pid);
  ASSERT_EQ(pids['P'], held->pid);
  const pid_t child = pids['C'];
  ASSERT_GT(child, 0);
  // A leftover of an earlier process given the target's pid (another start time), with a
  // gigabyte of reads: not the target's.
  ProbeSegmentId earlier = idOf(held->pid);
  earlier.start -= 1;
  fs_probe_segment old = emptySegment(earlier);
  old.c[FS_PROBE_READ].calls = 1;
  old.c[FS_PROBE_READ].bytes = 1u << 30;
  const fs::path stale = writeSegment(dir, old, earlier);
  // One of another pid namespace whose pid and start time are this process's (a namespace
  // that does not exist: removed where this process sees every process).
  ProbeSegmentId elsewhere = idOf(::getpid());
  elsewhere.pidns += 1;
  fs_probe_segment foreign = emptySegment(elsewhere);
  foreign.c[FS_PROBE_READ].calls = 1;
  const fs::path foreign_file = writeSegment(dir, foreign, elsewhere);

  auto probe = probeCollector(dir);
  ASSERT_TRUE(probe);
  Sample s;
  ASSERT_TRUE(probe->collect(tree(held->pid), {held->pid, child, ::getpid(), 999999}, s));
  EXPECT_DOUBLE_EQ(s.get("probe_processes"), 2);
  // 3 x 10 and 5 x 3 bytes to /dev/null, and each one line on stdout; the reads of stdin are
  // still waiting.
  EXPECT_DOUBLE_EQ(s.get("probe_write_calls_total"), 3 + 1 + 5 + 1);
  EXPECT_DOUBLE_EQ(s.get("probe_write_bytes_total"),
                   30 + 15 + static_cast<double>(held->lines.size()));
  EXPECT_DOUBLE_EQ(s.get("probe_read_calls_total"), 0);
  // p99 of the 10 writes: the upper edge 2^b ns of the bucket holding the 10th (= slowest) one.
  int top = 0;
  for (pid_t pid : {held->pid, child}) {
    auto seg = readProbeSegment(segmentOf(dir, pid), myUids());
    ASSERT_TRUE(seg) << seg.error().message;
    for (int b = 0; b < FS_PROBE_BUCKETS; ++b)
      if (seg->c[FS_PROBE_WRITE].hist[b] > 0) top = std::max(top, b);
  }
  EXPECT_DOUBLE_EQ(s.get("probe_write_p99_seconds"), std::ldexp(1.0, top) / 1e9);
  EXPECT_FALSE(s.has("probe_accept_p99_seconds"));  // no accept call
  EXPECT_FALSE(fs::exists(stale));                  // removed: its process is gone
  EXPECT_EQ(fs::exists(foreign_file), !seesEveryProcess());
  // A second collect with no new calls reports no p99 (window is empty) but the same totals.
  Sample again;
  ASSERT_TRUE(probe->collect(tree(held->pid), {held->pid, child}, again));
  EXPECT_FALSE(again.has("probe_write_p99_seconds"));
  EXPECT_DOUBLE_EQ(again.get("probe_write_calls_total"), 10);

  // Killed, the target leaves its segment behind; the collector removes it.
  const fs::path target_file = segmentOf(dir, held->pid);
  ASSERT_FALSE(target_file.empty());
  ASSERT_EQ(::kill(held->pid, SIGKILL), 0);
  EXPECT_EQ(held->release(), -1);
  ASSERT_TRUE(fs::exists(target_file));
  Sample after;
  ASSERT_TRUE(probeCollector(dir)->collect(tree(held->pid), {held->pid}, after));
  EXPECT_FALSE(after.has("probe_processes"));
  EXPECT_FALSE(fs::exists(target_file));
  fs::remove_all(dir);
}

TEST(Probe, CollectorFindsTheSegmentOfAProcessInAnotherPidNamespace) {
  const fs::path dir = freshDir("probe-ns");
  auto held = hold(dir, CLONE_NEWPID);
  if (!held) GTEST_SKIP() << "cannot make a pid namespace (needs root)";
  ASSERT_NE(held->lines.find("P 1\n"), std::string::npos) << held->lines;  // pid 1 in there
  ASSERT_NE(held->pid, 1);
  const fs::path file = segmentOf(dir, 1);
  ASSERT_FALSE(file.empty());
  Sample s;
  // This namespace's pid 1 is another process: the segment is not its.
  ASSERT_TRUE(probeCollector(dir)->collect(tree(held->pid), {held->pid, 1}, s));
  EXPECT_DOUBLE_EQ(s.get("probe_processes"), 1);
  EXPECT_DOUBLE_EQ(s.get("probe_write_calls_total"), 3 + 1);
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ(held->release(), 0);
  fs::remove_all(dir);
}

// Segments of other pid namespaces and of layout version 1 stayed forever. They are removed when
// no process could have written them: none has their pid in their namespace (for version 1, in
// any), which the collector can tell only where it sees every process.
TEST(Probe, CollectorRemovesStaleSegmentsOfOtherPidNamespacesAndVersion1) {
  if (!seesEveryProcess()) GTEST_SKIP() << "not in the initial pid namespace";
  const fs::path dir = freshDir("probe-ns-stale");
  auto held = hold(dir, CLONE_NEWPID);
  if (!held) GTEST_SKIP() << "cannot make a pid namespace (needs root)";
  const fs::path target = segmentOf(dir, 1), child = segmentOf(dir, 2);
  ASSERT_FALSE(target.empty());
  ASSERT_FALSE(child.empty());
  const ProbeSegmentId live = *parseProbeSegmentName(target.filename().string());
  // No process of the held namespace has pid 77, and no pid namespace has inode 1.
  ProbeSegmentId no_pid = live, no_namespace = live;
  no_pid.pid = 77;
  no_namespace.pidns = 1;
  const fs::path no_pid_file = writeSegment(dir, emptySegment(no_pid), no_pid);
  const fs::path no_namespace_file = writeSegment(dir, emptySegment(no_namespace), no_namespace);
  const pid_t exited = ::fork();
  if (exited == 0) _exit(0);
  ASSERT_EQ(::waitpid(exited, nullptr, 0), exited);
  const fs::path v1_exited = dir / ("foresight-probe-" + std::to_string(exited));
  const fs::path v1_live = dir / ("foresight-probe-" + std::to_string(::getpid()));
  std::ofstream(v1_exited) << "v1";
  std::ofstream(v1_live) << "v1";

  Sample s;
  ASSERT_TRUE(probeCollector(dir)->collect(tree(held->pid), {held->pid}, s));
  EXPECT_DOUBLE_EQ(s.get("probe_processes"), 1);
  EXPECT_TRUE(fs::exists(target));  // their processes live
  EXPECT_TRUE(fs::exists(child));
  EXPECT_TRUE(fs::exists(v1_live));
  EXPECT_FALSE(fs::exists(no_pid_file));
  EXPECT_FALSE(fs::exists(no_namespace_file));
  EXPECT_FALSE(fs::exists(v1_exited));

  // Killed with its namespace, the target leaves its segments behind (no destructor ran).
  ASSERT_EQ(::kill(held->pid, SIGKILL), 0);
  held->release();
  ASSERT_TRUE(fs::exists(target));
  Sample after;
  ASSERT_TRUE(probeCollector(dir)->collect(tree(::getpid()), {::getpid()}, after));
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(child));
  EXPECT_TRUE(fs::exists(v1_live));
  fs::remove_all(dir);
}

// A procfs that may not show every process (here none: a host root without one) proves no
// writer of another namespace gone, nor one of version 1.
TEST(Probe, CollectorKeepsWhatItCannotProveStale) {
  const fs::path dir = freshDir("probe-no-proc");
  const ProbeSegmentId elsewhere{1, 12345, 1};
  const fs::path file = writeSegment(dir, emptySegment(elsewhere), elsewhere);
  const fs::path v1 = dir / "foresight-probe-999999";
  std::ofstream(v1) << "v1";
  CollectorContext ctx;
  ctx.paths = HostPaths(dir / "host");
  ctx.probe_dir = dir;
  CollectorRegistry reg("collector");
  registerCollectors(reg);
  auto probe = reg.create("probe", ctx);
  ASSERT_TRUE(probe);
  Sample s;
  ASSERT_TRUE((*probe)->collect(tree(::getpid()), {::getpid()}, s));
  EXPECT_TRUE(fs::exists(file));
  EXPECT_TRUE(fs::exists(v1));
  fs::remove_all(dir);
}

// A process in another time namespace names its segment by the start time it reads there,
// shifted by the namespace's offset: the live process under that pid with another start time is
// its writer, not a younger process, and its segment stays.
TEST(Probe, CollectorKeepsTheSegmentOfAProcessInAnotherTimeNamespace) {
  const fs::path dir = freshDir("probe-timens");
  auto held = hold(dir, CLONE_NEWTIME);
  if (!held) GTEST_SKIP() << "cannot make a time namespace (needs root and Linux 5.6)";
  const fs::path file = segmentOf(dir, held->pid);
  ASSERT_FALSE(file.empty());
  ASSERT_NE(parseProbeSegmentName(file.filename().string())->start, idOf(held->pid).start);
  Sample s;
  ASSERT_TRUE(probeCollector(dir)->collect(tree(::getpid()), {::getpid()}, s));
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ(held->release(), 0);
  fs::remove_all(dir);
}

TEST(Probe, ProgramRunsWhenTheSegmentCannotBeCreated) {
  const fs::path dir = freshDir("probe-nodir");
  auto [pid, rc] = runTarget("/nonexistent/foresight", (dir / "data").string());
  EXPECT_EQ(rc, 0);
  fs::remove_all(dir);
}

TEST(Probe, ReaderRejectsForeignFiles) {
  const fs::path f = fs::path(testing::TempDir()) / "not-a-segment";
  std::ofstream(f) << "hello";
  EXPECT_EQ(readProbeSegment(f, myUids()).error().code, ErrorCode::kParse);
  fs::remove(f);
}

TEST(Probe, ReaderSkipsFifosLinksAndFilesOfOtherUsers) {
  Watchdog watchdog;
  const fs::path dir = freshDir("probe-planted");
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  auto r = readProbeSegment(fifo, myUids());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kParse);
  EXPECT_NE(r.error().message.find(fifo.string()), std::string::npos) << r.error().message;

  const fs::path good = dir / "good";
  writeSegment(good, emptySegment(idOf(::getpid())));
  ASSERT_TRUE(readProbeSegment(good, myUids()));
  const fs::path link = dir / "link";
  fs::create_symlink(good, link);
  EXPECT_EQ(readProbeSegment(link, myUids()).error().code, ErrorCode::kParse);
  const fs::path longer = dir / "longer";
  fs::copy_file(good, longer);
  std::ofstream(longer, std::ios::app) << 'x';
  EXPECT_EQ(readProbeSegment(longer, myUids()).error().code, ErrorCode::kParse);

  // A file of another user: root can make one; others have their own uid, never root.
  uid_t owner = ::geteuid();
  if (owner == 0) {
    owner = 65534;
    ASSERT_EQ(::chown(good.c_str(), owner, 65534), 0);
  }
  EXPECT_EQ(readProbeSegment(good, std::vector<uid_t>{owner + 1}).error().code, ErrorCode::kParse);
  EXPECT_TRUE(readProbeSegment(good, std::vector<uid_t>{owner}));
  fs::remove_all(dir);
}

TEST(Probe, CollectorSkipsAFifoPlantedUnderASegmentName) {
  Watchdog watchdog;
  const fs::path dir = freshDir("probe-fifo");
  // This process is alive: its name is the one the collector opens.
  ASSERT_EQ(::mkfifo(probeSegmentPath(dir, idOf(::getpid())).c_str(), 0666), 0);
  Sample s;
  EXPECT_TRUE(probeCollector(dir)->collect(tree(::getpid()), {::getpid()}, s));
  EXPECT_FALSE(s.has("probe_processes"));
  fs::remove_all(dir);
}

TEST(Probe, NeverWritesThroughALinkNorIntoAnotherUsersFile) {
  const fs::path dir = freshDir("probe-planted-exec");
  const fs::path victim = dir / "victim";
  std::ofstream(victim) << "precious";
  const fs_probe_segment zero{};
  // A process's name is known once it runs, and exec keeps it: plant a file there before the
  // process execs into a program with the probe.
  for (const bool link : {true, false}) {
    if (!link && ::geteuid() != 0) continue;  // only root can make another user's file
    int gate[2];
    ASSERT_EQ(::pipe(gate), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      char c;
      ::close(gate[1]);
      if (::read(gate[0], &c, 1) != 0) _exit(126);
      ::setenv("LD_PRELOAD", FORESIGHT_PROBE_LIB, 1);
      ::setenv("FORESIGHT_PROBE_DIR", dir.c_str(), 1);
      ::execl(FORESIGHT_PROBE_TARGET, FORESIGHT_PROBE_TARGET, "after-exec", "x", nullptr);
      _exit(127);
    }
    ::close(gate[0]);
    const fs::path name = probeSegmentPath(dir, idOf(pid));
    if (link) {
      fs::create_symlink(victim, name);
    } else {
      writeSegment(name, zero);
      ASSERT_EQ(::chown(name.c_str(), 65534, 65534), 0);
    }
    ::close(gate[1]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;  // it ran, counting privately
    if (link) {
      std::string text;
      std::ifstream(victim) >> text;
      EXPECT_EQ(text, "precious");
    } else {
      ASSERT_TRUE(fs::exists(name));  // neither used nor removed at exit
      fs_probe_segment after{};
      std::ifstream(name, std::ios::binary).read(reinterpret_cast<char*>(&after), sizeof after);
      EXPECT_EQ(after.magic, 0u);
      EXPECT_EQ(after.execs, 0u);
    }
    fs::remove(name);
  }
  fs::remove_all(dir);
}

TEST(Probe, P99CountsOnlyNewCallsWhenAProcessLeaves) {
  const fs::path dir = freshDir("probe-p99");
  // Two live processes of the workload: this one and a child that waits.
  int gate[2];
  ASSERT_EQ(::pipe(gate), 0);
  const pid_t other = ::fork();
  if (other == 0) {
    char c;
    ::close(gate[1]);
    while (::read(gate[0], &c, 1) > 0) {
    }
    _exit(0);
  }
  ::close(gate[0]);
  const ProbeSegmentId self = idOf(::getpid()), child = idOf(other);
  // Both made 100 calls of 0.13 to 0.27 s (bucket 28: below 2^28 ns).
  fs_probe_segment a = emptySegment(self), b = emptySegment(child);
  a.c[FS_PROBE_WRITE].calls = b.c[FS_PROBE_WRITE].calls = 100;
  a.c[FS_PROBE_WRITE].hist[28] = b.c[FS_PROBE_WRITE].hist[28] = 100;
  writeSegment(dir, a, self);
  writeSegment(dir, b, child);
  auto probe = probeCollector(dir);
  Sample first;
  ASSERT_TRUE(probe->collect(tree(::getpid()), {::getpid(), other}, first));
  EXPECT_DOUBLE_EQ(first.get("probe_write_p99_seconds"), std::ldexp(1.0, 28) / 1e9);
  // The child leaves the workload; this process makes 1000 calls of 1 to 2 us (bucket 11).
  a.c[FS_PROBE_WRITE].calls += 1000;
  a.c[FS_PROBE_WRITE].hist[11] = 1000;
  writeSegment(dir, a, self);
  Sample second;
  ASSERT_TRUE(probe->collect(tree(::getpid()), {::getpid()}, second));
  EXPECT_DOUBLE_EQ(second.get("probe_processes"), 1);
  EXPECT_DOUBLE_EQ(second.get("probe_write_p99_seconds"), std::ldexp(1.0, 11) / 1e9);
  // It comes back: a process new to the workload brings all its calls.
  Sample third;
  ASSERT_TRUE(probe->collect(tree(::getpid()), {::getpid(), other}, third));
  EXPECT_DOUBLE_EQ(third.get("probe_write_p99_seconds"), std::ldexp(1.0, 28) / 1e9);
  ::close(gate[1]);
  ::waitpid(other, nullptr, 0);
  fs::remove_all(dir);
}

TEST(Probe, CountsCallsBeyondReadAndWrite) {
  const fs::path dir = freshDir("probe-more");
  auto [pid, rc] = runTarget(dir.string(), (dir / "data").string(), "more-calls");
  ASSERT_EQ(rc, 0);
  const fs::path file = segmentOf(dir, pid);
  ASSERT_FALSE(file.empty());
  auto seg = readProbeSegment(file, myUids());
  ASSERT_TRUE(seg) << seg.error().message;
  const auto& c = seg->c;
  // preadv64, preadv2, preadv64v2 (100 each), __read_chk (50), __pread_chk (40), __pread64_chk
  // (30); then as reads and as writes: copy_file_range (300), sendfile (200), sendfile64 (100),
  // splice into a pipe and out of it (64 each).
  EXPECT_EQ(c[FS_PROBE_READ].calls, 11u);
  EXPECT_EQ(c[FS_PROBE_READ].bytes, 300u + 120 + 300 + 200 + 100 + 128);
  // pwritev64, pwritev2, pwritev64v2 (100 each) and the copies.
  EXPECT_EQ(c[FS_PROBE_WRITE].calls, 8u);
  EXPECT_EQ(c[FS_PROBE_WRITE].bytes, 300u + 300 + 200 + 100 + 128);
  // sendmmsg of 10, 20, 5 and 7 bytes; recvmmsg of the first two, __recv_chk, __recvfrom_chk.
  EXPECT_EQ(c[FS_PROBE_SEND].calls, 1u);
  EXPECT_EQ(c[FS_PROBE_SEND].bytes, 42u);
  EXPECT_EQ(c[FS_PROBE_RECV].calls, 3u);
  EXPECT_EQ(c[FS_PROBE_RECV].bytes, 42u);
  for (int k = 0; k < FS_PROBE_CLASSES; ++k) {
    EXPECT_EQ(c[k].errors, 0u) << fs_probe_class_name(k);
    EXPECT_EQ(histTotal(c[k]), c[k].calls) << fs_probe_class_name(k);
  }
  fs::remove_all(dir);
}
