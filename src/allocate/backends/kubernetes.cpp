// Kubernetes backend over cpp-httplib (OpenSSL). See kubernetes.h for the wire format.
#include "foresight/allocate/kubernetes.h"

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <functional>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "foresight/core/files.h"
#include "foresight/core/log.h"
#include "foresight/core/reload.h"

namespace foresight::allocate::k8s {
namespace {
using nlohmann::json;

Result<std::string> readWholeFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot read", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> base64Decode(const std::string& in, const std::string& what) {
  std::string clean;
  for (char c : in)
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  if (clean.size() % 4 != 0) return fail(ErrorCode::kParse, "{}: not base64", what);
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) return fail(ErrorCode::kParse, "{}: not base64", what);
  std::size_t pad = 0;
  if (!clean.empty() && clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

// "<key>-data" (base64) or "<key>" (a file path, relative to the kubeconfig's folder, stored in
// `*file` so that the file can be read again when it is rotated).
Result<std::string> dataOrFile(const YAML::Node& node, const std::string& key,
                               const std::string& kubeconfig, std::string* file) {
  if (node[key + "-data"]) return base64Decode(node[key + "-data"].as<std::string>(), kubeconfig + ": " + key + "-data");
  if (node[key]) {
    std::filesystem::path p = node[key].as<std::string>();
    if (p.is_relative()) p = std::filesystem::path(kubeconfig).parent_path() / p;
    *file = p.string();
    return readWholeFile(p.string());
  }
  return std::string();
}

YAML::Node findNamed(const YAML::Node& list, const std::string& name, const char* field) {
  if (list && list.IsSequence())
    for (const auto& item : list)
      if (item["name"] && item["name"].as<std::string>() == name) return item[field];
  return YAML::Node();
}

}  // namespace

Result<ClusterAccess> loadKubeconfig(const std::string& path, const std::string& context_name) {
  ClusterAccess a;
  try {
    const YAML::Node root = YAML::LoadFile(path);
    const std::string ctx_name =
        context_name.empty() ? root["current-context"].as<std::string>("") : context_name;
    if (ctx_name.empty()) return fail(ErrorCode::kInvalidArgument, "{}: no current-context", path);
    a.context = ctx_name;
    const YAML::Node ctx = findNamed(root["contexts"], ctx_name, "context");
    if (!ctx) return fail(ErrorCode::kNotFound, "{}: no context '{}'", path, ctx_name);
    const std::string cluster_name = ctx["cluster"].as<std::string>("");
    const std::string user_name = ctx["user"].as<std::string>("");
    if (ctx["namespace"]) a.default_namespace = ctx["namespace"].as<std::string>();
    const YAML::Node cluster = findNamed(root["clusters"], cluster_name, "cluster");
    if (!cluster) return fail(ErrorCode::kNotFound, "{}: no cluster '{}'", path, cluster_name);
    a.server = cluster["server"].as<std::string>("");
    if (a.server.empty()) return fail(ErrorCode::kParse, "{}: cluster '{}' has no server", path, cluster_name);
    if (cluster["insecure-skip-tls-verify"] && cluster["insecure-skip-tls-verify"].as<bool>())
      return fail(ErrorCode::kInvalidArgument,
                  "{}: cluster '{}' sets insecure-skip-tls-verify; Foresight always verifies TLS",
                  path, cluster_name);
    auto ca = dataOrFile(cluster, "certificate-authority", path, &a.ca_file);
    if (!ca) return tl::unexpected(ca.error());
    a.ca_pem = *ca;
    const YAML::Node user = findNamed(root["users"], user_name, "user");
    if (user) {
      if (user["exec"] || user["auth-provider"])
        return fail(ErrorCode::kInvalidArgument,
                    "{}: user '{}' uses an exec/auth-provider plugin, which Foresight does not run; "
                    "use a token or client certificate", path, user_name);
      if (user["token"]) a.token = user["token"].as<std::string>();
      if (user["tokenFile"]) {
        // Relative to the kubeconfig's folder, as client-go and the certificate paths here.
        std::filesystem::path tf = user["tokenFile"].as<std::string>();
        if (tf.is_relative()) tf = std::filesystem::path(path).parent_path() / tf;
        auto t = readTokenFile(tf);
        if (!t) return tl::unexpected(t.error());
        a.token = *t;
        a.token_file = tf.string();
      }
      auto cert = dataOrFile(user, "client-certificate", path, &a.client_cert_file);
      auto key = dataOrFile(user, "client-key", path, &a.client_key_file);
      if (!cert) return tl::unexpected(cert.error());
      if (!key) return tl::unexpected(key.error());
      a.client_cert_pem = *cert;
      a.client_key_pem = *key;
    }
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::kParse, "{}:{}: {}", path, e.mark.line + 1, e.msg);
  }
  while (!a.token.empty() && std::isspace(static_cast<unsigned char>(a.token.back()))) a.token.pop_back();
  return a;
}

Result<ClusterAccess> loadInCluster(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !port)
    return fail(ErrorCode::kUnavailable,
                "not in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set");
  ClusterAccess a;
  const std::string h = host;
  a.server = fmt::format("https://{}:{}", h.find(':') != std::string::npos ? "[" + h + "]" : h, port);
  a.token_file = sa_dir + "/token";
  a.ca_file = sa_dir + "/ca.crt";
  auto token = readTokenFile(a.token_file);
  auto ca = readWholeFile(a.ca_file);
  if (!token) return tl::unexpected(token.error());
  if (!ca) return tl::unexpected(ca.error());
  a.token = *token;
  a.ca_pem = *ca;
  if (auto ns = readWholeFile(sa_dir + "/namespace")) a.default_namespace = *ns;
  return a;
}

