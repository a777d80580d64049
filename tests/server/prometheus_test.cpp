// Integration: Debian's prometheus, started by the test on 127.0.0.1, scrapes the agent; the
// series is read back through Prometheus's HTTP API. Skips when prometheus is not installed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "foresight/server/agent.h"
// After Eigen (via agent.h): httplib pulls in <resolv.h>, whose `_res` macro breaks Eigen.
#include <httplib.h>

using namespace foresight;
namespace fs = std::filesystem;

namespace {
// A port the kernel picks on 127.0.0.1, released for prometheus to take (a race with another
// process is possible but unlikely).
int freePort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    return -1;
  }
  ::close(s);
  return ntohs(a.sin_port);
}
}  // namespace

TEST(PrometheusIntegration, ScrapesTheAgentAndReturnsItsSeries) {
  const char* prom = "/usr/bin/prometheus";
  if (!fs::exists(prom)) GTEST_SKIP() << "prometheus not installed (scripts/deps.sh test)";
  server::AgentConfig cfg;
  cfg.root = std::string(FORESIGHT_SOURCE_DIR) + "/tests/collect/fixtures/v2";
  cfg.listen_port = 0;
  cfg.period_seconds = 0.2;
  cfg.database = "";
  cfg.collectors = {"cgroup.v2"};
  server::Agent agent(cfg);
  ASSERT_TRUE(agent.start());

  const fs::path dir = fs::path(testing::TempDir()) / ("prom-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int prom_port = freePort();
  {
    std::ofstream c(dir / "prometheus.yml");
    c << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: foresight\n    static_configs:\n"
      << "      - targets: ['127.0.0.1:" << agent.port() << "']\n";
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(prom_port);
    const std::string cfgarg = "--config.file=" + (dir / "prometheus.yml").string();
    const std::string data = "--storage.tsdb.path=" + (dir / "data").string();
    int log = ::open((dir / "prometheus.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execl(prom, prom, cfgarg.c_str(), listen.c_str(), data.c_str(), nullptr);
    _exit(127);
  }
  ASSERT_GT(prom_port, 0);
  httplib::Client cli("127.0.0.1", prom_port);
  cli.set_connection_timeout(1);
  cli.set_read_timeout(2);
  double value = -1;
  std::string last_body;
  // Bounded: up to 60 s for prometheus to start, scrape and answer.
  for (int i = 0; i < 120 && value < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto r = cli.Get("/api/v1/query?query=foresight_cpu_throttled_periods_total");
    if (!r || r->status != 200) continue;
    last_body = r->body;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (j.is_discarded() || j["data"]["result"].empty()) continue;
    const auto& series = j["data"]["result"][0];
    EXPECT_EQ(series["metric"]["workload"], "/system.slice/app.service");
    EXPECT_EQ(series["metric"]["job"], "foresight");
    value = std::stod(series["value"][1].get<std::string>());
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  agent.stop();
  std::string log;
  if (value < 0) {
    std::ifstream in(dir / "prometheus.log");
    log.assign(std::istreambuf_iterator<char>(in), {});
  }
  fs::remove_all(dir);
  EXPECT_DOUBLE_EQ(value, 7) << last_body << "\nprometheus log:\n" << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);  // nr_throttled in the fixture's cpu.stat
}
