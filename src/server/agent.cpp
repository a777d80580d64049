#include "foresight/server/agent.h"
// After Eigen (via agent.h): httplib pulls in <resolv.h>, whose `_res` macro breaks Eigen.
#include <httplib.h>

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <unordered_map>

#include "foresight/collect/sampler.h"
#include "foresight/core/log.h"
#include "foresight/server/http.h"

namespace foresight::server {
namespace {

double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

struct Agent::Impl {
  AgentConfig cfg;
  collect::CollectorContext ctx;
  collect::CollectorRegistry registry{"collector"};
  std::optional<collect::Sampler> sampler;
  std::vector<collect::Workload> fixed;
  std::optional<store::Store> db;

  std::shared_ptr<prometheus::Registry> prom = std::make_shared<prometheus::Registry>();
  std::unordered_map<std::string, prometheus::Family<prometheus::Gauge>*> families;
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> gauges;  // (metric, workload)
  prometheus::Gauge* rounds_g = nullptr;
  prometheus::Gauge* round_cpu_g = nullptr;
  prometheus::Gauge* workloads_g = nullptr;
  prometheus::Gauge* errors_g = nullptr;
  prometheus::Gauge* store_errors_g = nullptr;

  std::map<std::string, collect::Sample> last;
  std::map<std::string, fingerprint::Pipeline> pipelines;
  double cpus = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));  // bounds cpu demand
  // fingerprint.autoencoder_model, read once at start: every new workload copies its weights.
  std::shared_ptr<const fingerprint::AnomalyModel> initial_autoencoder;

  std::mutex mu;  // guards snapshot
  nlohmann::json snapshot = nlohmann::json::object();
  std::map<std::string, nlohmann::json> latest_fp;

  std::unique_ptr<HttpEndpoint> http;
  std::thread sample_thread;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;
  std::size_t store_errors = 0;

  prometheus::Gauge& gauge(const std::string& metric, const std::string& workload) {
    auto key = std::make_pair(metric, workload);
    auto it = gauges.find(key);
    if (it != gauges.end()) return *it->second;
    auto& fam = families[metric];
    if (!fam) {
      fam = &prometheus::BuildGauge().Name("foresight_" + metric)
                 .Help("Foresight profiler metric " + metric + " (docs/profiler.md)")
                 .Register(*prom);
    }
    auto& g = fam->Add({{"workload", workload}});
    gauges.emplace(key, &g);
    return g;
  }

  void dropWorkload(const std::string& w) {
    for (auto it = gauges.begin(); it != gauges.end();) {
      if (it->first.second == w) {
        families[it->first.first]->Remove(it->second);
        it = gauges.erase(it);
      } else {
        ++it;
      }
    }
    last.erase(w);
    pipelines.erase(w);
    {
      std::lock_guard lock(mu);
      snapshot.erase(w);
      latest_fp.erase(w);
    }
    if (cfg.on_gone) cfg.on_gone(w);
  }

  std::vector<collect::Workload> workloads() {
    if (!fixed.empty()) return fixed;
    auto w = collect::discoverCgroups(ctx.paths, ctx.layout, cfg.max_depth, true);
    return w ? *w : std::vector<collect::Workload>{};
  }