Result<double> parseQuantity(const std::string& q) {
  static const std::pair<const char*, double> kSuffixes[] = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"Pi", 1125899906842624.0}, {"Ei", 1152921504606846976.0}, {"n", 1e-9}, {"u", 1e-6},
      {"m", 1e-3}, {"k", 1e3},
      {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18}};
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(q, &used);
  } catch (const std::exception&) {
    return fail(ErrorCode::kParse, "'{}' is not a Kubernetes quantity", q);
  }
  const std::string suffix = q.substr(used);
  if (suffix.empty()) return v;
  for (const auto& [s, mult] : kSuffixes)
    if (suffix == s) return v * mult;
  return fail(ErrorCode::kParse, "'{}': unknown quantity suffix '{}'", q, suffix);
}

// A quantity as the API server returns it: a string ("500m", "1Gi"), or a plain number where the
// schema is int-or-string (CRDs such as the VPA keep what was written: `maxAllowed: {cpu: 1}`).
Result<double> quantityOf(const nlohmann::json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) return parseQuantity(v.get<std::string>());
  return fail(ErrorCode::kParse, "{} is not a Kubernetes quantity", v.dump());
}

std::string formatCpu(double cores) {
  return fmt::format("{}m", static_cast<long long>(std::ceil(cores * 1000.0 - 1e-6)));
}
std::string formatMemory(double bytes) {
  return fmt::format("{}", static_cast<long long>(std::ceil(bytes - 1e-6)));
}

namespace {

// Splits "a/b[/c]".
std::vector<std::string> splitWorkload(const std::string& w) {
  std::vector<std::string> parts;
  std::stringstream ss(w);
  for (std::string p; std::getline(ss, p, '/');) parts.push_back(p);
  return parts;
}

struct Response {
  int status = 0;
  json body;
};

// The client side of TLS, parsed: the client certificate and key (null without one) and the CAs
// that verify the server (empty: the system's trust store).
struct TlsMaterial {
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;
  std::vector<std::shared_ptr<X509>> cas;
};

// `pem` as given inline, or as `file` holds it now.
Result<std::string> currentPem(const std::string& pem, const std::string& file) {
  return file.empty() ? Result<std::string>(pem) : readWholeFile(file);
}

// Errors name the file at fault (or the server, for PEM given inline), so that a rotation half
// done (a certificate whose key is not written yet) keeps the pair in use, logged.
Result<TlsMaterial> loadTls(const ClusterAccess& a) {
  auto ca = currentPem(a.ca_pem, a.ca_file);
  auto cert = currentPem(a.client_cert_pem, a.client_cert_file);
  auto key = currentPem(a.client_key_pem, a.client_key_file);
  for (const auto* r : {&ca, &cert, &key})
    if (!*r) return tl::unexpected(r->error());
  auto where = [&](const std::string& file) { return file.empty() ? a.server : file; };
  TlsMaterial m;
  if (!cert->empty() || !key->empty()) {
    BIO* b = BIO_new_mem_buf(cert->data(), static_cast<int>(cert->size()));
    m.cert.reset(PEM_read_bio_X509(b, nullptr, nullptr, nullptr), X509_free);
    BIO_free(b);
    b = BIO_new_mem_buf(key->data(), static_cast<int>(key->size()));
    m.key.reset(PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr), EVP_PKEY_free);
    BIO_free(b);
    if (!m.cert) return fail(ErrorCode::kParse, "{}: client certificate is not valid PEM", where(a.client_cert_file));
    if (!m.key) return fail(ErrorCode::kParse, "{}: client key is not valid PEM", where(a.client_key_file));
    if (X509_check_private_key(m.cert.get(), m.key.get()) != 1)
      return fail(ErrorCode::kInvalidArgument, "{}: the client key is not the certificate's ({})",
                  where(a.client_key_file), where(a.client_cert_file));
  }
  if (!ca->empty()) {
    BIO* b = BIO_new_mem_buf(ca->data(), static_cast<int>(ca->size()));
    while (X509* c = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) m.cas.emplace_back(c, X509_free);
    BIO_free(b);
    if (m.cas.empty())
      return fail(ErrorCode::kParse, "{}: certificate authority is not valid PEM", where(a.ca_file));
  }
  return m;
}

std::shared_ptr<Reloading<TlsMaterial>> reloadingTls(const ClusterAccess& a) {
  std::vector<std::string> names;
  for (const auto* f : {&a.ca_file, &a.client_cert_file, &a.client_key_file})
    if (!f->empty()) names.push_back(*f);
  std::string what = fmt::format("Kubernetes TLS files {}", fmt::join(names, " "));
  std::vector<std::filesystem::path> files(names.begin(), names.end());
  return std::make_shared<Reloading<TlsMaterial>>(std::move(files), [a] { return loadTls(a); },
                                                  std::move(what));
}

class ApiClient {
 public:
  static constexpr int kReadTimeoutSeconds = 30;
  explicit ApiClient(ClusterAccess access) : access_(std::move(access)) {
    if (!access_.token_file.empty())
      token_file_ = reloadingTokenFile(access_.token_file, "Kubernetes token " + access_.token_file);
    tls_ = reloadingTls(access_);
  }

  Result<Response> request(const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& content_type = "") {
    auto cli = client();
    if (!cli) return tl::unexpected(cli.error());
    auto headers = requestHeaders();
    if (!headers) return tl::unexpected(headers.error());
    httplib::Result res = method == "GET" ? (*cli)->Get(prefix_ + path, *headers)
                                          : (*cli)->Patch(prefix_ + path, *headers, body, content_type);
    if (!res)
      return fail(ErrorCode::kUnavailable, "{} {}{}: {}", method, access_.server, path,
                  httplib::to_string(res.error()));
    Response r;
    r.status = res->status;
    try {
      r.body = res->body.empty() ? json::object() : json::parse(res->body);
    } catch (const json::exception&) {
      r.body = json{{"message", res->body}};
    }
    return r;
  }

