#pragma once
// Private: the Torch module. Only net.cpp and train.cpp include Torch.

#include <torch/torch.h>

#include "foresight/predict/lstm/model.h"

namespace foresight::predict::lstm {

struct NetImpl : torch::nn::Module {
  NetImpl(std::size_t inputs, std::size_t hidden, std::size_t outputs, std::size_t levels,
          std::vector<int64_t> anchors = {});
  // x: [T, B, F]; returns z-space quantiles [T, B, outputs] (non-crossing per level group).
  torch::Tensor forward(const torch::Tensor& x, std::tuple<torch::Tensor, torch::Tensor>* state);
  torch::nn::LSTM lstm{nullptr};
  torch::nn::Linear head{nullptr};
  std::size_t levels;
  torch::Tensor anchor_index;  // u_<r> input columns for residual heads; undefined: none
};
TORCH_MODULE(Net);

Net toNet(const LstmModel& m);
void fromNet(Net& net, LstmModel& m);  // copies the weights back into m

// Base + cumulative softplus increments along the last dim (groups of `levels`).
torch::Tensor nonCrossing(const torch::Tensor& raw, std::size_t levels);

}  // namespace foresight::predict::lstm
