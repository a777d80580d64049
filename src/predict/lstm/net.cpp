// The Torch module, batched streaming inference, full-sequence forward.
#include "net.h"

#include "foresight/predict/lstm/torch_api.h"

namespace foresight::predict::lstm {

void setTorchThreads(int threads) {
  if (threads > 0) {
    torch::set_num_threads(threads);
  }
}

NetImpl::NetImpl(std::size_t inputs, std::size_t hidden, std::size_t outputs, std::size_t lv,
                 std::vector<int64_t> anchors)
    : levels(lv) {
  if (!anchors.empty()) anchor_index = torch::tensor(anchors, torch::kLong);
  lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(static_cast<int64_t>(inputs),
                                                                         static_cast<int64_t>(hidden))));
  head = register_module("head", torch::nn::Linear(static_cast<int64_t>(hidden), static_cast<int64_t>(outputs)));
}

torch::Tensor nonCrossing(const torch::Tensor& raw, std::size_t levels) {
  auto sizes = raw.sizes().vec();
  const int64_t q = static_cast<int64_t>(levels);
  auto g = raw.reshape({-1, q});
  auto inc = torch::cat({g.narrow(1, 0, 1), torch::nn::functional::softplus(g.narrow(1, 1, q - 1))}, 1);
  return inc.cumsum(1).reshape(sizes);
}

torch::Tensor NetImpl::forward(const torch::Tensor& x, std::tuple<torch::Tensor, torch::Tensor>* state) {
  auto [out, st] = state ? lstm->forward(x, *state) : lstm->forward(x);
  if (state) *state = st;
  auto q = nonCrossing(head->forward(out), levels);
  if (!anchor_index.defined()) return q;
  // [T,B,R] anchors broadcast over every horizon and level of their resource.
  const int64_t R = anchor_index.size(0);
  auto a = x.index_select(2, anchor_index);
  auto sizes = q.sizes().vec();
  return (q.reshape({sizes[0], sizes[1], R, -1}) + a.unsqueeze(-1)).reshape(sizes);
}

namespace {
torch::Tensor tensorOf(const std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat32).clone();
}
void copyOut(const torch::Tensor& t, std::vector<float>& v) {
  auto c = t.detach().contiguous().to(torch::kFloat32);
  v.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}
}  // namespace

Net toNet(const LstmModel& m) {
  const int64_t F = static_cast<int64_t>(m.inputs()), H = static_cast<int64_t>(m.hidden),
                O = static_cast<int64_t>(m.outputs());
  std::vector<int64_t> anchors;
  if (m.residual)
    for (std::size_t a : m.anchors()) anchors.push_back(static_cast<int64_t>(a));
  Net net(m.inputs(), m.hidden, m.outputs(), m.levels.size(), anchors);
  torch::NoGradGuard ng;
  net->lstm->named_parameters()["weight_ih_l0"].copy_(tensorOf(m.w_ih, {4 * H, F}));
  net->lstm->named_parameters()["weight_hh_l0"].copy_(tensorOf(m.w_hh, {4 * H, H}));
  net->lstm->named_parameters()["bias_ih_l0"].copy_(tensorOf(m.b, {4 * H}));
  net->lstm->named_parameters()["bias_hh_l0"].zero_();
  net->head->weight.copy_(tensorOf(m.head_w, {O, H}));
  net->head->bias.copy_(tensorOf(m.head_b, {O}));
  return net;
}

void fromNet(Net& net, LstmModel& m) {
  auto p = net->lstm->named_parameters();
  copyOut(p["weight_ih_l0"], m.w_ih);
  copyOut(p["weight_hh_l0"], m.w_hh);
  copyOut(p["bias_ih_l0"] + p["bias_hh_l0"], m.b);
  copyOut(net->head->weight, m.head_w);
  copyOut(net->head->bias, m.head_b);
}

struct StreamingPredictor::Impl {
  Net net{nullptr};
  std::size_t n = 0, inputs = 0, outputs = 0, levels = 0, horizon = 0;
  bool residual = false;
  torch::Tensor anchor_index;
  std::tuple<torch::Tensor, torch::Tensor> state;
  // The step keeps raw head outputs; the non-crossing transform (softplus + cumsum, most of the
  // cost per element) runs only for the workloads whose forecast is read.
  torch::Tensor raw;      // [n, outputs]
  torch::Tensor anchors;  // [n, R]
  std::vector<float> buffer;
};