  // A watch: newline-delimited JSON events ({"type": ..., "object": ...}) passed to on_event
  // until it returns false or the server ends the stream. Returns whether on_event stopped it.
  // The server ends the watch after timeoutSeconds; reads wait a little longer than that.
  Result<bool> watch(const std::string& path, int timeout_seconds,
                     const std::function<bool(const json&)>& on_event) {
    auto cli = client();
    if (!cli) return tl::unexpected(cli.error());
    auto headers = requestHeaders();
    if (!headers) return tl::unexpected(headers.error());
    (*cli)->set_read_timeout(timeout_seconds + 10);
    std::string buffer, error_body;
    bool stopped = false;
    auto res = (*cli)->Get(prefix_ + path, *headers, [&](const char* data, std::size_t n) {
      buffer.append(data, n);
      std::size_t nl;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        const std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        if (line.empty()) continue;
        json event;
        try {
          event = json::parse(line);
        } catch (const json::exception&) {
          error_body = line;
          return false;
        }
        if (!event.contains("type")) {  // a Status object instead of an event
          error_body = line;
          return false;
        }
        if (!on_event(event)) {
          stopped = true;
          return false;
        }
      }
      return true;
    });
    (*cli)->set_read_timeout(kReadTimeoutSeconds);
    if (stopped) return true;
    if (!error_body.empty())
      return fail(ErrorCode::kIo, "watch {}{}: {}", access_.server, path, error_body);
    if (!res)
      return fail(ErrorCode::kUnavailable, "watch {}{}: {}", access_.server, path,
                  httplib::to_string(res.error()));
    if (res->status != 200)
      return fail(ErrorCode::kIo, "watch {}{}: status {}", access_.server, path, res->status);
    return false;
  }

 private:
  // The token as its file holds it now: a projected service-account token is replaced by the
  // kubelet within its hour (client-go re-reads it too); a token given inline is fixed.
  Result<httplib::Headers> requestHeaders() {
    httplib::Headers headers = {{"Accept", "application/json"}};
    std::string token = access_.token;
    if (token_file_) {
      auto t = token_file_->current();
      if (!t) return tl::unexpected(t.error());
      token = **t;
    }
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    return headers;
  }

  Result<httplib::ClientImpl*> client() {
    auto tls = tls_->current();
    if (!tls) return tl::unexpected(tls.error());
    if (cli_ && *tls == tls_in_use_) return cli_.get();
    // First use, or rotated TLS files: a new client, so that the next connection's handshake
    // uses them (cpp-httplib fixes a client's certificate and CA store when it is made).
    tls_in_use_ = *tls;
    const std::string& s = access_.server;
    const bool https = s.rfind("https://", 0) == 0;
    if (!https && s.rfind("http://", 0) != 0)
      return fail(ErrorCode::kInvalidArgument, "API server '{}': expected https:// or http://", s);
    std::string hostport = s.substr(https ? 8 : 7);
    // A path after host:port (a proxy's, e.g. Rancher's /k8s/clusters/ID) prefixes every request,
    // as client-go does.
    prefix_.clear();
    if (auto slash = hostport.find('/'); slash != std::string::npos) {
      prefix_ = hostport.substr(slash);
      while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
      hostport.resize(slash);
    }
    std::string host = hostport;
    int port = https ? 443 : 80;
    if (auto colon = hostport.rfind(':');
        colon != std::string::npos && hostport.find(']', colon) == std::string::npos) {
      host = hostport.substr(0, colon);
      port = std::atoi(hostport.c_str() + colon + 1);
    }
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    if (!https) {
      cli_ = std::make_unique<httplib::ClientImpl>(host, port);
    } else {
      const TlsMaterial& m = **tls;
      // SSLClient takes its own references to the certificate and key.
      auto ssl = m.cert ? std::make_unique<httplib::SSLClient>(host, port, m.cert.get(), m.key.get())
                        : std::make_unique<httplib::SSLClient>(host, port);
      ssl->enable_server_certificate_verification(true);
      if (!m.cas.empty()) {
        X509_STORE* store = X509_STORE_new();
        for (const auto& c : m.cas) X509_STORE_add_cert(store, c.get());
        ssl->set_ca_cert_store(store);  // takes ownership
      }
      cli_ = std::move(ssl);
    }
    cli_->set_connection_timeout(10);
    cli_->set_read_timeout(kReadTimeoutSeconds);
    return cli_.get();
  }

  ClusterAccess access_;
  std::shared_ptr<Reloading<std::string>> token_file_;
  std::shared_ptr<Reloading<TlsMaterial>> tls_;
  std::shared_ptr<const TlsMaterial> tls_in_use_;  // what cli_ was made with
  std::unique_ptr<httplib::ClientImpl> cli_;
  std::string prefix_;  // the server URL's path, before every request's
};

std::string apiMessage(const Response& r) {
  if (r.body.contains("message") && r.body["message"].is_string())
    return r.body["message"].get<std::string>();
  return r.body.dump();
}

// The API server's answer must hold the fields read from it in the types read (json::value()
// throws a type_error naming no field otherwise, which ended the command as an internal error).
// `shape` mirrors what is read: an object's keys give their values' shapes (an absent key passes:
// its reader has a default), an array's one element every element's, "" a string; an empty object
// or array leaves its contents to their reader (quantities: quantityOf). The error names the field
// and, inside a container's entry, the container.
Status checkShape(const json& v, const json& shape, const std::string& path = "",
                  const std::string& container = "") {
  if (v.type() != shape.type())
    return fail(ErrorCode::kParse, "unexpected answer from the API server: {}{} is {} {}, expected {}",
                path, container.empty() ? "" : " (container " + container + ")",
                v.is_object() || v.is_array() ? "an" : "a", v.type_name(),
                shape.is_object() ? "an object" : shape.is_array() ? "an array" : "a string");
  if (shape.is_object()) {
    for (const auto& [k, sub] : shape.items())
      if (v.contains(k))
        if (auto st = checkShape(v[k], sub, path.empty() ? k : path + "." + k, container); !st)
          return st;
  } else if (shape.is_array() && !shape.empty()) {
    // containers, containerStatuses, containerPolicies, ...: entries named by container
    const bool containers = path.substr(path.rfind('.') + 1).starts_with("container");
    for (std::size_t i = 0; i < v.size(); ++i) {
      std::string name = container;
      for (const char* key : {"name", "containerName"})
        if (containers && v[i].is_object() && v[i].contains(key) && v[i][key].is_string())
          name = v[i][key].get<std::string>();
      if (auto st = checkShape(v[i], shape[0], fmt::format("{}[{}]", path, i), name); !st) return st;
    }
  }
  return ok();
}

