// The agent on the v2 fixture host: config parsing, /metrics and the JSON API over 127.0.0.1.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "foresight/server/agent.h"
#include "support/captured_log.h"
#include "support/cleanup.h"
#include "support/mutate.h"
#include "support/tls.h"
// After Eigen (via agent.h): httplib pulls in <resolv.h>, whose `_res` macro breaks Eigen.
#include <httplib.h>

using namespace foresight;
using namespace foresight::server;
namespace fs = std::filesystem;

namespace {
const std::string kV2 = std::string(FORESIGHT_SOURCE_DIR) + "/tests/collect/fixtures/v2";

// An agent on the v2 fixture host, on any free port, without a history store.
AgentConfig onV2() {
  AgentConfig cfg;
  cfg.root = kV2;
  cfg.listen_port = 0;
  cfg.database = "";
  return cfg;
}

// Bounded wait for a condition driven by the agent's thread (not a timing assertion).
template <typename F>
bool waitFor(F&& cond) {
  for (int i = 0; i < 200; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Whether an agent configured as `c` refuses to start with an error that says `why`.
::testing::AssertionResult refusesToStart(const AgentConfig& c, const std::string& why) {
  Agent agent(c);
  auto st = agent.start();
  if (st) return ::testing::AssertionFailure() << "it started";
  if (st.error().message.find(why) == std::string::npos) return ::testing::AssertionFailure() << st.error().message;
  return ::testing::AssertionSuccess();
}
}  // namespace

TEST(AgentConfig, DefaultsAndOverrides) {
  auto d = parseAgentConfig("", "empty");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->listen_host, "127.0.0.1");
  EXPECT_EQ(d->listen_port, 9464);
  EXPECT_DOUBLE_EQ(d->period_seconds, 1.0);
  EXPECT_EQ(d->fingerprint.dim, 16u);
  auto c = parseAgentConfig(
      "period_seconds: 5\nlisten: 127.0.0.1:9000\nselectors: [\"pid:1\"]\n"
      "fingerprint: {window: 30, hop: 3, dim: 8}\nretention: {raw_seconds: 60}\n", "cfg.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_DOUBLE_EQ(c->period_seconds, 5);
  EXPECT_EQ(c->listen_port, 9000);
  EXPECT_EQ(c->selectors, std::vector<std::string>{"pid:1"});
  EXPECT_EQ(c->fingerprint.window, 30u);
  EXPECT_EQ(c->retention.raw_seconds, 60);
  EXPECT_EQ(c->retention.bucket_seconds, 60);
  EXPECT_EQ(c->detail_every, collect::CollectorContext::kDefaultDetailEvery);
  EXPECT_EQ(d->detail_every, 10u);  // the documented default (docs/profiler.md)
  auto t = parseAgentConfig("detail_every: 3\n", "cfg.yaml");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->detail_every, 3u);
}

// A damaged agent file is read or refused with the file named, never an exception.
TEST(AgentConfig, DamagedFilesAreReadOrRefusedWithTheFileNamed) {
  const std::string seed =
      "period_seconds: 5\nlisten: 127.0.0.1:9000\nselectors: [\"pid:1\", \"cgroup:/system.slice\"]\n"
      "fingerprint: {window: 30, hop: 3, dim: 8}\nretention: {raw_seconds: 60}\ndetail_every: 3\n"
      "collectors: [cgroup, procfs]\nmax_depth: 4\n";
  int read = 0, refused = 0;
  for (const auto& text : test_support::mutations(seed, 500)) {
    Result<AgentConfig> c = fail(ErrorCode::kInternal, "not read");
    ASSERT_NO_THROW(c = parseAgentConfig(text, "agent.yaml")) << text;
    if (c) {
      ++read;
    } else {
      ++refused;
      EXPECT_NE(c.error().message.find("agent.yaml"), std::string::npos) << c.error().message << "\n" << text;
    }
  }
  EXPECT_GT(read, 30);
  EXPECT_GT(refused, 30);
}

TEST(AgentConfig, RejectsUnknownKeysAndBadValues) {
  auto u = parseAgentConfig("perod_seconds: 2\n", "cfg.yaml");
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().message.find("cfg.yaml: unknown key 'perod_seconds'"), std::string::npos);
  EXPECT_FALSE(parseAgentConfig("fingerprint: {windw: 3}\n", "x"));
  // The fingerprint's bounds are the CLI's (fingerprint::checkConfig), the top ones included.
  auto w3 = parseAgentConfig("fingerprint: {window: 3}\n", "cfg.yaml");
  ASSERT_FALSE(w3);
  EXPECT_NE(w3.error().message.find("cfg.yaml: fingerprint window 3 not in [4, 1048576]"), std::string::npos)
      << w3.error().message;
  EXPECT_FALSE(parseAgentConfig("fingerprint: {hop: 0}\n", "x"));
  EXPECT_FALSE(parseAgentConfig("fingerprint: {dim: 5000}\n", "x"));
  EXPECT_FALSE(parseAgentConfig("fingerprint: {window: 2000000}\n", "x"));
  EXPECT_FALSE(parseAgentConfig("fingerprint: {window: -1}\n", "x"));
  EXPECT_TRUE(parseAgentConfig("fingerprint: {window: 4, hop: 1, dim: 4096}\n", "x"));
  EXPECT_FALSE(parseAgentConfig("period_seconds: -1\n", "x"));
  EXPECT_FALSE(parseAgentConfig("period_seconds: abc\n", "x"));
  EXPECT_FALSE(parseAgentConfig("listen: 9000\n", "x"));
  EXPECT_FALSE(parseAgentConfig("listen: \"127.0.0.1:9464abc\"\n", "x"));  // not 9464
  EXPECT_FALSE(parseAgentConfig("listen: \"127.0.0.1:\"\n", "x"));
  EXPECT_FALSE(parseAgentConfig("listen: \"127.0.0.1:70000\"\n", "x"));
  auto v6 = parseAgentConfig("listen: \"[::1]:9464\"\n", "x");
  ASSERT_TRUE(v6) << v6.error().message;
  EXPECT_EQ(v6->listen_host, "::1");
  EXPECT_EQ(v6->listen_port, 9464);
  EXPECT_FALSE(parseAgentConfig("detail_every: 0\n", "x"));
  EXPECT_FALSE(parseAgentConfig("detail_every: -2\n", "x"));
  EXPECT_FALSE(parseAgentConfig("detail_every: often\n", "x"));
  // A retention that is not positive would thin out or delete the whole history at start-up.
  auto raw = parseAgentConfig("retention: {raw_seconds: -100}\n", "cfg.yaml");
  ASSERT_FALSE(raw);
  EXPECT_NE(raw.error().message.find("cfg.yaml: retention needs raw_seconds > 0"), std::string::npos);
  EXPECT_FALSE(parseAgentConfig("retention: {bucket_seconds: 0}\n", "x"));
  EXPECT_FALSE(parseAgentConfig("retention: {downsampled_seconds: 60}\n", "x"));
  EXPECT_FALSE(parseAgentConfig("retention: {fingerprint_seconds: 0}\n", "x"));
  EXPECT_FALSE(parseAgentConfig("retention_interval_seconds: 0\n", "x"));
  EXPECT_TRUE(parseAgentConfig("retention: {raw_seconds: 3600, downsampled_seconds: 3600}\n", "x"));
  auto k = parseAgentConfig("detail_evry: 5\n", "cfg.yaml");
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message.find("unknown key 'detail_evry'"), std::string::npos);
  EXPECT_EQ(loadAgentConfig("/nonexistent.yaml").error().code, ErrorCode::kNotFound);
}

