// A workload its memory limit pushes into swap, on this machine's kernel: the collectors must see
// the swap; while the workload reads it back its memory demand must exceed the limit it fits
// under, and once it stops touching it, the swap is cold and not demand. Needs root, a memory
// controller with swap accounting, and a swap area; without one it makes a swap file of its own
// (in the working directory, ctest's build folder), and removes it afterwards. Swap turned on for
// the whole host would let other tests' workloads escape the OOM kills they wait for, so CTest
// runs this one alone (RUN_SERIAL).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "foresight/collect/collector.h"
#include "foresight/collect/kernel_files.h"
#include "foresight/collect/sampler.h"
#include "support/host_sampler.h"
#include "support/test_cgroup.h"

using namespace foresight;
using namespace foresight::collect;
namespace fs = std::filesystem;

namespace {

bool write(const fs::path& f, const std::string& v) {
  std::ofstream o(f);
  o << v << '\n';
  o.flush();
  return static_cast<bool>(o);
}

volatile sig_atomic_t g_stop = 0;
void stopTouching(int) { g_stop = 1; }

bool swapActive() {
  std::ifstream in("/proc/swaps");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) ++lines;
  return lines > 1;  // a header, then one line per area
}

// A swap file of the test's own, turned on while it lives; `error` says why there is none.
class SwapFile {
 public:
  explicit SwapFile(const fs::path& path) : path_(path) {
    {
      std::ofstream o(path_, std::ios::binary);
      const std::vector<char> mib(1 << 20, 0);
      for (int i = 0; i < 256; ++i) o.write(mib.data(), static_cast<std::streamsize>(mib.size()));
      if (!o) { error = "cannot write " + path_.string(); return; }
    }
    fs::permissions(path_, fs::perms::owner_read | fs::perms::owner_write);
    if (std::system(("mkswap " + path_.string() + " >/dev/null 2>&1").c_str()) != 0) {
      error = "mkswap " + path_.string() + " failed";
      return;
    }
    if (::swapon(path_.c_str(), 0) != 0) {
      error = "swapon " + path_.string() + ": " + std::strerror(errno);
      return;
    }
    on_ = true;
  }
  ~SwapFile() {
    if (on_) ::swapoff(path_.c_str());
    std::error_code ec;
    fs::remove(path_, ec);
  }
  std::string error;

 private:
  fs::path path_;
  bool on_ = false;
};

}  // namespace

TEST(LiveSwap, SwapReadBackUnderALimitIsMemoryDemandAndColdSwapIsNot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups and turn swap on";
  CollectorContext ctx;
  ctx.clock_ticks = sysconf(_SC_CLK_TCK);
  ctx.layout = detectCgroupLayout(ctx.paths);
  ctx.detail_every = 1;  // every round reads memory.stat and the swap files
  const bool v2 = ctx.layout.version == CgroupVersion::kV2;
  if (!v2 && !ctx.layout.v1("memory")) GTEST_SKIP() << "no memory controller";
  const fs::path root = v2 ? ctx.layout.unified : *ctx.layout.v1("memory");
  std::unique_ptr<SwapFile> swap;
  if (!swapActive()) {
    swap = std::make_unique<SwapFile>(fs::current_path() / ("foresight-swap-test-" + std::to_string(::getpid())));
    if (!swap->error.empty()) GTEST_SKIP() << "no swap area and none could be made: " << swap->error;
  }
  const std::string name = "foresight-swap-test-" + std::to_string(::getpid());
  test_support::TestCgroup cg(ctx.layout, name);
  if (!cg.error().empty()) GTEST_SKIP() << "cannot create a cgroup: " << cg.error();
  const fs::path mem = root / name;
  if (!fs::exists(mem / (v2 ? "memory.swap.current" : "memory.memsw.usage_in_bytes")))
    GTEST_SKIP() << "no swap accounting in this kernel's memory controller";
  constexpr double kLimit = 32u << 20;
  ASSERT_TRUE(write(mem / (v2 ? "memory.max" : "memory.limit_in_bytes"), "33554432"));
  if (!v2) write(mem / "memory.swappiness", "100");

  // The child writes over 96 MiB again and again (each pass reads back what the limit pushed out)
  // until SIGUSR1, then holds it untouched.
  int ready[2], done[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(done), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGUSR1, stopTouching);
    char c;
    if (::read(done[0], &c, 1) != 1) _exit(1);  // joined the cgroup
    std::vector<char> big(96u << 20);
    for (unsigned pass = 0; !g_stop; ++pass) {
      for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i + pass);
      if (pass == 0 && ::write(ready[1], "r", 1) != 1) _exit(1);
    }
    if (::write(ready[1], "s", 1) != 1) _exit(1);  // stopped touching
    ::pause();  // holds it until killed
    _exit(0);
  }
  cg.join(child);
  ASSERT_EQ(::write(done[1], "g", 1), 1);
  char c = 0;
  const bool touched = ::read(ready[0], &c, 1) == 1;

  const Workload w{Workload::Kind::kCgroup, "/" + name, "/" + name, 0};
  auto sampler = test_support::hostSampler(ctx);
  ASSERT_TRUE(sampler);
  auto interval = [&] {  // two samples 300 ms apart
    auto a = sampler->sampleOne(w);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return std::make_pair(std::move(a), sampler->sampleOne(w));
  };
  auto [busy0, busy1] = interval();
  ::kill(child, SIGUSR1);
  const bool stopped = ::read(ready[0], &c, 1) == 1;
  auto [cold0, cold1] = interval();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  for (int fd : {ready[0], ready[1], done[0], done[1]}) ::close(fd);
  ASSERT_TRUE(touched) << "the child did not get its 96 MiB in (killed under the limit?)";
  ASSERT_TRUE(stopped);
  for (const auto* s : {&busy0, &busy1, &cold0, &cold1}) ASSERT_TRUE(*s) << s->error().message;

  // 96 MiB written under a 32 MiB limit: about 64 MiB of it is in swap, read back on every pass.
  const double swapped = busy1->get("memory_swap_bytes");
  EXPECT_GE(swapped, 48.0 * (1 << 20)) << "memory_swap_bytes";
  EXPECT_LE(busy1->get("memory_working_set_bytes"), kLimit);
  const auto d = resourceDemand(*busy0, *busy1, resourceUsage(*busy0, *busy1), 8);
  EXPECT_GE(d[index(Resource::kMemory)], 80.0 * (1 << 20)) << "the working set alone fits the limit";
  EXPECT_DOUBLE_EQ(d[index(Resource::kMemory)], busy1->get("memory_working_set_bytes") + swapped);

  if (!busy1->has("memory_anon_refaults_total"))
    GTEST_SKIP() << "kernel without workingset_refault_anon (5.9+): all swap counts as demand";
  EXPECT_GT(busy1->get("memory_anon_refaults_total"), busy0->get("memory_anon_refaults_total"));
  // Untouched, the swap stays and nothing is read back: the working set alone is the demand.
  EXPECT_GE(cold1->get("memory_swap_bytes"), 48.0 * (1 << 20));
  EXPECT_DOUBLE_EQ(cold1->get("memory_anon_refaults_total"), cold0->get("memory_anon_refaults_total"));
  const auto cold = resourceDemand(*cold0, *cold1, resourceUsage(*cold0, *cold1), 8);
  EXPECT_DOUBLE_EQ(cold[index(Resource::kMemory)], cold1->get("memory_working_set_bytes"));
}
