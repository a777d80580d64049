// `foresight import prometheus` against Debian's prometheus on 127.0.0.1, holding three days of
// history backfilled with promtool: what comes out is each step's mean of the samples written.
// Skips where prometheus or promtool is not installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "foresight/trace/reader.h"
#include "support/prometheus.h"
#include "support/shell.h"

namespace foresight::trace {
namespace {
namespace fs = std::filesystem;
using test_support::runShell;
using test_support::serveHistory;
using test_support::unixNow;

// The sample written at time t (one a minute, 30 s off the 5-minute grid).
double cpuAt(int w, std::int64_t t) { return 0.5 * (w + 1) + 0.1 * static_cast<double>((t / 60) % 7); }
double memoryAt(int w, std::int64_t t) { return 1e9 * (w + 1) + 1e6 * static_cast<double>((t / 60) % 5); }

TEST(PrometheusImport, EachStepIsTheMeanOfTheSamplesWritten) {
  if (!fs::exists(test_support::kPrometheusBinary) || !fs::exists(test_support::kPromtoolBinary))
    GTEST_SKIP() << "prometheus or promtool not installed (scripts/deps.sh test)";
  const fs::path dir = fs::temp_directory_path() / ("foresight-prom-import-" + std::to_string(::getpid()));
  // Three days ending a day ago, on the 5-minute grid; samples at :30 of every minute.
  const std::int64_t start = (unixNow() - 4 * 86400) / 300 * 300, end = start + 3 * 86400;
  std::string om;
  for (const char* metric : {"foresight_resource_cpu", "foresight_resource_memory"}) {
    om += fmt::format("# TYPE {} gauge\n", metric);
    for (int w = 0; w < 2; ++w)
      for (std::int64_t t = start - 270; t <= end; t += 60)
        om += fmt::format("{}{{instance=\"node-1\",workload=\"/svc/w{}\"}} {} {}\n", metric, w,
                          metric[19] == 'c' ? cpuAt(w, t) : memoryAt(w, t), t);
  }
  auto server_ptr = serveHistory(dir, om);
  ASSERT_TRUE(server_ptr);
  const auto& server = *server_ptr;

  const fs::path out = dir / "imported.csv";
  // 865 steps in windows of at most 10,000 points: one window; --query narrows disk and network away.
  const auto ran = runShell(fmt::format(
      "{} import prometheus --url {} --start {} --end {} --step 300 --query disk_io= --query network= --out {}",
      FORESIGHT_BIN, server.url(), start, end, out.string()));
  ASSERT_EQ(ran.exit_code, 0) << ran.all() << server.logTail();
  ReadOptions o;
  auto tr = readTraceDir(out, o);
  ASSERT_TRUE(tr) << tr.error().message;
  ASSERT_EQ(tr->series.size(), 2u);
  EXPECT_EQ(tr->step_seconds, 300);
  for (int w = 0; w < 2; ++w) {
    const Series& s = tr->series[w];
    EXPECT_EQ(s.id, fmt::format("node-1//svc/w{}", w));  // instance, workload
    EXPECT_EQ(s.start, start);
    ASSERT_EQ(s.size(), 3u * 288 + 1);
    EXPECT_FALSE(s.has(Resource::kDiskIo));
    for (std::size_t i : {0ul, 1ul, 100ul, 864ul}) {
      const std::int64_t t = start + 300 * static_cast<std::int64_t>(i);
      double cpu = 0, mem = 0;
      for (std::int64_t u = t - 270; u <= t; u += 60) cpu += cpuAt(w, u) / 5, mem += memoryAt(w, u) / 5;
      EXPECT_NEAR(s.usage[index(Resource::kCpu)][i], cpu, 1e-9) << w << " " << i;
      EXPECT_NEAR(s.usage[index(Resource::kMemory)][i], mem, 1e-3) << w << " " << i;
    }
  }

  const auto text = [](const fs::path& f) {
    std::stringstream ss;
    ss << std::ifstream(f).rdbuf();
    return ss.str();
  };
  // The preset's disk_io and network queries find nothing on this server: their columns are left
  // out (an empty column would read as a resource present and never used), and said so.
  const fs::path preset = dir / "preset.csv";
  const auto all = runShell(fmt::format("{} import prometheus --url {} --start {} --end {} --out {}", FORESIGHT_BIN,
                                        server.url(), start, end, preset.string()));
  ASSERT_EQ(all.exit_code, 0) << all.all();
  EXPECT_TRUE(text(preset).starts_with("id,timestamp,cpu,memory\n")) << text(preset).substr(0, 80);
  EXPECT_NE(all.all().find("disk_io: no samples; the column is left out"), std::string::npos) << all.all();
  // A range asked from a year earlier on the same grid: the same file (what is held follows the
  // samples answered, not the range asked).
  const fs::path wide = dir / "wide.csv";
  const auto w = runShell(fmt::format(
      "{} import prometheus --url {} --start {} --end {} --step 300 --query disk_io= --query network= --out {}",
      FORESIGHT_BIN, server.url(), start - 300 * 105120, end, wide.string()));
  ASSERT_EQ(w.exit_code, 0) << w.all();
  EXPECT_EQ(text(wide), text(out));

  // A query Prometheus refuses: the command fails, names the resource and says why; no file.
  fs::remove(out);
  const auto bad = runShell(fmt::format("{} import prometheus --url {} --start {} --end {} --query 'cpu=rate(x[' --out {}",
                                        FORESIGHT_BIN, server.url(), start, end, out.string()));
  EXPECT_EQ(bad.exit_code, 1) << bad.all();
  EXPECT_NE(bad.all().find("cpu query 'rate(x['"), std::string::npos) << bad.all();
  EXPECT_NE(bad.all().find("bad_data"), std::string::npos) << bad.all();
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
}

// The cadvisor preset on cAdvisor-shaped history: counters become rates, the pod's "POD"
// container is left out, reads and writes add up to disk_io. Network, counted per pod on its
// sandbox (here as container "" and again as "POD", as some runtimes report it), goes to a pod's
// single container; the two-container pod gets none, and the host's own interfaces (pod "") none.
TEST(PrometheusImport, CadvisorPresetGivesEachContainersRatesAndWorkingSet) {
  if (!fs::exists(test_support::kPrometheusBinary) || !fs::exists(test_support::kPromtoolBinary))
    GTEST_SKIP() << "prometheus or promtool not installed (scripts/deps.sh test)";
  const fs::path dir = fs::temp_directory_path() / ("foresight-prom-cadvisor-" + std::to_string(::getpid()));
  const std::int64_t start = (unixNow() - 3 * 86400) / 300 * 300, end = start + 2 * 86400;
  struct Container {
    const char* name;
    double cores, working_set, read_bps, write_bps;
  };
  const Container containers[] = {{"app", 1.5, 2e9, 1000, 3000}, {"sidecar", 0.25, 5e7, 0, 10}, {"POD", 0.01, 1e6, 0, 0}};
  const Container single = {"api", 0.5, 3e8, 100, 200};  // alone in pod api-1
  std::string om;
  auto family = [&](const char* family_name, const char* type, const char* sample_name, auto value_of) {
    om += fmt::format("# TYPE {} {}\n", family_name, type);
    for (const auto& c : containers)
      for (std::int64_t t = start - 330; t <= end; t += 30)
        om += fmt::format("{}{{namespace=\"shop\",pod=\"web-1\",container=\"{}\"}} {} {}\n", sample_name,
                          c.name, value_of(c, t), t);
    // Scraped twice (the kubelet's cAdvisor and a cAdvisor DaemonSet): counted once.
    for (const char* job : {"kubelet", "cadvisor"})
      for (std::int64_t t = start - 330; t <= end; t += 30)
        om += fmt::format("{}{{namespace=\"shop\",pod=\"api-1\",container=\"api\",job=\"{}\"}} {} {}\n",
                          sample_name, job, value_of(single, t), t);
  };
  auto elapsed = [&](std::int64_t t) { return static_cast<double>(t - (start - 330)); };
  // Bytes/s per pod and interface: (pod, container label of the sandbox, interface, rate).
  const struct Net {
    const char *pod, *container, *interface;
    double rx, tx;
  } nets[] = {{"web-1", "", "eth0", 5000, 7000}, {"web-1", "POD", "eth0", 5000, 7000},
              {"api-1", "", "eth0", 800, 400},   {"api-1", "POD", "eth0", 800, 400},
              {"api-1", "", "eth1", 20, 10},     {"", "", "ens3", 1e6, 1e6}};
  for (const char* dir : {"receive", "transmit"}) {
    om += fmt::format("# TYPE container_network_{}_bytes counter\n", dir);
    for (const auto& n : nets)
      for (std::int64_t t = start - 330; t <= end; t += 30)
        om += fmt::format("container_network_{}_bytes_total{{namespace=\"{}\",pod=\"{}\",container=\"{}\",interface=\"{}\"}} {} {}\n",
                          dir, *n.pod ? "shop" : "", n.pod, n.container, n.interface,
                          (dir[0] == 'r' ? n.rx : n.tx) * elapsed(t), t);
  }
  family("container_cpu_usage_seconds", "counter", "container_cpu_usage_seconds_total",
         [&](const Container& c, std::int64_t t) { return c.cores * elapsed(t); });
  family("container_memory_working_set_bytes", "gauge", "container_memory_working_set_bytes",
         [&](const Container& c, std::int64_t) { return c.working_set; });
  family("container_fs_reads_bytes", "counter", "container_fs_reads_bytes_total",
         [&](const Container& c, std::int64_t t) { return c.read_bps * elapsed(t); });
  family("container_fs_writes_bytes", "counter", "container_fs_writes_bytes_total",
         [&](const Container& c, std::int64_t t) { return c.write_bps * elapsed(t); });
  auto server = serveHistory(dir, om);
  ASSERT_TRUE(server);

  const fs::path out = dir / "k8s.csv";
  const auto ran = runShell(fmt::format("{} import prometheus --url {} --preset cadvisor --start {} --end {} --out {}",
                                        FORESIGHT_BIN, server->url(), start, end, out.string()));
  ASSERT_EQ(ran.exit_code, 0) << ran.all() << server->logTail();
  auto tr = readTraceDir(out, {});
  ASSERT_TRUE(tr) << tr.error().message;
  ASSERT_EQ(tr->series.size(), 3u);  // no POD
  const Series& api = tr->series[0];
  EXPECT_EQ(api.id, "api/shop/api-1");  // container, namespace, pod
  ASSERT_TRUE(api.has(Resource::kNetwork));
  for (std::size_t i : {0ul, 300ul, 576ul}) {
    EXPECT_NEAR(api.usage[index(Resource::kCpu)][i], single.cores, 1e-6) << i;
    EXPECT_NEAR(api.usage[index(Resource::kMemory)][i], single.working_set, 1e-3) << i;
    EXPECT_NEAR(api.usage[index(Resource::kDiskIo)][i], single.read_bps + single.write_bps, 1e-6) << i;
    EXPECT_NEAR(api.usage[index(Resource::kNetwork)][i], 800 + 400 + 20 + 10, 1e-6) << i;
  }
  for (std::size_t k = 0; k < 2; ++k) {
    const Container& c = containers[k];
    const Series& s = tr->series[k + 1];
    EXPECT_EQ(s.id, fmt::format("{}/shop/web-1", c.name));
    EXPECT_FALSE(s.has(Resource::kNetwork));
    ASSERT_EQ(s.size(), 2u * 288 + 1);
    for (std::size_t i : {0ul, 300ul, 576ul}) {
      EXPECT_NEAR(s.usage[index(Resource::kCpu)][i], c.cores, 1e-6) << c.name << " " << i;
      EXPECT_NEAR(s.usage[index(Resource::kMemory)][i], c.working_set, 1e-3) << c.name;
      EXPECT_NEAR(s.usage[index(Resource::kDiskIo)][i], c.read_bps + c.write_bps, 1e-6) << c.name;
    }
  }
  server.reset();
  fs::remove_all(dir);
}

// What cannot be imported whole is refused, not written as if it were: an answer Prometheus warns
// is incomplete (here a remote-read store that is not there, asked only by queries that carry
// source="remote"), two label sets that would become one id, and series whose every sample is NaN.
TEST(PrometheusImport, WhatCannotBeImportedWholeIsRefused) {
  if (!fs::exists(test_support::kPrometheusBinary) || !fs::exists(test_support::kPromtoolBinary))
    GTEST_SKIP() << "prometheus or promtool not installed (scripts/deps.sh test)";
  const fs::path dir = fs::temp_directory_path() / ("foresight-prom-refused-" + std::to_string(::getpid()));
  const std::int64_t start = (unixNow() - 2 * 86400) / 300 * 300, end = start + 86400;
  std::string om = "# TYPE usage gauge\n";
  for (std::int64_t t = start - 270; t <= end; t += 60)
    om += fmt::format("usage{{instance=\"node-1/svc\",workload=\"x\",source=\"remote\"}} 1 {}\n"
                      "usage{{instance=\"node-1\",workload=\"svc/x\"}} 100 {}\n"
                      "usage{{instance=\"node-2\",workload=\"idle\"}} NaN {}\n",
                      t, t, t);
  const int dead = test_support::freePort();
  auto server_ptr = serveHistory(dir, om,
                                 fmt::format("remote_read:\n  - url: http://127.0.0.1:{}/api/v1/read\n"
                                             "    required_matchers: {{source: remote}}\n",
                                             dead));
  ASSERT_TRUE(server_ptr);
  const auto& server = *server_ptr;
  const fs::path out = dir / "out.csv";
  const auto import = [&](const std::string& cpu_query, const std::string& more = "") {
    return runShell(fmt::format("{} import prometheus --url {} --start {} --end {} --query 'cpu={}' "
                                "--query memory= --query disk_io= --query network= --out {} {}",
                                FORESIGHT_BIN, server.url(), start, end, cpu_query, out.string(), more));
  };

  const auto partial = import("max by (instance, workload) (usage{source=\"remote\"})");
  EXPECT_EQ(partial.exit_code, 1) << partial.all() << server.logTail();
  EXPECT_NE(partial.all().find("Prometheus warns that the answer may be incomplete: remote_read"), std::string::npos)
      << partial.all();
  EXPECT_NE(partial.all().find("--allow-partial"), std::string::npos) << partial.all();
  EXPECT_FALSE(fs::exists(out));
  // Asked for, the local part is imported, with the warning.
  const auto allowed = import("max by (instance, workload) (usage{source=\"remote\"})", "--allow-partial");
  EXPECT_EQ(allowed.exit_code, 0) << allowed.all();
  EXPECT_NE(allowed.all().find("remote_read"), std::string::npos) << allowed.all();
  std::stringstream imported;
  imported << std::ifstream(out).rdbuf();
  EXPECT_TRUE(imported.str().starts_with(fmt::format("id,timestamp,cpu\nnode-1/svc/x,{},1\n", start)))
      << imported.str().substr(0, 80);
  fs::remove(out);

  // {instance="node-1/svc",workload="x"} and {instance="node-1",workload="svc/x"}: one id.
  const auto collide = import("max by (instance, workload) (usage{instance=~\"node-1.*\"})");
  EXPECT_EQ(collide.exit_code, 1) << collide.all();
  EXPECT_NE(collide.all().find(R"({instance="node-1",workload="svc/x"})"), std::string::npos) << collide.all();
  EXPECT_NE(collide.all().find(R"({instance="node-1/svc",workload="x"})"), std::string::npos) << collide.all();
  EXPECT_NE(collide.all().find("both become id 'node-1/svc/x'"), std::string::npos) << collide.all();
  EXPECT_FALSE(fs::exists(out));

  // Every sample NaN: no series worth a row, so nothing is written.
  const auto nan = import("usage{workload=\"idle\"}");
  EXPECT_EQ(nan.exit_code, 1) << nan.all();
  EXPECT_NE(nan.all().find("NaN, infinite or negative"), std::string::npos) << nan.all();
  EXPECT_NE(nan.all().find("no series with a usable sample"), std::string::npos) << nan.all();
  EXPECT_FALSE(fs::exists(out));
  server_ptr.reset();
  fs::remove_all(dir);
}

// The token file's first line is sent as a bearer token, without the CR of a file saved on
// Windows (no header may carry one). The server here is a stand-in that records the header.
TEST(PrometheusImport, TheTokenFileIsSentWithoutItsLineEnd) {
  const fs::path dir = fs::temp_directory_path() / ("foresight-prom-token-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "token") << "s3cret\r\nsecond line\n";
  httplib::Server srv;
  std::string authorization;
  srv.Post("/api/v1/query_range", [&](const httplib::Request& req, httplib::Response& res) {
    authorization = req.get_header_value("Authorization");
    res.set_content(fmt::format(R"({{"status":"success","data":{{"resultType":"matrix","result":[)"
                                R"({{"metric":{{"workload":"w"}},"values":[[{},"1"]]}}]}}}})",
                                req.get_param_value("start")),
                    "application/json");
  });
  const int port = srv.bind_to_any_port("127.0.0.1");
  std::thread serve([&] { srv.listen_after_bind(); });
  const auto r = runShell(fmt::format("{} import prometheus --url http://127.0.0.1:{} --start 1700000000 --end 1700000000 "
                                      "--query memory= --query disk_io= --query network= --token-file {} --out {}",
                                      FORESIGHT_BIN, port, (dir / "token").string(), (dir / "out.csv").string()));
  srv.stop();
  serve.join();
  EXPECT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(authorization, "Bearer s3cret");
  fs::remove_all(dir);
}

TEST(PrometheusImport, AServerThatIsNotThereIsNamed) {
  const int port = test_support::freePort();
  const auto r = runShell(fmt::format("{} import prometheus --url http://127.0.0.1:{} --days 1 --out /tmp/never.csv",
                                      FORESIGHT_BIN, port));
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.all().find(fmt::format("http://127.0.0.1:{}: cpu query", port)), std::string::npos) << r.all();
}

// The output is checked before the fetch, which can take minutes at cluster scale: nothing is asked
// of the server (here there is none, which would be exit 1, not 2).
TEST(PrometheusImport, AnOutputItCouldNotWriteIsRefusedBeforeFetching) {
  const int port = test_support::freePort();
  const auto r = runShell(fmt::format("{} import prometheus --url http://127.0.0.1:{} --days 1 "
                                      "--out /nonexistent-foresight-dir/out.csv",
                                      FORESIGHT_BIN, port));
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.all().find("--out: /nonexistent-foresight-dir/out.csv: no such directory"), std::string::npos)
      << r.all();
  EXPECT_EQ(r.all().find("cpu query"), std::string::npos) << r.all();
}

}  // namespace
}  // namespace foresight::trace
