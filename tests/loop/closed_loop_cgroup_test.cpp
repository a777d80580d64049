// `foresight bench closed-loop` against the real cgroup files of this host: short cycles, one
// controller per part, checking the plumbing (the figures themselves come from the benchmark).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "foresight/collect/workload.h"
#include "support/cleanup.h"
#include "support/prometheus.h"
#include "support/test_cgroup.h"
#include "support/shell.h"
// After the standard headers: httplib pulls in <resolv.h>.
#include <httplib.h>

namespace {
namespace fs = std::filesystem;

bool cgroupsWritable() {
  if (geteuid() != 0) return false;
  if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) return true;  // v2
  return fs::exists("/sys/fs/cgroup/cpu") && fs::exists("/sys/fs/cgroup/memory");
}

std::set<fs::path> benchCgroups() {
  std::set<fs::path> out;
  for (const auto& root : {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"}) {
    if (!fs::exists(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      if (e.path().filename().string().rfind("foresight-bench-", 0) == 0) out.insert(e.path());
    }
  }
  return out;
}

TEST(ClosedLoopBench, RunsAWorkloadInARealCgroup) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const fs::path out = fs::temp_directory_path() / fmt::format("closed-loop-{}.json", getpid());
  // Its cgroups are named after the bench's pid: another bench (the interrupted-run test under
  // ctest -j2, or an experiment on this host) may leave or remove its own meanwhile.
  const std::string cmd = fmt::format(
      "{} --log-level warn bench closed-loop --cycle-seconds 4 --warmup-cycles 1 --cycles 1 "
      "--controllers reactive --json {} & pid=$!; echo \"bench pid $pid\"; wait $pid",
      FORESIGHT_BIN, out.string());
  const auto ran = foresight::test_support::runShell(cmd);
  ASSERT_EQ(ran.exit_code, 0) << ran.all();
  const auto at = ran.out.find("bench pid ");
  ASSERT_NE(at, std::string::npos) << ran.all();
  const std::string pid = ran.out.substr(at + 10, ran.out.find('\n', at) - at - 10);
  auto j = nlohmann::json::parse(std::ifstream(out));
  fs::remove(out);
  const auto& r = j["controllers"]["reactive"];
  for (const char* k :
       {"throttled_seconds", "mean_quota_cores", "oom_kills", "mean_memory_limit_bytes"}) {
    EXPECT_TRUE(r.contains(k)) << k;
  }
  EXPECT_GT(r["mean_quota_cores"].get<double>(), 0.0);
  EXPECT_GT(r["mean_memory_limit_bytes"].get<double>(), 16e6);
  EXPECT_TRUE(r.contains("p99_latency_ms"));
  // The experiment's cgroups (cpu and memory parts) are gone afterwards.
  for (const auto& p : benchCgroups())
    for (const char* part : {"cpu", "memory"})
      EXPECT_NE(p.filename().string(), fmt::format("foresight-bench-{}-reactive-{}", part, pid))
          << p << " was left behind";
}

// A v1 host that mounts cpu and cpuacct but no memory hierarchy (here: a root of links to this
// host's two): the cpu part runs (it needed the memory hierarchy), and the memory part is refused
// naming the hierarchy it lacks, without making folders where it is missing.
TEST(ClosedLoopBench, TheCpuPartNeedsNoMemoryHierarchy) {
  if (geteuid() != 0 || !fs::exists("/sys/fs/cgroup/cpu/cgroup.procs") ||
      !fs::exists("/sys/fs/cgroup/cpuacct/cgroup.procs"))
    GTEST_SKIP() << "needs root and the cgroup v1 cpu and cpuacct hierarchies";
  const fs::path root = fs::temp_directory_path() / fmt::format("closed-loop-root-{}", getpid());
  fs::remove_all(root);
  fs::create_directories(root);
  fs::create_directory_symlink("/sys/fs/cgroup/cpu", root / "cpu");
  fs::create_directory_symlink("/sys/fs/cgroup/cpuacct", root / "cpuacct");
  const fs::path out = root / "r.json";
  const auto cpu = foresight::test_support::runShell(fmt::format(
      "{} --log-level warn bench closed-loop --cgroup-root {} --cycle-seconds 4 --warmup-cycles 1 --cycles 1 "
      "--controllers static --part cpu --json {}",
      FORESIGHT_BIN, root.string(), out.string()));
  ASSERT_EQ(cpu.exit_code, 0) << cpu.all();
  const auto j = nlohmann::json::parse(std::ifstream(out));
  EXPECT_GT(j["controllers"]["static"]["mean_quota_cores"].get<double>(), 0.0);
  const auto mem = foresight::test_support::runShell(fmt::format(
      "{} --log-level warn bench closed-loop --cgroup-root {} --cycle-seconds 4 --warmup-cycles 1 --cycles 1 "
      "--controllers static --part memory",
      FORESIGHT_BIN, root.string()));
  EXPECT_NE(mem.exit_code, 0) << mem.all();
  EXPECT_NE(mem.all().find((root / "memory").string() + ": not a cgroup hierarchy"), std::string::npos) << mem.all();
  EXPECT_FALSE(fs::exists(root / "memory"));
  fs::remove_all(root);  // the links, not what they point to
}

// Ctrl-C (or SIGTERM) mid-run: the workload is ended and its cgroup removed before the exit,
// instead of an orphaned workload in a cgroup nothing removes.
TEST(ClosedLoopBench, AnInterruptedRunLeavesNoCgroupOrWorkloadBehind) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  // Its cgroups and its workload's result file are named after the bench's pid; another test may
  // run a bench of its own at the same time.
  const auto ran = foresight::test_support::runShell(fmt::format(
      "{} --log-level warn bench closed-loop --cycle-seconds 4 --warmup-cycles 1 --cycles 1 "
      "--controllers static --part cpu & pid=$!; echo \"bench pid $pid\"; "
      // Interrupted once its workload runs (its handler is installed before): a fixed sleep lost
      // the race where a start is slow (an ASan build), and a background job ignores SIGINT until then.
      "for i in $(seq 600); do pgrep -f \"[f]oresight-bench-static-$pid\" >/dev/null && break; sleep 0.1; done; "
      "sleep 1; kill -INT $pid; "
      "wait $pid; rc=$?; "
      // [f]: pgrep must not match its own shell
      "pgrep -f \"[f]oresight-bench-static-$pid\" >/dev/null && echo 'workload left running'; exit $rc",
      FORESIGHT_BIN));
  EXPECT_EQ(ran.exit_code, 1) << ran.all();
  EXPECT_NE(ran.all().find("interrupted"), std::string::npos) << ran.all();
  EXPECT_EQ(ran.all().find("workload left running"), std::string::npos) << ran.all();
  const auto at = ran.out.find("bench pid ");
  ASSERT_NE(at, std::string::npos) << ran.all();
  const std::string pid = ran.out.substr(at + 10, ran.out.find('\n', at) - at - 10);
  const std::string ours = fmt::format("foresight-bench-cpu-static-{}", pid);
  for (const auto& p : benchCgroups()) EXPECT_NE(p.filename().string(), ours) << p << " was left behind";
}