// Values yaml-cpp converts but the agent cannot use (an infinite or NaN period spun the sampling
// loop; 2^32 + 1 wrapped to 1) and values of the wrong type are refused with file and key named.
TEST(AgentConfig, RefusesNonFiniteOutOfRangeAndMistypedValuesNamingTheKey) {
  const std::pair<const char*, const char*> bad[] = {
      {"period_seconds: .inf\n", "cfg.yaml: period_seconds"},
      {"period_seconds: .nan\n", "cfg.yaml: period_seconds"},
      {"max_depth: -2\n", "cfg.yaml: max_depth"},
      {"max_depth: 0\n", "cfg.yaml: max_depth"},
      {"detail_every: 4294967297\n", "cfg.yaml: detail_every"},
      {"retention_interval_seconds: .nan\n", "cfg.yaml: retention_interval_seconds"},
      {"retention_interval_seconds: .inf\n", "cfg.yaml: retention_interval_seconds"},
      {"period_seconds: fast\n", "cfg.yaml: period_seconds: "},
      {"max_depth: 2.5\n", "cfg.yaml: max_depth: "},
      {"fingerprint: {window: lots}\n", "cfg.yaml: fingerprint.window: "},
      {"retention: {raw_seconds: [1]}\n", "cfg.yaml: retention.raw_seconds: "},
  };
  for (const auto& [yaml, message] : bad) {
    auto c = parseAgentConfig(yaml, "cfg.yaml");
    ASSERT_FALSE(c) << yaml;
    EXPECT_NE(c.error().message.find(message), std::string::npos) << yaml << c.error().message;
  }
  EXPECT_TRUE(parseAgentConfig("max_depth: 1\ndetail_every: 4294967295\nperiod_seconds: 0.5\n", "x"));
}

