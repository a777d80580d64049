// dry-run: logs the change apply() would make. Wrapping a real backend, it reads the real
// current allocation so the log shows the actual before → after.
#include <map>

#include "foresight/allocate/backend.h"
#include "foresight/core/log.h"

namespace foresight::allocate {
namespace {

class DryRunBackend final : public Backend {
 public:
  explicit DryRunBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  std::string name() const override {
    return inner_ ? "dry-run(" + inner_->name() + ")" : "dry-run";
  }

  Result<Allocation> current(const std::string& workload) override {
    if (inner_) return inner_->current(workload);
    return remembered_[workload];
  }
  Result<Allocation> usage(const std::string& workload) override {
    if (inner_) return inner_->usage(workload);
    return Allocation{};
  }
  Allocation units() const override { return inner_ ? inner_->units() : Allocation{}; }
  std::map<std::string, std::string> pinned() const override {
    return inner_ ? inner_->pinned() : std::map<std::string, std::string>{};
  }

  Status apply(const std::string& workload, const Allocation& target) override {
    auto before = current(workload);
    if (!before) return tl::unexpected(before.error());
    Allocation after = *before;
    for (Resource r : kAllResources)
      if (target[r]) after[r] = target[r];
    if (after == *before)
      spdlog::info("[dry-run] {} {}: already at {}; nothing to do", name(), workload,
                   format(*before));
    else
      spdlog::info("[dry-run] {} {}: would change {} -> {}", name(), workload, format(*before),
                   format(after));
    if (!inner_) remembered_[workload] = after;
    return ok();
  }

 private:
  std::unique_ptr<Backend> inner_;
  std::map<std::string, Allocation> remembered_;
};

}  // namespace

std::unique_ptr<Backend> makeDryRunBackend(std::unique_ptr<Backend> inner) {
  return std::make_unique<DryRunBackend>(std::move(inner));
}

}  // namespace foresight::allocate