// `foresight run -- CMD` end to end in dry-run, started in /: the launched command gets a plan once
// it has --min-history seconds of history, and the view shows its cpu and its measured memory.
TEST(RunCommand, PlansALaunchedCommandInDryRun) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const fs::path db = fs::temp_directory_path() / fmt::format("run-cli-{}.db", getpid());
  const std::string cmd = fmt::format(
      "cd / && {} run --period 0.5 --min-history 2 --view 1 --listen 127.0.0.1:0 --database {} "
      "-- sh -c 'timeout 7 sh -c \"while :; do :; done\"; true'",
      FORESIGHT_BIN, db.string());
  const auto ran = foresight::test_support::runShell(cmd);
  const std::string out = ran.all();
  ASSERT_EQ(ran.exit_code, 0) << out;
  fs::remove(db);
  // The views' rows: workload, resource, usage, forecast, limit, target, rule. The last view can
  // fall after the busy loop ended, so the cpu check takes the busiest one.
  std::map<std::string, std::vector<std::string>> last;
  double busiest_cpu = 0;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
    if (w.size() < 7 || w[0].rfind("foresight-", 0) != 0) continue;
    last[w[1]] = w;
    EXPECT_EQ(w[4], "unlimited") << out;  // dry-run: nothing applied
    if (w[1] == "cpu") busiest_cpu = std::max(busiest_cpu, std::stod(w[2]));
  }
  ASSERT_TRUE(last.count("cpu") && last.count("memory")) << out;
  EXPECT_GT(busiest_cpu, 0.3) << out;        // the busy loop
  EXPECT_NE(last["memory"][2], "-") << out;  // measured, not missing
  EXPECT_NE(out.find("(dry-run)"), std::string::npos) << out;
  // Started outside the source tree, it still reads the shipped planner policies: they are found
  // from where the binary is, not from the working directory.
  EXPECT_NE(out.find("run: planner policies from " FORESIGHT_SOURCE_DIR "/config/planner.yaml"), std::string::npos)
      << out;
}

