#pragma once
// The forecaster of one live workload, as the closed loop feeds it: one call per sample with all
// resources, then quantiles over the next few samples for the planner. Two kinds: the shipped
// LSTM (trained offline, calibrated online) and the training-free seasonal forecaster.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "foresight/core/resource.h"
#include "foresight/core/result.h"
#include "foresight/predict/forecast.h"
#include "foresight/predict/seasonal.h"

namespace foresight::predict::lstm {
struct LstmModel;
}

namespace foresight::loop {

class WorkloadForecaster {
 public:
  virtual ~WorkloadForecaster() = default;
  virtual void observe(std::int64_t now, const std::array<double, kResourceCount>& usage) = 0;
  // Quantiles at `levels` (ascending) of resource r for the next h = 1..lookahead samples into
  // out[h-1]; false when it has no forecast yet.
  virtual bool forecast(Resource r, std::span<const double> levels, std::size_t lookahead,
                        std::vector<std::vector<double>>& out) = 0;
};

// Makes one forecaster per workload.
using ForecasterFactory = std::function<std::unique_ptr<WorkloadForecaster>()>;

ForecasterFactory seasonalForecasters(predict::SeasonalOptions options);
// `eta`: the online calibration step (see docs/model.md). The model must outlive the factory's
// forecasters; the factory holds it.
ForecasterFactory lstmForecasters(std::shared_ptr<const predict::lstm::LstmModel> model, double eta);

}  // namespace foresight::loop
