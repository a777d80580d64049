#pragma once
// The environment matcher behind the allocator's cost model: when a workload's forecast does not
// fit where it runs, the machine types considered for a move or an added machine are those the
// matcher ranks best for this workload (from its history, fingerprint and the environments'
// hardware), not merely every type that has the capacity.

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "foresight/allocate/cost.h"
#include "foresight/core/result.h"
#include "foresight/match/data.h"
#include "foresight/match/matcher.h"

namespace foresight::match {

class MatcherRanker final : public allocate::MachineRanker {
 public:
  // Ranks the environments of `data` for `workload` (its own runs are its probe outcomes, its
  // fingerprint when present); an environment's `instance_type` label, or else its id, names the
  // machine type, and a type ranks where its best environment ranks. Fails when the workload has
  // neither runs nor a fingerprint in `data`.
  static Result<MatcherRanker> forWorkload(const MatchData& data, const std::string& workload);
  // Ranks from evidence the caller gathered (a live fingerprint, trial runs).
  static Result<MatcherRanker> forEvidence(const MatchData& data, const WorkloadEvidence& evidence);

  // The matcher's order, restricted to the catalog's types; types it never saw are left out.
  std::vector<std::string> rank(const allocate::CapacityRequest& request,
                                const allocate::PriceCatalog& catalog) const override;
  const std::vector<std::string>& order() const { return order_; }
  const std::string& explanation() const { return explanation_; }

 private:
  std::vector<std::string> order_;
  std::string explanation_;
};

// For `foresight run`: ranks a live workload from its latest fingerprint, the profiler's named
// features matched by name to the history's fingerprints.csv columns (so that history should come
// from Foresight's own profiles). A workload with no fingerprint yet, or none sharing a column with
// the history, gets the catalog's own order (allocate::CatalogRanker), and the log says why.
//
// Thread-safety: observe() and forget() from the sampling thread, rank() from any thread.
class LiveMatcherRanker final : public allocate::MachineRanker {
 public:
  explicit LiveMatcherRanker(MatchData data);
  void observe(const std::string& workload, std::map<std::string, double> features);
  void forget(const std::string& workload);
  // Trains the matcher on the whole history for each call: advice is rare (at most once per
  // workload per advice period), and a fresh fit sees the workload's newest fingerprint.
  std::vector<std::string> rank(const allocate::CapacityRequest& request,
                                const allocate::PriceCatalog& catalog) const override;

 private:
  MatchData data_;
  std::set<std::string> columns_;  // fingerprint columns of the history
  allocate::CatalogRanker fallback_;
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, double>> latest_;
};

}  // namespace foresight::match