// What the resize backend reads of a pod (from a GET or a watch event).
const json kPodShape = json::parse(R"({
  "metadata": {"resourceVersion": ""},
  "spec": {"containers": [{"name": "", "resources": {"requests": {}, "limits": {}}}]},
  "status": {"conditions": [{"type": "", "status": "", "reason": "", "message": ""}],
             "containerStatuses": [{"name": "", "resources": {"requests": {}, "limits": {}}}]}})");

// Reads a {cpu, memory} quantity map into an allocation; an error names `field`.key.
Result<Allocation> resourcesOf(const json& list, std::string_view field) {
  Allocation a;
  if (!list.is_object()) return a;
  for (const auto& [key, r] : {std::pair{"cpu", Resource::kCpu}, {"memory", Resource::kMemory}}) {
    if (!list.contains(key)) continue;
    auto v = quantityOf(list[key]);
    if (!v) return fail(v.error().code, "{}.{}: {}", field, key, v.error().message);
    a[r] = *v;
  }
  return a;
}

json quantities(const Allocation& a) {
  json j = json::object();
  if (a[Resource::kCpu]) j["cpu"] = formatCpu(*a[Resource::kCpu]);
  if (a[Resource::kMemory]) j["memory"] = formatMemory(*a[Resource::kMemory]);
  return j;
}

Status onlyCpuAndMemory(const std::string& what, const Allocation& target) {
  for (Resource r : {Resource::kDiskIo, Resource::kNetwork})
    if (target[r])
      return fail(ErrorCode::kInvalidArgument, "{}: Kubernetes manages cpu and memory only, not {}",
                  what, foresight::name(r));
  for (Resource r : {Resource::kCpu, Resource::kMemory})
    if (target[r] && (std::isinf(*target[r]) || *target[r] <= 0))
      return fail(ErrorCode::kInvalidArgument, "{}: {} must be a positive finite value", what,
                  foresight::name(r));
  return ok();
}

// ---------------------------------------------------------------------------------------------
class ResizeBackend final : public Backend {
 public:
  ResizeBackend(ClusterAccess access, Settings s) : api_(std::move(access)), s_(s) {}
  std::string name() const override { return "kubernetes"; }
  std::map<std::string, std::string> pinned() const override { return s_.pinned; }

  Result<Allocation> current(const std::string& workload) override {
    auto pod = getPod(workload);
    if (!pod) return tl::unexpected(pod.error());
    return specAllocation(pod->container, pod->what + " spec");
  }

  // From the resource metrics API (metrics-server): the container's current cpu and memory.
  Result<Allocation> usage(const std::string& workload) override {
    const auto parts = splitWorkload(workload);
    if (parts.size() < 2 || parts.size() > 3)
      return fail(ErrorCode::kInvalidArgument,
                  "kubernetes workload '{}': expected namespace/pod[/container]", workload);
    const std::string what = fmt::format("pod {}/{}", parts[0], parts[1]);
    auto r = api_.request("GET", fmt::format("/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/{}",
                                             parts[0], parts[1]));
    if (!r) return tl::unexpected(r.error());
    if (r->status != 200)
      return fail(ErrorCode::kUnavailable, "{}: no usage from the metrics API ({}): {}", what,
                  r->status, apiMessage(*r));
    static const json kMetricsShape = json::parse(R"({"containers": [{"name": "", "usage": {}}]})");
    if (auto st = checkShape(r->body, kMetricsShape); !st)
      return fail(st.error().code, "{}: metrics API: {}", what, st.error().message);
    const json containers = r->body.value("containers", json::array());
    for (const auto& c : containers)
      if (parts.size() == 3 ? c.value("name", "") == parts[2] : containers.size() == 1)
        return resourcesOf(c.value("usage", json::object()), what + ": metrics API usage");
    return fail(ErrorCode::kNotFound, "{}: no usage for container '{}' in the metrics API", what,
                parts.size() == 3 ? parts[2] : "");
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    auto pod = getPod(workload);
    if (!pod) return tl::unexpected(pod.error());
    const std::string what = pod->what;
    if (auto st = onlyCpuAndMemory(what, target); !st) return st;
    const json& res = pod->container.value("resources", json::object());
    const json old_requests = res.value("requests", json::object());
    const json old_limits = res.value("limits", json::object());
    auto want = resizedResources(pod->container, target);
    if (!want) return fail(want.error().code, "{}: {}", what, want.error().message);
    // The API server refuses a resize that changes the pod's QoS class: say so before asking.
    json after = pod->containers;
    for (auto& c : after)
      if (c.value("name", "") == pod->container_name)
        c["resources"] = {{"requests", want->first}, {"limits", want->second}};
    if (const std::string from = qosClass(pod->containers), to = qosClass(after); from != to)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: setting {} would make the pod {} (it is {}); a resize may not change a pod's "
                  "QoS class: give the container {}",
                  what, format(target), to, from,
                  from == "BestEffort" ? "requests in its spec first"
                                       : "requests below its limits, or limits, in its spec first");
    // Compare values, not spellings: "2" and "2000m" are the same cpu.
    auto normal = [](const json& list, const std::string& k) -> std::string {
      if (!list.contains(k) || list[k].is_null()) return "";
      auto v = quantityOf(list[k]);
      if (!v) return "";
      return k == "cpu" ? formatCpu(*v) : formatMemory(*v);
    };
    bool same = true;
    for (const auto& [k, v] : want->first.items())
      if (normal(old_requests, k) != normal(want->first, k)) same = false;
    for (const auto& [k, v] : want->second.items())
      if (normal(old_limits, k) != normal(want->second, k)) same = false;
    if (same) return ok();