TEST(Agent, ServesMetricsAndJsonOnLoopback) {
  AgentConfig cfg = onV2();
  cfg.period_seconds = 0.05;
  cfg.database = test_support::databaseRemovedAtExit(fs::path(testing::TempDir()) /
                                                     ("agent-" + std::to_string(::getpid()) + ".db"))
                     .string();
  cfg.collectors = {"cgroup.v2", "procfs"};
  cfg.fingerprint = {.window = 4, .hop = 1, .dim = 4};
  cfg.detail_every = 2;  // the working set (memory.stat) every other round
  Agent agent(cfg);
  ASSERT_TRUE(agent.start());
  ASSERT_GT(agent.port(), 0);
  ASSERT_TRUE(waitFor([&] { return agent.rounds() >= 8; }));
  httplib::Client cli("127.0.0.1", agent.port());
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  // Values from the fixture's cpu.stat and memory.current.
  EXPECT_NE(m->body.find("foresight_cpu_usage_seconds_total{workload=\"/system.slice/app.service\"} 2.5"),
            std::string::npos) << m->body.substr(0, 2000);
  EXPECT_NE(m->body.find("foresight_memory_usage_bytes{workload=\"/system.slice/app.service\"} 104857600"),
            std::string::npos);
  // Only populated cgroups are discovered: noio.service has no process.
  EXPECT_EQ(m->body.find("noio.service"), std::string::npos);
  EXPECT_NE(m->body.find("foresight_agent_rounds_total "), std::string::npos);
  auto w = cli.Get("/api/workloads");
  ASSERT_TRUE(w);
  auto j = nlohmann::json::parse(w->body);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["workload"], "/system.slice/app.service");
  EXPECT_DOUBLE_EQ(j[0]["cpu_cores"].get<double>(), 0.0);  // fixture counters do not move
  // The last working set computed, whether or not this round read memory.stat.
  EXPECT_DOUBLE_EQ(j[0]["memory_bytes"].get<double>(), 104857600.0 - 10485760.0);
  auto f = cli.Get("/api/fingerprint?workload=/system.slice/app.service");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->status, 200);
  EXPECT_EQ(nlohmann::json::parse(f->body)["vector"].size(), 4u);
  auto missing = cli.Get("/api/fingerprint?workload=/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  // A wrong method on a served path is 405 with Allow, not 404; an unknown path stays 404.
  auto post = cli.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  auto del = cli.Delete("/api/workloads");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  auto options = cli.Options("/api/health");
  ASSERT_TRUE(options);
  EXPECT_EQ(options->status, 204);
  EXPECT_EQ(options->get_header_value("Allow"), "GET, HEAD");
  auto head = cli.Head("/metrics");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  auto elsewhere = cli.Post("/api/nope", "x", "text/plain");
  ASSERT_TRUE(elsewhere);
  EXPECT_EQ(elsewhere->status, 404);
  agent.stop();
  // History reached the store.
  auto db = store::Store::open(cfg.database);
  ASSERT_TRUE(db);
  // One row per round after the first (rates need two samples), although rounds are 50 ms apart:
  // rows are keyed by their time in the store, so two in one time unit would collapse into one.
  auto rows = db->samples("/system.slice/app.service", 0, INT64_MAX);
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->size(), agent.rounds() - 1);
  // The working set in the rows of detail rounds (every other one here), NULL in the others.
  std::size_t with_memory = 0;
  for (const auto& r : *rows) {
    if (std::isnan(r.usage[1])) continue;
    ++with_memory;
    EXPECT_DOUBLE_EQ(r.usage[1], 104857600.0 - 10485760.0);
  }
  EXPECT_GE(with_memory, rows->size() / 2);
  EXPECT_LT(with_memory, rows->size());
  // A fingerprint per row once the window (4) is full (hop 1), likewise none lost.
  auto fps = db->fingerprints("/system.slice/app.service", 0, INT64_MAX);
  ASSERT_TRUE(fps);
  EXPECT_EQ(fps->size() + 3, rows->size());
}

// With bearer_token_file, every endpoint but the health check answers 401 with WWW-Authenticate
// unless the request carries the file's first line as its bearer token; a token file that cannot
// be read, or whose first line is blank, stops the agent from starting, named.
TEST(Agent, ABearerTokenGuardsEveryEndpointButTheHealthCheck) {
  const fs::path token = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                     ("agent-token-" + std::to_string(::getpid())));
  std::ofstream(token) << "  s3cret-t0ken \nsecond line ignored\n";
  auto cfg = parseAgentConfig("bearer_token_file: " + token.string() + "\n", "cfg.yaml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->bearer_token_file, token.string());
  AgentConfig c = onV2();
  c.bearer_token_file = cfg->bearer_token_file;
  Agent agent(c);
  ASSERT_TRUE(agent.start());
  httplib::Client cli("127.0.0.1", agent.port());
  for (const char* path : {"/metrics", "/api/workloads", "/api/fingerprint?workload=/x", "/nope"}) {
    auto none = cli.Get(path);
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 401) << path;
    EXPECT_EQ(none->get_header_value("WWW-Authenticate"), "Bearer realm=\"foresight\"") << path;
    EXPECT_NE(none->body.find("no Authorization header"), std::string::npos) << none->body;
    for (const char* wrong : {"Bearer s3cret-t0ke", "Bearer s3cret-t0ken2", "Bearer ", "Basic s3cret-t0ken",
                              "bearer s3cret-t0ken"}) {
      auto w = cli.Get(path, {{"Authorization", wrong}});
      ASSERT_TRUE(w);
      EXPECT_EQ(w->status, 401) << path << " " << wrong;
    }
  }
  const httplib::Headers good = {{"Authorization", "Bearer s3cret-t0ken"}};
  auto m = cli.Get("/metrics", good);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("foresight_agent_rounds_total"), std::string::npos);
  auto nope = cli.Get("/nope", good);
  ASSERT_TRUE(nope);
  EXPECT_EQ(nope->status, 404);  // past the check, an unknown path is what it was
  auto post = cli.Post("/metrics", good, "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  auto health = cli.Get("/api/health");  // a liveness probe carries no credentials
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  agent.stop();

  c.bearer_token_file = (fs::path(testing::TempDir()) / "no-such-token-file").string();
  EXPECT_TRUE(refusesToStart(c, "no-such-token-file"));
  std::ofstream(token, std::ios::trunc) << " \nsecond\n";
  c.bearer_token_file = token.string();
  EXPECT_TRUE(refusesToStart(c, "first line is empty"));
}

