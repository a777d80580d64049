#pragma once
// Cost model: what capacity costs, and where extra capacity should come from when a workload's
// forecast cannot be met where it runs.
//
// Alternatives, each costed as the expected extra spend over `hours` against staying as is:
//   grow-in-place  use spare capacity of the current machine: extra cores and GiB times the
//                  catalog's resource prices; no interruption risk; needs enough spare.
//   move           run on one machine of another type that fits the whole demand:
//                  (its price - current_hourly) * hours + migration_cost.
//   add            add one machine that fits the extra demand next to the current one (the
//                  workload must scale out): its price * hours.
// Purchase options: on-demand; reserved (billed for the whole term, reserved_term_hours, even when
// needed for less); spot (on-demand * (1 - discount), interruption risk
// 1 - (1 - p)^hours and expected loss risk * interruption_cost; unavailable until the user sets
// the discount and probability: no spot prices are shipped). Alternatives whose risk exceeds the
// risk budget are infeasible. The cheapest feasible alternative wins.
//
// Machine types for move/add come from a MachineRanker, the hook for the environment matcher;
// the default ranks every catalog type that fits by on-demand price.
//
// Thread-safety: PriceCatalog and CostModel are immutable after construction; choose() is safe to
// call concurrently (the ranker must be too).

#include <optional>
#include <string>
#include <vector>

#include "foresight/allocate/allocation.h"
#include "foresight/core/result.h"

namespace foresight::allocate {

enum class PurchaseOption { kOnDemand, kReserved, kSpot };
const char* toString(PurchaseOption o);

struct MachineType {
  std::string name;
  double vcpus = 0;
  double memory_bytes = 0;
  std::optional<double> on_demand;  // USD per hour
  std::optional<double> reserved;   // USD per hour over the reserved term
};

struct SpotModel {
  std::optional<double> discount;                           // 0.6 = 60% below on-demand
  std::optional<double> interruption_probability_per_hour;  // 0..1
  double interruption_cost = 0;                             // USD lost per interruption
};

struct PriceCatalog {
  std::string source, prices_as_of, region, currency = "USD";
  double reserved_term_hours = 8760;
  SpotModel spot;
  double cpu_core_hour = 0;    // USD per core-hour
  double memory_gib_hour = 0;  // USD per GiB-hour
  bool resource_prices_fitted = false;  // true when derived from the machine prices
  std::vector<MachineType> machines;

  const MachineType* find(const std::string& name) const;
  // Hourly price under an option; absent when the catalog has no price for it (spot: until the
  // discount is set).
  std::optional<double> hourly(const MachineType& m, PurchaseOption o) const;
};

// Loads a YAML catalog (see config/prices.yaml). Missing resource prices are fitted by least
// squares (price ~ a * vcpus + b * GiB) to the machines' on-demand prices. Errors name the file
// and the entry.
Result<PriceCatalog> loadPriceCatalog(const std::string& path);
Result<PriceCatalog> parsePriceCatalog(const std::string& yaml_text, const std::string& origin);

struct CapacityRequest {
  std::string workload;
  Allocation need;       // total demand to meet (cpu cores, memory bytes)
  Allocation current;    // what the workload has now
  Allocation spare;      // free capacity left on its current machine
  std::string machine;   // current machine type (catalog name), may be empty
  double current_hourly = 0;  // what the current placement costs per hour (released on a move)
  double hours = 1;           // how long the extra capacity is needed
  double risk_budget = 0.05;  // highest acceptable probability of losing the capacity
  double migration_cost = 0;  // USD per move
  bool can_scale_out = true;  // whether "add" is possible
};

struct Alternative {
  std::string kind;     // grow-in-place, move, add
  std::string machine;  // for move and add
  std::optional<PurchaseOption> option;
  double expected_cost = 0;  // USD over `hours`; NaN when there is no price
  double risk = 0;           // probability the capacity is interrupted within `hours`
  bool feasible = false;
  std::string note;  // why not, or how the cost was made up
};

struct CapacityChoice {
  std::vector<Alternative> alternatives;  // feasible first, cheapest first
  std::optional<std::size_t> chosen;      // index into alternatives
  // A table for people; max_rows = 0 shows every alternative.
  std::string summary(std::size_t max_rows = 0) const;
};

// The hook for the environment matcher: candidate machine types for `request`, best first.
// Types not returned are not considered for move/add.
class MachineRanker {
 public:
  virtual ~MachineRanker() = default;
  virtual std::vector<std::string> rank(const CapacityRequest& request,
                                        const PriceCatalog& catalog) const = 0;
};

// Every catalog type, cheapest on-demand first (fit is checked by the cost model).
class CatalogRanker final : public MachineRanker {
 public:
  std::vector<std::string> rank(const CapacityRequest& request,
                                const PriceCatalog& catalog) const override;
};

class CostModel {
 public:
  // `ranker` may be null (CatalogRanker); it must outlive the model.
  explicit CostModel(PriceCatalog catalog, const MachineRanker* ranker = nullptr);
  CapacityChoice choose(const CapacityRequest& request) const;
  const PriceCatalog& catalog() const { return catalog_; }

 private:
  PriceCatalog catalog_;
  CatalogRanker default_ranker_;
  const MachineRanker* ranker_;
};

}  // namespace foresight::allocate