    auto st = patchResources(*pod, want->first, want->second);
    if (!st) return st;
    auto done = waitForResize(*pod, target);
    if (done) return ok();
    // Put back what was there. Every key written was there before (resizedResources refuses a
    // resource with neither), but a request only where the API server defaults it to the limit.
    json back_req = json::object(), back_lim = json::object();
    for (const auto& [k, v] : want->first.items())
      back_req[k] = old_requests.contains(k) ? old_requests[k] : old_limits[k];
    for (const auto& [k, v] : want->second.items()) back_lim[k] = old_limits[k];
    auto undo = patchResources(*pod, back_req, back_lim);
    return fail(done.error().code, "{}{}", done.error().message,
                undo ? " (previous resources restored)"
                     : "; restoring the previous resources failed: " + undo.error().message);
  }

 private:
  struct Pod {
    std::string ns, name, container_name, what;
    json container;
    json containers;  // all of spec.containers, for the QoS class
  };

  // Kubernetes' QoS class of a pod from its containers' cpu and memory (requests default to
  // limits where only a limit is set).
  static std::string qosClass(const json& containers) {
    bool any = false, guaranteed = true;
    for (const auto& c : containers) {
      const json res = c.value("resources", json::object());
      const json req = res.value("requests", json::object()), lim = res.value("limits", json::object());
      for (const char* k : {"cpu", "memory"}) {
        const bool has_req = req.contains(k) && !req[k].is_null();
        const bool has_lim = lim.contains(k) && !lim[k].is_null();
        any = any || has_req || has_lim;
        if (!has_lim) {
          guaranteed = false;
        } else if (has_req) {
          auto a = quantityOf(req[k]), b = quantityOf(lim[k]);
          if (!a || !b || *a != *b) guaranteed = false;
        }
      }
    }
    return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
  }

  // The requests and limits that give the container `target`, keeping what makes its QoS class:
  // the allocation is the limit (the request where there is none, as current() reads it); a
  // request below its limit keeps its share of the limit (as the VPA scales limits with requests),
  // and a request-only resource stays request-only. A resource with neither is refused: a resize
  // may not remove a request or limit once set (Kubernetes docs, "Resize CPU and Memory Resources
  // assigned to Containers", Limitations), so nothing could roll it back.
  static Result<std::pair<json, json>> resizedResources(const json& container, const Allocation& target) {
    const json res = container.value("resources", json::object());
    const json req = res.value("requests", json::object()), lim = res.value("limits", json::object());
    json requests = json::object(), limits = json::object();
    for (Resource r : {Resource::kCpu, Resource::kMemory}) {
      if (!target[r]) continue;
      const std::string k(foresight::name(r));
      const double t = *target[r];
      auto text = [&](double v) { return r == Resource::kCpu ? formatCpu(v) : formatMemory(v); };
      const bool has_req = req.contains(k) && !req[k].is_null();
      const bool has_lim = lim.contains(k) && !lim[k].is_null();
      if (has_lim) {
        auto l = quantityOf(lim[k]);
        if (!l) return fail(l.error().code, "resources.limits.{}: {}", k, l.error().message);
        double share = 1;
        if (has_req) {
          auto q = quantityOf(req[k]);
          if (!q) return fail(q.error().code, "resources.requests.{}: {}", k, q.error().message);
          if (*l > 0) share = std::min(1.0, *q / *l);
        }
        limits[k] = text(t);
        requests[k] = text(t * share);
      } else if (has_req) {
        requests[k] = text(t);
      } else {
        return fail(ErrorCode::kInvalidArgument,
                    "it has no {0} request or limit, and a resize that adds one cannot be rolled "
                    "back (Kubernetes refuses to remove a request or limit once set): give the "
                    "container a {0} request in its spec first",
                    k);
      }
    }
    return std::pair{requests, limits};
  }

  Result<Pod> getPod(const std::string& workload) {
    const auto parts = splitWorkload(workload);
    if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty())
      return fail(ErrorCode::kInvalidArgument,
                  "kubernetes workload '{}': expected namespace/pod[/container]", workload);
    Pod p{parts[0], parts[1], parts.size() == 3 ? parts[2] : "", "", {}, {}};
    p.what = fmt::format("pod {}/{}", p.ns, p.name);
    auto r = api_.request("GET", fmt::format("/api/v1/namespaces/{}/pods/{}", p.ns, p.name));
    if (!r) return tl::unexpected(r.error());
    if (r->status == 404) return fail(ErrorCode::kNotFound, "{}: not found", p.what);
    if (r->status != 200)
      return fail(ErrorCode::kIo, "{}: GET returned {}: {}", p.what, r->status, apiMessage(*r));
    if (auto st = checkShape(r->body, kPodShape); !st)
      return fail(st.error().code, "{}: {}", p.what, st.error().message);
    if (!r->body.contains("spec") || !r->body["spec"].contains("containers"))
      return fail(ErrorCode::kParse, "{}: unexpected answer from the API server: no spec.containers",
                  p.what);
    const json containers = r->body["spec"]["containers"];
    p.containers = containers;
    if (p.container_name.empty()) {
      if (containers.size() != 1)
        return fail(ErrorCode::kInvalidArgument,
                    "{} has {} containers: name one (namespace/pod/container)", p.what,
                    containers.size());
      p.container_name = containers[0].value("name", "");
    }
    for (const auto& c : containers)
      if (c.value("name", "") == p.container_name) p.container = c;
    if (p.container.is_null())
      return fail(ErrorCode::kNotFound, "{}: no container '{}'", p.what, p.container_name);
    p.what += "/" + p.container_name;
    return p;
  }

  // Limits where set, else requests: the limit is what the kernel enforces.
  static Result<Allocation> specAllocation(const json& container, const std::string& what) {
    const json res = container.value("resources", json::object());
    auto limits = resourcesOf(res.value("limits", json::object()), what + " resources.limits");
    auto requests =
        resourcesOf(res.value("requests", json::object()), what + " resources.requests");
    if (!limits) return tl::unexpected(limits.error());
    if (!requests) return tl::unexpected(requests.error());
    Allocation a = *limits;
    for (Resource r : {Resource::kCpu, Resource::kMemory})
      if (!a[r]) a[r] = (*requests)[r];
    return a;
  }

  Status patchResources(const Pod& p, const json& requests, const json& limits) {
    const json patch = {{"spec",
                         {{"containers",
                           json::array({{{"name", p.container_name},
                                         {"resources",
                                          {{"requests", requests}, {"limits", limits}}}}})}}}};
    auto r = api_.request("PATCH",
                          fmt::format("/api/v1/namespaces/{}/pods/{}/resize", p.ns, p.name),
                          patch.dump(), "application/strategic-merge-patch+json");
    if (!r) return tl::unexpected(r.error());
    if (r->status == 404)
      return fail(ErrorCode::kUnavailable,
                  "{}: the pods/resize subresource is missing (in-place resize needs Kubernetes "
                  ">= 1.33): {}", p.what, apiMessage(*r));
    if (r->status != 200)
      return fail(ErrorCode::kIo, "{}: resize PATCH returned {}: {}", p.what, r->status,
                  apiMessage(*r));
    return ok();
  }

  // A pod's resize state: done when no PodResizePending/PodResizeInProgress condition is left
  // and status.containerStatuses[].resources show the target; Infeasible is final.
  enum class State { kDone, kInfeasible, kWaiting };
  static State resizeState(const json& pod, const std::string& container, const Allocation& target,
                           std::string& detail) {
    const json status = pod.value("status", json::object());
    bool busy = false;
    for (const auto& c : status.value("conditions", json::array())) {
      const std::string type = c.value("type", "");
      if (type != "PodResizePending" && type != "PodResizeInProgress") continue;
      if (c.value("status", "True") != "True") continue;
      const std::string reason = c.value("reason", "");
      detail = fmt::format("{}{}{}", type, reason.empty() ? "" : "/" + reason,
                           c.contains("message") ? ": " + c.value("message", "") : "");
      if (type == "PodResizePending" && reason == "Infeasible") return State::kInfeasible;
      busy = true;
    }
    if (busy) return State::kWaiting;
    for (const auto& cs : status.value("containerStatuses", json::array())) {
      if (cs.value("name", "") != container) continue;
      auto actual = specAllocation(cs, "status");  // limits, else requests: what current() reads
      if (!actual) {
        detail = actual.error().message;
        return State::kWaiting;
      }
      for (Resource r : {Resource::kCpu, Resource::kMemory})
        if (target[r] && (!(*actual)[r] ||
                          formatQuantity(r, *(*actual)[r]) != formatQuantity(r, *target[r]))) {
          detail = "container status still shows " + format(*actual);
          return State::kWaiting;
        }
      return State::kDone;
    }
    detail = "no container status yet";
    return State::kWaiting;
  }

  // Reads the pod once, then watches it (fieldSelector on its name, from the resourceVersion
  // read) until the kubelet finishes, refuses, or the watch times out.
  Status waitForResize(const Pod& p, const Allocation& target) {
    auto r = api_.request("GET", fmt::format("/api/v1/namespaces/{}/pods/{}", p.ns, p.name));
    if (!r) return tl::unexpected(r.error());
    if (r->status != 200)
      return fail(ErrorCode::kIo, "{}: GET returned {}: {}", p.what, r->status, apiMessage(*r));
    if (auto st = checkShape(r->body, kPodShape); !st)
      return fail(st.error().code, "{}: {}", p.what, st.error().message);
    std::string detail = "no status yet";
    State state = resizeState(r->body, p.container_name, target, detail);
    if (state == State::kWaiting) {
      const std::string rv = r->body.value("metadata", json::object()).value("resourceVersion", "");
      const std::string path = fmt::format(
          "/api/v1/namespaces/{}/pods?watch=true&fieldSelector={}&timeoutSeconds={}{}", p.ns,
          httplib::detail::encode_query_param("metadata.name=" + p.name),
          s_.resize_timeout_seconds, rv.empty() ? "" : "&resourceVersion=" + rv);
      static const json kEventShape = {{"type", ""}, {"object", kPodShape}};
      Status bad = ok();
      auto watched = api_.watch(path, s_.resize_timeout_seconds, [&](const json& event) {
        if (bad = checkShape(event, kEventShape); !bad) return false;
        const std::string type = event.value("type", "");
        if (type == "DELETED") {
          detail = "pod deleted";
          state = State::kInfeasible;
          return false;
        }
        if (type != "ADDED" && type != "MODIFIED") return true;  // BOOKMARK, ERROR: go on
        state = resizeState(event.value("object", json::object()), p.container_name, target,
                            detail);
        return state == State::kWaiting;
      });
      if (!watched) return tl::unexpected(watched.error());
      if (!bad) return fail(bad.error().code, "{}: watch event: {}", p.what, bad.error().message);
    }
    if (state == State::kDone) return ok();
    if (state == State::kInfeasible)
      return fail(ErrorCode::kInvalidArgument, "{}: resize refused: {}", p.what, detail);
    return fail(ErrorCode::kUnavailable, "{}: resize not done within {} s ({})", p.what,
                s_.resize_timeout_seconds, detail);
  }

  static std::string formatQuantity(Resource r, double v) {
    return r == Resource::kCpu ? formatCpu(v) : formatMemory(v);
  }

  ApiClient api_;
  Settings s_;
};

