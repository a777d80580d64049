#pragma once
// The host's default collectors, as the agent runs them, for the tests on this machine's kernel.
#include "foresight/collect/collector.h"
#include "foresight/collect/sampler.h"

namespace foresight::test_support {

inline Result<collect::Sampler> hostSampler(const collect::CollectorContext& ctx) {
  static const collect::CollectorRegistry* registry = [] {
    auto* r = new collect::CollectorRegistry("collector");
    collect::registerCollectors(*r);
    return r;
  }();
  return collect::Sampler::create(ctx, collect::defaultCollectors(ctx.layout), *registry);
}

}  // namespace foresight::test_support
