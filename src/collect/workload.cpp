#include "foresight/collect/workload.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <regex>
#include <set>
#include <sstream>
#include <system_error>

#include "foresight/collect/kernel_files.h"

namespace fs = std::filesystem;

namespace foresight::collect {

const char* toString(CgroupVersion v) {
  switch (v) {
    case CgroupVersion::kNone: return "none";
    case CgroupVersion::kV1: return "v1";
    case CgroupVersion::kV2: return "v2";
    case CgroupVersion::kHybrid: return "hybrid";
  }
  return "?";
}

std::optional<fs::path> CgroupLayout::v1(const std::string& controller) const {
  auto it = controllers.find(controller);
  if (it == controllers.end()) return std::nullopt;
  return it->second;
}

fs::path CgroupLayout::reference() const {
  if (version == CgroupVersion::kV2) return unified;
  for (const char* c : {"cpuacct", "cpu", "memory", "pids"}) {
    if (auto p = v1(c)) return *p;
  }
  return unified;
}

CgroupLayout detectCgroupLayout(const HostPaths& paths) {
  CgroupLayout layout;
  std::error_code ec;
  const fs::path mount = paths.cgroupMount();
  if (fs::exists(mount / "cgroup.controllers", ec)) {
    layout.version = CgroupVersion::kV2;
    layout.unified = mount;
    return layout;
  }
  // v1: one folder per controller; a folder named "cpu,cpuacct" serves both.
  for (const auto& entry : fs::directory_iterator(mount, ec)) {
    if (!entry.is_directory(ec)) continue;
    const std::string name = entry.path().filename().string();
    if (name == "unified") continue;
    std::size_t pos = 0;
    while (pos <= name.size()) {
      std::size_t next = name.find(',', pos);
      if (next == std::string::npos) next = name.size();
      std::string c = name.substr(pos, next - pos);
      // Prefer the folder named exactly after the controller over a combined one.
      if (!c.empty() && (layout.controllers.count(c) == 0 || c == name)) {
        layout.controllers[c] = entry.path();
      }
      pos = next + 1;
    }
  }
  if (layout.controllers.empty()) return layout;
  layout.version = CgroupVersion::kV1;
  if (fs::exists(mount / "unified" / "cgroup.controllers", ec)) {
    layout.version = CgroupVersion::kHybrid;
    layout.unified = mount / "unified";
  }
  return layout;
}

fs::path cgroupPath(const fs::path& mount, const std::string& cgroup) {
  return cgroup == "/" ? mount : mount / cgroup.substr(1);
}

std::string workloadFileName(std::string_view id) {
  std::string out;
  for (char c : id) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') out += c;
    else if (c == '/') out += '_';
    else out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
  }
  // A file name has at most 255 bytes, and a nested container's cgroup path can be longer: such a
  // name keeps its start and ends in a hash of the whole id. FNV-1a by hand because the name must
  // be the same in every build (std::hash need not be), and 64 bits are all it needs.
  constexpr std::size_t kMax = 200;  // room for ".csv", a temporary suffix and ".state.json"
  if (out.size() > kMax) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : id) h = (h ^ c) * 0x100000001b3ULL;
    out = fmt::format("{}~{:016x}", out.substr(0, kMax - 17), h);
  }
  return out;
}

std::vector<pid_t> parsePids(std::string_view text) {
  std::vector<pid_t> pids;
  forEachLine(text, [&](std::string_view line) {
    if (auto v = parseNumber(line)) pids.push_back(static_cast<pid_t>(*v));
  });
  return pids;
}

namespace {

Result<std::vector<pid_t>> readProcs(const fs::path& file) {
  auto text = readKernelFile(file);
  if (!text) return tl::unexpected(text.error());
  return parsePids(*text);
}

}  // namespace