// `run` restarted: a workload starts from its samples in the agent's history store from before
// the run, so it is planned at once instead of after --min-history again.
TEST(RunCommand, ARestartStartsFromTheStoredHistory) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  foresight::collect::CgroupLayout layout = foresight::collect::detectCgroupLayout(foresight::collect::HostPaths("/"));
  const std::string name = fmt::format("foresight-restart-{}", getpid());
  foresight::test_support::TestCgroup cg(layout, name);
  ASSERT_EQ(cg.error(), "");
  const pid_t child = fork();
  if (child == 0) {
    execl("/bin/sleep", "sleep", "60", nullptr);
    _exit(127);
  }
  cg.join(child);
  const fs::path dir = fs::temp_directory_path() / fmt::format("run-restart-{}", getpid());
  fs::create_directories(dir);
  auto run = [&](double seconds, const std::string& more) {
    return foresight::test_support::runShell(fmt::format(
        "{} run --period 0.2 --duration {} --min-history 4 --view 0 --listen 127.0.0.1:0 --database '{}' {} "
        "cgroup:/{} 2>&1",
        FORESIGHT_BIN, seconds, (dir / "history.db").string(), more, name));
  };
  const auto first = run(6, "");
  ASSERT_EQ(first.exit_code, 0) << first.out;
  EXPECT_EQ(first.out.find("samples of the history store"), std::string::npos) << first.out;
  const auto again = run(2, "");
  const auto without = run(2, "--history-length 0");
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  fs::remove_all(dir);
  ASSERT_EQ(again.exit_code, 0) << again.out;
  ASSERT_EQ(without.exit_code, 0) << without.out;
  const auto from = again.out.find(fmt::format("run: /{}: starts from ", name));
  ASSERT_NE(from, std::string::npos) << again.out;
  EXPECT_GE(std::atoi(again.out.c_str() + from + name.size() + 20), 15) << again.out;
  // Planned in its 2 s: the dry-run logs the limits it would set. Without the history, 2 s of
  // samples are short of --min-history.
  EXPECT_NE(again.out.find("would set"), std::string::npos) << again.out;
  EXPECT_EQ(without.out.find("would set"), std::string::npos) << without.out;
}

// `foresight run ARGS` in dry-run around a busy loop of `seconds`, in a thread of its own, its log
// in a file: scrape() answers its /metrics while it runs; finish() waits for it and returns its
// exit status and log.
class LiveRun {
 public:
  LiveRun(const std::string& args, int seconds)
      : log_(fs::temp_directory_path() / fmt::format("run-live-{}-{}.log", getpid(), count_++)) {
    thread_ = std::thread([this, args, seconds] {
      ran_ = foresight::test_support::runShell(fmt::format(
          "{} run --period 0.5 --min-history 2 --view 0 --listen 127.0.0.1:0 --database '' {} "
          "-- sh -c 'timeout {} sh -c \"while :; do :; done\"; true' 2>{}",
          FORESIGHT_BIN, args, seconds, log_.string()));
    });
  }
  ~LiveRun() {
    if (thread_.joinable()) thread_.join();
    fs::remove(log_);
  }
  std::string log() const {
    std::stringstream ss;
    ss << std::ifstream(log_).rdbuf();
    return ss.str();
  }
  // The first /metrics body that `done` accepts, polled every 50 ms for up to 20 s; "" if none.
  std::string scrape(const std::function<bool(const std::string&)>& done) {
    for (int i = 0; i < 400; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (port_ == 0) {  // from the agent's start line
        const std::string text = log();
        const auto at = text.find("agent: http://127.0.0.1:");
        if (at != std::string::npos) port_ = std::atoi(text.c_str() + at + 24);
        continue;
      }
      httplib::Client cli("127.0.0.1", port_);
      auto r = cli.Get("/metrics");
      if (r && done(r->body)) return r->body;
    }
    return {};
  }
  int finish() {
    thread_.join();
    return ran_.exit_code;
  }

 private:
  static inline int count_ = 0;
  fs::path log_;
  std::thread thread_;
  foresight::test_support::Ran ran_{};
  int port_ = 0;
};

// The sample of `series` (name and labels as exposed, e.g. `x{workload="/a"}`) in `body`; NaN if absent.
double sampleOf(const std::string& body, const std::string& series) {
  const auto at = body.find("\n" + series + " ");
  return at == std::string::npos ? NAN : std::stod(body.substr(at + series.size() + 2));
}

// The workload label of the first `series` sample in `body`; "" if none.
std::string workloadOf(const std::string& body, const std::string& series) {
  const std::string key = series + "{workload=\"";
  const auto found = body.find(key);
  if (found == std::string::npos) return {};
  const auto at = found + key.size();
  return body.substr(at, body.find('"', at) - at);
}

