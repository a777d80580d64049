#include "foresight/server/http.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "foresight/core/reload.h"
#include "tls.h"

namespace foresight::server {
namespace {

// HTTP worker threads: scrapers, the live view's clients and a few stray connections at once.
constexpr std::size_t kHttpWorkers = 32;

// Compares every byte of the secret whatever the first difference, so the time taken does not tell
// a client how much of a guess was right.
bool sameSecret(std::string_view given, std::string_view secret) {
  unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (std::size_t i = 0; i < secret.size(); ++i)
    diff |= static_cast<unsigned char>(secret[i] ^ (i < given.size() ? given[i] : '\0'));
  return diff == 0;
}

}  // namespace

struct HttpEndpoint::Impl {
  HttpOptions options;
  // Declared before `http`, whose TLS context and handlers use them, so they outlive it.
  std::shared_ptr<ReloadingCertificate> certificate;
  std::shared_ptr<Reloading<std::string>> token;
  std::unique_ptr<httplib::Server> http = std::make_unique<httplib::Server>();  // SSLServer with TLS
  std::set<std::string> paths;
  std::thread thread;
  int port = 0;
};

HttpEndpoint::HttpEndpoint() : impl_(std::make_unique<Impl>()) {}
HttpEndpoint::~HttpEndpoint() { stop(); }

Result<std::unique_ptr<HttpEndpoint>> HttpEndpoint::make(const HttpOptions& o) {
  std::unique_ptr<HttpEndpoint> e(new HttpEndpoint());
  Impl& m = *e->impl_;
  m.options = o;
  if (o.tls_cert_file.empty() != o.tls_key_file.empty())
    return fail(ErrorCode::kInvalidArgument, "tls_cert_file and tls_key_file go together: {} is missing",
                o.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file");
  if (!o.tls_client_ca_file.empty() && o.tls_cert_file.empty())
    return fail(ErrorCode::kInvalidArgument, "tls_client_ca_file needs tls_cert_file and tls_key_file: "
                "client certificates are asked for over HTTPS");
  if (!o.tls_client_crl_file.empty() && o.tls_client_ca_file.empty())
    return fail(ErrorCode::kInvalidArgument, "tls_client_crl_file needs tls_client_ca_file: the CRLs revoke "
                "client certificates of those CAs");
  const bool mutual = !o.tls_client_ca_file.empty();
  if (!o.tls_cert_file.empty()) {
    m.certificate =
        reloadingCertificate(o.tls_cert_file, o.tls_key_file, o.tls_client_ca_file, o.tls_client_crl_file);
    if (auto first = m.certificate->current(); !first) return tl::unexpected(first.error());
    m.http = std::make_unique<httplib::SSLServer>(
        [&cert = *m.certificate, mutual](SSL_CTX& ctx) { return serveCertificate(ctx, cert, mutual); });
    if (!m.http->is_valid()) return fail(ErrorCode::kInternal, "cannot set up a TLS context: {}", o.tls_cert_file);
  }
  if (!o.bearer_token_file.empty()) {
    m.token = reloadingTokenFile(o.bearer_token_file, "bearer_token_file " + o.bearer_token_file);
    if (auto first = m.token->current(); !first)
      return fail(first.error().code, "bearer_token_file {}", first.error().message);
  }
  // With a token, every path but the health check (a liveness probe carries no credentials, and
  // it tells nothing about the workloads) needs it. A wrong method on a served path is 405 with
  // Allow (RFC 9110 15.5.6); httplib alone answers 404, as if the path did not exist.
  m.http->set_pre_routing_handler([token = m.token, mutual, &paths = m.paths](const httplib::Request& req,
                                                                              httplib::Response& res) {
    if (mutual && req.path != "/api/health" && !clientVerified(req.ssl)) {
      res.status = 403;
      res.set_content(nlohmann::json{{"error", "this endpoint needs a client certificate signed by one of the CAs "
                                               "of its tls_client_ca_file"}}.dump(),
                      "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (token && req.path != "/api/health") {
      const std::string given = req.get_header_value("Authorization");
      constexpr std::string_view kScheme = "Bearer ";
      const auto secret = token->current();  // loaded at make(), so it holds a token from then on
      if (!secret || !given.starts_with(kScheme) ||
          !sameSecret(std::string_view(given).substr(kScheme.size()), **secret)) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Bearer realm=\"foresight\"");
        res.set_content(nlohmann::json{{"error", given.empty() ? "no Authorization header: this endpoint needs "
                                                                 "\"Authorization: Bearer <token>\""
                                                               : "wrong bearer token"}}.dump(),
                        "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (req.method == "GET" || req.method == "HEAD" || !paths.count(req.path))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("Allow", "GET, HEAD");
    if (req.method == "OPTIONS") {
      res.status = 204;
    } else {
      res.status = 405;
      res.set_content(nlohmann::json{{"error", req.method + " " + req.path + ": only GET and HEAD"}}.dump(),
                      "application/json");
    }
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib's default sets SO_REUSEPORT, which lets a second process bind the same port and split
  // the scrapes; keep only SO_REUSEADDR (restart without TIME_WAIT trouble).
  m.http->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // httplib's defaults (a worker per core, at least 8; 5 s to read a request) let 8 connections
  // that send nothing hold every worker, and a scrape then waits past Prometheus's 10 s timeout.
  // Idle workers cost little; a request line or header that takes over 2 s is dropped.
  m.http->new_task_queue = [] { return new httplib::ThreadPool(kHttpWorkers); };
  m.http->set_read_timeout(2);
  m.http->set_keep_alive_timeout(2);
  return e;
}

void HttpEndpoint::get(const std::string& path, Handler handler) {
  impl_->paths.insert(path);
  impl_->http->Get(path, std::move(handler));
}

Status HttpEndpoint::start() {
  Impl& m = *impl_;
  const HttpOptions& o = m.options;
  if (o.port == 0) {
    m.port = m.http->bind_to_any_port(o.host);
    if (m.port <= 0) return fail(ErrorCode::kUnavailable, "cannot bind {}:any", o.host);
  } else {
    if (!m.http->bind_to_port(o.host, o.port))
      return fail(ErrorCode::kUnavailable, "cannot bind {}:{} (in use?)", o.host, o.port);
    m.port = o.port;
  }
  m.thread = std::thread([&m] { m.http->listen_after_bind(); });
  // httplib's stop() does nothing before the listen loop runs, so an endpoint stopped right after
  // start() would hang in stop(): wait for the loop (bounded) before going on.
  for (int i = 0; i < 5000 && !m.http->is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return ok();
}

void HttpEndpoint::stop() {
  if (!impl_) return;
  impl_->http->stop();  // a no-op when it never listened
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpEndpoint::port() const { return impl_->port; }

std::string HttpEndpoint::describe() const {
  const Impl& m = *impl_;
  return fmt::format("{}://{}:{}{}{}", m.certificate ? "https" : "http", m.options.host, m.port,
                     m.options.tls_client_ca_file.empty() ? "" : " (client certificates)",
                     m.token ? " (bearer token)" : "");
}

}  // namespace foresight::server
