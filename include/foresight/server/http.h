#pragma once
// The HTTP(S) endpoint that the agent (`foresight run`) and `foresight recommend` serve /metrics
// and their /api paths on. HTTPS when given a certificate and key (mutual TLS with a client CA
// file); a bearer token on every path but /api/health (a liveness probe carries no credentials);
// 405 with Allow for a method other than GET or HEAD on a served path; SO_REUSEADDR but not
// SO_REUSEPORT (a second process must not bind the same port and split the scrapes). The token,
// certificate, key and CA files are read again when they change (rotation without a restart).
//
// Thread-safety: make, get, start and stop from one controlling thread; handlers run on the
// server's workers.

#include <functional>
#include <memory>
#include <string>

#include "foresight/core/result.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace foresight::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  std::string bearer_token_file;
  std::string tls_cert_file, tls_key_file, tls_client_ca_file;
  std::string tls_client_crl_file;  // PEM CRLs of those CAs: a revoked client certificate is refused
};

class HttpEndpoint {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  // Checks the options and reads their files (errors name them); binds nothing yet.
  static Result<std::unique_ptr<HttpEndpoint>> make(const HttpOptions& options);
  ~HttpEndpoint();  // stop()
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // A GET (and HEAD) handler; before start().
  void get(const std::string& path, Handler handler);
  // Binds and serves on a thread of its own; fails when the port is taken.
  Status start();
  void stop();
  int port() const;  // the port bound (after start())
  // "https://host:port (client certificates) (bearer token)", for the log.
  std::string describe() const;

 private:
  HttpEndpoint();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace foresight::server
