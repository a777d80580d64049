#pragma once
// `foresight run`: the agent. A sampling thread runs the collectors every period, turns samples
// into resource rates and fingerprints, writes them to the history store and publishes them; an
// HTTP server on 127.0.0.1 serves Prometheus text at /metrics and a JSON API under /api/.
//
// Thread-safety: start()/stop() from one controlling thread; the HTTP handlers run on the
// server's threads and read the published snapshot under a mutex.

#include <array>
#include <atomic>
#include <functional>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>

#include "foresight/collect/collector.h"
#include "foresight/core/result.h"
#include "foresight/fingerprint/fingerprint.h"
#include "foresight/store/store.h"

namespace foresight::server {

// YAML configuration; every key is optional and defaults to the value here (docs/profiler.md).
struct AgentConfig {
  double period_seconds = 1.0;
  std::string listen_host = "127.0.0.1";
  int listen_port = 9464;  // 0: any free port (tests)
  // A file whose first line is a token: every endpoint but /api/health then answers 401 unless the
  // request carries "Authorization: Bearer <token>" (what Prometheus sends with
  // authorization.credentials_file). "": no check, for the loopback default.
  std::string bearer_token_file;
  // PEM files: with both, the agent serves HTTPS only. With tls_client_ca_file as well, every
  // endpoint but /api/health needs a client certificate that one of its CAs signed (mutual TLS).
  // With tls_client_crl_file too, a client certificate one of their PEM CRLs revokes is refused.
  // These files and the token's are read again when they change (rotation without a restart).
  std::string tls_cert_file, tls_key_file, tls_client_ca_file, tls_client_crl_file;
  std::string database = "foresight-history.db";  // empty: no history store
  std::string root = "/";
  std::vector<std::string> selectors;  // empty: every populated cgroup
  int max_depth = 3;
  std::vector<std::string> collectors;  // empty: all that apply to the host
  std::string probe_dir = "/dev/shm";
  // Rounds between reads of a workload's detail files (docs/profiler.md, "Tiered sampling").
  unsigned detail_every = collect::CollectorContext::kDefaultDetailEvery;
  fingerprint::Config fingerprint;
  // fingerprint.autoencoder: the LibTorch anomaly model instead of the PCA error. Each new
  // workload starts from fingerprint.autoencoder_model (`foresight train --autoencoder`; setting
  // it turns the autoencoder on) when given, else from random weights.
  bool autoencoder = false;
  std::string autoencoder_model;
  // Where each workload's fingerprint state (PCA basis, normalisation, autoencoder) is saved on
  // stop and loaded when the workload is first seen; "" = not persisted.
  std::string state_dir;
  store::Retention retention;
  double retention_interval_seconds = 300;
  // Called from the sampling thread with each workload's resource usage (cpu cores, memory bytes,
  // disk_io and network bytes/s), demand (collect::resourceDemand) and what the round read of its
  // limits (collect::limitReadings) once it has two samples; `foresight run`
  // closes the loop here. Time in Unix seconds: the loop forecasts on whole-second steps. Returns
  // true when it changed the workload's limits: the next round reads them back.
  std::function<bool(const std::string& workload, std::int64_t unix_seconds,
                     const std::array<double, kResourceCount>& usage,
                     const std::array<double, kResourceCount>& demand, const collect::LimitReadings& limits)>
      on_usage;
  // Called from the sampling thread with each new fingerprint of a workload.
  std::function<void(const std::string& workload, const fingerprint::Fingerprint& f)> on_fingerprint;
  // Called from the sampling thread when a workload is gone (no longer discovered, or its files
  // vanished), after the agent dropped what it kept of it: a cgroup re-created under the same path
  // is a new workload, and must not inherit the old one's history in what the callbacks keep.
  std::function<void(const std::string& workload)> on_gone;
  // More series for /metrics, collected at each scrape beside the agent's own (`foresight run`'s
  // forecasts and plans). Collect() is called from the HTTP threads.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
};

// Whether this build has the LibTorch autoencoder (foresight_fingerprint_torch).
bool haveAutoencoder();
// The autoencoder every new workload of pipelines configured as `config` starts from: `file`'s
// weights, read once (kUnavailable without LibTorch; an unreadable or mismatched file names
// itself).
Result<std::shared_ptr<const fingerprint::AnomalyModel>> loadAutoencoder(const fingerprint::Config& config,
                                                                         const std::string& file);
// Gives the pipeline its own autoencoder as its anomaly model, starting from a copy of `initial`'s
// weights (from loadAutoencoder), or from fresh ones when null. kUnavailable without LibTorch.
Status attachAutoencoder(fingerprint::Pipeline& p, const fingerprint::AnomalyModel* initial = nullptr);

// Unknown keys and wrong types are errors naming the file and key.
Result<AgentConfig> loadAgentConfig(const std::filesystem::path& file);
Result<AgentConfig> parseAgentConfig(const std::string& yaml, const std::string& origin);

class Agent {
 public:
  explicit Agent(AgentConfig config);
  ~Agent();
  // Binds the HTTP server and starts sampling. Fails when the port is taken, the store cannot be
  // opened or a collector name is unknown.
  Status start();
  void stop();
  int port() const { return port_; }
  std::size_t rounds() const { return rounds_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  AgentConfig config_;
  int port_ = 0;
  std::atomic<std::size_t> rounds_{0};
};

}  // namespace foresight::server