// What a dashboard reads: while `run` plans, its /metrics carries each workload's forecast and
// planned limit (dry-run: what --apply would set), labelled as its usage series are.
TEST(RunCommand, MetricsCarryTheForecastAndThePlanBesideTheUsage) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  LiveRun run("", 8);
  const std::string body = run.scrape([](const std::string& b) {
    return b.find("foresight_plan_target_cpu_cores{") != std::string::npos;
  });
  ASSERT_EQ(run.finish(), 0) << run.log();
  ASSERT_FALSE(body.empty()) << "no plan on /metrics\n" << run.log();
  const std::string workload = workloadOf(body, "foresight_plan_target_cpu_cores");
  EXPECT_EQ(workload.front(), '/') << "labelled with the agent's name of the cgroup: " << workload;
  for (const std::string series : {"foresight_cpu_usage_seconds_total", "foresight_plan_forecast_cpu_cores",
                                   "foresight_plan_forecast_memory_bytes", "foresight_plan_target_memory_bytes"})
    EXPECT_NE(body.find(series + "{workload=\"" + workload + "\"}"), std::string::npos) << series << "\n" << body;
  // The whole exposition, plan series included, passes promtool's lint.
  const fs::path file = fs::temp_directory_path() / fmt::format("run-metrics-{}.txt", getpid());
  std::ofstream(file) << body;
  const auto lint = foresight::test_support::runShell(
      fmt::format("{} check metrics < {}", foresight::test_support::kPromtoolBinary, file.string()));
  fs::remove(file);
  EXPECT_EQ(lint.exit_code, 0) << lint.all();
  EXPECT_EQ(lint.all(), "");
}

// An SRE lowers a bound in the planner file while `run` runs: the next plans keep to it, with no
// restart (which would drop every workload's history and wait out --min-history again). A file
// edited into something invalid keeps the policies that were in force.
TEST(RunCommand, AnEditedPlannerFileAppliesWithoutARestart) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const fs::path planner = fs::temp_directory_path() / fmt::format("run-planner-{}.yaml", getpid());
  const auto write = [&](const std::string& text) {  // replaced whole, as an editor or `kubectl cp` does
    std::ofstream(planner.string() + ".new") << text;
    fs::rename(planner.string() + ".new", planner);
  };
  write("defaults:\n  cpu: {max: 0.5}\n");
  LiveRun run(fmt::format("--planner {}", planner.string()), 14);
  const auto target = [](const std::string& body) {
    return sampleOf(body, "foresight_plan_target_cpu_cores{workload=\"" +
                              workloadOf(body, "foresight_plan_target_cpu_cores") + "\"}");
  };
  const std::string first = run.scrape([&](const std::string& b) { return target(b) > 0; });
  EXPECT_DOUBLE_EQ(target(first), 0.5) << first << run.log();  // a busy loop wants a core: held at the max
  write("defaults:\n  cpu: {max: 0.3\n");  // broken YAML
  for (int i = 0; i < 100 && run.log().find("keeping the one loaded before") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_NE(run.log().find("keeping the one loaded before"), std::string::npos) << run.log();
  EXPECT_DOUBLE_EQ(target(run.scrape([](const std::string&) { return true; })), 0.5) << run.log();
  write("defaults:\n  cpu: {max: 0.3}\n");
  const std::string second = run.scrape([&](const std::string& b) { return target(b) < 0.5; });
  EXPECT_DOUBLE_EQ(target(second), 0.3) << second << run.log();
  EXPECT_EQ(run.finish(), 0) << run.log();
  EXPECT_NE(run.log().find("now apply"), std::string::npos) << run.log();
  fs::remove(planner);
}

// A leave_alone pattern added while `run` runs: the workload it names is left alone from then on,
// said once; its plan stays in /metrics (planned, never applied), so its alerts still work.
TEST(RunCommand, AWorkloadLeftAloneWhileRunningIsSaidOnceAndKeepsItsPlan) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const fs::path planner = fs::temp_directory_path() / fmt::format("run-leave-{}.yaml", getpid());
  const auto write = [&](const std::string& text) {
    std::ofstream(planner.string() + ".new") << text;
    fs::rename(planner.string() + ".new", planner);
  };
  write("leave_alone: []\n");
  LiveRun run(fmt::format("--planner {}", planner.string()), 14);
  const std::string series = "foresight_plan_target_cpu_cores{";
  const std::string planned = run.scrape([&](const std::string& b) { return b.find(series) != std::string::npos; });
  ASSERT_NE(planned.find(series), std::string::npos) << run.log();
  write("leave_alone: ['foresight-*']\n");
  const std::string said = "left alone (planned and shown, never resized): it matches the planner policies' leave_alone 'foresight-*'";
  for (int i = 0; i < 200 && run.log().find(said) == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::string after = run.scrape([&](const std::string&) { return true; });
  EXPECT_NE(after.find(series), std::string::npos) << "the plan left /metrics\n" << run.log();
  EXPECT_EQ(run.finish(), 0) << run.log();
  const std::string log = run.log();
  const auto first = log.find(said);
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find(said, first + said.size()), std::string::npos) << log;
  fs::remove(planner);
}

