#include "tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "foresight/core/log.h"

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

std::string nameOf(const X509_NAME* name) {
  char buf[256];
  X509_NAME_oneline(name, buf, sizeof buf);
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
  if (p.client_cas) {
    // The CAs as they are now, for this connection: takes its own references, as below.
    if (SSL_set1_verify_cert_store(ssl, p.client_cas.get()) != 1) return 0;
    STACK_OF(X509_NAME)* names = SSL_dup_CA_list(p.client_ca_names.get());
    if (!names) return 0;
    SSL_set_client_CA_list(ssl, names);  // owns `names` from here
  }
  // Takes its own references (OpenSSL's SSL_use_cert_and_key), so a reload during this
  // connection leaves it its certificate.
  return SSL_use_cert_and_key(ssl, p.cert.get(), p.key.get(), p.chain.get(), 1);
}

Status loadClientCas(const std::filesystem::path& file, CertificateAndKey& out) {
  auto f = openPem(file);
  if (!f) return tl::unexpected(f.error());
  out.client_cas.reset(X509_STORE_new(), &X509_STORE_free);
  out.client_ca_names.reset(sk_X509_NAME_new_null(), [](STACK_OF(X509_NAME)* s) { sk_X509_NAME_pop_free(s, X509_NAME_free); });
  if (!out.client_cas || !out.client_ca_names) return fail(ErrorCode::kInternal, "{}: out of memory", file.string());
  int n = 0;
  while (X509* c = PEM_read_X509(f->get(), nullptr, nullptr, nullptr)) {
    const std::unique_ptr<X509, void (*)(X509*)> owned(c, &X509_free);
    ++n;
    if (X509_STORE_add_cert(out.client_cas.get(), c) != 1 ||
        !sk_X509_NAME_push(out.client_ca_names.get(), X509_NAME_dup(X509_get_subject_name(c)))) {
      return fail(ErrorCode::kParse, "{}: certificate {}: {}", file.string(), n, openSslError());
    }
  }
  ERR_clear_error();  // the end of the file
  if (n == 0) return fail(ErrorCode::kParse, "{}: no PEM certificate (the client CAs of tls_client_ca_file)", file.string());
  return ok();
}

// The CRLs of the client CAs: each must be signed by one of them (a CRL of another CA would revoke
// nothing). Every certificate of a client's chain is checked, as nginx's ssl_crl does
// (X509_V_FLAG_CRL_CHECK_ALL): a root's CRL that revokes an intermediate CA refuses the clients
// that intermediate issued, which a check of the client's own certificate alone lets through. So
// every CA of a chain needs its CRL here; a client whose chain has a CA without one is refused,
// and each such CA is named when the file loads.
Status loadClientCrls(const std::filesystem::path& file, CertificateAndKey& out) {
  auto f = openPem(file);
  if (!f) return tl::unexpected(f.error());
  std::vector<X509*> cas;
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(out.client_cas.get());
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i)
    if (X509* c = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i))) cas.push_back(c);
  int n = 0;
  std::vector<bool> has_crl(cas.size(), false);
  while (X509_CRL* crl = PEM_read_X509_CRL(f->get(), nullptr, nullptr, nullptr)) {
    const std::unique_ptr<X509_CRL, void (*)(X509_CRL*)> owned(crl, &X509_CRL_free);
    ++n;
    const X509_NAME* issuer = X509_CRL_get_issuer(crl);
    bool signed_by_a_ca = false;
    for (std::size_t i = 0; i < cas.size(); ++i)
      if (X509_NAME_cmp(X509_get_subject_name(cas[i]), issuer) == 0 && X509_CRL_verify(crl, X509_get0_pubkey(cas[i])) == 1)
        signed_by_a_ca = has_crl[i] = true;
    ERR_clear_error();
    if (!signed_by_a_ca)
      return fail(ErrorCode::kParse, "{}: CRL {} (issuer {}): not signed by any CA of tls_client_ca_file",
                  file.string(), n, nameOf(issuer));
    if (const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl); next && X509_cmp_current_time(next) < 0)
      spdlog::warn("{}: CRL {} is past its next update: OpenSSL refuses the client certificates of its CA "
                   "until a renewed CRL is written there", file.string(), n);
    if (X509_STORE_add_crl(out.client_cas.get(), crl) != 1)
      return fail(ErrorCode::kParse, "{}: CRL {}: {}", file.string(), n, openSslError());
  }
  ERR_clear_error();  // the end of the file
  if (n == 0) return fail(ErrorCode::kParse, "{}: no PEM CRL (tls_client_crl_file)", file.string());
  for (std::size_t i = 0; i < cas.size(); ++i)
    if (!has_crl[i])
      spdlog::warn("{}: no CRL of client CA {}: clients whose chain has it are refused", file.string(),
                   nameOf(X509_get_subject_name(cas[i])));
  X509_STORE_set_flags(out.client_cas.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  return ok();
}

