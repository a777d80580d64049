// Planner policies from YAML; kept apart from planner.cpp so the planner stays free of I/O.
#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "foresight/allocate/planner.h"

namespace foresight::allocate {
namespace {

// A number, or for byte-valued fields a size such as "8G"; null = unbounded (max only).
Result<double> value(const YAML::Node& n, const std::string& where, bool bytes, bool nullable) {
  if (n.IsNull()) {
    if (nullable) return std::numeric_limits<double>::infinity();
    return fail(ErrorCode::kParse, "{}: must not be null", where);
  }
  const std::string text = n.as<std::string>();
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  if (bytes) {
    auto b = parseBytes(text);
    if (b) return *b;
  }
  return fail(ErrorCode::kParse, "{}: '{}' is not a {}", where, text,
              bytes ? "number or size" : "number");
}

Status applyPolicy(const YAML::Node& node, Resource r, ResourcePolicy& p, const std::string& at) {
  if (!node.IsMap()) return fail(ErrorCode::kParse, "{}: expected a mapping", at);
  const bool mem = r == Resource::kMemory;
  struct Field {
    const char* key;
    double* target;
    bool bytes, nullable;
  };
  double cu = static_cast<double>(p.cooldown_up_seconds);
  double cd = static_cast<double>(p.cooldown_down_seconds);
  double oh = static_cast<double>(p.oom_hold_seconds);
  const Field fields[] = {{"quantile", &p.quantile, false, false},
                          {"headroom", &p.headroom, false, false},
                          {"hysteresis", &p.hysteresis, false, false},
                          {"max_step_up", &p.max_step_up, false, false},
                          {"max_step_down", &p.max_step_down, false, false},
                          {"cooldown_up_seconds", &cu, false, false},
                          {"cooldown_down_seconds", &cd, false, false},
                          {"min", &p.min, mem, false},
                          {"max", &p.max, mem, true},
                          {"usage_margin", &p.usage_margin, false, false},
                          {"usage_margin_abs", &p.usage_margin_abs, true, false},
                          {"oom_hold_seconds", &oh, false, false},
                          {"pressure_threshold", &p.pressure_threshold, false, false},
                          {"lower_quantile", &p.lower_quantile, false, false},
                          {"upper_quantile", &p.upper_quantile, false, false}};
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const Field* f = nullptr;
    for (const auto& candidate : fields)
      if (key == candidate.key) f = &candidate;
    if (!f) return fail(ErrorCode::kParse, "{}: unknown key '{}'", at, key);
    auto v = value(kv.second, at + "." + key, f->bytes, f->nullable);
    if (!v) return tl::unexpected(v.error());
    // Every field is an amount, a share or a time: none is negative, and only max is unbounded.
    if (std::isnan(*v) || (std::isinf(*v) && !f->nullable))
      return fail(ErrorCode::kParse, "{}.{}: '{}' is not a finite number", at, key, kv.second.as<std::string>());
    if (*v < 0) return fail(ErrorCode::kParse, "{}.{}: {} cannot be negative", at, key, *v);
    *f->target = *v;
  }
  // Seconds are held as integers; beyond ~30 years is a typo, and the conversion would overflow.
  constexpr double kMaxSeconds = 1e9;
  for (const auto& [key, secs] : {std::pair{"cooldown_up_seconds", cu}, std::pair{"cooldown_down_seconds", cd},
                                  std::pair{"oom_hold_seconds", oh}})
    if (secs > kMaxSeconds)
      return fail(ErrorCode::kParse, "{}.{}: {} s is beyond the {:g} s this accepts", at, key, secs, kMaxSeconds);
  // A band of 100 % or more would never let the limit come down.
  if (p.hysteresis >= 1) return fail(ErrorCode::kParse, "{}.hysteresis: {} must be below 1 (a share: 0.1 = 10 %)", at, p.hysteresis);
  // A threshold of 0 would double the limit at the least stall; 1, never reached, turns it off.
  if (!(p.pressure_threshold > 0 && p.pressure_threshold <= 1))
    return fail(ErrorCode::kParse, "{}.pressure_threshold: {} must be in (0, 1] (a share: 0.0017 = 0.17 %; 1 = off)", at,
                p.pressure_threshold);
  p.cooldown_up_seconds = static_cast<std::int64_t>(cu);
  p.cooldown_down_seconds = static_cast<std::int64_t>(cd);
  p.oom_hold_seconds = static_cast<std::int64_t>(oh);
  for (double q : {p.quantile, p.lower_quantile, p.upper_quantile})
    if (!(q > 0 && q < 1)) return fail(ErrorCode::kParse, "{}: quantile levels must be in (0, 1)", at);
  if (!(p.lower_quantile <= p.quantile && p.quantile <= p.upper_quantile))
    return fail(ErrorCode::kParse, "{}: needs lower_quantile <= quantile <= upper_quantile, not {} / {} / {}", at,
                p.lower_quantile, p.quantile, p.upper_quantile);
  if (p.max_step_down < 0 || p.max_step_down >= 1 || p.max_step_up < 0)
    return fail(ErrorCode::kParse, "{}: max_step_up must be >= 0, max_step_down in [0, 1)", at);
  if (p.min > p.max) return fail(ErrorCode::kParse, "{}: min is above max", at);
  return ok();
}

Status applyResources(const YAML::Node& node, PlannerConfig& c, const std::string& at) {
  if (!node.IsMap()) return fail(ErrorCode::kParse, "{}: expected a mapping", at);
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    auto r = parseResource(key);
    if (!r) return fail(ErrorCode::kParse, "{}: unknown resource '{}'", at, key);
    if (auto st = applyPolicy(kv.second, *r, c[*r], at + "." + key); !st) return st;
  }
  return ok();
}

}  // namespace