// As `record`: a launched command that fails, or cannot be executed, makes `run` exit with 3.
TEST(RunCommand, ALaunchedCommandThatFailsIsExitStatus3) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const fs::path db = fs::temp_directory_path() / fmt::format("run-fail-{}.db", getpid());
  for (const char* command : {"false", "/nonexistent/command"}) {
    const auto ran = foresight::test_support::runShell(fmt::format(
        "{} run --period 0.2 --view 0 --listen 127.0.0.1:0 --database {} -- {}", FORESIGHT_BIN,
        db.string(), command));
    EXPECT_EQ(ran.exit_code, 3) << command << "\n" << ran.all();
  }
  fs::remove(db);
}

// A command the run stopped did not fail: not at --duration's end, nor at a Ctrl-C, which reaches
// the command too (a terminal signals the whole process group) and kills it before the run ends.
TEST(RunCommand, ALaunchedCommandStoppedWithTheRunIsExitStatus0) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const std::string run = fmt::format("{} run --period 0.2 --view 0 --listen 127.0.0.1:0 --database ''", FORESIGHT_BIN);
  // Ctrl-C as a terminal sends it, to the process group (setsid makes the run its leader), once
  // the agent has started (its log line), not at a fixed time: on a loaded machine the start-up
  // (LibTorch, the model) can outlast a second, before the handler is installed.
  const std::string log =
      (std::filesystem::temp_directory_path() / fmt::format("foresight-run-int-{}.log", ::getpid()))
          .string();
  // bash: dash's kill cannot signal a process group. Inside its single quotes, '' is "".
  std::string in_bash = run;
  in_bash.replace(in_bash.find("''"), 2, "\"\"");
  const std::string interrupted = fmt::format(
      "bash -c 'setsid {} -- sleep 30 2>{} & p=$!; for i in $(seq 600); do grep -q \"agent: http\" "
      "{} && break; sleep 0.05; done; sleep 0.3; kill -INT -- -$p; wait $p; rc=$?; cat {} >&2; "
      "rm -f {}; exit $rc'",
      in_bash, log, log, log, log);
  for (const std::string& command : {run + " --duration 1 -- sleep 30", interrupted}) {
    const auto ran = foresight::test_support::runShell(command);
    EXPECT_EQ(ran.exit_code, 0) << command << "\n" << ran.all();
  }
}

// An interval above half the cycle leaves phases between decisions (at 10 s on a 4 s cycle the
// static controller's limit was 0 and the run still exited 0): refused before anything runs.
TEST(ClosedLoopBench, RefusesAnIntervalAboveHalfTheCycle) {
  const auto ran = foresight::test_support::runShell(fmt::format(
      "{} bench closed-loop --interval 10 --cycle-seconds 4 --controllers static", FORESIGHT_BIN));
  EXPECT_EQ(ran.exit_code, 2) << ran.all();
  EXPECT_NE(ran.all().find("--interval 10 s: at most half of --cycle-seconds (4 s)"), std::string::npos) << ran.all();
}

// Backend options reach the backend, checked before anything runs.
TEST(RunCommand, RefusesBackendOptionsTheBackendDoesNotTake) {
  for (const auto& [bad, said] : {std::pair{"-o nosuch=1", "has no option 'nosuch'"},
                                  {"-o bus=", "-o bus= is empty"},
                                  {"-o bus", "expected key=value"}}) {
    const auto ran = foresight::test_support::runShell(
        fmt::format("{} run --backend systemd {} --listen 127.0.0.1:0 --database ''", FORESIGHT_BIN, bad));
    EXPECT_EQ(ran.exit_code, 2) << bad << "\n" << ran.all();
    EXPECT_NE(ran.all().find(said), std::string::npos) << bad << "\n" << ran.all();
  }
}