// A refused client certificate is logged with OpenSSL's reason, as nginx logs "client SSL
// certificate verify error": the handshake ends before any request, so otherwise only the client
// learns that it was revoked or that a CRL expired. Once a minute per reason (a scraper retries
// every few seconds; a key per client would let a flood of certificates grow the map), naming
// the client of the refusal said.
struct RefusedClients {
  std::mutex mutex;
  RepeatedLog log;
};

int refusedClientsIndex() {
  static const int index = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void*, void* p, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<RefusedClients*>(p); });
  return index;
}

int logRefusedClient(int ok, X509_STORE_CTX* store) {
  if (ok == 1) return ok;
  const auto* ssl = static_cast<const SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* refused = ssl ? static_cast<RefusedClients*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), refusedClientsIndex()))
                      : nullptr;
  const std::string why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(store));
  std::size_t held_back = 0;
  if (refused) {
    const std::lock_guard lock(refused->mutex);
    if (!refused->log.due(why, why, RepeatedLog::Clock::now(), held_back)) return ok;
  }
  X509* client = X509_STORE_CTX_get0_cert(store);
  X509* at = X509_STORE_CTX_get_current_cert(store);
  const int depth = X509_STORE_CTX_get_error_depth(store);
  std::string where, held;
  if (depth > 0 && at) where = fmt::format(" (at {} of its chain, depth {})", nameOf(X509_get_subject_name(at)), depth);
  if (held_back) held = fmt::format(" ({} more refusals for this reason since it was last said)", held_back);
  spdlog::warn("refused the client certificate {}: {}{}{}",
               client ? nameOf(X509_get_subject_name(client)) : "(none)", why, where, held);
  return ok;
}

}  // namespace

Result<CertificateAndKey> loadCertificateAndKey(const std::filesystem::path& cert_file,
                                                const std::filesystem::path& key_file,
                                                const std::filesystem::path& client_ca_file,
                                                const std::filesystem::path& client_crl_file) {
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
  if (!client_ca_file.empty())
    if (auto st = loadClientCas(client_ca_file, out); !st) return tl::unexpected(st.error());
  if (!client_crl_file.empty())
    if (auto st = loadClientCrls(client_crl_file, out); !st) return tl::unexpected(st.error());
  return out;
}

std::shared_ptr<ReloadingCertificate> reloadingCertificate(const std::filesystem::path& cert_file,
                                                           const std::filesystem::path& key_file,
                                                           const std::filesystem::path& client_ca_file,
                                                           const std::filesystem::path& client_crl_file) {
  std::vector files{cert_file, key_file};
  std::string what = "TLS certificate " + cert_file.string() + " and key " + key_file.string();
  if (!client_ca_file.empty()) {
    files.push_back(client_ca_file);
    what += " and client CAs " + client_ca_file.string();
  }
  if (!client_crl_file.empty()) {
    files.push_back(client_crl_file);
    what += " and their CRLs " + client_crl_file.string();
  }
  return std::make_shared<ReloadingCertificate>(
      std::move(files), [=] { return loadCertificateAndKey(cert_file, key_file, client_ca_file, client_crl_file); },
      std::move(what));
}

bool serveCertificate(SSL_CTX& ctx, ReloadingCertificate& source, bool client_cas) {
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  if (SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION) != 1) return false;
  SSL_CTX_set_cert_cb(&ctx, &serveCurrent, &source);
  // Asked, not required: the health check stays open to a probe without a certificate (the
  // kubelet's HTTPS probes send none); the request handler refuses every other path.
  if (client_cas) {
    if (SSL_CTX_set_ex_data(&ctx, refusedClientsIndex(), new RefusedClients) != 1) return false;
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, &logRefusedClient);
  }
  return true;
}

bool clientVerified(const SSL* ssl) {
  if (!ssl) return false;
  X509* peer = SSL_get0_peer_certificate(ssl);
  return peer && SSL_get_verify_result(ssl) == X509_V_OK;
}

}  // namespace foresight::server