std::map<pid_t, pid_t> readParents(const HostPaths& paths) {
  std::map<pid_t, pid_t> parents;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(paths.proc(), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    auto stat = readKernelFile(entry.path() / "stat");
    if (!stat) continue;  // exited meanwhile: normal
    const auto fields = statFields(*stat);  // "pid (comm) state ppid ..."
    if (!fields) continue;
    auto ppid = parseNumber(field(*fields, 4 - 3));
    if (ppid) parents[static_cast<pid_t>(std::stoi(name))] = static_cast<pid_t>(*ppid);
  }
  return parents;
}

Result<std::vector<pid_t>> workloadPids(const HostPaths& paths, const CgroupLayout& layout,
                                        const Workload& w) {
  if (w.kind == Workload::Kind::kCgroup) {
    return readProcs(cgroupPath(layout.reference(), w.cgroup) / "cgroup.procs");
  }
  std::error_code ec;
  if (!fs::exists(paths.procPid(w.root_pid), ec)) {
    return fail(ErrorCode::kNotFound, "{}: process {} has exited",
                paths.procPid(w.root_pid).string(), w.root_pid);
  }
  auto parents = readParents(paths);
  std::multimap<pid_t, pid_t> children;
  for (auto [pid, ppid] : parents) children.emplace(ppid, pid);
  std::vector<pid_t> out{w.root_pid};
  for (std::size_t i = 0; i < out.size(); ++i) {
    auto [lo, hi] = children.equal_range(out[i]);
    for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  }
  return out;
}

SubdirLister systemSubdirLister() {
  return [](const fs::path& dir) -> Result<std::vector<fs::path>> {
    std::error_code ec;
    fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    if (ec) return fail(ErrorCode::kIo, "{}: {}", dir.string(), ec.message());
    std::vector<fs::path> out;
    // An error part-way (the folder removed while read) keeps what was listed.
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      std::error_code type_ec;
      if (it->is_directory(type_ec) && !it->is_symlink(type_ec)) out.push_back(it->path());
    }
    return out;
  };
}

std::set<std::string> cgroupsOfProcess(const HostPaths& paths, pid_t pid) {
  std::set<std::string> out;
  auto text = readKernelFileToEnd(paths.procPid(pid) / "cgroup");
  if (!text) return out;
  std::istringstream in(*text);
  std::string line;
  // "ID:CONTROLLERS:PATH" (cgroups(7)); a path may hold ':', so it is all after the second one.
  while (std::getline(in, line)) {
    const auto a = line.find(':');
    const auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string path = line.substr(b + 1);
    if (path.starts_with('/') && path != "/") out.insert(path);
  }
  return out;
}

Result<std::vector<Workload>> discoverCgroups(const HostPaths& paths, const CgroupLayout& layout,
                                              int max_depth, bool only_populated,
                                              const SubdirLister& list) {
  if (layout.version == CgroupVersion::kNone) {
    return fail(ErrorCode::kUnavailable, "{}: no cgroup hierarchy mounted",
                paths.cgroupMount().string());
  }
  const fs::path ref = layout.reference();
  auto top = list(ref);
  if (!top) return tl::unexpected(top.error());
  std::vector<Workload> out;
  // Depth-first, by hand: std::filesystem's recursive iterator ends at the first folder it cannot
  // open, and a cgroup removed during the walk would make every one not yet reached look gone.
  std::vector<std::pair<std::vector<fs::path>, int>> pending;  // folders listed, their depth
  pending.emplace_back(std::move(*top), 0);
  while (!pending.empty()) {
    auto [dirs, depth] = std::move(pending.back());
    pending.pop_back();
    for (const auto& dir : dirs) {
      std::error_code ec;
      Workload w;
      w.kind = Workload::Kind::kCgroup;
      w.cgroup = (fs::path("/") / fs::relative(dir, ref, ec)).generic_string();
      w.id = w.cgroup;
      if (depth + 1 < max_depth) {
        // Not listable (removed meanwhile, or unreadable): skipped with what is below it.
        if (auto below = list(dir)) pending.emplace_back(std::move(*below), depth + 1);
      }
      if (only_populated) {
        auto pids = readProcs(dir / "cgroup.procs");
        if (!pids || pids->empty()) continue;
      }
      out.push_back(std::move(w));
    }
  }
  std::sort(out.begin(), out.end(), [](const Workload& a, const Workload& b) { return a.id < b.id; });
  return out;
}

