#pragma once
// What `foresight profile` keeps per workload between rounds (previous sample, fingerprint
// pipeline, last anomaly score) and the rows it shows from them. A workload the sampler reports
// gone (vanished, or no longer discovered or selected) is forgotten with all of it.
//
// Thread-safety: used by the sampling thread only.

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "foresight/collect/sampler.h"
#include "foresight/core/resource.h"
#include "foresight/fingerprint/fingerprint.h"

namespace foresight::app {

class ProfileTable {
 public:
  struct Row {
    std::string id;
    std::array<double, kResourceCount> usage;
    double throttled, psi, anomaly;  // NaN when unknown
  };
  explicit ProfileTable(fingerprint::Config fp) : fp_(fp) {}
  // The round's rows, one per workload with a previous sample, by CPU, highest first.
  std::vector<Row> update(const collect::Sampler::Round& round);
  // Workloads with kept state.
  std::size_t tracked() const { return state_.size(); }

 private:
  struct State {
    collect::Sample last;
    std::optional<fingerprint::Pipeline> pipeline;  // from the second sample
    double anomaly = NAN;
  };
  fingerprint::Config fp_;
  std::map<std::string, State> state_;
};

}  // namespace foresight::app