// With tls_cert_file and tls_key_file the agent speaks HTTPS only: a client that trusts the
// certificate is answered, a plain-HTTP client and one that trusts another certificate are not; a
// key that is not the certificate's, or one file without the other, stops the start, named.
TEST(Agent, ServesHttpsWithACertificateAndItsKey) {
  const fs::path dir = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                   ("agent-tls-" + std::to_string(::getpid())));
  fs::create_directories(dir / "other");
  test_support::SelfSigned cert, other;
  cert.writeTo(dir);
  other.writeTo(dir / "other");
  auto cfg = parseAgentConfig("tls_cert_file: " + (dir / "cert.pem").string() + "\ntls_key_file: " +
                                  (dir / "key.pem").string() + "\n", "cfg.yaml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  AgentConfig c = onV2();
  c.tls_cert_file = cfg->tls_cert_file;
  c.tls_key_file = cfg->tls_key_file;
  Agent agent(c);
  ASSERT_TRUE(agent.start());
  httplib::SSLClient tls("127.0.0.1", agent.port());
  tls.set_ca_cert_path((dir / "cert.pem").c_str());
  tls.enable_server_certificate_verification(true);
  auto m = tls.Get("/metrics");
  ASSERT_TRUE(m) << httplib::to_string(m.error());
  EXPECT_EQ(m->status, 200);
  EXPECT_NE(m->body.find("foresight_agent_rounds_total"), std::string::npos);
  httplib::Client plain("127.0.0.1", agent.port());
  plain.set_read_timeout(2);
  auto p = plain.Get("/metrics");
  EXPECT_FALSE(p && p->status == 200);
  httplib::SSLClient stranger("127.0.0.1", agent.port());
  stranger.set_ca_cert_path((dir / "other" / "cert.pem").c_str());
  stranger.enable_server_certificate_verification(true);
  EXPECT_FALSE(stranger.Get("/metrics"));
  agent.stop();

  c.tls_key_file = (dir / "other" / "key.pem").string();
  EXPECT_TRUE(refusesToStart(c, "key.pem: not the private key of the certificate in"));
  c.tls_key_file.clear();
  EXPECT_TRUE(refusesToStart(c, "tls_key_file is missing"));
  c.tls_key_file = (dir / "nope.pem").string();
  EXPECT_TRUE(refusesToStart(c, "nope.pem: cannot read"));
}

// cert-manager and certbot replace a certificate before it expires, and a token Secret is rotated:
// the agent serves what the files hold now, with no restart. Files that do not load (a rotation
// half done) keep the last good certificate and token until they do.
TEST(Agent, ServesARotatedCertificateAndTokenWithoutARestart) {
  const fs::path dir = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                   ("agent-rotate-" + std::to_string(::getpid())));
  test_support::SelfSigned first, second, third;
  // A Kubernetes Secret volume: the names are symlinks through `..data`, which is swapped.
  for (const char* v : {"v1", "v2"}) fs::create_directories(dir / v);
  first.writeTo(dir / "v1");
  std::ofstream(dir / "v1" / "token") << "first-token\n";
  second.writeTo(dir / "v2");
  std::ofstream(dir / "v2" / "token") << "second-token\n";
  fs::create_directory_symlink("v1", dir / "..data");
  for (const char* f : {"cert.pem", "key.pem", "token"}) fs::create_symlink(fs::path("..data") / f, dir / f);
  for (const char* v : {"v1", "v2"}) {  // each version's CA file for the clients, outside the swap
    fs::create_directories(dir / "ca" / v);
    fs::copy_file(dir / v / "cert.pem", dir / "ca" / v / "cert.pem");
  }
  AgentConfig c = onV2();
  c.tls_cert_file = (dir / "cert.pem").string();
  c.tls_key_file = (dir / "key.pem").string();
  c.bearer_token_file = (dir / "token").string();
  Agent agent(c);
  ASSERT_TRUE(agent.start());
  // The status of GET /metrics from a client that trusts `ca` and sends `token`; -1: no answer.
  auto status = [&](const fs::path& ca, const std::string& token) {
    httplib::SSLClient cli("127.0.0.1", agent.port());
    cli.set_ca_cert_path(ca.c_str());
    cli.enable_server_certificate_verification(true);
    auto r = cli.Get("/metrics", {{"Authorization", "Bearer " + token}});
    return r ? r->status : -1;
  };
  const fs::path ca1 = dir / "ca" / "v1" / "cert.pem", ca2 = dir / "ca" / "v2" / "cert.pem";
  EXPECT_EQ(status(ca1, "first-token"), 200);
  EXPECT_EQ(status(ca2, "first-token"), -1);

  fs::create_directory_symlink("v2", dir / "..data.new");  // the kubelet's atomic swap
  fs::rename(dir / "..data.new", dir / "..data");
  EXPECT_EQ(status(ca2, "second-token"), 200);
  EXPECT_EQ(status(ca1, "second-token"), -1) << "the old certificate is still served";
  EXPECT_EQ(status(ca2, "first-token"), 401) << "the old token still opens the agent";

  // Half a rotation, written in place: a new certificate whose key is not there yet, a blank
  // token file. The last good pair and token are kept.
  std::ofstream(dir / "v2" / "cert.pem") << third.pem();
  std::ofstream(dir / "v2" / "token") << "\n";
  EXPECT_EQ(status(ca2, "second-token"), 200);
  EXPECT_EQ(status(ca2, ""), 401);
  // The rest of it: the new pair is served from the next handshake on.
  std::ofstream(dir / "v2" / "key.pem") << third.keyPem();
  std::ofstream(dir / "ca" / "v3.pem") << third.pem();
  EXPECT_EQ(status(dir / "ca" / "v3.pem", "second-token"), 200);
  EXPECT_EQ(status(ca2, "second-token"), -1);
  agent.stop();
}

