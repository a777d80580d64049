#pragma once
// The Kubernetes API client the backends (kubernetes.cpp) and the VPA discovery
// (kubernetes_vpas.cpp) share; internal to foresight_allocate. One client per thread.

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

#include "foresight/allocate/kubernetes.h"
#include "foresight/core/reload.h"

namespace foresight::allocate::k8s {

Result<std::string> readWholeFile(const std::string& path);

struct Response {
  int status = 0;
  nlohmann::json body;
};

struct TlsMaterial;  // the client certificate, key and CAs, parsed

class ApiClient {
 public:
  static constexpr int kReadTimeoutSeconds = 30;
  explicit ApiClient(ClusterAccess access);
  ~ApiClient();

  // GET, PATCH, POST or PUT `path` (after the server URL's own path). A body that is not JSON becomes
  // {"message": body}.
  Result<Response> request(const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& content_type = "");
  // A watch: newline-delimited JSON events ({"type": ..., "object": ...}) passed to on_event
  // until it returns false or the server ends the stream. Returns whether on_event stopped it.
  // The server ends the watch after timeoutSeconds; reads wait a little longer than that.
  Result<bool> watch(const std::string& path, int timeout_seconds,
                     const std::function<bool(const nlohmann::json&)>& on_event);
  const ClusterAccess& access() const { return access_; }

 private:
  Result<httplib::Headers> requestHeaders();
  Result<httplib::ClientImpl*> client();

  ClusterAccess access_;
  std::shared_ptr<Reloading<std::string>> token_file_;
  std::shared_ptr<Reloading<TlsMaterial>> tls_;
  std::shared_ptr<const TlsMaterial> tls_in_use_;  // what cli_ was made with
  std::unique_ptr<httplib::ClientImpl> cli_;
  std::string prefix_;  // the server URL's path, before every request's
};

// The API server's "message" of an error answer, else its whole body.
std::string apiMessage(const Response& r);

// The API server's answer must hold the fields read from it in the types read (json::value()
// throws a type_error naming no field otherwise, which ended the command as an internal error).
// `shape` mirrors what is read: an object's keys give their values' shapes (an absent key passes:
// its reader has a default), an array's one element every element's, "" a string; an empty object
// or array leaves its contents to their reader (quantities: quantityOf). The error names the field
// and, inside a container's entry, the container.
Status checkShape(const nlohmann::json& v, const nlohmann::json& shape, const std::string& path = "",
                  const std::string& container = "");

// A quantity as the API server returns it: a string ("500m", "1Gi"), or a plain number where the
// schema is int-or-string.
Result<double> quantityOf(const nlohmann::json& v);

// Writes a VPA's whole status (`path`: the VPA's) as one JSON-patch "add" of /status, as the
// stock recommender does (a status that does not exist yet has no member to add to), and keeps
// `listed` (when given) in step: the object the API server returned, which the next write of the
// round builds on, or none after a failed write (read again then). Errors name `what`.
Status writeVpaStatus(ApiClient& api, VpaObjects* listed, const std::string& path, const nlohmann::json& status,
                      const std::string& what);

}  // namespace foresight::allocate::k8s
