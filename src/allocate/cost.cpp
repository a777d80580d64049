#include "foresight/allocate/cost.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace foresight::allocate {
namespace {

constexpr double kGiB = 1024.0 * 1024 * 1024;
constexpr PurchaseOption kOptions[] = {PurchaseOption::kOnDemand, PurchaseOption::kReserved,
                                       PurchaseOption::kSpot};

// A value that is present must parse: as<T>(fallback) would silently turn a typo such as
// "reserved_term_hours: one year" into the default. Errors are thrown as YAML::Exception with the
// value's mark, so the caller reports them with file and line.
[[noreturn]] void badValue(const YAML::Node& n, const std::string& key, const std::string& want) {
  throw YAML::Exception(n.Mark(), fmt::format("`{}` must be {}, not '{}'", key, want,
                                              n.IsScalar() ? n.Scalar() : YAML::Dump(n)));
}

std::optional<double> optionalNumber(const YAML::Node& n, const std::string& key) {
  if (!n || n.IsNull()) return std::nullopt;
  double v = 0;
  if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !std::isfinite(v) || v < 0)
    badValue(n, key, "a number >= 0");
  return v;
}

double number(const YAML::Node& n, const std::string& key, double fallback) {
  return optionalNumber(n, key).value_or(fallback);
}

// A misspelt key would otherwise be ignored and its default used without a word.
void knownKeys(const YAML::Node& map, std::initializer_list<std::string_view> keys,
               const std::string& where) {
  for (const auto& kv : map) {
    const std::string k = kv.first.Scalar();
    if (std::find(keys.begin(), keys.end(), k) == keys.end())
      throw YAML::Exception(kv.first.Mark(),
                            fmt::format("unknown key `{}` in {} (known: {})", k, where,
                                        fmt::join(keys, ", ")));
  }
}

std::string stringValue(const YAML::Node& n, const std::string& key,
                        const std::string& fallback) {
  if (!n || n.IsNull()) return fallback;
  if (!n.IsScalar()) badValue(n, key, "a plain value");
  return n.Scalar();
}

// Least squares without intercept: price ~ a * vcpus + b * gib (2x2 normal equations).
Status fitResourcePrices(PriceCatalog& c, const std::string& origin) {
  double s_cc = 0, s_cm = 0, s_mm = 0, s_cp = 0, s_mp = 0;
  for (const auto& m : c.machines) {
    if (!m.on_demand) continue;
    const double cpu = m.vcpus, mem = m.memory_bytes / kGiB, p = *m.on_demand;
    s_cc += cpu * cpu, s_cm += cpu * mem, s_mm += mem * mem, s_cp += cpu * p, s_mp += mem * p;
  }
  const double det = s_cc * s_mm - s_cm * s_cm;
  if (std::fabs(det) < 1e-12)
    return fail(ErrorCode::kInvalidArgument,
                "{}: cannot fit resource prices (need machines of at least two shapes with "
                "on-demand prices); set resource_prices", origin);
  c.cpu_core_hour = (s_cp * s_mm - s_mp * s_cm) / det;
  c.memory_gib_hour = (s_mp * s_cc - s_cp * s_cm) / det;
  c.resource_prices_fitted = true;
  return ok();
}

}  // namespace

const char* toString(PurchaseOption o) {
  switch (o) {
    case PurchaseOption::kOnDemand: return "on-demand";
    case PurchaseOption::kReserved: return "reserved";
    case PurchaseOption::kSpot: return "spot";
  }
  return "?";
}

const MachineType* PriceCatalog::find(const std::string& name) const {
  for (const auto& m : machines)
    if (m.name == name) return &m;
  return nullptr;
}

std::optional<double> PriceCatalog::hourly(const MachineType& m, PurchaseOption o) const {
  switch (o) {
    case PurchaseOption::kOnDemand: return m.on_demand;
    case PurchaseOption::kReserved: return m.reserved;
    case PurchaseOption::kSpot:
      if (!m.on_demand || !spot.discount) return std::nullopt;
      return *m.on_demand * (1.0 - *spot.discount);
  }
  return std::nullopt;
}

