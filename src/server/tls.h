#pragma once
// The agent's HTTPS certificate, served as the files hold it at each handshake so that a rotation
// (cert-manager, certbot) needs no restart. cpp-httplib 0.11's SSLServer loads its files once;
// OpenSSL's certificate callback is where a server picks the certificate per connection.

#include <openssl/ssl.h>

#include <filesystem>
#include <memory>

#include "foresight/core/reload.h"

namespace foresight::server {

struct CertificateAndKey {
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<STACK_OF(X509)> chain;  // intermediates after the leaf in the certificate file
  // Mutual TLS: the CAs a client certificate must chain to (and their CRLs, when given), and their
  // names (sent to the client so that it picks its certificate). Null without a client CA file.
  std::shared_ptr<X509_STORE> client_cas;
  std::shared_ptr<STACK_OF(X509_NAME)> client_ca_names;
};

// PEM files: the certificate (then its chain), its private key and, unless `client_ca_file` is
// empty, the CA certificates of mutual TLS, and unless `client_crl_file` is empty, those CAs' CRLs.
// Errors name the file at fault, including a key that is not the certificate's and a CRL none of
// the CAs signed.
Result<CertificateAndKey> loadCertificateAndKey(const std::filesystem::path& cert_file,
                                                const std::filesystem::path& key_file,
                                                const std::filesystem::path& client_ca_file = {},
                                                const std::filesystem::path& client_crl_file = {});

using ReloadingCertificate = Reloading<CertificateAndKey>;
std::shared_ptr<ReloadingCertificate> reloadingCertificate(const std::filesystem::path& cert_file,
                                                           const std::filesystem::path& key_file,
                                                           const std::filesystem::path& client_ca_file = {},
                                                           const std::filesystem::path& client_crl_file = {});

// Sets up a server context (TLS 1.2 or later) whose every handshake serves `source`'s current
// pair; a handshake fails only if no pair ever loaded. With `client_cas`, a client is asked for a
// certificate, and one that the current CAs did not sign fails the handshake; a client without one
// gets through it, and clientVerified() tells the request handler. `source` must outlive the context.
bool serveCertificate(SSL_CTX& ctx, ReloadingCertificate& source, bool client_cas);

// Whether the connection's client presented a certificate that verified.
bool clientVerified(const SSL* ssl);

}  // namespace foresight::server