Result<PlannerConfigs> parsePlannerConfigs(const std::string& text, const std::string& origin) {
  PlannerConfigs c;
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return fail(ErrorCode::kParse, "{}: expected a mapping", origin);
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (key != "horizon_steps" && key != "defaults" && key != "workloads" && key != "leave_alone")
        return fail(ErrorCode::kParse, "{}: unknown key '{}'", origin, key);
    }
    if (root["horizon_steps"]) c.defaults.horizon_steps = root["horizon_steps"].as<std::size_t>();
    if (root["defaults"])
      if (auto st = applyResources(root["defaults"], c.defaults, origin + ": defaults"); !st)
        return tl::unexpected(st.error());
    if (const YAML::Node w = root["workloads"]; w && !w.IsNull()) {
      if (!w.IsMap()) return fail(ErrorCode::kParse, "{}: workloads: expected a mapping", origin);
      // Every section is checked, not only the workloads running now: a typo in one would
      // otherwise surface on the day that workload starts.
      for (const auto& kv : w) {
        const std::string name = kv.first.as<std::string>();
        PlannerConfig own = c.defaults;
        if (auto st = applyResources(kv.second, own, origin + ": workloads." + name); !st)
          return tl::unexpected(st.error());
        c.workloads.emplace(name, std::move(own));
      }
    }
    if (const YAML::Node l = root["leave_alone"]) {
      if (!l.IsNull() && !l.IsSequence())
        return fail(ErrorCode::kParse, "{}:{}: leave_alone: expected a list of patterns", origin, l.Mark().line + 1);
      c.leave_alone.clear();  // the file's list replaces the built-in one; null or [] = none
      for (const auto& n : l) {
        const std::string pattern = n.IsScalar() ? n.as<std::string>() : "";
        // A leading '/' would never match: workloads are named as their backend names them.
        if (pattern.empty() || pattern.front() == '/')
          return fail(ErrorCode::kParse, "{}:{}: leave_alone: '{}': expected a pattern of workload names without a leading '/' (e.g. system.slice/ssh.service)",
                      origin, n.Mark().line + 1, pattern);
        c.leave_alone.push_back(pattern);
      }
    }
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::kParse, "{}:{}: {}", origin, e.mark.line + 1, e.msg);
  }
  return c;
}

std::optional<std::string> PlannerConfigs::leftAlone(const std::string& workload) const {
  for (const auto& pattern : leave_alone)
    if (::fnmatch(pattern.c_str(), workload.c_str(), 0) == 0) return pattern;
  return std::nullopt;
}

Result<PlannerConfigs> loadPlannerConfigs(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot open planner config", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parsePlannerConfigs(ss.str(), path);
}

const PlannerConfig& PlannerConfigs::of(const std::string& workload) const {
  auto it = workloads.find(workload);
  return it == workloads.end() ? defaults : it->second;
}

Result<PlannerConfig> parsePlannerConfig(const std::string& text, const std::string& origin,
                                         const std::string& workload) {
  return parsePlannerConfigs(text, origin).map([&](const PlannerConfigs& c) { return c.of(workload); });
}

Result<PlannerConfig> loadPlannerConfig(const std::string& path, const std::string& workload) {
  return loadPlannerConfigs(path).map([&](const PlannerConfigs& c) { return c.of(workload); });
}

}  // namespace foresight::allocate
