// The demo workload of `foresight bench workload`, run in-process.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "foresight/loop/experiment.h"

namespace foresight::loop {
namespace {

// Without address space for a request thread's stack, the workload reports it and exits 1; before,
// the failed thread start escaped with the other thread unjoined and std::terminate aborted it.
TEST(BenchWorkload, WhenAThreadCannotStartItFailsWithAMessageInsteadOfAborting) {
  const auto out = std::filesystem::temp_directory_path() /
                   ("foresight-workload-" + std::to_string(::getpid()) + ".json");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    long vm_kib = 0;
    std::ifstream status("/proc/self/status");
    for (std::string key; status >> key;)
      if (key == "VmSize:") status >> vm_kib;
    if (vm_kib <= 0) _exit(10);
    // 4 MiB above what is mapped now: a thread's 8 MiB stack cannot be mapped.
    const rlim_t limit = static_cast<rlim_t>(vm_kib + 4096) * 1024;
    const rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_AS, &rl) != 0) _exit(11);
    WorkloadOptions o;
    o.duration_seconds = 2;
    o.out = out;
    _exit(runWorkload(o));
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(BenchWorkload, WritesTheRequestsAndTheirP99) {
  const auto out = std::filesystem::temp_directory_path() /
                   ("foresight-workload-ok-" + std::to_string(::getpid()) + ".json");
  WorkloadOptions o;
  o.duration_seconds = 0.5;
  o.out = out;
  ASSERT_EQ(runWorkload(o), 0);
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  std::filesystem::remove(out);
  // 0.3 cores of 2 ms requests for 0.5 s: about 75 requests.
  EXPECT_NE(text.find("\"requests\":"), std::string::npos) << text;
  EXPECT_NE(text.find("\"p99_latency_ms\":"), std::string::npos) << text;
}

}  // namespace
}  // namespace foresight::loop
