#include "tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstring>

namespace foresight::server {
namespace {

std::string openSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no PEM block";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

Result<File> openPem(const std::filesystem::path& path) {
  File f(std::fopen(path.c_str(), "r"), &std::fclose);
  if (!f) return fail(ErrorCode::kNotFound, "{}: cannot read: {}", path.string(), std::strerror(errno));
  return f;
}

int serveCurrent(SSL* ssl, void* arg) {
  auto pair = static_cast<ReloadingCertificate*>(arg)->current();
  if (!pair) return 0;
  const CertificateAndKey& p = **pair;
  // Takes its own references (OpenSSL's SSL_use_cert_and_key), so a reload during this
  // connection leaves it its certificate.
  return SSL_use_cert_and_key(ssl, p.cert.get(), p.key.get(), p.chain.get(), 1);
}

}  // namespace

Result<CertificateAndKey> loadCertificateAndKey(const std::filesystem::path& cert_file,
                                                const std::filesystem::path& key_file) {
  ERR_clear_error();
  auto cf = openPem(cert_file);
  if (!cf) return tl::unexpected(cf.error());
  CertificateAndKey out;
  out.cert.reset(PEM_read_X509(cf->get(), nullptr, nullptr, nullptr), &X509_free);
  if (!out.cert) return fail(ErrorCode::kParse, "{}: not a PEM certificate: {}", cert_file.string(), openSslError());
  out.chain.reset(sk_X509_new_null(), [](STACK_OF(X509)* s) { sk_X509_pop_free(s, X509_free); });
  while (X509* c = PEM_read_X509(cf->get(), nullptr, nullptr, nullptr)) sk_X509_push(out.chain.get(), c);
  ERR_clear_error();  // the end of the file ends the chain
  auto kf = openPem(key_file);
  if (!kf) return tl::unexpected(kf.error());
  out.key.reset(PEM_read_PrivateKey(kf->get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!out.key) return fail(ErrorCode::kParse, "{}: not a PEM private key: {}", key_file.string(), openSslError());
  if (X509_check_private_key(out.cert.get(), out.key.get()) != 1) {
    ERR_clear_error();
    return fail(ErrorCode::kInvalidArgument, "{}: not the private key of the certificate in {}",
                key_file.string(), cert_file.string());
  }
  return out;
}

std::shared_ptr<ReloadingCertificate> reloadingCertificate(const std::filesystem::path& cert_file,
                                                           const std::filesystem::path& key_file) {
  return std::make_shared<ReloadingCertificate>(
      std::vector{cert_file, key_file}, [=] { return loadCertificateAndKey(cert_file, key_file); },
      "TLS certificate " + cert_file.string() + " and key " + key_file.string());
}

bool serveCertificate(SSL_CTX& ctx, ReloadingCertificate& source) {
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  if (SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION) != 1) return false;
  SSL_CTX_set_cert_cb(&ctx, &serveCurrent, &source);
  return true;
}

}  // namespace foresight::server
