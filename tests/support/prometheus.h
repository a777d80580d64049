#pragma once
// Debian's prometheus, started by a test on 127.0.0.1 with a config and a data folder of the
// test's own, stopped when the object goes; serveHistory() backfills it with promtool first.
// Tests skip where /usr/bin/prometheus is absent.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "support/server_process.h"
#include "support/shell.h"

namespace foresight::test_support {

inline constexpr const char* kPrometheusBinary = "/usr/bin/prometheus";
inline constexpr const char* kPromtoolBinary = "/usr/bin/promtool";

// A port the kernel picks on 127.0.0.1, released for a server to take (a race with another
// process is possible but unlikely).
inline int freePort() {
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

class PrometheusServer {
 public:
  // Writes `config` to dir/prometheus.yml and starts the server on dir/data (which may already
  // hold blocks, e.g. from promtool), logging to dir/prometheus.log. Retention is unbounded, so
  // backfilled history is kept whatever its age.
  PrometheusServer(const std::filesystem::path& dir, const std::string& config) : dir_(dir) {
    std::ofstream(dir / "prometheus.yml") << config;
    port_ = freePort();
    process_.emplace(std::vector<std::string>{kPrometheusBinary, "--config.file=" + (dir / "prometheus.yml").string(),
                                              "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                              "--storage.tsdb.path=" + (dir / "data").string(),
                                              "--storage.tsdb.retention.time=100y"},
                     dir / "prometheus.log");
  }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The last `bytes` of its log, for a failure message.
  std::string logTail(std::size_t bytes = 3000) const {
    std::ifstream in(dir_ / "prometheus.log");
    std::string log(std::istreambuf_iterator<char>(in), {});
    return log.substr(log.size() > bytes ? log.size() - bytes : 0);
  }

 private:
  std::filesystem::path dir_;
  int port_ = -1;
  std::optional<ServerProcess> process_;
};

// Now in Unix seconds: backfilled history ends before it.
inline std::int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Backfills `openmetrics` into dir/data with promtool and starts prometheus on it; null (with a
// failure recorded) when either step fails.
inline std::unique_ptr<PrometheusServer> serveHistory(const std::filesystem::path& dir,
                                                      const std::string& openmetrics,
                                                      const std::string& extra_config = "") {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "history.om") << openmetrics << "# EOF\n";
  const auto blocks = runShell(fmt::format("{} tsdb create-blocks-from openmetrics {} {}", kPromtoolBinary,
                                           (dir / "history.om").string(), (dir / "data").string()));
  EXPECT_EQ(blocks.exit_code, 0) << blocks.all();
  if (blocks.exit_code != 0) return nullptr;
  auto server = std::make_unique<PrometheusServer>(dir, "global:\n  scrape_interval: 15s\n" + extra_config);
  httplib::Client cli("127.0.0.1", server->port());
  cli.set_connection_timeout(1);
  for (int i = 0; i < 120; ++i) {  // up to 60 s to start and load the blocks
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto r = cli.Get("/-/ready");
    if (r && r->status == 200) return server;
  }
  ADD_FAILURE() << "prometheus not ready:\n" << server->logTail();
  return nullptr;
}

}  // namespace foresight::test_support