// Through the systemd backend, a cgroup that is not a unit's (here the launched command's own) is
// left alone, said once, without asking systemd (no bus listens at the address given).
TEST(RunCommand, TheSystemdBackendLeavesACgroupThatIsNotAUnitAlone) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const auto ran = foresight::test_support::runShell(fmt::format(
      "{} run --backend systemd -o bus=unix:path=/nonexistent/bus --period 0.2 --duration 2 --view 0 --listen 127.0.0.1:0 --database '' -- sleep 30",
      FORESIGHT_BIN));
  EXPECT_EQ(ran.exit_code, 0) << ran.all();
  const std::string log = ran.all();
  const auto first = log.find("left alone: systemd workload");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("left alone", first + 1), std::string::npos) << log;  // once
  EXPECT_EQ(log.find("cannot connect"), std::string::npos) << log;
}

// The agent leaves alone a cgroup it runs in and one PID 1 runs in (said once each), with --apply
// too: planned for and shown, never resized. In a PID namespace of its own (so that its PID 1 is a
// shell of the test's), the init shell moves itself into one cgroup and the agent into another;
// the agent watches those two (selectors: every cgroup would include other tests' own).
TEST(RunCommand, TheAgentResizesNeitherItsOwnCgroupNorPid1s) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const fs::path script = fs::temp_directory_path() / fmt::format("foresight-left-alone-{}.sh", ::getpid());
  const std::string d = fmt::format("foresight-left-alone-{}", ::getpid());
  std::ofstream(script) << fmt::format(
      "if [ -e /sys/fs/cgroup/cgroup.controllers ]; then hs=.; else hs='cpuacct cpu memory'; fi\n"
      "for h in $hs; do mkdir -p /sys/fs/cgroup/$h/{0}-init /sys/fs/cgroup/$h/{0}-agent; "
      "echo $$ > /sys/fs/cgroup/$h/{0}-init/cgroup.procs; done\n"
      "sh -c 'for h in '\"$hs\"'; do echo $$ > /sys/fs/cgroup/$h/{0}-agent/cgroup.procs; done; "
      "exec {1} run --apply --audit {2} --min-history 0 --period 0.2 --duration 3 --view 1 --listen 127.0.0.1:0 "
      "--database \"\" cgroup:/{0}-agent cgroup:/{0}-init'\n"
      "rc=$?\n"
      "for h in $hs; do echo $$ > /sys/fs/cgroup/$h/cgroup.procs; rmdir /sys/fs/cgroup/$h/{0}-init /sys/fs/cgroup/$h/{0}-agent; done\n"
      "exit $rc\n",
      d, FORESIGHT_BIN, (fs::temp_directory_path() / (d + ".db")).string());
  const auto ran = foresight::test_support::runShell("unshare --pid --fork --mount-proc sh " + script.string());
  fs::remove(script);
  fs::remove(fs::temp_directory_path() / (d + ".db"));
  EXPECT_EQ(ran.exit_code, 0) << ran.all();
  const std::string log = ran.all();
  for (const std::string& said :
       {"/" + d + "-agent: left alone (planned and shown, never resized): the agent runs in it",
        "/" + d + "-init: left alone (planned and shown, never resized): PID 1, the init system, runs in it"}) {
    const auto first = log.find(said);
    ASSERT_NE(first, std::string::npos) << said << "\n" << log;
    EXPECT_EQ(log.find(said, first + said.size()), std::string::npos) << log;  // once
  }
  EXPECT_EQ(log.find(": set "), std::string::npos) << log;
  EXPECT_NE(log.find("(left alone)"), std::string::npos) << log;  // planned: a row of the view
}

// A workload matching the planner file's leave_alone is planned for but never resized, even with
// --apply: said once, its changes shown "(left alone)" in the live view. The same run with an
// empty list resizes it (so the first could fail).
TEST(RunCommand, ALeaveAlonePatternKeepsAWorkloadUnresized) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const fs::path dir = fs::temp_directory_path() / fmt::format("foresight-leave-alone-{}", ::getpid());
  fs::create_directories(dir);
  for (const std::string list : {"['foresight-*']", "[]"}) {
    SCOPED_TRACE(list);
    std::ofstream(dir / "planner.yaml") << "leave_alone: " << list << "\n";
    const auto ran = foresight::test_support::runShell(fmt::format(
        "{} run --apply --audit {} --planner {} --period 0.2 --min-history 0 --duration 3 --view 1 "
        "--listen 127.0.0.1:0 --database '' -- sleep 30",
        FORESIGHT_BIN, (dir / "audit.db").string(), (dir / "planner.yaml").string()));
    EXPECT_EQ(ran.exit_code, 0) << ran.all();
    const std::string log = ran.all();
    const std::string said = "left alone (planned and shown, never resized): it matches the planner policies' leave_alone 'foresight-*'";
    const auto first = log.find(said);
    if (list == "[]") {
      EXPECT_EQ(first, std::string::npos) << log;
      EXPECT_NE(log.find(": set cpu"), std::string::npos) << log;
    } else {
      ASSERT_NE(first, std::string::npos) << log;
      EXPECT_EQ(log.find(said, first + said.size()), std::string::npos) << log;  // once
      EXPECT_EQ(log.find(": set "), std::string::npos) << log;
      EXPECT_NE(log.find("(left alone)"), std::string::npos) << log;  // a row of the view
    }
  }
  fs::remove_all(dir);
}