// Mutual TLS: with tls_client_ca_file, every path but the health check needs a client certificate
// that one of those CAs signed; a certificate from elsewhere fails the handshake. The CA file is
// rotated like the rest.
TEST(Agent, MutualTlsNeedsAClientCertificateItsCasSigned) {
  const fs::path dir = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                   ("agent-mtls-" + std::to_string(::getpid())));
  for (const char* d : {"server", "alice", "bob"}) fs::create_directories(dir / d);
  test_support::SelfSigned server, alice, bob;  // self-signed, CA:TRUE: each is its own CA
  server.writeTo(dir / "server");
  alice.writeTo(dir / "alice");
  bob.writeTo(dir / "bob");
  fs::copy_file(dir / "alice" / "cert.pem", dir / "client-cas.pem");
  AgentConfig c = onV2();
  c.tls_cert_file = (dir / "server" / "cert.pem").string();
  c.tls_key_file = (dir / "server" / "key.pem").string();
  c.tls_client_ca_file = (dir / "client-cas.pem").string();
  Agent agent(c);
  ASSERT_TRUE(agent.start());
  // The status of GET `path` with the client certificate of `who` ("": none); -1: no answer.
  auto status = [&](const std::string& who, const std::string& path) {
    std::unique_ptr<httplib::SSLClient> cli =
        who.empty() ? std::make_unique<httplib::SSLClient>("127.0.0.1", agent.port())
                    : std::make_unique<httplib::SSLClient>("127.0.0.1", agent.port(), (dir / who / "cert.pem").string(),
                                                           (dir / who / "key.pem").string());
    cli->set_ca_cert_path((dir / "server" / "cert.pem").c_str());
    cli->enable_server_certificate_verification(true);
    auto r = cli->Get(path.c_str());
    return r ? r->status : -1;
  };
  EXPECT_EQ(status("alice", "/metrics"), 200);
  EXPECT_EQ(status("alice", "/api/workloads"), 200);
  EXPECT_EQ(status("bob", "/metrics"), -1) << "a certificate no configured CA signed got through";
  EXPECT_EQ(status("", "/metrics"), 403);
  EXPECT_EQ(status("", "/api/workloads"), 403);
  EXPECT_EQ(status("", "/api/health"), 200) << "a probe without a certificate";
  // The CA file now holds bob's CA: bob is let in, alice no longer.
  fs::copy_file(dir / "bob" / "cert.pem", dir / "client-cas.new");
  fs::rename(dir / "client-cas.new", dir / "client-cas.pem");
  EXPECT_EQ(status("bob", "/metrics"), 200);
  EXPECT_EQ(status("alice", "/metrics"), -1);
  agent.stop();

  c.tls_client_ca_file = (dir / "server" / "key.pem").string();  // no certificate in it
  EXPECT_TRUE(refusesToStart(c, "server/key.pem: no PEM certificate"));
  c.tls_cert_file.clear();
  c.tls_key_file.clear();
  EXPECT_TRUE(refusesToStart(c, "tls_client_ca_file needs tls_cert_file"));
}

// Revocation: with tls_client_crl_file, a client certificate its CA's CRL lists is refused at the
// handshake; the CRL file is read again when it changes, as the CA file is. Each refusal is
// logged with its reason, once a minute per reason.
TEST(Agent, MutualTlsRefusesAClientCertificateItsCrlRevokes) {
  test_support::CapturedLog log;
  const fs::path dir = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                   ("agent-crl-" + std::to_string(::getpid())));
  for (const char* d : {"server", "ca", "alice", "bob", "carol", "other"}) fs::create_directories(dir / d);
  test_support::SelfSigned server, ca("client-ca"), ca2("second-ca"), other("other-ca");
  test_support::Issued alice(ca, "alice", 2), bob(ca, "bob", 3), carol(ca2, "carol", 4);
  server.writeTo(dir / "server");
  ca.writeTo(dir / "ca");
  std::ofstream(dir / "ca" / "cert.pem", std::ios::app) << ca2.pem();  // two client CAs
  alice.writeTo(dir / "alice");
  bob.writeTo(dir / "bob");
  carol.writeTo(dir / "carol");
  std::ofstream(dir / "crl.pem") << test_support::crlPem(ca, {3});  // bob's
  auto cfg = parseAgentConfig(fmt::format("tls_cert_file: {}\ntls_key_file: {}\ntls_client_ca_file: {}\n"
                                          "tls_client_crl_file: {}\n",
                                          (dir / "server" / "cert.pem").string(), (dir / "server" / "key.pem").string(),
                                          (dir / "ca" / "cert.pem").string(), (dir / "crl.pem").string()),
                              "cfg.yaml");
  ASSERT_TRUE(cfg) << cfg.error().message;
  AgentConfig c = onV2();
  c.tls_cert_file = cfg->tls_cert_file;
  c.tls_key_file = cfg->tls_key_file;
  c.tls_client_ca_file = cfg->tls_client_ca_file;
  c.tls_client_crl_file = cfg->tls_client_crl_file;
  Agent agent(c);
  ASSERT_TRUE(agent.start());
  auto status = [&](const std::string& who) {
    httplib::SSLClient cli("127.0.0.1", agent.port(), (dir / who / "cert.pem").string(), (dir / who / "key.pem").string());
    cli.set_ca_cert_path((dir / "server" / "cert.pem").c_str());
    cli.enable_server_certificate_verification(true);
    auto r = cli.Get("/metrics");
    return r ? r->status : -1;
  };
  EXPECT_EQ(status("alice"), 200);
  EXPECT_EQ(log.count("refused the client"), 0) << log.text();
  EXPECT_EQ(status("bob"), -1) << "a revoked certificate got through";
  EXPECT_EQ(log.count("warning: refused the client certificate /CN=bob: certificate revoked"), 1) << log.text();
  EXPECT_EQ(status("carol"), -1) << "a client of a CA without a CRL got through";
  EXPECT_EQ(log.count("refused the client certificate /CN=carol: unable to get certificate CRL"), 1) << log.text();
  // A new CRL revokes alice instead: the same reason within the minute is held back.
  std::ofstream(dir / "crl.new") << test_support::crlPem(ca, {2});
  fs::rename(dir / "crl.new", dir / "crl.pem");
  EXPECT_EQ(status("bob"), 200);
  EXPECT_EQ(status("alice"), -1);
  EXPECT_EQ(log.count("certificate revoked"), 1) << log.text();
  // A CRL past its next update: its CA's clients are refused until a renewed one is written.
  std::ofstream(dir / "crl.new") << test_support::crlPem(ca, {2}, -60);
  fs::rename(dir / "crl.new", dir / "crl.pem");
  EXPECT_EQ(status("bob"), -1) << "a client of an expired CRL got through";
  EXPECT_EQ(log.count("refused the client certificate /CN=bob: CRL has expired"), 1) << log.text();
  agent.stop();

  std::ofstream(dir / "other.pem") << test_support::crlPem(other, {2});
  c.tls_client_crl_file = (dir / "other.pem").string();
  EXPECT_TRUE(refusesToStart(c, "other.pem: CRL 1 (issuer /CN=other-ca): not signed by any CA of tls_client_ca_file"));
  c.tls_client_crl_file = (dir / "ca" / "cert.pem").string();
  EXPECT_TRUE(refusesToStart(c, "ca/cert.pem: no PEM CRL"));
  c.tls_client_ca_file.clear();
  EXPECT_TRUE(refusesToStart(c, "tls_client_crl_file needs tls_client_ca_file"));
}

