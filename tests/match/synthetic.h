#pragma once
// Synthetic history with a known answer: Amdahl workloads on clusters.
//   runtime = work · ((1 − p) + p / nodes) / speed;   fails when memory > nodes · memory_per_node
//   price   = 0.1 · nodes · speed^0.8 · (1.3 for the large-memory kind) $/h
// so the cheapest feasible cluster depends on each workload's memory and parallel fraction.

#include <cmath>
#include <random>

#include "foresight/match/outcomes.h"

namespace foresight::match::testing {

inline OutcomeTable amdahlTable(int workloads, unsigned seed) {
  OutcomeTable t;
  t.objective = Objective::kCost;
  for (double nodes : {1, 2, 4, 8})
    for (double speed : {1, 2})
      for (double mem : {4, 16}) {
        Environment e;
        e.id = fmt::format("{}x{}-{}g", nodes, speed, mem);
        e.numbers = {{"nodes", nodes}, {"speed", speed}, {"memory_gb_per_node", mem}};
        e.labels = {{"kind", mem > 8 ? "highmem" : "standard"}};
        t.environments.push_back(e);
        t.price_per_hour.push_back(0.1 * nodes * std::pow(speed, 0.8) * (mem > 8 ? 1.3 : 1.0));
      }
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> frac(0.3, 0.95), memory(1, 60), work(500, 5000);
  for (int w = 0; w < workloads; ++w) {
    const double p = frac(rng), m = memory(rng), wk = work(rng);
    t.workloads.push_back("w" + std::to_string(w));
    t.fingerprints.push_back({{"memory_gb", m}, {"parallel_fraction", p}});
    t.info.push_back({{"app", "g" + std::to_string(w / 2)}});
    std::vector<Outcome> row;
    for (std::size_t e = 0; e < t.environments.size(); ++e) {
      const auto& n = t.environments[e].numbers;
      Outcome o;
      o.has_run = true;
      o.completed = m <= n.at("nodes") * n.at("memory_gb_per_node");
      o.runtime_s = wk * ((1 - p) + p / n.at("nodes")) / n.at("speed");
      o.cost = o.runtime_s / 3600 * t.price_per_hour[e];
      row.push_back(o);
    }
    t.outcomes.push_back(row);
  }
  return t;
}

}  // namespace foresight::match::testing