// Why this host cannot run scripts/page_cache_thrash.sh (a cgroup of its own, PSI); empty if it can.
std::string whyNoPageCacheScript() {
  if (!cgroupsWritable()) return "needs root and cgroup cpu/memory controllers";
  if (!fs::exists("/proc/pressure/memory")) return "needs a kernel with PSI (/proc/pressure/memory)";
  return {};
}

// Its "limit after: BYTES"; NaN where it printed none (which every comparison fails).
double limitAfter(const std::string& log) {
  const auto at = log.find("limit after: ");
  return at == std::string::npos ? NAN : std::stod(log.substr(at + 13));
}

// scripts/page_cache_thrash.sh in `mode` for `seconds`, without the live view.
foresight::test_support::Ran pageCacheScript(const char* mode, int seconds) {
  return foresight::test_support::runShell(fmt::format("sh {}/scripts/page_cache_thrash.sh {} {} 0 {}",
                                                       FORESIGHT_SOURCE_DIR, FORESIGHT_BIN, seconds, mode));
}

// A workload that reads a 96 MiB file over and over under a 32 MiB memory limit thrashes its page
// cache: its pages are evicted before they are used again, so its working set (usage less the
// inactive file pages) reads almost nothing and the forecast would shrink the limit. It stalls on
// memory (PSI) at its limit, and `run --apply` raises the limit (rule `pressure`), which it never
// does on that forecast (scripts/page_cache_thrash.sh: the usage floor's margin is 0 there).
TEST(RunCommand, AWorkloadThrashingItsPageCacheAtItsMemoryLimitIsGivenMore) {
  if (const auto why = whyNoPageCacheScript(); !why.empty()) GTEST_SKIP() << why;
  const auto ran = pageCacheScript("thrash", 12);
  ASSERT_EQ(ran.exit_code, 0) << ran.all();
  const std::string log = ran.all();
  EXPECT_NE(log.find("rule pressure"), std::string::npos) << log;
  EXPECT_NE(log.find("% of the time at this limit"), std::string::npos) << log;
  EXPECT_EQ(log.find("while not at its own memory limit"), std::string::npos) << log;
  EXPECT_EQ(log.find("cannot remove"), std::string::npos) << log;
  EXPECT_GT(limitAfter(log), 32.0 * 1024 * 1024) << log;
}

// A workload that reads a sparse 1 TiB file once, under a 32 MiB limit, stalls in reclaim at its
// limit as the one above does, but reads none of its evicted pages back: more memory would not
// cure it, and its limit is not raised (the stall counts by the share of pages read back).
TEST(RunCommand, AWorkloadStreamingAFileOnceAtItsMemoryLimitIsNotGivenMore) {
  if (const auto why = whyNoPageCacheScript(); !why.empty()) GTEST_SKIP() << why;
  const auto ran = pageCacheScript("stream", 12);
  ASSERT_EQ(ran.exit_code, 0) << ran.all();
  const std::string log = ran.all();
  // It did stall at its limit, more than the pressure rule's default threshold (10 ms in 6 s)
  // would let pass if the stall counted whole.
  const auto st = log.find("stalled: ");
  ASSERT_NE(st, std::string::npos) << log;
  const double stalled_us = std::stod(log.substr(st + 9));
  const double wall_us = std::stod(log.substr(log.find(" in ", st) + 4));
  EXPECT_GT(stalled_us / wall_us, 0.01 / 6) << log;
  EXPECT_EQ(log.find("rule pressure"), std::string::npos) << log;
  EXPECT_EQ(log.find("cannot remove"), std::string::npos) << log;
  EXPECT_LE(limitAfter(log), 32.0 * 1024 * 1024) << log;
}

