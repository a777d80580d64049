#pragma once
// A self-signed certificate for 127.0.0.1 (IP SAN, CA:TRUE so that it is its own trust anchor),
// made in memory with OpenSSL, for the tests of TLS peers (the Kubernetes client, the agent).
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

namespace foresight::test_support {

// PEM text of a certificate, a private key or a CRL.
template <typename Write>
std::string pemText(Write&& write) {
  BIO* b = BIO_new(BIO_s_mem());
  write(b);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(b);
  return out;
}
inline std::string pemOf(X509* cert) { return pemText([&](BIO* b) { PEM_write_bio_X509(b, cert); }); }
inline std::string pemOf(EVP_PKEY* key) {
  return pemText([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
}
inline std::string pemOf(X509_CRL* crl) { return pemText([&](BIO* b) { PEM_write_bio_X509_CRL(b, crl); }); }

struct SelfSigned {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  SelfSigned(const SelfSigned&) = delete;
  SelfSigned& operator=(const SelfSigned&) = delete;
  // `cn` tells certificates apart where several are trusted together (a CA store finds an issuer
  // by name).
  explicit SelfSigned(const char* cn = "127.0.0.1") {
    key = EVP_RSA_gen(2048);
    cert = X509_new();
    X509_set_version(cert, X509_VERSION_3);  // extensions (the IP SAN) need v3: Go ignores them in v1
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                              {NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key, EVP_sha256());
  }
  ~SelfSigned() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  std::string keyPem() const { return pemOf(key); }
  std::string pem() const { return pemOf(cert); }
  // Writes the certificate and its key as PEM files in `dir` (cert.pem, key.pem).
  void writeTo(const std::filesystem::path& dir) const {
    std::ofstream(dir / "cert.pem") << pem();
    std::ofstream(dir / "key.pem") << keyPem();
  }
};

// A client certificate `ca` issued (CA:FALSE) with serial number `serial`, for mutual TLS; with
// `as_ca`, an intermediate CA (CA:TRUE) that issues others. `ca`: a SelfSigned or another Issued.
struct Issued {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  Issued(const Issued&) = delete;
  Issued& operator=(const Issued&) = delete;
  template <typename Ca>
  Issued(const Ca& ca, const char* cn, long serial, bool as_ca = false) {
    key = EVP_RSA_gen(2048);
    cert = X509_new();
    X509_set_version(cert, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(ca.cert));
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, ca.cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext =
        X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints, as_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(cert, ca.key, EVP_sha256());
  }
  ~Issued() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  std::string pem() const { return pemOf(cert); }
  void writeTo(const std::filesystem::path& dir) const {
    std::ofstream(dir / "cert.pem") << pemOf(cert);
    std::ofstream(dir / "key.pem") << pemOf(key);
  }
};

// A CRL `ca` signed that revokes the certificates with `serials`; its next update is
// `next_update_seconds` from now (negative: already past).
template <typename Ca>
std::string crlPem(const Ca& ca, std::initializer_list<long> serials, long next_update_seconds = 3600) {
  X509_CRL* crl = X509_CRL_new();
  X509_CRL_set_version(crl, 1);  // v2
  X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca.cert));
  ASN1_TIME* now = X509_gmtime_adj(nullptr, -120);
  ASN1_TIME* next = X509_gmtime_adj(nullptr, next_update_seconds);
  X509_CRL_set1_lastUpdate(crl, now);
  X509_CRL_set1_nextUpdate(crl, next);
  for (long serial : serials) {
    X509_REVOKED* r = X509_REVOKED_new();
    ASN1_INTEGER* n = ASN1_INTEGER_new();
    ASN1_INTEGER_set(n, serial);
    X509_REVOKED_set_serialNumber(r, n);
    X509_REVOKED_set_revocationDate(r, now);
    X509_CRL_add0_revoked(crl, r);
    ASN1_INTEGER_free(n);
  }
  X509_CRL_sort(crl);
  X509_CRL_sign(crl, ca.key, EVP_sha256());
  std::string out = pemOf(crl);
  ASN1_TIME_free(now);
  ASN1_TIME_free(next);
  X509_CRL_free(crl);
  return out;
}

}  // namespace foresight::test_support
