#include "foresight/collect/launch.h"

#include "foresight/collect/kernel_files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "foresight/core/log.h"

namespace fs = std::filesystem;

namespace foresight::collect {

Result<LaunchedWorkload> LaunchedWorkload::start(const CollectorContext& ctx,
                                                 const std::vector<std::string>& argv) {
  if (argv.empty()) return fail(ErrorCode::kInvalidArgument, "no command to launch");
  int go[2];
  if (::pipe2(go, O_CLOEXEC) != 0) return fail(ErrorCode::kIo, "pipe: {}", std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) return fail(ErrorCode::kIo, "fork: {}", std::strerror(errno));
  if (pid == 0) {
    ::close(go[1]);
    char c;
    if (::read(go[0], &c, 1) != 1) _exit(127);
    restoreFdLimit();  // the agent raised its own for kept fds; the command gets the usual one
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "foresight: cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  ::close(go[0]);
  LaunchedWorkload l;
  l.pid_ = pid;
  const std::string name = "foresight-" + std::to_string(pid);
  std::vector<fs::path> dirs;
  if (ctx.layout.version == CgroupVersion::kV2) dirs.push_back(ctx.layout.unified / name);
  else
    for (const char* c : {"cpu", "cpuacct", "memory", "blkio", "pids"})
      if (auto d = ctx.layout.v1(c)) dirs.push_back(*d / name);
  // The command's cgroup `d` made (kept for removal) and the command moved into it.
  auto place = [&](const fs::path& d) {
    std::error_code ec;
    if (!fs::create_directory(d, ec) && ec) return false;
    l.cgroup_dirs_.push_back(d.string());
    std::ofstream procs(d / "cgroup.procs");
    procs << pid << '\n';
    procs.flush();
    return static_cast<bool>(procs);
  };
  bool in_cgroup = !dirs.empty();
  for (const auto& d : dirs)
    if (!place(d)) { in_cgroup = false; break; }
  // A hybrid host keeps PSI and perf's cgroup events on the unified side, where the command would
  // stay in the caller's cgroup: it goes to the same path there too, as runc places a container.
  // Optional: without it the command is still measured, with less.
  if (in_cgroup && ctx.layout.version == CgroupVersion::kHybrid && !ctx.layout.unified.empty() &&
      !place(ctx.layout.unified / name))
    spdlog::info("launch: cannot place the command in {}: no PSI or perf counters for it",
                 (ctx.layout.unified / name).string());
  if (in_cgroup) {
    l.workload_ = {Workload::Kind::kCgroup, "/" + name, "/" + name, 0};
  } else {
    // Not root or no writable hierarchy: a process tree still measures the command.
    spdlog::info("launch: cannot place the command in its own cgroup; measuring it as a process tree");
    l.workload_ = {Workload::Kind::kProcessTree, "pid-" + std::to_string(pid), "", pid};
  }
  if (::write(go[1], "g", 1) != 1) spdlog::warn("launch: cannot release the child");
  ::close(go[1]);
  return l;
}

LaunchedWorkload::LaunchedWorkload(LaunchedWorkload&& o) noexcept
    : workload_(std::move(o.workload_)), pid_(o.pid_), reaped_(o.reaped_),
      exit_code_(o.exit_code_), cgroup_dirs_(std::move(o.cgroup_dirs_)) {
  o.pid_ = -1;
  o.cgroup_dirs_.clear();
}

bool LaunchedWorkload::exited() {
  if (pid_ < 0) return true;
  auto record = [&](int status) {
    reaped_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  };
  int status = 0;
  if (::getpid() == 1) {
    // As PID 1 (`foresight run -- CMD` as a container's entrypoint) every orphan of the command's
    // tree is re-parented to us and only we can reap it: left alone, each stays a zombie holding a
    // pid against the container's limit. Anywhere else orphans go to init, and waitpid(-1) could
    // take a child that another part of the program waits for.
    for (pid_t p; (p = ::waitpid(-1, &status, WNOHANG)) > 0;)
      if (p == pid_ && !reaped_) record(status);
  } else if (!reaped_ && ::waitpid(pid_, &status, WNOHANG) == pid_) {
    record(status);
  }
  return reaped_;
}

namespace {

// Every process in the command's cgroups: its children stay there after it ends or is stopped.
std::vector<pid_t> cgroupPids(const std::vector<std::string>& dirs) {
  std::vector<pid_t> out;
  for (const auto& d : dirs)
    if (auto text = readKernelFile(fs::path(d) / "cgroup.procs"))
      for (pid_t p : parsePids(*text)) out.push_back(p);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

void LaunchedWorkload::terminate() {
  // Until the command is reaped its pid cannot be reused, so signalling it directly is safe.
  auto signal = [&](int sig) {
    if (pid_ >= 0 && !reaped_) ::kill(pid_, sig);
    for (pid_t p : cgroupPids(cgroup_dirs_)) ::kill(p, sig);
  };
  auto done = [&] { return exited() && cgroupPids(cgroup_dirs_).empty(); };
  auto waitDone = [&](int steps) {
    for (int i = 0; i < steps && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
  if (done()) return;
  signal(SIGTERM);
  waitDone(50);
  // Re-read and re-signalled each step: a process may fork while the signals go out. v2's
  // cgroup.kill takes the whole cgroup, forks included, at once.
  for (int i = 0; i < 20 && !done(); ++i) {
    bool killed = false;
    for (const auto& d : cgroup_dirs_) {
      std::ofstream file(fs::path(d) / "cgroup.kill");
      if (file) killed = static_cast<bool>(file << "1\n" << std::flush);
    }
    if (!killed) signal(SIGKILL);
    waitDone(5);
  }
  if (!exited()) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
  }
  if (auto left = cgroupPids(cgroup_dirs_); !left.empty())
    spdlog::warn("launch: {} process(es) still in {} after SIGKILL, first pid {}", left.size(),
                 cgroup_dirs_.front(), left.front());
}

LaunchedWorkload::~LaunchedWorkload() {
  terminate();  // empties the cgroup, which can only go once empty
  for (const auto& d : cgroup_dirs_) {
    if (::rmdir(d.c_str()) != 0 && errno != ENOENT)
      spdlog::warn("launch: cannot remove cgroup {}: {}", d, std::strerror(errno));
  }
}

}  // namespace foresight::collect