  void round() {
    const double cpu0 = threadCpuSeconds();
    auto r = sampler->sample(workloads());
    std::vector<store::SampleRow> rows;
    std::vector<std::pair<std::string, fingerprint::Fingerprint>> fps;
    std::map<std::string, nlohmann::json> updates;
    for (auto& s : r.samples) {
      for (const auto& m : s.metrics) gauge(m.name, s.workload).Set(m.value);
      auto it = last.find(s.workload);
      if (it != last.end()) {
        auto u = collect::resourceUsage(it->second, s);
        const std::int64_t t_ms = s.time_ns / 1000000;
        rows.push_back({s.workload, t_ms, u});
        if (cfg.on_usage &&
            cfg.on_usage(s.workload, s.time_ns / 1000000000, u, collect::resourceDemand(it->second, s, u, cpus),
                         collect::limitReadings(it->second, s)))
          sampler->refreshLimits(s.workload);
        for (const auto& m : collect::derivedMetrics(it->second, s)) gauge(m.name, s.workload).Set(m.value);
        // A resource missing this round (a detail metric between its reads) keeps the last value
        // set, as the collector gauges do; the store gets NULL.
        for (Resource res : kAllResources) {
          if (!std::isnan(u[index(res)]))
            gauge(std::string("resource_") + std::string(name(res)), s.workload).Set(u[index(res)]);
        }
        auto p = pipelines.find(s.workload);
        if (p == pipelines.end()) p = pipelines.emplace(s.workload, newPipeline(s.workload)).first;
        nlohmann::json j = {{"workload", s.workload}, {"time_ms", t_ms}, {"cpu_cores", number(u[0])},
                            {"memory_bytes", number(u[1])}, {"disk_io_bytes_per_second", number(u[2])},
                            {"network_bytes_per_second", number(u[3])}};
        if (auto f = p->second.push(t_ms, u)) {
          f->features.emplace_back("model_samples", static_cast<double>(p->second.pca().count()));
          gauge("fingerprint_anomaly", s.workload).Set(f->anomaly);
          if (cfg.on_fingerprint) cfg.on_fingerprint(s.workload, *f);
          fps.emplace_back(s.workload, *f);
        }
        updates[s.workload] = std::move(j);
      }
      collect::carryForward(last[s.workload], s);
    }
    for (const auto& g : r.gone) dropWorkload(g);
    if (db) {
      if (auto st = db->addSamples(rows); !st) storeError(st.error());
      for (const auto& [w, f] : fps)
        if (auto st = db->addFingerprint(w, f); !st) storeError(st.error());
    }
    {
      std::lock_guard lock(mu);
      // Each field as last computed: a null (missing this round) does not overwrite a value.
      for (auto& [w, j] : updates) {
        auto& cur = snapshot[w];
        for (const auto& el : j.items())
          if (!el.value().is_null() || !cur.contains(el.key())) cur[el.key()] = el.value();
      }
      for (const auto& [w, f] : fps) {
        auto j = fingerprint::toJson(f);
        j["workload"] = w;
        latest_fp[w] = std::move(j);
      }
      for (auto it = snapshot.begin(); it != snapshot.end(); ++it) {
        auto f = latest_fp.find(it.key());
        (*it)["anomaly"] = f == latest_fp.end() ? nlohmann::json() : f->second["anomaly"];
      }
    }
    rounds_g->Increment();
    workloads_g->Set(static_cast<double>(r.samples.size()));
    errors_g->Set(static_cast<double>(sampler->errorCount()));
    round_cpu_g->Set(threadCpuSeconds() - cpu0);
  }

  // <state_dir>/<workload>.json (PCA state); `suffix` ".ae.pt" for the autoencoder's parameters.
  std::filesystem::path statePath(const std::string& workload, const char* suffix = ".json") const {
    return std::filesystem::path(cfg.state_dir) / (collect::workloadFileName(workload) + suffix);
  }

  // A saved state is used when its window, hop and dim match the configuration; otherwise (or
  // unreadable) the workload starts afresh, logged.
  fingerprint::Pipeline newPipeline(const std::string& workload) {
    fingerprint::Pipeline fresh(cfg.fingerprint, fingerprint::resourceMetrics());
    if (!cfg.state_dir.empty()) {
      const auto file = statePath(workload);
      std::error_code ec;
      if (std::filesystem::exists(file, ec)) {
        auto loaded = fingerprint::Pipeline::loadState(file);
        if (loaded && loaded->config().window == cfg.fingerprint.window &&
            loaded->config().hop == cfg.fingerprint.hop && loaded->config().dim == cfg.fingerprint.dim &&
            loaded->metrics() == fresh.metrics()) {
          fresh = std::move(*loaded);
        } else {
          spdlog::warn("fingerprint state {} not used: {}", file.string(),
                       loaded ? "configuration differs" : loaded.error().message);
        }
      }
    }
    if (cfg.autoencoder) {
      (void)attachAutoencoder(fresh, initial_autoencoder.get());  // checked in start()
      std::error_code ec;
      const auto file = statePath(workload, ".ae.pt");
      if (!cfg.state_dir.empty() && std::filesystem::exists(file, ec)) {
        if (auto st = fresh.anomalyModel()->load(file); !st) {
          spdlog::warn("autoencoder state {} not used: {}", file.string(), st.error().message);
          (void)attachAutoencoder(fresh, initial_autoencoder.get());  // a failed load may leave it half-filled
        }
      }
    }
    return fresh;
  }

