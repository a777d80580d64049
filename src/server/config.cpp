#include <yaml-cpp/yaml.h>

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include "foresight/server/agent.h"
#ifdef FORESIGHT_HAVE_TORCH
#include "foresight/fingerprint/autoencoder.h"
#endif

namespace foresight::server {
namespace {

Status checkKeys(const YAML::Node& node, const std::set<std::string>& known, const std::string& where) {
  if (!node.IsMap()) return fail(ErrorCode::kParse, "{}: expected a mapping", where);
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (!known.count(key)) return fail(ErrorCode::kParse, "{}: unknown key '{}'", where, key);
  }
  return ok();
}

}  // namespace

Result<AgentConfig> parseAgentConfig(const std::string& yaml, const std::string& origin) {
  AgentConfig c;
  try {
    YAML::Node root = YAML::Load(yaml);
    if (!root || root.IsNull()) return c;  // empty file: all defaults
    if (auto s = checkKeys(root, {"period_seconds", "listen", "database", "root", "selectors",
                                  "max_depth", "collectors", "probe_dir", "fingerprint", "retention", "state_dir",
                                  "retention_interval_seconds", "detail_every"}, origin); !s)
      return tl::unexpected(s.error());
    auto get = [&](const char* key, auto& field) {
      if (root[key]) field = root[key].as<std::decay_t<decltype(field)>>();
    };
    get("period_seconds", c.period_seconds);
    get("database", c.database);
    get("root", c.root);
    get("selectors", c.selectors);
    get("max_depth", c.max_depth);
    get("collectors", c.collectors);
    get("probe_dir", c.probe_dir);
    get("state_dir", c.state_dir);
    get("retention_interval_seconds", c.retention_interval_seconds);
    if (root["detail_every"]) {
      const long n = root["detail_every"].as<long>();  // as<unsigned> would wrap a negative
      if (n < 1) return fail(ErrorCode::kInvalidArgument, "{}: detail_every must be >= 1", origin);
      c.detail_every = static_cast<unsigned>(n);
    }
    if (root["listen"]) {
      const std::string l = root["listen"].as<std::string>();
      const auto colon = l.rfind(':');
      int port = -1;
      const char* digits = colon == std::string::npos ? nullptr : l.c_str() + colon + 1;
      const auto [end, ec] = digits ? std::from_chars(digits, l.c_str() + l.size(), port)
                                    : std::from_chars_result{nullptr, std::errc::invalid_argument};
      if (colon == std::string::npos || colon == 0 || ec != std::errc() || end != l.c_str() + l.size() ||
          port < 0 || port > 65535)
        return fail(ErrorCode::kParse, "{}: listen '{}' must be host:port with a port 0-65535 "
                    "([::1]:9464 for IPv6)", origin, l);
      c.listen_host = l.substr(0, colon);
      // [IPv6]:port: the address without its brackets, as the socket call takes it.
      if (c.listen_host.size() > 2 && c.listen_host.front() == '[' && c.listen_host.back() == ']')
        c.listen_host = c.listen_host.substr(1, c.listen_host.size() - 2);
      c.listen_port = port;
    }
    if (auto f = root["fingerprint"]) {
      if (auto s = checkKeys(f, {"window", "hop", "dim", "autoencoder", "autoencoder_model"},
                             origin + ": fingerprint");
          !s)
        return tl::unexpected(s.error());
      if (f["window"]) c.fingerprint.window = f["window"].as<std::size_t>();
      if (f["hop"]) c.fingerprint.hop = f["hop"].as<std::size_t>();
      if (f["dim"]) c.fingerprint.dim = f["dim"].as<std::size_t>();
      if (f["autoencoder"]) c.autoencoder = f["autoencoder"].as<bool>();
      if (f["autoencoder_model"]) {
        c.autoencoder_model = f["autoencoder_model"].as<std::string>();
        c.autoencoder = true;
      }
    }
    if (auto r = root["retention"]) {
      if (auto s = checkKeys(r, {"raw_seconds", "bucket_seconds", "downsampled_seconds",
                                 "fingerprint_seconds"}, origin + ": retention"); !s)
        return tl::unexpected(s.error());
      if (r["raw_seconds"]) c.retention.raw_seconds = r["raw_seconds"].as<std::int64_t>();
      if (r["bucket_seconds"]) c.retention.bucket_seconds = r["bucket_seconds"].as<std::int64_t>();
      if (r["downsampled_seconds"]) c.retention.downsampled_seconds = r["downsampled_seconds"].as<std::int64_t>();
      if (r["fingerprint_seconds"]) c.retention.fingerprint_seconds = r["fingerprint_seconds"].as<std::int64_t>();
    }
  } catch (const std::exception& e) {
    return fail(ErrorCode::kParse, "{}: {}", origin, e.what());
  }
  if (c.period_seconds <= 0) return fail(ErrorCode::kInvalidArgument, "{}: period_seconds must be > 0", origin);
  if (auto s = fingerprint::checkConfig(c.fingerprint); !s)
    return fail(ErrorCode::kInvalidArgument, "{}: {}", origin, s.error().message);
  // A retention that is not positive would downsample or delete every sample at start-up.
  if (const auto& r = c.retention; r.raw_seconds <= 0 || r.bucket_seconds <= 0 ||
                                   r.downsampled_seconds < r.raw_seconds || r.fingerprint_seconds <= 0)
    return fail(ErrorCode::kInvalidArgument,
                "{}: retention needs raw_seconds > 0, bucket_seconds > 0, downsampled_seconds >= "
                "raw_seconds and fingerprint_seconds > 0",
                origin);
  if (c.retention_interval_seconds <= 0)
    return fail(ErrorCode::kInvalidArgument, "{}: retention_interval_seconds must be > 0", origin);
  if (c.listen_port < 0 || c.listen_port > 65535)
    return fail(ErrorCode::kInvalidArgument, "{}: listen port {} out of range", origin, c.listen_port);
  return c;
}

