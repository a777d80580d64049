#pragma once
// The forecaster of one live workload, as the closed loop feeds it: one call per sample with all
// resources, then quantiles over the next few samples for the planner. Two kinds: the shipped
// LSTM (trained offline, calibrated online) and the training-free seasonal forecaster.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
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
using Ensemble = std::vector<std::shared_ptr<const LstmModel>>;  // as model.h
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
// `eta`: the online calibration step (see docs/model.md); `sample_seconds`: the period of the
// samples the forecasters are fed (0: the model's step), which sets when the model's scale
// restarts after a level shift. The factory holds the models; several are averaged
// (predict::lstm::Ensemble).
ForecasterFactory lstmForecasters(predict::lstm::Ensemble models, double eta, double sample_seconds = 0);
// Runs every forecaster of `candidates` side by side on each workload and forecasts, per
// resource, with the one whose one-step-ahead quantiles have the lowest recent pinball loss on
// that workload (exponentially weighted, half-life `half_life` samples). A model trained at
// another time scale, or blind to a workload's period, gives way to one that fits it.
ForecasterFactory bestOfForecasters(std::vector<ForecasterFactory> candidates,
                                    double half_life = 60);

// By name, as the commands take it: "lstm" (the model files, averaged), "seasonal", or "auto"
// (best of the two per workload and resource), fed samples every `sample_seconds` (0: the model's
// step). Fails when a model file cannot be loaded or the files do not make one ensemble.
Result<ForecasterFactory> makeForecasters(const std::string& kind,
                                          std::span<const std::filesystem::path> models,
                                          const predict::SeasonalOptions& seasonal,
                                          double sample_seconds = 0);
// As `foresight run` and `foresight recommend` make them (--forecaster, --model) for samples every
// `period` seconds: the seasonal forecaster looks for periods up to ten minutes of samples.
Result<ForecasterFactory> liveForecasters(const std::string& kind, std::span<const std::filesystem::path> models,
                                          double period);

}  // namespace foresight::loop
