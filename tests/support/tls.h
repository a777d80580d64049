#pragma once
// A self-signed certificate for 127.0.0.1 (IP SAN, CA:TRUE so that it is its own trust anchor),
// made in memory with OpenSSL, for the tests of TLS peers (the Kubernetes client, the agent).
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace foresight::test_support {

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
  std::string keyPem() const {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
  }
  std::string pem() const {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, cert);
    char* data = nullptr;
    const long n = BIO_get_mem_data(b, &data);
    std::string out(data, static_cast<std::size_t>(n));
    BIO_free(b);
    return out;
  }
  // Writes the certificate and its key as PEM files in `dir` (cert.pem, key.pem).
  void writeTo(const std::filesystem::path& dir) const {
    std::ofstream(dir / "cert.pem") << pem();
    std::ofstream(dir / "key.pem") << keyPem();
  }
};

}  // namespace foresight::test_support
