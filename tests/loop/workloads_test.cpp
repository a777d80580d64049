// The demo workload of `foresight bench workload`, run in-process.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "foresight/loop/experiment.h"
#include "support/forked.h"

namespace foresight::loop {
namespace {

// Without address space for a request thread's stack, the workload reports it and exits 1; before,
// the failed thread start escaped with the other thread unjoined and std::terminate aborted it.
TEST(BenchWorkload, WhenAThreadCannotStartItFailsWithAMessageInsteadOfAborting) {
  const auto out = std::filesystem::temp_directory_path() /
                   ("foresight-workload-" + std::to_string(::getpid()) + ".json");
  int signal = 0;
  const int rc = test_support::runWithoutRoomForThreads(
      [&] {
        WorkloadOptions o;
        o.duration_seconds = 2;
        o.out = out;
        return runWorkload(o);
      },
      &signal);
  EXPECT_EQ(rc, 1) << "killed by signal " << signal;
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
