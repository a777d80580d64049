// libvirt backend: a workload is a domain name. cpu sets the live vCPU count (ceil of the cores),
// memory the live balloon target (virDomainSetMemoryFlags). Both must stay within the domain's
// maximums, which this backend does not change (that needs a restart).
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cmath>

#include "foresight/allocate/backend.h"
#include "foresight/core/log.h"

namespace foresight::allocate {
namespace {

std::string lastError() {
  const char* msg = virGetLastErrorMessage();
  return msg ? msg : "unknown libvirt error";
}

// libvirt prints every error to stderr by default; errors are reported through Result instead.
void quietErrors(void*, virErrorPtr) {}

class LibvirtBackend final : public Backend {
 public:
  explicit LibvirtBackend(std::string uri) : uri_(std::move(uri)) {}
  ~LibvirtBackend() override {
    if (conn_) virConnectClose(conn_);
  }

  std::string name() const override { return "libvirt"; }

  Result<Allocation> current(const std::string& workload) override {
    auto dom = domain(workload);
    if (!dom) return tl::unexpected(dom.error());
    virDomainInfo info;
    const int rc = virDomainGetInfo(dom->get(), &info);
    if (rc < 0)
      return fail(ErrorCode::kIo, "libvirt {} domain '{}': cannot read info: {}", uri_, workload,
                  lastError());
    Allocation a;
    a[Resource::kCpu] = info.nrVirtCpu;
    a[Resource::kMemory] = static_cast<double>(info.memory) * 1024.0;  // KiB
    return a;
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    const std::string what = fmt::format("libvirt {} domain '{}'", uri_, workload);
    for (Resource r : {Resource::kDiskIo, Resource::kNetwork})
      if (target[r])
        return fail(ErrorCode::kInvalidArgument, "{}: {} is not managed by this backend", what,
                    foresight::name(r));
    for (Resource r : {Resource::kCpu, Resource::kMemory})
      if (target[r] && (std::isinf(*target[r]) || *target[r] <= 0))
        return fail(ErrorCode::kInvalidArgument, "{}: {} must be a positive finite value", what,
                    foresight::name(r));
    auto dom = domain(workload);
    if (!dom) return tl::unexpected(dom.error());
    auto now = current(workload);
    if (!now) return tl::unexpected(now.error());
    virDomainPtr d = dom->get();

    // Memory first, vCPUs second; when the vCPU change fails the balloon goes back.
    bool memory_changed = false;
    unsigned long old_kib = static_cast<unsigned long>(*(*now)[Resource::kMemory] / 1024.0);
    if (target[Resource::kMemory]) {
      const auto kib = static_cast<unsigned long>(*target[Resource::kMemory] / 1024.0);
      if (kib != old_kib) {
        if (virDomainSetMemoryFlags(d, kib, VIR_DOMAIN_AFFECT_LIVE) < 0)
          return fail(ErrorCode::kIo, "{}: cannot set memory to {} KiB: {}", what, kib,
                      lastError());
        memory_changed = true;
      }
    }
    if (target[Resource::kCpu]) {
      const auto vcpus = static_cast<unsigned>(std::ceil(*target[Resource::kCpu] - 1e-9));
      if (vcpus != static_cast<unsigned>(*(*now)[Resource::kCpu]) &&
          virDomainSetVcpusFlags(d, vcpus, VIR_DOMAIN_AFFECT_LIVE) < 0) {
        std::string err = fmt::format("{}: cannot set {} vCPUs: {}", what, vcpus, lastError());
        if (memory_changed) {
          if (virDomainSetMemoryFlags(d, old_kib, VIR_DOMAIN_AFFECT_LIVE) < 0)
            err += fmt::format("; restoring memory to {} KiB failed too: {}", old_kib, lastError());
          else
            err += " (memory restored)";
        }
        return fail(ErrorCode::kIo, "{}", err);
      }
    }
    return ok();
  }

 private:
  struct DomainDeleter {
    void operator()(virDomainPtr d) const { virDomainFree(d); }
  };
  using DomainPtr = std::unique_ptr<virDomain, DomainDeleter>;

  Result<DomainPtr> domain(const std::string& name) {
    if (!conn_) {
      virSetErrorFunc(nullptr, quietErrors);
      conn_ = virConnectOpen(uri_.c_str());
      if (!conn_)
        return fail(ErrorCode::kUnavailable, "libvirt: cannot connect to {}: {}", uri_,
                    lastError());
    }
    virDomainPtr d = virDomainLookupByName(conn_, name.c_str());
    if (!d)
      return fail(ErrorCode::kNotFound, "libvirt {}: no domain '{}': {}", uri_, name, lastError());
    return DomainPtr(d);
  }

  std::string uri_;
  virConnectPtr conn_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> makeLibvirtBackend(const BackendOptions& options) {
  return std::make_unique<LibvirtBackend>(options.get("uri", "qemu:///system"));
}

}  // namespace foresight::allocate
