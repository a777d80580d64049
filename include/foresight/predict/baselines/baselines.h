#pragma once
#include <memory>

#include "foresight/predict/policy.h"

namespace foresight::predict {

// Kubernetes VPA recommender: decaying histograms (half-life 24 h), target = 1.15 x P(knob),
// memory from daily peaks. Knob: the percentile (default 0.9).
std::unique_ptr<PolicyFactory> makeVpaFactory();
// Google Autopilot moving-window recommender (EuroSys 2020). Knob: j for cpu, disk_io and network;
// a margin for memory.
std::unique_ptr<PolicyFactory> makeAutopilotFactory();
// Max usage over the last hour x (1 + m). Knob: m (default 0.15).
std::unique_ptr<PolicyFactory> makeReactiveFactory();
// Peak of the warm-up part x (1 + m). Knob: m.
std::unique_ptr<PolicyFactory> makeStaticFactory();
// a = u: the reference; it sees the future by construction.
std::unique_ptr<PolicyFactory> makeOracleFactory();
// Foresight's training-free streaming forecaster (seasonal median + online conformal errors).
// Knob: the quantile level (default 0.95).
// knob: "cost" (violation cost, decision.h) or "quantile".
std::unique_ptr<PolicyFactory> makeSeasonalFactory(std::string knob);

}  // namespace foresight::predict