Result<std::vector<Workload>> selectWorkloads(const HostPaths& paths, const CgroupLayout& layout,
                                              const std::string& selector) {
  auto colon = selector.find(':');
  if (colon == std::string::npos) {
    return fail(ErrorCode::kInvalidArgument,
                "selector '{}': expected pid:N, cgroup:/path or cmd:REGEX", selector);
  }
  const std::string kind = selector.substr(0, colon), arg = selector.substr(colon + 1);
  if (kind == "pid") {
    auto v = parseNumber(arg);
    if (!v || *v <= 0) return fail(ErrorCode::kInvalidArgument, "selector '{}': bad pid", selector);
    Workload w{Workload::Kind::kProcessTree, "pid-" + arg, "", static_cast<pid_t>(*v)};
    std::error_code ec;
    if (!fs::exists(paths.procPid(w.root_pid), ec)) {
      return fail(ErrorCode::kNotFound, "selector '{}': no process {}", selector, arg);
    }
    return std::vector<Workload>{w};
  }
  if (kind == "cgroup") {
    if (arg.empty() || arg[0] != '/') {
      return fail(ErrorCode::kInvalidArgument, "selector '{}': cgroup path must start with '/'",
                  selector);
    }
    std::error_code ec;
    fs::path dir = cgroupPath(layout.reference(), arg);
    if (layout.version == CgroupVersion::kNone || !fs::is_directory(dir, ec)) {
      return fail(ErrorCode::kNotFound, "selector '{}': {} is not a cgroup", selector, dir.string());
    }
    return std::vector<Workload>{{Workload::Kind::kCgroup, arg, arg, 0}};
  }
  if (kind == "cmd") {
    std::regex re;
    try {
      re = std::regex(arg, std::regex::extended);
    } catch (const std::regex_error& e) {
      return fail(ErrorCode::kInvalidArgument, "selector '{}': {}", selector, e.what());
    }
    auto parents = readParents(paths);
    // This process and the ones that started it (a shell, sudo) carry the selector in their own
    // command lines: not workloads to profile.
    std::set<pid_t> self;
    for (pid_t p = ::getpid(), guard = 0; p > 1 && guard < 4096 && self.insert(p).second; ++guard) {
      auto it = parents.find(p);
      if (it == parents.end()) break;
      p = it->second;
    }
    std::set<pid_t> matched;
    for (auto [pid, ppid] : parents) {
      if (self.count(pid)) continue;
      auto cmd = readKernelFile(paths.procPid(pid) / "cmdline");
      if (!cmd) continue;
      std::replace(cmd->begin(), cmd->end(), '\0', ' ');
      if (std::regex_search(*cmd, re)) matched.insert(pid);
    }
    std::vector<Workload> out;
    for (pid_t pid : matched) {
      bool nested = false;  // a match under another match is part of that tree
      for (pid_t p = parents[pid], guard = 0; p > 1 && guard < 4096; p = parents[p], ++guard) {
        if (matched.count(p)) { nested = true; break; }
      }
      if (!nested) out.push_back({Workload::Kind::kProcessTree, "pid-" + std::to_string(pid), "", pid});
    }
    if (out.empty()) return fail(ErrorCode::kNotFound, "selector '{}': no process matches", selector);
    return out;
  }
  return fail(ErrorCode::kInvalidArgument, "selector '{}': unknown kind '{}' (pid, cgroup, cmd)",
              selector, kind);
}

}  // namespace foresight::collect
