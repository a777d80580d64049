#pragma once
// The capacity advice of the closed loops (loop::CapacityAdvice) as the tests set it up and read
// it back.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "foresight/allocate/cost.h"
#include "foresight/loop/autoscaler.h"

namespace foresight::test_support {

// On a host of `host_cpus` and 8 GiB, priced from three machine types; a workload's own ceiling
// raised as `raise` says.
inline loop::CapacityAdvice adviceOn(double host_cpus, std::int64_t sustain_seconds, loop::CeilingAdvice raise) {
  auto catalog = allocate::parsePriceCatalog(
      "machines:\n"
      "  - {name: small, vcpus: 2, memory_gib: 8, on_demand: 0.1}\n"
      "  - {name: big, vcpus: 8, memory_gib: 32, on_demand: 0.4}\n"
      "  - {name: fat, vcpus: 2, memory_gib: 32, on_demand: 0.25}\n",
      "test.yaml");
  EXPECT_TRUE(catalog) << catalog.error().message;
  loop::CapacityAdvice adv;
  adv.cost = std::make_shared<const allocate::CostModel>(std::move(*catalog));
  adv.host[Resource::kCpu] = host_cpus;
  adv.host[Resource::kMemory] = 8.0 * (1ull << 30);
  adv.sustain_seconds = sustain_seconds;
  adv.raise_ceiling = std::move(raise);
  return adv;
}

// The advice the live view shows for `workload` ("" = none).
inline std::string adviceOf(const loop::Autoscaler& s, const std::string& workload) {
  for (const auto& row : s.view())
    if (row.workload == workload && !row.advice.empty()) return row.advice;
  return {};
}

}  // namespace foresight::test_support