// ---------------------------------------------------------------------------------------------
class VpaBackend final : public Backend {
 public:
  VpaBackend(ClusterAccess access, Settings s) : api_(std::move(access)), s_(s) {}
  std::string name() const override { return "kubernetes"; }
  std::map<std::string, std::string> pinned() const override { return s_.pinned; }

  Result<Allocation> current(const std::string& workload) override {
    auto v = getVpa(workload);
    if (!v) return tl::unexpected(v.error());
    if (v->entry.is_null()) return Allocation{};
    return resourcesOf(v->entry.value("target", json::object()), v->what + " status target");
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    return recommend(workload, target, nullptr, nullptr);
  }

  // Bounds absent: target x lower_ratio / upper_ratio.
  Status recommend(const std::string& workload, const Allocation& target, const Allocation* lower,
                   const Allocation* upper) {
    auto v = getVpa(workload);
    if (!v) return tl::unexpected(v.error());
    if (auto st = onlyCpuAndMemory(v->what, target); !st) return st;
    if (v->off)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: its containerPolicies set mode Off: the VPA takes no recommendation for it",
                  v->what);
    bool any = false;
    for (Resource r : {Resource::kCpu, Resource::kMemory})
      any = any || (target[r] && v->controlled[r == Resource::kCpu ? 0 : 1]);
    if (!any)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: its controlledResources name none of {}; nothing to recommend", v->what,
                  format(target));
    const json mine = v->entry.is_null() ? json::object() : v->entry;

    // Resources not in the target keep their recommendation.
    auto old = resourcesOf(mine.value("uncappedTarget", mine.value("target", json::object())),
                           v->what + " status uncappedTarget");
    if (!old) return tl::unexpected(old.error());
    Allocation uncapped = *old;
    for (Resource r : {Resource::kCpu, Resource::kMemory}) {
      if (target[r]) uncapped[r] = target[r];
      if (!v->controlled[r == Resource::kCpu ? 0 : 1]) uncapped[r].reset();  // not the VPA's to set
    }
    // bound: explicit values where given (never above/below the target), else target x ratio;
    // then the container policy's minAllowed/maxAllowed, as the stock recommender caps.
    auto capped = [&](double ratio, const Allocation* bound, bool is_lower) {
      Allocation a;
      for (Resource r : {Resource::kCpu, Resource::kMemory}) {
        if (!uncapped[r]) continue;
        double x = *uncapped[r] * ratio;
        if (bound && (*bound)[r] && std::isfinite(*(*bound)[r]))
          x = is_lower ? std::min(*(*bound)[r], *uncapped[r]) : std::max(*(*bound)[r], *uncapped[r]);
        a[r] = std::clamp(x, v->min[r].value_or(0.0), v->max[r].value_or(INFINITY));
      }
      return a;
    };
    json rec = {{"containerName", v->container},
                {"target", quantities(capped(1.0, nullptr, false))},
                {"lowerBound", quantities(capped(s_.lower_ratio, lower, true))},
                {"upperBound", quantities(capped(s_.upper_ratio, upper, false))},
                {"uncappedTarget", quantities(uncapped)}};
    if (rec == mine) return ok();
    return writeRecommendation(*v, rec);
  }

  // The container's recommendation entry as it is (null: none yet), so that a rollback of the
  // first recommendation removes it instead of needing an "unlimited" the VPA cannot take.
  Result<json> snapshot(const std::string& workload) override {
    auto v = getVpa(workload);
    if (!v) return tl::unexpected(v.error());
    return json{{"recommendation", v->entry}};
  }

  Status restore(const std::string& workload, const json& snap) override {
    auto v = getVpa(workload);
    if (!v) return tl::unexpected(v.error());
    if (!snap.is_object() || !snap.contains("recommendation") ||
        !(snap["recommendation"].is_null() || snap["recommendation"].is_object()))
      return fail(ErrorCode::kParse, "{}: snapshot has no recommendation entry", v->what);
    if (v->entry == snap["recommendation"]) return ok();
    return writeRecommendation(*v, snap["recommendation"]);
  }

 private:
  struct Vpa {
    std::string path, container, what;
    json body;
    json entry;           // status's recommendation for the container (null: none yet)
    Allocation min, max;  // spec.resourcePolicy caps for the container
    bool off = false;     // the container policy's mode: Off (no recommendation at all)
    std::array<bool, 2> controlled{true, true};  // cpu, memory: its controlledResources
  };

  // Replaces the container's entry in status.recommendation with `entry` (null: removes it), with
  // the stock recommender's patch: one "add" of the whole status (conditions kept).
  Status writeRecommendation(const Vpa& v, const json& entry) {
    json status = v.body.value("status", json::object());
    json new_recs = json::array();
    bool replaced = false;
    for (const auto& r : recommendations(v.body)) {
      if (r.value("containerName", "") != v.container) {
        new_recs.push_back(r);
      } else if (!entry.is_null()) {
        new_recs.push_back(entry);
        replaced = true;
      }
    }
    if (!replaced && !entry.is_null()) new_recs.push_back(entry);
    status["recommendation"] = {{"containerRecommendations", new_recs}};
    const json patch = json::array({{{"op", "add"}, {"path", "/status"}, {"value", status}}});
    auto r = api_.request("PATCH", v.path + "/status", patch.dump(), "application/json-patch+json");
    if (!r) return tl::unexpected(r.error());
    if (r->status != 200)
      return fail(ErrorCode::kIo, "{}: status PATCH returned {}: {}", v.what, r->status,
                  apiMessage(*r));
    return ok();
  }

  static json recommendations(const json& vpa) {
    const json status = vpa.value("status", json::object());
    return status.value("recommendation", json::object())
        .value("containerRecommendations", json::array());
  }

  Result<Vpa> getVpa(const std::string& workload) {
    const auto parts = splitWorkload(workload);
    if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[2].empty())
      return fail(ErrorCode::kInvalidArgument,
                  "kubernetes vpa workload '{}': expected namespace/vpa/container", workload);
    Vpa v;
    v.path = fmt::format("/apis/autoscaling.k8s.io/v1/namespaces/{}/verticalpodautoscalers/{}",
                         parts[0], parts[1]);
    v.container = parts[2];
    v.what = fmt::format("VPA {}/{} container {}", parts[0], parts[1], parts[2]);
    auto r = api_.request("GET", v.path);
    if (!r) return tl::unexpected(r.error());
    if (r->status == 404) return fail(ErrorCode::kNotFound, "{}: not found", v.what);
    if (r->status != 200)
      return fail(ErrorCode::kIo, "{}: GET returned {}: {}", v.what, r->status, apiMessage(*r));
    static const json kVpaShape = json::parse(R"({
      "spec": {"recommenders": [{"name": ""}],
               "resourcePolicy": {"containerPolicies": [{"containerName": "", "mode": "",
                   "controlledResources": [], "minAllowed": {}, "maxAllowed": {}}]}},
      "status": {"recommendation": {"containerRecommendations": [{"containerName": "",
          "target": {}, "lowerBound": {}, "upperBound": {}, "uncappedTarget": {}}]}}})");
    if (auto st = checkShape(r->body, kVpaShape); !st)
      return fail(st.error().code, "{}: {}", v.what, st.error().message);
    v.body = r->body;
    for (const auto& rec : recommendations(v.body))
      if (rec.value("containerName", "") == v.container) v.entry = rec;
    const json spec = v.body.value("spec", json::object());
    bool ours = false;
    for (const auto& rec : spec.value("recommenders", json::array()))
      if (rec.value("name", "") == s_.recommender) ours = true;
    if (!ours)
      return fail(ErrorCode::kInvalidArgument,
                  "{}: spec.recommenders does not name '{}'; another recommender owns it", v.what,
                  s_.recommender);
    const json policies =
        spec.value("resourcePolicy", json::object()).value("containerPolicies", json::array());
    json policy;
    for (const auto& p : policies) {
      const std::string n = p.value("containerName", "");
      if (n == v.container || (n == "*" && policy.is_null())) policy = p;
    }
    if (!policy.is_null()) {
      // As the stock recommender: no recommendation for a container whose mode is Off, and only
      // the resources its controlledResources name (default both).
      v.off = policy.value("mode", "Auto") == "Off";
      if (policy.contains("controlledResources")) {
        v.controlled = {false, false};
        for (const auto& c : policy["controlledResources"]) {
          if (c == "cpu") v.controlled[0] = true;
          if (c == "memory") v.controlled[1] = true;
        }
      }
      auto mn = resourcesOf(policy.value("minAllowed", json::object()), v.what + " minAllowed");
      auto mx = resourcesOf(policy.value("maxAllowed", json::object()), v.what + " maxAllowed");
      if (!mn) return tl::unexpected(mn.error());
      if (!mx) return tl::unexpected(mx.error());
      v.min = *mn;
      v.max = *mx;
    }
    return v;
  }

  ApiClient api_;
  Settings s_;
};

}  // namespace

