#include "foresight/sim/report.h"

#include <fmt/format.h>

#include "foresight/core/csv.h"

namespace foresight::sim {
namespace {

nlohmann::json scoresJson(const Scores& s) {
  return {{"knob", s.knob},
          {"slack", s.slack},
          {"violation_rate", s.violation_rate},
          {"shortfall", s.shortfall},
          {"changes_per_day", s.changes_per_day},
          {"largest_fifth_violation_rate", s.largest_violation_rate}};
}

std::string levelKey(double level) { return fmt::format("{}", level); }

nlohmann::json optionalJson(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string pct(const std::optional<double>& v) {
  return v ? fmt::format("{:.3f}", *v) : std::string("-");
}

}  // namespace

nlohmann::json toJson(const Report& report) {
  nlohmann::json j;
  j["trace"] = {{"series", report.series},
                {"skipped", report.skipped},
                {"step_seconds", report.step_seconds},
                {"evaluation_steps", report.evaluation_steps},
                {"warnings", report.warnings}};
  j["protocol"] = {{"lead_steps", report.protocol.lead_steps},
                   {"train_fraction", report.protocol.train_fraction},
                   {"target_violation", report.protocol.target_violation}};
  auto& policies = j["policies"] = nlohmann::json::object();
  for (const auto& p : report.policies) {
    auto& pj = policies[p.name] = nlohmann::json::object();
    for (const auto& [r, rr] : p.resources) {
      nlohmann::json rj;
      rj["knob_name"] = rr.knob.name;
      rj["default"] = scoresJson(rr.default_scores);
      rj["calibrated"] = rr.calibrated ? scoresJson(*rr.calibrated) : nlohmann::json();
      rj["iso_risk"] = nlohmann::json::object();
      rj["iso_risk_shortfall"] = nlohmann::json::object();
      rj["iso_risk_largest_fifth_violation"] = nlohmann::json::object();
      for (const auto& [level, v] : rr.iso_risk_largest_violation)
        rj["iso_risk_largest_fifth_violation"][levelKey(level)] = optionalJson(v);
      for (const auto& [level, v] : rr.iso_risk) rj["iso_risk"][levelKey(level)] = optionalJson(v);
      for (const auto& [level, v] : rr.iso_risk_shortfall) {
        rj["iso_risk_shortfall"][levelKey(level)] = optionalJson(v);
      }
      rj["frontier"] = nlohmann::json::array();
      for (const auto& s : rr.frontier)
        rj["frontier"].push_back({s.knob, s.slack, s.violation_rate});
      if (!rr.coverage.empty()) {
        for (const auto& [level, c] : rr.coverage) rj["coverage"][levelKey(level)] = c;
      }
      pj[std::string(name(r))] = std::move(rj);
    }
  }
  return j;
}

std::string perSeriesCsv(const Report& report) {
  std::string out =
      "policy,resource,series,knob,steps,mean_usage,mean_allocation,slack,share_of_unused,violations,"
      "violation_rate,shortfall,changes_per_day,usage_p99_to_mean\n";
  for (const auto& p : report.policies)
    for (const auto& [r, rr] : p.resources) {
      if (!rr.calibrated) continue;
      double pooled_unused = 0;
      for (const auto& s : rr.per_series) pooled_unused += s.sum_unused;
      for (const auto& s : rr.per_series) {
        const auto n = static_cast<double>(s.steps);
        out += fmt::format("{},{},{},{},{},{:.6g},{:.6g},{:.6f},{:.6f},{},{:.6f},{:.6f},{:.3f},{:.4f}\n",
                           csvQuote(p.name), name(r), csvQuote(s.id), rr.calibrated->knob, s.steps,
                           s.sum_usage / n, s.sum_allocation / n,
                           s.sum_allocation > 0 ? s.sum_unused / s.sum_allocation : 0.0,
                           pooled_unused > 0 ? s.sum_unused / pooled_unused : 0.0, s.violations,
                           static_cast<double>(s.violations) / n,
                           s.sum_usage > 0 ? s.sum_shortfall / s.sum_usage : 0.0, s.changes_per_day,
                           s.usage_p99_to_mean);
      }
    }
  return out;
}

std::string toTable(const Report& report) {
  std::string out = fmt::format(
      "trace: {} series ({} skipped), step {} s, {} evaluation steps; lead {} step(s), "
      "train fraction {}, target violation {}\n",
      report.series, report.skipped, report.step_seconds, report.evaluation_steps,
      report.protocol.lead_steps, report.protocol.train_fraction, report.protocol.target_violation);
  for (Resource r : kAllResources) {
    bool any = false;
    for (const auto& p : report.policies) any |= p.resources.count(r) != 0;
    if (!any) continue;
    out += fmt::format("\n{}\n", name(r));
    out += fmt::format(
        "  {:<10} {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8}\n",
        "policy", "knob", "slack", "viol", "chg/day", "cal.knob", "slack", "viol", "slack@5%",
        "@2%", "@1%", "@0.5%");
    for (const auto& p : report.policies) {
      auto it = p.resources.find(r);
      if (it == p.resources.end()) continue;
      const auto& rr = it->second;
      const auto& d = rr.default_scores;
      const auto& c = rr.calibrated;
      auto cal = [&](double Scores::*field, const char* spec) {
        return c ? fmt::format(fmt::runtime(spec), (*c).*field) : std::string("-");
      };
      out += fmt::format(
          "  {:<10} {:>8.3f} {:>8.3f} {:>8.4f} {:>8.2f} | {:>8} {:>8} {:>8} | {:>8} {:>8} "
          "{:>8} {:>8}\n",
          p.name, d.knob, d.slack, d.violation_rate, d.changes_per_day, cal(&Scores::knob, "{:.3f}"),
          cal(&Scores::slack, "{:.3f}"), cal(&Scores::violation_rate, "{:.4f}"),
          pct(rr.iso_risk.at(0.05)), pct(rr.iso_risk.at(0.02)),
          pct(rr.iso_risk.at(0.01)), pct(rr.iso_risk.at(0.005)));
      const auto& lv = rr.iso_risk_largest_violation;
      out += fmt::format("  {:<10} {:>62} | {:>8} {:>8} {:>8} {:>8}\n", "",
                         "violation rate of the largest fifth at equal pooled rate:",
                         pct(lv.at(0.05)), pct(lv.at(0.02)), pct(lv.at(0.01)), pct(lv.at(0.005)));
      if (!rr.coverage.empty()) {
        std::string cov;
        for (const auto& [level, v] : rr.coverage)
          cov += fmt::format(" {:.0f}%:{:.3f}", level * 100, v);
        out += fmt::format("  {:<10} coverage{}\n", "", cov);
      }
    }
  }
  out +=
      "\nslack = unused share of the allocation; viol = share of steps with usage > allocation;\n"
      "slack@X = slack at equal violation rate X (interpolated along the knob sweep; - = not "
      "reached);\nlargest fifth = the fifth of the series with the highest mean usage in their "
      "warm-up part\n";
  return out;
}

}  // namespace foresight::sim
