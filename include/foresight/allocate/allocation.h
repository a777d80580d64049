#pragma once
// An allocation: the limit a backend enforces per resource, in the units of core/resource.h
// (cpu cores, memory bytes, disk_io bytes/s, network bytes/s). An absent value means "unlimited"
// when read from a backend and "leave as is" when handed to apply(); +infinity handed to apply()
// means "remove the limit" (backends that cannot, e.g. libvirt, refuse it).

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "foresight/core/resource.h"
#include "foresight/core/result.h"

namespace foresight::allocate {

struct Allocation {
  std::array<std::optional<double>, kResourceCount> values;

  const std::optional<double>& operator[](Resource r) const { return values[index(r)]; }
  std::optional<double>& operator[](Resource r) { return values[index(r)]; }
  bool empty() const {
    for (const auto& v : values)
      if (v) return false;
    return true;
  }
  bool operator==(const Allocation&) const = default;
};

// "cpu=1.5 memory=2.0GiB" for logs and tables; unset resources are left out, "-" if none.
std::string format(const Allocation& a);
// {"cpu": 1.5, "memory": 2147483648}; unset resources are absent.
nlohmann::json toJson(const Allocation& a);
Result<Allocation> allocationFromJson(const nlohmann::json& j);

// Byte sizes as people type them: 512M, 2G, 1.5GiB, 1048576 (binary multiples: K = 1024);
// 0 up to below 2^63 (8 EiB).
Result<double> parseBytes(std::string_view s);
std::string formatBytes(double bytes);

}  // namespace foresight::allocate
