#pragma once
// The environment matcher behind the allocator's cost model: when a workload's forecast does not
// fit where it runs, the machine types considered for a move or an added machine are those the
// matcher ranks best for this workload (from its history, fingerprint and the environments'
// hardware), not merely every type that has the capacity.

#include <string>
#include <vector>

#include "foresight/allocate/cost.h"
#include "foresight/core/result.h"
#include "foresight/match/data.h"

namespace foresight::match {

class MatcherRanker final : public allocate::MachineRanker {
 public:
  // Ranks the environments of `data` for `workload` (its own runs are its probe outcomes, its
  // fingerprint when present); an environment's `instance_type` label, or else its id, names the
  // machine type, and a type ranks where its best environment ranks. Fails when the workload has
  // neither runs nor a fingerprint in `data`.
  static Result<MatcherRanker> forWorkload(const MatchData& data, const std::string& workload);

  // The matcher's order, restricted to the catalog's types; types it never saw are left out.
  std::vector<std::string> rank(const allocate::CapacityRequest& request,
                                const allocate::PriceCatalog& catalog) const override;
  const std::vector<std::string>& order() const { return order_; }
  const std::string& explanation() const { return explanation_; }

 private:
  std::vector<std::string> order_;
  std::string explanation_;
};

}  // namespace foresight::match
