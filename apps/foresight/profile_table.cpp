#include "profile_table.h"

#include <algorithm>
#include <cmath>

namespace foresight::app {

std::vector<ProfileTable::Row> ProfileTable::update(const collect::Sampler::Round& round) {
  std::vector<Row> rows;
  for (const auto& s : round.samples) {
    auto [it, added] = state_.try_emplace(s.workload);
    State& st = it->second;
    if (!added) {
      const auto u = collect::resourceUsage(st.last, s);
      if (!st.pipeline) st.pipeline.emplace(fp_, fingerprint::resourceMetrics());
      if (auto f = st.pipeline->push(s.time_ns / 1000000, u)) st.anomaly = f->anomaly;
      const double periods = collect::counterRate(st.last, s, "cpu_periods_total");
      const double thr =
          periods > 0 ? collect::counterRate(st.last, s, "cpu_throttled_periods_total") / periods : NAN;
      const double psi = collect::counterRate(st.last, s, "psi_cpu_some_seconds_total");
      rows.push_back({s.workload, u, thr, psi, st.anomaly});
    }
    collect::carryForward(st.last, s);
  }
  // Each departure is reported once; its state would otherwise stay for the rest of the run.
  for (const auto& g : round.gone) state_.erase(g);
  std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) {
    return (std::isnan(x.usage[0]) ? -1 : x.usage[0]) > (std::isnan(y.usage[0]) ? -1 : y.usage[0]);
  });
  return rows;
}

}  // namespace foresight::app