// The same thrashing in a cgroup limited to 62 MiB under a parent limited to 60 MiB (dry-run): it
// stalls just under its own limit (at most 60 of 62 MiB), which it never reaches. The pressure
// rule leaves it, and `run` says once that the parent's limit or the host is short.
TEST(RunCommand, AWorkloadStalledUnderItsParentsMemoryLimitIsToldItsOwnWouldNotHelp) {
  if (const auto why = whyNoPageCacheScript(); !why.empty()) GTEST_SKIP() << why;
  const auto ran = pageCacheScript("parent", 8);
  ASSERT_EQ(ran.exit_code, 0) << ran.all();
  const std::string log = ran.all();
  const std::string said = "while not at its own memory limit: the host's memory or an ancestor cgroup's limit is short";
  const auto first = log.find(said);
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find(said, first + said.size()), std::string::npos) << log;  // once
  EXPECT_EQ(log.find("rule pressure"), std::string::npos) << log;
  EXPECT_EQ(log.find("cannot remove"), std::string::npos) << log;
}

// A host without PSI (the v2 fixture has no proc/pressure) is told, once, that the pressure rule
// cannot act; this host, where the kernel has PSI, is not.
TEST(RunCommand, AHostWithoutPsiIsToldThePressureRuleCannotAct) {
  const fs::path root = foresight::test_support::removedAtExit(fs::temp_directory_path() /
                                                               fmt::format("foresight-no-psi-{}", ::getpid()));
  fs::remove_all(root);
  fs::copy(fs::path(FORESIGHT_SOURCE_DIR) / "tests/collect/fixtures/v2", root,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);  // its proc/*/fd links dangle
  std::ofstream(root / "run.yaml") << "root: " << root.string() << "\n";
  const std::string said = "the planner's pressure rule cannot act";
  const auto run = [&](const std::string& args) {
    return foresight::test_support::runShell(fmt::format(
        "{} run {} --backend dry-run --period 0.2 --duration 1 --view 0 --listen 127.0.0.1:0 --database ''",
        FORESIGHT_BIN, args));
  };
  const auto ran = run("--config " + (root / "run.yaml").string() + " cgroup:/system.slice/app.service");
  EXPECT_EQ(ran.exit_code, 0) << ran.all();
  const std::string log = ran.all();
  const auto first = log.find(said);
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_NE(log.find("/proc/pressure/memory is missing"), std::string::npos) << log;
  EXPECT_EQ(log.find(said, first + said.size()), std::string::npos) << log;  // once
  if (fs::exists("/proc/pressure/memory")) {
    const auto live = run("");
    EXPECT_EQ(live.exit_code, 0) << live.all();
    EXPECT_EQ(live.all().find(said), std::string::npos) << live.all();
  }
}

// A backend that fails every round (here: no hierarchy where it looks) is said once, not once a
// round: ten failing rounds, one warning.
TEST(RunCommand, AFailureEveryRoundIsSaidOnce) {
  if (!cgroupsWritable()) GTEST_SKIP() << "needs root and cgroup cpu/memory controllers";
  const auto ran = foresight::test_support::runShell(fmt::format(
      "{} run --backend cgroup-v2 -o root=/nonexistent-foresight --period 0.2 --min-history 0 --duration 4 "
      "--view 0 --listen 127.0.0.1:0 --database '' -- sleep 30",
      FORESIGHT_BIN));
  EXPECT_EQ(ran.exit_code, 0) << ran.all();
  const std::string log = ran.all();
  const std::string said = "/nonexistent-foresight/foresight-";
  const auto first = log.find(said);
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find(said, first + said.size()), std::string::npos) << log;
}

// --database '' is no history store, as `database: ""` in the config: nothing is written, where
// before an empty value fell back to ./foresight-history.db.
TEST(RunCommand, AnEmptyDatabaseIsNoHistoryStore) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("foresight-no-db-{}", ::getpid());
  fs::create_directories(dir);
  const auto ran = foresight::test_support::runShell(fmt::format(
      "cd {} && {} run --period 0.2 --duration 1 --view 0 --listen 127.0.0.1:0 --database '' -- sleep 30",
      dir.string(), FORESIGHT_BIN));
  EXPECT_EQ(ran.exit_code, 0) << ran.all();
  EXPECT_TRUE(fs::is_empty(dir)) << "wrote " << fs::directory_iterator(dir)->path();
  fs::remove_all(dir);
}

TEST(RunCommand, RefusesNegativeDurationsPeriodsAndViews) {
  for (const char* bad : {"--duration -5", "--period -1", "--period 0", "--view -1", "--duration nan"}) {
    const auto ran = foresight::test_support::runShell(fmt::format("{} run {} --listen 127.0.0.1:0", FORESIGHT_BIN, bad));
    EXPECT_EQ(ran.exit_code, 2) << bad << "\n" << ran.all();
  }
}

}  // namespace