// A client of an intermediate CA: every CA of its chain is checked against its CRL, so a root's
// CRL that revokes the intermediate refuses the intermediate's clients (their own CRL does not
// list them), and a chain with a CA whose CRL is missing is refused.
TEST(Agent, MutualTlsChecksEveryCaOfAClientsChainAgainstItsCrl) {
  test_support::CapturedLog log;
  const fs::path dir = test_support::removedAtExit(fs::path(testing::TempDir()) /
                                                   ("agent-crl-chain-" + std::to_string(::getpid())));
  for (const char* d : {"server", "dave"}) fs::create_directories(dir / d);
  test_support::SelfSigned server, root("root-ca");
  test_support::Issued intermediate(root, "intermediate-ca", 10, /*as_ca=*/true), dave(intermediate, "dave", 11);
  server.writeTo(dir / "server");
  dave.writeTo(dir / "dave");
  std::ofstream(dir / "cas.pem") << root.pem() << intermediate.pem();
  const auto crls = [&](const std::string& text) {
    std::ofstream(dir / "crl.new") << text;
    fs::rename(dir / "crl.new", dir / "crl.pem");
  };
  crls(test_support::crlPem(intermediate, {}) + test_support::crlPem(root, {}));
  AgentConfig c = onV2();
  c.tls_cert_file = (dir / "server" / "cert.pem").string();
  c.tls_key_file = (dir / "server" / "key.pem").string();
  c.tls_client_ca_file = (dir / "cas.pem").string();
  c.tls_client_crl_file = (dir / "crl.pem").string();
  Agent agent(c);
  ASSERT_TRUE(agent.start());
  auto status = [&] {
    httplib::SSLClient cli("127.0.0.1", agent.port(), (dir / "dave" / "cert.pem").string(), (dir / "dave" / "key.pem").string());
    cli.set_ca_cert_path((dir / "server" / "cert.pem").c_str());
    cli.enable_server_certificate_verification(true);
    auto r = cli.Get("/metrics");
    return r ? r->status : -1;
  };
  EXPECT_EQ(status(), 200);
  crls(test_support::crlPem(intermediate, {}) + test_support::crlPem(root, {10}));  // the intermediate revoked
  EXPECT_EQ(status(), -1) << "a client of a revoked intermediate CA got through";
  EXPECT_EQ(log.count("refused the client certificate /CN=dave: certificate revoked (at /CN=intermediate-ca of "
                      "its chain, depth 1)"), 1) << log.text();
  crls(test_support::crlPem(intermediate, {}));  // no CRL of the root
  EXPECT_EQ(status(), -1) << "a chain with a CA without a CRL got through";
  EXPECT_EQ(log.count("refused the client certificate /CN=dave: unable to get certificate CRL (at "
                      "/CN=intermediate-ca of its chain, depth 1)"), 1) << log.text();
  crls(test_support::crlPem(intermediate, {}) + test_support::crlPem(root, {}));
  EXPECT_EQ(status(), 200);
  agent.stop();
}

TEST(Agent, FailsClearlyWhenThePortIsTaken) {
  AgentConfig cfg = onV2();
  Agent first(cfg);
  ASSERT_TRUE(first.start());
  cfg.listen_port = first.port();
  Agent second(cfg);
  auto st = second.start();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message.find(std::to_string(first.port())), std::string::npos);
}

