#pragma once
// Factories of the built-in collectors (internal to foresight_collect).
#include <map>
#include <memory>

#include "foresight/collect/collector.h"

namespace foresight::collect {
std::unique_ptr<Collector> makeCgroupV1Collector(const CollectorContext& ctx);
std::unique_ptr<Collector> makeCgroupV2Collector(const CollectorContext& ctx);
std::unique_ptr<Collector> makeProcfsCollector(const CollectorContext& ctx);
std::unique_ptr<Collector> makeNetCollector(const CollectorContext& ctx);
std::unique_ptr<Collector> makeProbeCollector(const CollectorContext& ctx);
}  // namespace foresight::collect
