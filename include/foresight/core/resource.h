#pragma once
// One resource vector everywhere: cpu (cores), memory (bytes), disk_io (bytes/s, read+write),
// network (bytes/s, rx+tx).

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace foresight {

enum class Resource : std::size_t { kCpu = 0, kMemory = 1, kDiskIo = 2, kNetwork = 3 };
inline constexpr std::size_t kResourceCount = 4;
inline constexpr std::array<Resource, kResourceCount> kAllResources = {
    Resource::kCpu, Resource::kMemory, Resource::kDiskIo, Resource::kNetwork};

constexpr std::string_view name(Resource r) {
  constexpr std::array<std::string_view, kResourceCount> kNames = {"cpu", "memory", "disk_io",
                                                                   "network"};
  return kNames[static_cast<std::size_t>(r)];
}
constexpr std::size_t index(Resource r) { return static_cast<std::size_t>(r); }

inline std::optional<Resource> parseResource(std::string_view s) {
  for (Resource r : kAllResources)
    if (name(r) == s) return r;
  return std::nullopt;
}

}  // namespace foresight