// Connections that send nothing (a stuck client, a port scan) must not hold every HTTP worker: a
// scrape behind 16 of them is answered, where httplib's defaults (8 workers, a 5 s read timeout)
// kept it waiting 5 s or more.
TEST(Agent, IdleConnectionsDoNotStallAScrape) {
  AgentConfig cfg = onV2();
  Agent agent(cfg);
  ASSERT_TRUE(agent.start());
  std::vector<int> idle;
  for (int i = 0; i < 16; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(agent.port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    idle.push_back(fd);
  }
  httplib::Client cli("127.0.0.1", agent.port());
  cli.set_read_timeout(4);
  auto m = cli.Get("/metrics");
  for (int fd : idle) ::close(fd);
  ASSERT_TRUE(m) << httplib::to_string(m.error());
  EXPECT_EQ(m->status, 200);
}

// A fast cgroup.v2-only agent over a fresh copy of the v2 fixture at `root`, for tests that change
// the fixture's files while the agent runs.
AgentConfig onACopyOfV2(const fs::path& root) {
  fs::remove_all(root);
  fs::copy(kV2, root, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  AgentConfig cfg = onV2();
  cfg.root = root.string();
  cfg.period_seconds = 0.02;
  cfg.collectors = {"cgroup.v2"};
  return cfg;
}

// A limit that the loop sets (on_usage returns true) is read back in the next round, not only in
// the workload's next detail round, which here never comes.
TEST(Agent, ALimitTheLoopSetsIsReadBackInTheNextRound) {
  const fs::path root = fs::path(testing::TempDir()) / ("agent-refresh-" + std::to_string(::getpid()));
  AgentConfig cfg = onACopyOfV2(root);
  const fs::path cpu_max = root / "sys/fs/cgroup/system.slice/app.service/cpu.max";
  cfg.detail_every = 1000000;
  std::atomic<bool> set{false};
  cfg.on_usage = [&](const std::string& workload, std::int64_t, const auto&, const auto&, const auto&) {
    if (workload != "/system.slice/app.service" || set.exchange(true)) return false;
    std::ofstream(cpu_max) << "150000 100000\n";  // 0.5 core in the fixture → 1.5
    return true;
  };
  Agent agent(cfg);
  ASSERT_TRUE(agent.start());
  httplib::Client cli("127.0.0.1", agent.port());
  auto limit = [&](const std::string& value) {
    auto m = cli.Get("/metrics");
    return m && m->body.find("foresight_cpu_limit_cores{workload=\"/system.slice/app.service\"} " + value) !=
                    std::string::npos;
  };
  EXPECT_TRUE(waitFor([&] { return set.load(); }));
  EXPECT_TRUE(waitFor([&] { return limit("1.5"); })) << cli.Get("/metrics")->body.substr(0, 3000);
  agent.stop();
  fs::remove_all(root);
}

// A workload that empties (no longer discovered) is reported to on_gone, so the closed loop
// forgets it: a cgroup re-created under the same path must not inherit its history.
TEST(Agent, AWorkloadThatIsGoneIsReportedToOnGone) {
  const fs::path root = fs::path(testing::TempDir()) / ("agent-gone-" + std::to_string(::getpid()));
  AgentConfig cfg = onACopyOfV2(root);
  const fs::path procs = root / "sys/fs/cgroup/system.slice/app.service/cgroup.procs";
  std::atomic<bool> seen{false};
  std::mutex mu;
  std::vector<std::string> gone;
  cfg.on_usage = [&](const std::string& workload, std::int64_t, const auto&, const auto&, const auto&) {
    if (workload == "/system.slice/app.service" && !seen.exchange(true)) std::ofstream(procs) << "";
    return false;
  };
  cfg.on_gone = [&](const std::string& workload) {
    std::lock_guard lock(mu);
    gone.push_back(workload);
  };
  Agent agent(cfg);
  ASSERT_TRUE(agent.start());
  EXPECT_TRUE(waitFor([&] {
    std::lock_guard lock(mu);
    return !gone.empty();
  }));
  agent.stop();
  EXPECT_EQ(gone, std::vector<std::string>{"/system.slice/app.service"});
  fs::remove_all(root);
}

// A fast agent over the v2 fixture with a fresh state folder.
AgentConfig stateConfig(const fs::path& states) {
  fs::remove_all(states);
  AgentConfig cfg = onV2();
  cfg.period_seconds = 0.02;
  cfg.collectors = {"cgroup.v2"};
  cfg.fingerprint = {.window = 4, .hop = 1, .dim = 4};
  cfg.state_dir = states.string();
  return cfg;
}

TEST(Agent, FingerprintStatePersistsAcrossRestarts) {
  const fs::path states = fs::path(testing::TempDir()) / ("agent-state-" + std::to_string(::getpid()));
  const AgentConfig cfg = stateConfig(states);
  auto modelSamples = [](Agent& a) {
    httplib::Client cli("127.0.0.1", a.port());
    auto f = cli.Get("/api/fingerprint?workload=/system.slice/app.service");
    if (!f || f->status != 200) return -1.0;
    return nlohmann::json::parse(f->body)["features"]["model_samples"].get<double>();
  };
  double first_run = 0;
  {
    Agent a(cfg);
    ASSERT_TRUE(a.start());
    ASSERT_TRUE(waitFor([&] { return modelSamples(a) >= 5; }));
    a.stop();
    first_run = modelSamples(a);  // the snapshot outlives the sampling thread
  }
  ASSERT_TRUE(fs::exists(states / "_system.slice_app.service.json"));
  Agent b(cfg);
  ASSERT_TRUE(b.start());
  ASSERT_TRUE(waitFor([&] { return modelSamples(b) > 0; }));
  // The restarted agent goes on from the saved model instead of starting at 1.
  EXPECT_GT(modelSamples(b), first_run);
  b.stop();
  fs::remove_all(states);
}// With the autoencoder, its parameters are saved beside the PCA state at stop and read back at
// start; a corrupt file is reported and replaced by a fresh model, not fatal.
TEST(Agent, AutoencoderStatePersistsAndACorruptOneIsSkipped) {
  if (!haveAutoencoder()) GTEST_SKIP() << "built without LibTorch";
  const fs::path states = fs::path(testing::TempDir()) / ("agent-ae-" + std::to_string(::getpid()));
  AgentConfig cfg = stateConfig(states);
  cfg.autoencoder = true;
  auto anomaly = [](Agent& a) -> double {
    httplib::Client cli("127.0.0.1", a.port());
    auto f = cli.Get("/api/fingerprint?workload=/system.slice/app.service");
    if (!f || f->status != 200) return NAN;
    const auto j = nlohmann::json::parse(f->body);
    return j.contains("anomaly") && j["anomaly"].is_number() ? j["anomaly"].get<double>() : NAN;
  };
  const fs::path ae = states / "_system.slice_app.service.ae.pt";
  {
    Agent a(cfg);
    ASSERT_TRUE(a.start());
    ASSERT_TRUE(waitFor([&] { return std::isfinite(anomaly(a)); }));
    a.stop();
  }
  ASSERT_TRUE(fs::exists(ae));
  const auto saved = fs::file_size(ae);
  EXPECT_GT(saved, 0u);
  std::ofstream(ae, std::ios::trunc) << "not a torch archive";
  {
    Agent b(cfg);
    ASSERT_TRUE(b.start());
    ASSERT_TRUE(waitFor([&] { return std::isfinite(anomaly(b)); }));
    b.stop();
  }
  EXPECT_EQ(fs::file_size(ae), saved);  // rewritten from the fresh model at stop
  fs::remove_all(states);
}

// The model is read once; each workload gets its own copy of its weights (not of the file, which
// may be gone by then), and learning in one does not move another.
TEST(Agent, EveryWorkloadsAutoencoderStartsFromACopyOfTheModelReadOnce) {
  if (!haveAutoencoder()) GTEST_SKIP() << "built without LibTorch";
  const fs::path dir = fs::path(testing::TempDir()) / ("agent-aecopy-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fingerprint::Config fc;
  fingerprint::Pipeline src(fc, fingerprint::resourceMetrics());
  ASSERT_TRUE(attachAutoencoder(src));
  const auto n = static_cast<Eigen::Index>(src.featureNames().size());
  const Eigen::VectorXd z = Eigen::VectorXd::LinSpaced(n, -1.0, 1.0);
  for (int i = 0; i < 30; ++i) src.anomalyModel()->scoreAndLearn(z);  // away from fresh weights
  ASSERT_TRUE(src.anomalyModel()->save(dir / "ae.pt"));
  auto initial = loadAutoencoder(fc, (dir / "ae.pt").string());
  ASSERT_TRUE(initial) << initial.error().message;
  fs::remove_all(dir);

  fingerprint::Pipeline a(fc, fingerprint::resourceMetrics()), b(fc, fingerprint::resourceMetrics()),
      fresh(fc, fingerprint::resourceMetrics());
  ASSERT_TRUE(attachAutoencoder(a, initial->get()));
  ASSERT_TRUE(attachAutoencoder(b, initial->get()));
  ASSERT_TRUE(attachAutoencoder(fresh));
  const double trained = src.anomalyModel()->scoreAndLearn(z);
  const double sa = a.anomalyModel()->scoreAndLearn(z);
  EXPECT_NEAR(sa, trained, 1e-9 + 1e-6 * std::abs(trained));
  EXPECT_GT(std::abs(fresh.anomalyModel()->scoreAndLearn(z) - trained), 1e-3 * std::abs(trained));
  // a learnt from z; b, untouched, still scores as the model did.
  EXPECT_NEAR(b.anomalyModel()->scoreAndLearn(z), sa, 1e-9 + 1e-6 * std::abs(sa));
}

// fingerprint.autoencoder_model: every new workload starts from the trained weights; a file that
// does not load stops start() with its name, before any sampling.
TEST(Agent, AutoencoderModelIsLoadedOrRefusedAtStart) {
  if (!haveAutoencoder()) GTEST_SKIP() << "built without LibTorch";
  const fs::path states = fs::path(testing::TempDir()) / ("agent-aem-" + std::to_string(::getpid()));
  AgentConfig cfg = stateConfig(states);
  cfg.state_dir.clear();
  fs::create_directories(states);
  cfg.autoencoder = true;
  cfg.autoencoder_model = (states / "bad.pt").string();
  std::ofstream(cfg.autoencoder_model) << "not a torch archive";
  {
    Agent a(cfg);
    auto st = a.start();
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("bad.pt"), std::string::npos) << st.error().message;
  }
  fingerprint::Pipeline p(cfg.fingerprint, fingerprint::resourceMetrics());
  ASSERT_TRUE(attachAutoencoder(p));
  auto saved = p.anomalyModel()->save(states / "good.pt");
  ASSERT_TRUE(saved) << saved.error().message;
  cfg.autoencoder_model = (states / "good.pt").string();
  {
    Agent b(cfg);
    ASSERT_TRUE(b.start());
    b.stop();
  }
  auto parsed = parseAgentConfig("fingerprint: {autoencoder_model: /x/ae.pt}", "test.yaml");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(parsed->autoencoder);
  EXPECT_EQ(parsed->autoencoder_model, "/x/ae.pt");
  fs::remove_all(states);
}
