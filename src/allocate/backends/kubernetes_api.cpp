// The Kubernetes API client the backends and the VPA discovery share. See kubernetes_api.h.
#include "kubernetes_api.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "foresight/core/log.h"

namespace foresight::allocate::k8s {
using nlohmann::json;
}

namespace foresight::allocate::k8s {

Result<std::string> readWholeFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot read", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}


// The client side of TLS, parsed: the client certificate and key (null without one) and the CAs
// that verify the server (empty: the system's trust store).
struct TlsMaterial {
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;
  std::vector<std::shared_ptr<X509>> cas;
};

namespace {


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

}  // namespace

ApiClient::ApiClient(ClusterAccess access) : access_(std::move(access)) {
  if (!access_.token_file.empty())
    token_file_ = reloadingTokenFile(access_.token_file, "Kubernetes token " + access_.token_file);
  tls_ = reloadingTls(access_);
}

ApiClient::~ApiClient() = default;

Result<Response> ApiClient::request(const std::string& method, const std::string& path,
                                     const std::string& body, const std::string& content_type) {
  auto cli = client();
  if (!cli) return tl::unexpected(cli.error());
  auto headers = requestHeaders();
  if (!headers) return tl::unexpected(headers.error());
  if (method != "GET" && method != "PATCH" && method != "POST" && method != "PUT")
    return fail(ErrorCode::kInternal, "{} {}: the client sends GET, PATCH, POST or PUT", method, path);
  httplib::Result res = method == "GET"    ? (*cli)->Get(prefix_ + path, *headers)
                        : method == "PATCH" ? (*cli)->Patch(prefix_ + path, *headers, body, content_type)
                        : method == "POST"  ? (*cli)->Post(prefix_ + path, *headers, body, content_type)
                                            : (*cli)->Put(prefix_ + path, *headers, body, content_type);
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


Result<bool> ApiClient::watch(const std::string& path, int timeout_seconds,
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


// The token as its file holds it now: a projected service-account token is replaced by the
// kubelet within its hour (client-go re-reads it too); a token given inline is fixed.
Result<httplib::Headers> ApiClient::requestHeaders() {
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


Result<httplib::ClientImpl*> ApiClient::client() {
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
  // One connection for the requests of a round, as client-go does: a TLS handshake per request
  // would multiply the recommender's cost and the API server's (recommend_bench).
  cli_->set_keep_alive(true);
  cli_->set_tcp_nodelay(true);  // else Nagle holds a request's body for the delayed ACK (40 ms)
  cli_->set_connection_timeout(10);
  cli_->set_read_timeout(kReadTimeoutSeconds);
  return cli_.get();
}


std::string apiMessage(const Response& r) {
  if (r.body.contains("message") && r.body["message"].is_string())
    return r.body["message"].get<std::string>();
  return r.body.dump();
}


Status checkShape(const json& v, const json& shape, const std::string& path,
                  const std::string& container) {
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

Status writeVpaStatus(ApiClient& api, VpaObjects* listed, const std::string& path, const json& status,
                      const std::string& what) {
  const json patch = json::array({{{"op", "add"}, {"path", "/status"}, {"value", status}}});
  auto r = api.request("PATCH", path + "/status", patch.dump(), "application/json-patch+json");
  if (listed) {
    if (r && r->status == 200 && r->body.is_object())
      listed->put(path, r->body);
    else
      listed->erase(path);
  }
  if (!r) return tl::unexpected(r.error());
  if (r->status != 200) return fail(ErrorCode::kIo, "{}: status PATCH returned {}: {}", what, r->status, apiMessage(*r));
  return ok();
}

}  // namespace foresight::allocate::k8s