bool haveAutoencoder() {
#ifdef FORESIGHT_HAVE_TORCH
  return true;
#else
  return false;
#endif
}

Result<std::shared_ptr<const fingerprint::AnomalyModel>> loadAutoencoder(const fingerprint::Config& config,
                                                                         const std::string& file) {
#ifdef FORESIGHT_HAVE_TORCH
  fingerprint::AutoencoderOptions o;
  o.input_dim = fingerprint::Pipeline(config, fingerprint::resourceMetrics()).featureNames().size();
  auto model = std::make_shared<fingerprint::Autoencoder>(o);
  if (auto st = model->load(file); !st) return tl::unexpected(st.error());
  return std::shared_ptr<const fingerprint::AnomalyModel>(std::move(model));
#else
  (void)config;
  (void)file;
  return fail(ErrorCode::kUnavailable, "this build has no LibTorch: the autoencoder is unavailable");
#endif
}

Status attachAutoencoder(fingerprint::Pipeline& p, const fingerprint::AnomalyModel* initial) {
#ifdef FORESIGHT_HAVE_TORCH
  fingerprint::AutoencoderOptions o;
  o.input_dim = p.featureNames().size();
  auto model = std::make_shared<fingerprint::Autoencoder>(o);
  if (initial) {
    const auto* from = dynamic_cast<const fingerprint::Autoencoder*>(initial);
    if (!from || from->options().input_dim != o.input_dim)
      return fail(ErrorCode::kInvalidArgument, "autoencoder: initial model does not fit a pipeline of {} features",
                  o.input_dim);
    model->copyWeightsFrom(*from);
  }
  p.setAnomalyModel(std::move(model));
  return ok();
#else
  (void)p;
  (void)initial;
  return fail(ErrorCode::kUnavailable, "this build has no LibTorch: the autoencoder is unavailable");
#endif
}

Result<AgentConfig> loadAgentConfig(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot open", file.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return parseAgentConfig(ss.str(), file.string());
}

}  // namespace foresight::server