  void saveStates() {
    if (cfg.state_dir.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(cfg.state_dir, ec);
    for (const auto& [w, p] : pipelines) {
      if (auto st = p.saveState(statePath(w)); !st) storeError(st.error());
      if (p.anomalyModel())
        if (auto st = p.anomalyModel()->save(statePath(w, ".ae.pt")); !st) storeError(st.error());
    }
  }

  void storeError(const Error& e) {
    if (store_errors++ == 0) spdlog::warn("history store write failed (logged once): {}", e.message);
    store_errors_g->Set(static_cast<double>(store_errors));
  }
};

Agent::Agent(AgentConfig config) : impl_(std::make_unique<Impl>()), config_(std::move(config)) {}
Agent::~Agent() { stop(); }

Status Agent::start() {
  Impl& m = *impl_;
  m.cfg = config_;
  m.ctx.paths = collect::HostPaths(config_.root);
  m.ctx.layout = collect::detectCgroupLayout(m.ctx.paths);
  m.ctx.clock_ticks = ::sysconf(_SC_CLK_TCK);
  m.ctx.probe_dir = config_.probe_dir;
  m.ctx.detail_every = config_.detail_every;
  collect::registerCollectors(m.registry);
  auto names = config_.collectors.empty() ? collect::defaultCollectors(m.ctx.layout) : config_.collectors;
  auto sampler = collect::Sampler::create(m.ctx, names, m.registry);
  if (!sampler) return tl::unexpected(sampler.error());
  m.sampler.emplace(std::move(*sampler));
  for (const auto& sel : config_.selectors) {
    auto w = collect::selectWorkloads(m.ctx.paths, m.ctx.layout, sel);
    if (!w) return tl::unexpected(w.error());
    m.fixed.insert(m.fixed.end(), w->begin(), w->end());
  }
  if (config_.autoencoder && !haveAutoencoder()) {
    return fail(ErrorCode::kUnavailable, "fingerprint.autoencoder: this build has no LibTorch");
  }
  if (!config_.autoencoder_model.empty()) {
    auto model = loadAutoencoder(config_.fingerprint, config_.autoencoder_model);
    if (!model) return fail(model.error().code, "fingerprint.autoencoder_model: {}", model.error().message);
    m.initial_autoencoder = std::move(*model);
  }
  HttpOptions http;
  http.host = config_.listen_host;
  http.port = config_.listen_port;
  http.bearer_token_file = config_.bearer_token_file;
  http.tls_cert_file = config_.tls_cert_file;
  http.tls_key_file = config_.tls_key_file;
  http.tls_client_ca_file = config_.tls_client_ca_file;
  http.tls_client_crl_file = config_.tls_client_crl_file;
  auto endpoint = HttpEndpoint::make(http);
  if (!endpoint) return tl::unexpected(endpoint.error());
  m.http = std::move(*endpoint);
  if (!config_.database.empty()) {
    auto db = store::Store::open(config_.database);
    if (!db) return tl::unexpected(db.error());
    m.db.emplace(std::move(*db));
  }
  auto agent_gauge = [&](const char* n, const char* help) {
    return &prometheus::BuildGauge().Name(n).Help(help).Register(*m.prom).Add({});
  };
  m.rounds_g = agent_gauge("foresight_agent_rounds_total", "Sampling rounds completed");
  m.round_cpu_g = agent_gauge("foresight_agent_round_cpu_seconds", "CPU time of the last sampling round");
  m.workloads_g = agent_gauge("foresight_agent_workloads", "Workloads sampled in the last round");
  m.errors_g = agent_gauge("foresight_agent_collector_errors_total", "Collector failures so far (not vanished workloads)");
  m.store_errors_g = agent_gauge("foresight_agent_store_errors_total", "History store writes that failed");

  m.http->get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto families = impl_->prom->Collect();
    for (const auto& c : impl_->cfg.collectables) {
      auto more = c->Collect();
      families.insert(families.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    // The kernel's cumulative counters (the `_total` names) are mirrored as read, and
    // prometheus-cpp's Counter can only be incremented, so they are held in gauges and typed as
    // counters here: rate() and promtool expect TYPE counter for a `_total` series.
    for (auto& f : families) {
      if (f.type != prometheus::MetricType::Gauge || !collect::isCounter(f.name)) continue;
      f.type = prometheus::MetricType::Counter;
      for (auto& c : f.metric) c.counter.value = c.gauge.value;
    }
    res.set_content(prometheus::TextSerializer().Serialize(families), "text/plain; version=0.0.4");
  });
  m.http->get("/api/health", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json j = {{"status", "ok"}, {"rounds", rounds_.load()},
                        {"cgroup_layout", collect::toString(impl_->ctx.layout.version)},
                        {"collectors", impl_->sampler->collectorNames()}};
    res.set_content(j.dump(), "application/json");
  });
  m.http->get("/api/workloads", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json arr = nlohmann::json::array();
    {
      std::lock_guard lock(impl_->mu);
      for (const auto& [w, j] : impl_->snapshot.items()) arr.push_back(j);
    }
    res.set_content(arr.dump(), "application/json");
  });
  m.http->get("/api/fingerprint", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string w = req.get_param_value("workload");
    std::lock_guard lock(impl_->mu);
    auto it = impl_->latest_fp.find(w);
    if (it == impl_->latest_fp.end()) {
      res.status = 404;
      res.set_content(nlohmann::json{{"error", "no fingerprint yet for workload '" + w + "'"}}.dump(),
                      "application/json");
      return;
    }
    res.set_content(it->second.dump(), "application/json");
  });
  if (auto st = m.http->start(); !st) return st;
  port_ = m.http->port();
  m.sample_thread = std::thread([this] {
    using clock = std::chrono::steady_clock;
    const auto step = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(config_.period_seconds));
    const auto start = clock::now();
    auto next_retention = start;
    for (std::int64_t k = 1;; ++k) {
      impl_->round();
      rounds_.fetch_add(1);
      if (impl_->db && clock::now() >= next_retention) {
        if (auto st = impl_->db->applyRetention(collect::nowNs() / 1000000, config_.retention); !st)
          impl_->storeError(st.error());
        next_retention = clock::now() + std::chrono::duration_cast<clock::duration>(
                                            std::chrono::duration<double>(config_.retention_interval_seconds));
      }
      // A round that overran skips the periods it missed instead of running rounds back to back
      // to catch up: rates over a near-zero interval are noise, and two samples of a workload in
      // one millisecond would share their key in the store.
      if (const auto late = clock::now() - start; step.count() > 0 && late >= k * step) k = late / step + 1;
      std::unique_lock lock(impl_->stop_mu);
      if (impl_->stop_cv.wait_until(lock, start + k * step, [this] { return impl_->stopping; })) break;
    }
  });
  spdlog::info("agent: {}/metrics, cgroup layout {}, {} fixed workloads, collectors {}", m.http->describe(),
               collect::toString(m.ctx.layout.version), m.fixed.size(), fmt::join(names, ","));
  return ok();
}

void Agent::stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->stop_mu);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
  if (impl_->sample_thread.joinable()) {
    impl_->sample_thread.join();
    impl_->saveStates();
  }
  if (impl_->http) impl_->http->stop();
}

}  // namespace foresight::server