Result<PriceCatalog> parsePriceCatalog(const std::string& text, const std::string& origin) {
  PriceCatalog c;
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap() && !root.IsNull())
      throw YAML::Exception(root.Mark(), "expected a map of catalog settings");
    c.source = stringValue(root["source"], "source", "");
    c.prices_as_of = stringValue(root["prices_as_of"], "prices_as_of", "");
    c.region = stringValue(root["region"], "region", "");
    c.currency = stringValue(root["currency"], "currency", "USD");
    c.reserved_term_hours = number(root["reserved_term_hours"], "reserved_term_hours", 8760);
    if (!(c.reserved_term_hours > 0))
      badValue(root["reserved_term_hours"], "reserved_term_hours", "a number > 0");
    if (const auto spot = root["spot"]) {
      if (!spot.IsMap() && !spot.IsNull()) badValue(spot, "spot", "a map");
      if (spot.IsMap())
        knownKeys(spot, {"discount", "interruption_probability_per_hour", "interruption_cost"},
                  "spot");
      c.spot.discount = optionalNumber(spot["discount"], "spot.discount");
      c.spot.interruption_probability_per_hour = optionalNumber(
          spot["interruption_probability_per_hour"], "spot.interruption_probability_per_hour");
      c.spot.interruption_cost = number(spot["interruption_cost"], "spot.interruption_cost", 0);
      if (c.spot.discount && (*c.spot.discount < 0 || *c.spot.discount >= 1))
        return fail(ErrorCode::kParse, "{}: spot.discount must be in [0, 1)", origin);
      if (c.spot.interruption_probability_per_hour &&
          (*c.spot.interruption_probability_per_hour < 0 ||
           *c.spot.interruption_probability_per_hour > 1))
        return fail(ErrorCode::kParse, "{}: spot.interruption_probability_per_hour must be in "
                    "[0, 1]", origin);
    }
    const auto machines = root["machines"];
    if (!machines || !machines.IsSequence() || machines.size() == 0)
      return fail(ErrorCode::kParse, "{}: 'machines' must be a non-empty list", origin);
    for (std::size_t i = 0; i < machines.size(); ++i) {
      const auto n = machines[i];
      const int line = n.Mark().line + 1;
      if (!n.IsMap())
        return fail(ErrorCode::kParse, "{}:{}: machines[{}] must be a map", origin, line, i);
      MachineType m;
      m.name = stringValue(n["name"], "name", "");
      if (m.name.empty())
        return fail(ErrorCode::kParse, "{}:{}: machines[{}] has no name", origin, line, i);
      m.vcpus = number(n["vcpus"], "vcpus", 0);
      m.memory_bytes = number(n["memory_gib"], "memory_gib", 0) * kGiB;
      m.on_demand = optionalNumber(n["on_demand"], "on_demand");
      m.reserved = optionalNumber(n["reserved"], "reserved");
      if (m.vcpus <= 0 || m.memory_bytes <= 0)
        return fail(ErrorCode::kParse, "{}:{}: machine '{}' needs positive vcpus and memory_gib",
                    origin, line, m.name);
      if (c.find(m.name))
        return fail(ErrorCode::kParse, "{}:{}: machine '{}' listed twice", origin, line, m.name);
      c.machines.push_back(std::move(m));
    }
    const auto rp = root["resource_prices"];
    if (rp && !rp.IsNull()) {
      // Both or neither: one price with the other fitted would mix two models of a machine's cost.
      if (!rp.IsMap() || !rp["cpu_core_hour"] || !rp["memory_gib_hour"])
        badValue(rp, "resource_prices", "a map with both cpu_core_hour and memory_gib_hour");
      knownKeys(rp, {"cpu_core_hour", "memory_gib_hour"}, "resource_prices");
      c.cpu_core_hour = number(rp["cpu_core_hour"], "resource_prices.cpu_core_hour", 0);
      c.memory_gib_hour = number(rp["memory_gib_hour"], "resource_prices.memory_gib_hour", 0);
    } else if (auto st = fitResourcePrices(c, origin); !st) {
      return tl::unexpected(st.error());
    }
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::kParse, "{}:{}: {}", origin, e.mark.line + 1, e.msg);
  }
  return c;
}

Result<PriceCatalog> loadPriceCatalog(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::kNotFound, "{}: cannot open price catalog", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return parsePriceCatalog(ss.str(), path);
}

std::vector<std::string> CatalogRanker::rank(const CapacityRequest&,
                                             const PriceCatalog& catalog) const {
  std::vector<const MachineType*> ms;
  for (const auto& m : catalog.machines) ms.push_back(&m);
  std::stable_sort(ms.begin(), ms.end(), [](const MachineType* a, const MachineType* b) {
    return a->on_demand.value_or(INFINITY) < b->on_demand.value_or(INFINITY);
  });
  std::vector<std::string> out;
  for (const auto* m : ms) out.push_back(m->name);
  return out;
}

CostModel::CostModel(PriceCatalog catalog, const MachineRanker* ranker)
    : catalog_(std::move(catalog)), ranker_(ranker ? ranker : &default_ranker_) {}

