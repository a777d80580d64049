#include "foresight/allocate/allocation.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace foresight::allocate {

std::string formatBytes(double bytes) {
  constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f}B", bytes) : fmt::format("{:.2f}{}", bytes, kUnits[u]);
}

std::string format(const Allocation& a) {
  std::string out;
  for (Resource r : kAllResources) {
    if (!a[r]) continue;
    if (!out.empty()) out += ' ';
    out += fmt::format("{}=", name(r));
    if (std::isinf(*a[r])) {
      out += "unlimited";
      continue;
    }
    if (r == Resource::kCpu)
      out += fmt::format("{:.3g}", *a[r]);
    else if (r == Resource::kMemory)
      out += formatBytes(*a[r]);
    else
      out += formatBytes(*a[r]) + "/s";
  }
  return out.empty() ? "-" : out;
}

nlohmann::json toJson(const Allocation& a) {
  nlohmann::json j = nlohmann::json::object();
  for (Resource r : kAllResources)
    if (a[r]) {
      // JSON has no infinity.
      if (std::isinf(*a[r])) j[std::string(name(r))] = "unlimited";
      else j[std::string(name(r))] = *a[r];
    }
  return j;
}

Result<Allocation> allocationFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return fail(ErrorCode::kParse, "allocation: expected a JSON object");
  Allocation a;
  for (const auto& [key, value] : j.items()) {
    auto r = parseResource(key);
    if (!r) return fail(ErrorCode::kParse, "allocation: unknown resource '{}'", key);
    if (value == "unlimited") {
      a[*r] = INFINITY;
      continue;
    }
    if (!value.is_number()) return fail(ErrorCode::kParse, "allocation: '{}' is not a number", key);
    a[*r] = value.get<double>();
  }
  return a;
}

Result<double> parseBytes(std::string_view s) {
  const std::string text(s);
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || value < 0 || !std::isfinite(value))
    return fail(ErrorCode::kInvalidArgument, "'{}' is not a byte size (e.g. 512M, 2G, 1.5GiB)", s);
  std::string unit(ptr, text.data() + text.size());
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K") mult = 1024.0;
  else if (unit == "M") mult = 1024.0 * 1024;
  else if (unit == "G") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T") mult = 1024.0 * 1024 * 1024 * 1024;
  else return fail(ErrorCode::kInvalidArgument, "'{}': unknown unit (use K, M, G or T)", s);
  // No limit, file or device is that large; the backends write at most 2^62 (checkTarget), so a
  // size they would refuse is refused here, before a command records anything.
  if (value * mult >= 0x1p62)
    return fail(ErrorCode::kInvalidArgument, "'{}' is too large: byte sizes must be below 4 EiB (2^62)",
                s);
  return value * mult;
}

}  // namespace foresight::allocate
