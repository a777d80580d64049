#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
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
  std::string key;  // the key being converted, named when yaml-cpp's "bad conversion" is not
  try {
    YAML::Node root = YAML::Load(yaml);
    if (!root || root.IsNull()) return c;  // empty file: all defaults
    if (auto s = checkKeys(root, {"period_seconds", "listen", "bearer_token_file", "tls_cert_file", "tls_key_file", "tls_client_ca_file", "tls_client_crl_file", "database", "root", "selectors",
                                  "max_depth", "collectors", "probe_dir", "fingerprint", "retention", "state_dir",
                                  "retention_interval_seconds", "detail_every"}, origin); !s)
      return tl::unexpected(s.error());
    auto get = [&](const YAML::Node& map, const std::string& prefix, const char* name, auto& field) {
      if (!map[name]) return false;
      key = prefix + name;
      field = map[name].as<std::decay_t<decltype(field)>>();
      key.clear();
      return true;
    };
    get(root, "", "period_seconds", c.period_seconds);
    get(root, "", "database", c.database);
    get(root, "", "bearer_token_file", c.bearer_token_file);
    get(root, "", "tls_cert_file", c.tls_cert_file);
    get(root, "", "tls_key_file", c.tls_key_file);
    get(root, "", "tls_client_ca_file", c.tls_client_ca_file);
    get(root, "", "tls_client_crl_file", c.tls_client_crl_file);
    get(root, "", "root", c.root);
    get(root, "", "selectors", c.selectors);
    get(root, "", "max_depth", c.max_depth);
    get(root, "", "collectors", c.collectors);
    get(root, "", "probe_dir", c.probe_dir);
    get(root, "", "state_dir", c.state_dir);
    get(root, "", "retention_interval_seconds", c.retention_interval_seconds);
    if (long n = 0; get(root, "", "detail_every", n)) {  // as<unsigned> would wrap a negative
      if (n < 1 || n > std::numeric_limits<unsigned>::max())
        return fail(ErrorCode::kInvalidArgument, "{}: detail_every {} not in [1, {}]", origin, n,
                    std::numeric_limits<unsigned>::max());
      c.detail_every = static_cast<unsigned>(n);
    }
    if (std::string l; get(root, "", "listen", l)) {
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
      get(f, "fingerprint.", "window", c.fingerprint.window);
      get(f, "fingerprint.", "hop", c.fingerprint.hop);
      get(f, "fingerprint.", "dim", c.fingerprint.dim);
      get(f, "fingerprint.", "autoencoder", c.autoencoder);
      if (get(f, "fingerprint.", "autoencoder_model", c.autoencoder_model)) c.autoencoder = true;
    }
    if (auto r = root["retention"]) {
      if (auto s = checkKeys(r, {"raw_seconds", "bucket_seconds", "downsampled_seconds",
                                 "fingerprint_seconds"}, origin + ": retention"); !s)
        return tl::unexpected(s.error());
      get(r, "retention.", "raw_seconds", c.retention.raw_seconds);
      get(r, "retention.", "bucket_seconds", c.retention.bucket_seconds);
      get(r, "retention.", "downsampled_seconds", c.retention.downsampled_seconds);
      get(r, "retention.", "fingerprint_seconds", c.retention.fingerprint_seconds);
    }
  } catch (const std::exception& e) {
    if (key.empty()) return fail(ErrorCode::kParse, "{}: {}", origin, e.what());
    return fail(ErrorCode::kParse, "{}: {}: {}", origin, key, e.what());
  }
  // !(x > 0) also refuses NaN; an infinite period would never sample, a tiny one spin.
  if (!(c.period_seconds > 0) || !std::isfinite(c.period_seconds))
    return fail(ErrorCode::kInvalidArgument, "{}: period_seconds must be a finite number > 0, not {}", origin,
                c.period_seconds);
  if (c.max_depth < 1)
    return fail(ErrorCode::kInvalidArgument, "{}: max_depth must be >= 1, not {}", origin, c.max_depth);
  if (auto s = fingerprint::checkConfig(c.fingerprint); !s)
    return fail(ErrorCode::kInvalidArgument, "{}: {}", origin, s.error().message);
  // A retention that is not positive would downsample or delete every sample at start-up.
  if (const auto& r = c.retention; r.raw_seconds <= 0 || r.bucket_seconds <= 0 ||
                                   r.downsampled_seconds < r.raw_seconds || r.fingerprint_seconds <= 0)
    return fail(ErrorCode::kInvalidArgument,
                "{}: retention needs raw_seconds > 0, bucket_seconds > 0, downsampled_seconds >= "
                "raw_seconds and fingerprint_seconds > 0",
                origin);
  if (!(c.retention_interval_seconds > 0) || !std::isfinite(c.retention_interval_seconds))
    return fail(ErrorCode::kInvalidArgument, "{}: retention_interval_seconds must be a finite number > 0, not {}",
                origin, c.retention_interval_seconds);
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