CapacityChoice CostModel::choose(const CapacityRequest& req) const {
  CapacityChoice choice;
  auto need = [&](Resource r) { return req.need[r].value_or(0.0); };
  auto extra = [&](Resource r) { return std::max(0.0, need(r) - req.current[r].value_or(0.0)); };
  const double extra_cpu = extra(Resource::kCpu), extra_mem = extra(Resource::kMemory);

  // Grow in place.
  {
    Alternative a;
    a.kind = "grow-in-place";
    a.machine = req.machine;
    a.expected_cost =
        (extra_cpu * catalog_.cpu_core_hour + extra_mem / kGiB * catalog_.memory_gib_hour) *
        req.hours;
    const double spare_cpu = req.spare[Resource::kCpu].value_or(0.0);
    const double spare_mem = req.spare[Resource::kMemory].value_or(0.0);
    a.feasible = extra_cpu <= spare_cpu + 1e-9 && extra_mem <= spare_mem + 0.5;
    a.note = a.feasible ? fmt::format("{:.3f} cores and {} at resource prices", extra_cpu,
                                      formatBytes(extra_mem))
                        : fmt::format("not enough spare: need +{:.3f} cores +{}, spare {:.3f} "
                                      "cores {}", extra_cpu, formatBytes(extra_mem), spare_cpu,
                                      formatBytes(spare_mem));
    choice.alternatives.push_back(std::move(a));
  }

  auto priced = [&](Alternative a, const MachineType& m, PurchaseOption o, double base_hours_cost,
                    double release_per_hour) {
    a.machine = m.name;
    a.option = o;
    const auto price = catalog_.hourly(m, o);
    if (!price) {
      a.expected_cost = NAN;  // unpriced, not free
      a.feasible = false;
      a.note = o == PurchaseOption::kSpot ? "spot discount not set in the catalog"
                                          : fmt::format("no {} price", toString(o));
      return a;
    }
    double billed_hours = req.hours;
    if (o == PurchaseOption::kReserved) billed_hours = std::max(req.hours, catalog_.reserved_term_hours);
    a.expected_cost = *price * billed_hours - release_per_hour * req.hours + base_hours_cost;
    a.feasible = true;
    a.note = fmt::format("{:.4f}/h x {:g} h", *price, billed_hours);
    if (o == PurchaseOption::kSpot) {
      if (!catalog_.spot.interruption_probability_per_hour) {
        a.feasible = false;
        a.note = "spot interruption probability not set in the catalog";
        return a;
      }
      a.risk = 1.0 - std::pow(1.0 - *catalog_.spot.interruption_probability_per_hour, req.hours);
      a.expected_cost += a.risk * catalog_.spot.interruption_cost;
      a.note += fmt::format(", interruption risk {:.3f} x {:.2f}", a.risk,
                            catalog_.spot.interruption_cost);
    }
    if (a.risk > req.risk_budget) {
      a.feasible = false;
      a.note += fmt::format("; risk {:.3f} above budget {:.3f}", a.risk, req.risk_budget);
    }
    return a;
  };

  for (const auto& name : ranker_->rank(req, catalog_)) {
    const MachineType* m = catalog_.find(name);
    if (!m) continue;
    // Move: one machine that fits the whole demand.
    if (name != req.machine) {
      const bool fits = m->vcpus >= need(Resource::kCpu) && m->memory_bytes >= need(Resource::kMemory);
      for (PurchaseOption o : kOptions) {
        Alternative a;
        a.kind = "move";
        if (!fits) continue;
        a = priced(a, *m, o, req.migration_cost, req.current_hourly);
        if (a.feasible) a.note += fmt::format(", releases {:.4f}/h, migration {:.2f}",
                                              req.current_hourly, req.migration_cost);
        choice.alternatives.push_back(std::move(a));
      }
    }
    // Add: one more machine for the extra demand.
    if (req.can_scale_out && (extra_cpu > 0 || extra_mem > 0) && m->vcpus >= extra_cpu &&
        m->memory_bytes >= extra_mem) {
      for (PurchaseOption o : kOptions) {
        Alternative a;
        a.kind = "add";
        choice.alternatives.push_back(priced(a, *m, o, 0.0, 0.0));
      }
    }
  }

  std::stable_sort(choice.alternatives.begin(), choice.alternatives.end(),
                   [](const Alternative& a, const Alternative& b) {
                     if (a.feasible != b.feasible) return a.feasible;
                     // Unpriced (NaN) last; NaN in a comparison would break the ordering.
                     const double x = std::isnan(a.expected_cost) ? INFINITY : a.expected_cost;
                     const double y = std::isnan(b.expected_cost) ? INFINITY : b.expected_cost;
                     return x < y;
                   });
  if (!choice.alternatives.empty() && choice.alternatives.front().feasible) choice.chosen = 0;
  return choice;
}

std::string CapacityChoice::summary(std::size_t max_rows) const {
  std::string out = fmt::format("{:<3} {:<14} {:<12} {:<10} {:>12} {:>7}  {}\n", "", "kind",
                                "machine", "option", "cost (USD)", "risk", "note");
  const std::size_t shown =
      max_rows == 0 ? alternatives.size() : std::min(max_rows, alternatives.size());
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& a = alternatives[i];
    out += fmt::format("{:<3} {:<14} {:<12} {:<10} {:>12} {:>7.3f}  {}{}\n",
                       chosen && *chosen == i ? "->" : "", a.kind,
                       a.machine.empty() ? "-" : a.machine,
                       a.option ? toString(*a.option) : "-",
                       std::isnan(a.expected_cost) ? "-" : fmt::format("{:.4f}", a.expected_cost),
                       a.risk, a.feasible ? "" : "[infeasible] ", a.note);
  }
  if (shown < alternatives.size()) {
    std::size_t feasible = 0;
    for (std::size_t i = shown; i < alternatives.size(); ++i) feasible += alternatives[i].feasible;
    out += fmt::format("... {} more ({} feasible, all dearer)\n", alternatives.size() - shown,
                       feasible);
  }
  return out;
}

}  // namespace foresight::allocate