StreamingPredictor::StreamingPredictor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamingPredictor::~StreamingPredictor() = default;

Result<std::unique_ptr<StreamingPredictor>> StreamingPredictor::create(const LstmModel& model,
                                                                       std::size_t workloads) {
  try {
    auto impl = std::make_unique<Impl>();
    impl->net = toNet(model);
    impl->net->eval();
    impl->n = workloads;
    impl->inputs = model.inputs();
    impl->outputs = model.outputs();
    impl->levels = model.levels.size();
    impl->horizon = model.horizon;
    impl->residual = model.residual;
    impl->anchor_index = impl->net->anchor_index;
    impl->buffer.resize(model.outputs());
    const int64_t B = static_cast<int64_t>(workloads), H = static_cast<int64_t>(model.hidden);
    impl->state = {torch::zeros({1, B, H}), torch::zeros({1, B, H})};
    impl->raw = torch::zeros({B, static_cast<int64_t>(model.outputs())});
    impl->anchors = torch::zeros({B, static_cast<int64_t>(kResourceCount)});
    return std::unique_ptr<StreamingPredictor>(new StreamingPredictor(std::move(impl)));
  } catch (const c10::Error& e) {
    return fail(ErrorCode::kInternal, "lstm streaming predictor: {}", e.what_without_backtrace());
  }
}

Status StreamingPredictor::step(std::span<const float> x) {
  if (x.size() != impl_->n * impl_->inputs)
    return fail(ErrorCode::kInvalidArgument, "lstm step: {} inputs, expected {} x {}", x.size(),
                impl_->n, impl_->inputs);
  try {
    torch::InferenceMode guard;
    auto xt = torch::from_blob(const_cast<float*>(x.data()),
                               {1, static_cast<int64_t>(impl_->n), static_cast<int64_t>(impl_->inputs)},
                               torch::kFloat32);
    auto [h, st] = impl_->net->lstm->forward(xt, impl_->state);
    impl_->state = st;
    // Into the buffer of the last step: a fresh [n, outputs] tensor each step (23 MB at 10,000
    // workloads) cost page faults and doubled the step's time.
    torch::addmm_out(impl_->raw, impl_->net->head->bias, h.squeeze(0), impl_->net->head->weight.t());
    if (impl_->residual) impl_->anchors = xt.squeeze(0).index_select(1, impl_->anchor_index).contiguous();
    return ok();
  } catch (const c10::Error& e) {
    return fail(ErrorCode::kInternal, "lstm step: {}", e.what_without_backtrace());
  }
}

std::span<const float> StreamingPredictor::output(std::size_t i) const {
  const float* raw = impl_->raw.data_ptr<float>() + i * impl_->outputs;
  const std::size_t Q = impl_->levels;
  float* out = impl_->buffer.data();
  for (std::size_t g = 0; g < impl_->outputs / Q; ++g) {
    const std::size_t r = g / impl_->horizon;
    float acc = raw[g * Q] + (impl_->residual ? impl_->anchors.data_ptr<float>()[i * kResourceCount + r] : 0.0f);
    out[g * Q] = acc;
    for (std::size_t k = 1; k < Q; ++k) {
      const float v = raw[g * Q + k];
      acc += v > 20.0f ? v : std::log1p(std::exp(v));  // softplus, Torch's threshold
      out[g * Q + k] = acc;
    }
  }
  return {out, impl_->outputs};
}
std::size_t StreamingPredictor::workloads() const { return impl_->n; }

Result<std::vector<float>> forwardSequence(const LstmModel& model, std::span<const float> x,
                                           std::size_t steps) {
  if (x.size() != steps * model.inputs())
    return fail(ErrorCode::kInvalidArgument, "lstm forward: {} inputs, expected {} x {}", x.size(),
                steps, model.inputs());
  try {
    torch::InferenceMode guard;
    Net net = toNet(model);
    net->eval();
    auto xt = torch::from_blob(const_cast<float*>(x.data()),
                               {static_cast<int64_t>(steps), 1, static_cast<int64_t>(model.inputs())},
                               torch::kFloat32);
    auto y = net->forward(xt, nullptr).contiguous();
    return std::vector<float>(y.data_ptr<float>(), y.data_ptr<float>() + y.numel());
  } catch (const c10::Error& e) {
    return fail(ErrorCode::kInternal, "lstm forward: {}", e.what_without_backtrace());
  }
}

}  // namespace foresight::predict::lstm
