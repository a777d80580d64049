// Integration: Debian's prometheus, started by the test on 127.0.0.1, scrapes the agent; the
// series is read back through Prometheus's HTTP API. Skips when prometheus is not installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "foresight/server/agent.h"
#include "support/prometheus.h"
#include "support/tls.h"
// After Eigen (via agent.h): httplib pulls in <resolv.h>, whose `_res` macro breaks Eigen.
#include <httplib.h>

using namespace foresight;
namespace fs = std::filesystem;

namespace {
// Starts the agent on the v2 fixture and Prometheus scraping it; the series Prometheus then
// returns for the fixture's nr_throttled, or -1 with Prometheus's log when it returns none within
// 60 s. `token`: the agent needs it as a bearer token, and Prometheus sends it from a
// credentials_file (Prometheus's own way to scrape a protected target); empty: neither. `tls`: the
// agent serves HTTPS with a self-signed certificate, which Prometheus is given as its CA.
std::pair<double, std::string> scrapedThrottledPeriods(const std::string& token, bool tls = false) {
  const fs::path dir = fs::path(testing::TempDir()) / ("prom-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  server::AgentConfig cfg;
  cfg.root = std::string(FORESIGHT_SOURCE_DIR) + "/tests/collect/fixtures/v2";
  cfg.listen_port = 0;
  cfg.period_seconds = 0.2;
  cfg.database = "";
  cfg.collectors = {"cgroup.v2"};
  std::string auth;
  if (!token.empty()) {
    std::ofstream(dir / "token") << token << "\n";
    cfg.bearer_token_file = (dir / "token").string();
    auth = "    authorization:\n      credentials_file: " + (dir / "token").string() + "\n";
  }
  if (tls) {
    // The agent's certificate, and Prometheus's own as a client (mutual TLS).
    test_support::SelfSigned cert, client;
    cert.writeTo(dir);
    fs::create_directories(dir / "client");
    client.writeTo(dir / "client");
    cfg.tls_cert_file = (dir / "cert.pem").string();
    cfg.tls_key_file = (dir / "key.pem").string();
    cfg.tls_client_ca_file = (dir / "client" / "cert.pem").string();
    auth += "    scheme: https\n    tls_config:\n      ca_file: " + (dir / "cert.pem").string() +
            "\n      cert_file: " + (dir / "client" / "cert.pem").string() +
            "\n      key_file: " + (dir / "client" / "key.pem").string() + "\n";
  }
  server::Agent agent(cfg);
  if (auto st = agent.start(); !st) return {-1, st.error().message};
  auto server = std::make_unique<test_support::PrometheusServer>(
      dir, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
           "scrape_configs:\n  - job_name: foresight\n" + auth + "    static_configs:\n"
           "      - targets: ['127.0.0.1:" + std::to_string(agent.port()) + "']\n");
  if (server->port() <= 0) return {-1, "prometheus did not start"};
  httplib::Client cli("127.0.0.1", server->port());
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
  std::string log;
  if (value < 0) {  // the scrape's own error is in the targets API, not the log
    auto t = cli.Get("/api/v1/targets");
    log = last_body + "\ntargets: " + (t ? t->body : "none") + "\nprometheus log:\n" + server->logTail();
  }
  server.reset();
  agent.stop();
  fs::remove_all(dir);
  return {value, log};
}
}  // namespace

TEST(PrometheusIntegration, ScrapesTheAgentAndReturnsItsSeries) {
  if (!fs::exists(test_support::kPrometheusBinary)) GTEST_SKIP() << "prometheus not installed (scripts/deps.sh test)";
  const auto [value, log] = scrapedThrottledPeriods("");
  EXPECT_DOUBLE_EQ(value, 7) << log;  // nr_throttled in the fixture's cpu.stat
}

// An agent that needs a bearer token and a client certificate over HTTPS is scraped by Prometheus
// configured with the token's file, the agent's certificate and a client certificate of its own.
TEST(PrometheusIntegration, ScrapesAnAgentOverMutualTlsThatNeedsABearerToken) {
  if (!fs::exists(test_support::kPrometheusBinary)) GTEST_SKIP() << "prometheus not installed (scripts/deps.sh test)";
  const auto [value, log] = scrapedThrottledPeriods("prometheus-may-scrape", /*tls=*/true);
  EXPECT_DOUBLE_EQ(value, 7) << log;
}

// promtool's lint: a `_total` series must be TYPE counter and no gauge may end in `_count`
// (the kernel counters were once exposed as gauges: 28 warnings and exit status 3).
TEST(PrometheusIntegration, TheExpositionPassesPromtoolsLint) {
  if (!fs::exists(test_support::kPromtoolBinary)) GTEST_SKIP() << "promtool not installed (scripts/deps.sh test)";
  server::AgentConfig cfg;
  cfg.root = std::string(FORESIGHT_SOURCE_DIR) + "/tests/collect/fixtures/v2";
  cfg.listen_port = 0;
  cfg.period_seconds = 0.05;
  cfg.database = "";
  cfg.collectors = {"cgroup.v2", "procfs"};
  cfg.fingerprint = {.window = 4, .hop = 1, .dim = 4};
  server::Agent agent(cfg);
  ASSERT_TRUE(agent.start());
  for (int i = 0; i < 200 && agent.rounds() < 6; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  httplib::Client cli("127.0.0.1", agent.port());
  auto m = cli.Get("/metrics");
  agent.stop();
  ASSERT_TRUE(m);
  // What the lint has to judge: kernel counters, a process count, gauges, the agent's own.
  for (const char* name : {"# TYPE foresight_cpu_usage_seconds_total counter", "foresight_proc_processes{",
                           "# TYPE foresight_memory_usage_bytes gauge", "foresight_fingerprint_anomaly{",
                           "# TYPE foresight_agent_rounds_total counter"})
    EXPECT_NE(m->body.find(name), std::string::npos) << name << " not in\n" << m->body;
  const fs::path file = fs::path(testing::TempDir()) / ("metrics-" + std::to_string(::getpid()) + ".txt");
  { std::ofstream(file) << m->body; }
  const std::string cmd = std::string(test_support::kPromtoolBinary) + " check metrics < " + file.string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = ::pclose(p);
  fs::remove(file);
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "");
}