Status recommend(Backend& backend, const std::string& workload, const Allocation& target,
                 const Allocation& lower, const Allocation& upper) {
  auto* vpa = dynamic_cast<VpaBackend*>(&backend);
  if (!vpa)
    return fail(ErrorCode::kInvalidArgument,
                "{}: recommend() needs the kubernetes backend in vpa mode (got {})", workload,
                backend.name());
  return vpa->recommend(workload, target, &lower, &upper);
}

std::unique_ptr<Backend> makeBackend(ClusterAccess access, Settings settings) {
  if (settings.mode == "vpa") return std::make_unique<VpaBackend>(std::move(access), settings);
  return std::make_unique<ResizeBackend>(std::move(access), settings);
}

}  // namespace foresight::allocate::k8s

namespace foresight::allocate {

// Options: mode, kubeconfig (default $KUBECONFIG, then ~/.kube/config, then in-cluster), context,
// recommender, resize_timeout (seconds), lower_ratio, upper_ratio, service_account_dir.
std::unique_ptr<Backend> makeKubernetesBackend(const BackendOptions& o) {
  k8s::Settings s;
  s.mode = o.get("mode", "resize");
  s.recommender = o.get("recommender", s.recommender);
  try {
    s.resize_timeout_seconds =
        std::stoi(o.get("resize_timeout", std::to_string(s.resize_timeout_seconds)));
    s.lower_ratio = std::stod(o.get("lower_ratio", std::to_string(s.lower_ratio)));
    s.upper_ratio = std::stod(o.get("upper_ratio", std::to_string(s.upper_ratio)));
  } catch (const std::exception&) {
    return makeMisconfiguredBackend("kubernetes",
        Error{ErrorCode::kInvalidArgument, "kubernetes: a numeric backend option is not a number"});
  }
  if (s.mode != "resize" && s.mode != "vpa")
    return makeMisconfiguredBackend("kubernetes",
        Error{ErrorCode::kInvalidArgument,
              fmt::format("kubernetes: mode '{}' (expected resize or vpa)", s.mode)});
  std::string kubeconfig = o.get("kubeconfig");
  if (kubeconfig.empty()) {
    if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
      kubeconfig = env;
      if (auto colon = kubeconfig.find(':'); colon != std::string::npos) kubeconfig.resize(colon);
    } else if (const char* home = std::getenv("HOME");
               home && std::filesystem::exists(std::string(home) + "/.kube/config")) {
      kubeconfig = std::string(home) + "/.kube/config";
    }
  }
  auto access = kubeconfig.empty()
                    ? k8s::loadInCluster(o.get("service_account_dir",
                                               "/var/run/secrets/kubernetes.io/serviceaccount"))
                    : k8s::loadKubeconfig(kubeconfig, o.get("context"));
  if (!access) return makeMisconfiguredBackend("kubernetes", access.error());
  // A record pins its server: a context that now points elsewhere must not receive its rollback.
  if (const std::string want = o.get("server"); !want.empty() && want != access->server)
    return makeMisconfiguredBackend(
        "kubernetes",
        Error{
            ErrorCode::kInvalidArgument,
            fmt::format("kubernetes: {} now points to {}, not to {} (option server)",
                        kubeconfig.empty() ? std::string("the in-cluster service account")
                                           : fmt::format("context '{}' of {}", access->context,
                                                         kubeconfig),
                        access->server, want)});
  s.pinned["server"] = access->server;
  if (!kubeconfig.empty()) {
    s.pinned["kubeconfig"] = std::filesystem::absolute(kubeconfig).string();
    s.pinned["context"] = access->context;
  }
  return k8s::makeBackend(std::move(*access), s);
}

}  // namespace foresight::allocate
