// Autograd of the fake-quantization ops: STE fake quantization (fake_quantize_affine) and every
// gradient estimator (LSQ/LSQ+, learnable, PACT, QIL, DSQ, sigmoid staircase). One boxed kernel
// serves them all, driven by a table: which forward arguments receive which outputs of the
// op's `*_backward` op. The formulas live in the backward ops (and below them in cpp/core); this
// file only wires them into autograd.
//
// Why C++, where DESIGN.md puts autograd formulas in Python (torch.library.register_autograd):
//  1. Overhead. The Python wrapper cost ~0.2 ms per quantizer forward+backward (setup_context,
//     ctx, pytree, the GIL), twice per quantized layer and step, 40 times per step in the
//     ResNet-style QAT benchmark; this node costs a few microseconds.
//  2. Memory traffic. Only C++ sees whether autograd hands the backward the only reference to
//     the incoming gradient; then dx is written over it instead of into a fresh full-size
//     tensor (output_buffers.h says when that is allowed).
// What stays as it was: the saved tensors go through SavedVariable (saved-tensor hooks, version
// checks, "backward through the graph a second time" errors), torch.compile and torch.export
// trace the ops through their fake kernels in _registrations.py, and the backward ops are the
// same public ops opcheck tests. Not supported, as before: forward-mode AD (a clear error) and
// double backward (the backward ops have no autograd). Compiled autograd
// (torch._dynamo.compiled_autograd) does not accept this node.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/impl/TorchDispatchModeTLS.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/csrc/autograd/saved_variable.h>
#include <torch/library.h>

#include <string>
#include <utility>
#include <vector>

#include "ops/output_buffers.h"

namespace lowbit::ops {

namespace {

using torch::autograd::Edge;
using torch::autograd::edge_list;
using torch::autograd::Node;
using torch::autograd::SavedVariable;
using torch::autograd::variable_list;

// Whether nobody but the caller can observe `grad`: the only reference to the tensor and to its
// memory, plain dense CPU storage, and no tensor subclass, functionalization, functorch wrapper
// or dispatch mode that could be tracing or recording the call.
bool caller_owns_grad_alone(const at::Tensor& grad) {
  static const c10::DispatchKeySet kWrapperKeys({
      c10::DispatchKey::Python,
      c10::DispatchKey::PythonTLSSnapshot,
      c10::DispatchKey::Functionalize,
      c10::DispatchKey::FuncTorchBatched,
      c10::DispatchKey::FuncTorchGradWrapper,
      c10::DispatchKey::Conjugate,
      c10::DispatchKey::Negative,
      c10::DispatchKey::ZeroTensor,
  });
  return grad.defined() && grad.use_count() == 1 && grad.has_storage() && grad.storage().use_count() == 1 &&
         !grad.is_view() && !grad.requires_grad() && grad.device().is_cpu() && grad.layout() == at::kStrided &&
         grad.is_contiguous() && !grad.key_set().has_any(kWrapperKeys) &&
         !c10::impl::TorchDispatchModeTLS::any_modes_set();
}

// One row per differentiable fake-quantization op. The backward op takes (grad, *forward
// arguments) and returns one tensor per entry of grad_args, in that order; an output whose
// forward argument is None (no offset, no gamma) is ignored.
struct FakeQuantizeAutograd {
  const char* op;           // forward op, without the "lowbit::" namespace
  const char* backward_op;  // its backward op
  std::vector<int> grad_args;
  const char* node_name;    // grad_fn name
  int ste_arg = -1;         // fake_quantize_affine: `ste`; "identity" passes grad through unchanged
};

const std::vector<FakeQuantizeAutograd>& autograd_table() {
  static const std::vector<FakeQuantizeAutograd> table = {
      {"fake_quantize_affine", "fake_quantize_affine_backward", {0}, "FakeQuantizeAffineBackward", 6},
      {"fake_quantize_lsq", "fake_quantize_lsq_backward", {0, 1, 2}, "FakeQuantizeLsqBackward"},
      {"fake_quantize_learnable", "fake_quantize_learnable_backward", {0, 1, 2}, "FakeQuantizeLearnableBackward"},
      {"fake_quantize_pact", "fake_quantize_pact_backward", {0, 1}, "FakeQuantizePactBackward"},
      {"fake_quantize_qil", "fake_quantize_qil_backward", {0, 1, 2, 3}, "FakeQuantizeQilBackward"},
      {"fake_quantize_dsq", "fake_quantize_dsq_backward", {0, 1, 2, 3}, "FakeQuantizeDsqBackward"},
      {"fake_quantize_sigmoid", "fake_quantize_sigmoid_backward", {0, 3, 4}, "FakeQuantizeSigmoidBackward"},
  };
  return table;
}

// A table row with its backward op's handle. The rows are checked against both schemas once, on
// first use (a mismatch is a lowbit bug and reported as such).
struct ResolvedAutograd {
  const FakeQuantizeAutograd* spec;
  c10::OperatorHandle backward;
};

const ResolvedAutograd& resolved(const c10::OperatorHandle& op) {
  static const std::vector<std::pair<c10::OperatorName, ResolvedAutograd>> rows = [] {
    std::vector<std::pair<c10::OperatorName, ResolvedAutograd>> out;
    auto& dispatcher = c10::Dispatcher::singleton();
    for (const FakeQuantizeAutograd& spec : autograd_table()) {
      auto forward = dispatcher.findSchemaOrThrow((std::string("lowbit::") + spec.op).c_str(), "");
      auto backward = dispatcher.findSchemaOrThrow((std::string("lowbit::") + spec.backward_op).c_str(), "");
      TORCH_INTERNAL_ASSERT(backward.schema().arguments().size() == forward.schema().arguments().size() + 1 &&
                                backward.schema().returns().size() == spec.grad_args.size(),
                            "lowbit: the autograd table does not match the schema of ", spec.backward_op);
      out.emplace_back(forward.operator_name(), ResolvedAutograd{&spec, backward});
    }
    return out;
  }();
  for (const auto& [name, row] : rows) {
    if (name == op.operator_name()) return row;
  }
  TORCH_INTERNAL_ASSERT(false, "lowbit: no autograd table row for ", op.schema().name());
}

class FakeQuantizeBackward final : public Node {
 public:
  // `args` are the forward arguments; tensors among them are moved into SavedVariables (so
  // saved-tensor hooks and version checks apply) and their slots left as None.
  FakeQuantizeBackward(const ResolvedAutograd& row, std::vector<c10::IValue> args, bool identity)
      : row_(row), args_(std::move(args)), identity_(identity) {
    if (identity_) {
      args_.clear();  // the identity STE needs nothing from the forward
      return;
    }
    for (size_t i = 0; i < args_.size(); ++i) {
      if (args_[i].isTensor()) {
        saved_.emplace_back(static_cast<int>(i), SavedVariable(args_[i].toTensor(), /*is_output=*/false));
        args_[i] = c10::IValue();
      }
    }
  }

  std::string name() const override { return row_.spec->node_name; }

  void release_variables() override {
    for (auto& [index, saved] : saved_) saved.reset_data();
  }

  variable_list apply(variable_list&& grads) override {
    variable_list out(num_outputs());
    TORCH_INTERNAL_ASSERT(grads.size() == 1);
    at::Tensor grad = std::move(grads[0]);
    if (!grad.defined()) return out;
    if (identity_) {
      if (task_should_compute_output(0)) out[0] = std::move(grad);
      return out;
    }
    const bool donate = caller_owns_grad_alone(grad);
    torch::jit::Stack stack;
    stack.reserve(args_.size() + 1);
    stack.emplace_back(std::move(grad));
    for (const c10::IValue& a : args_) stack.push_back(a);
    for (const auto& [index, saved] : saved_) stack[index + 1] = saved.unpack();
    {
      const DonatedGradScope scope(donate ? stack[0].toTensor().unsafeGetTensorImpl() : nullptr);
      row_.backward.callBoxed(stack);
    }
    const auto& grad_args = row_.spec->grad_args;
    TORCH_INTERNAL_ASSERT(stack.size() == grad_args.size());
    for (size_t k = 0; k < grad_args.size(); ++k) {
      if (task_should_compute_output(k)) out[k] = std::move(stack[k]).toTensor();
    }
    return out;
  }

 private:
  const ResolvedAutograd& row_;
  std::vector<c10::IValue> args_;
  std::vector<std::pair<int, SavedVariable>> saved_;
  bool identity_;
};

void check_no_forward_grad(const c10::IValue& v, const c10::OperatorHandle& op) {
  if (v.isTensor() && v.toTensor().defined()) {
    TORCH_CHECK(!v.toTensor()._fw_grad(/*level=*/0).defined(), "lowbit.", op.schema().name().substr(8),
                ": forward-mode AD (torch.func.jvp, torch.autograd.forward_ad) is not supported; use reverse mode");
  }
}

// The Autograd-key kernel of every op in the table: run the op below autograd and, when a
// differentiable argument requires grad, attach a FakeQuantizeBackward node to its output.
void fake_quantize_autograd_kernel(const c10::OperatorHandle& op, c10::DispatchKeySet ks, torch::jit::Stack* stack) {
  const ResolvedAutograd& row = resolved(op);
  const size_t n = op.schema().arguments().size();
  const auto args = torch::jit::last(*stack, n);
  for (const c10::IValue& a : args) check_no_forward_grad(a, op);
  bool needs_grad = false;
  if (torch::autograd::GradMode::is_enabled()) {
    for (const int a : row.spec->grad_args) {
      needs_grad = needs_grad || (args[a].isTensor() && args[a].toTensor().requires_grad());
    }
  }
  c10::intrusive_ptr<FakeQuantizeBackward> node;
  if (needs_grad) {
    edge_list edges;
    edges.reserve(row.spec->grad_args.size());
    for (const int a : row.spec->grad_args) {
      edges.push_back(args[a].isTensor() ? torch::autograd::impl::gradient_edge(args[a].toTensor()) : Edge());
    }
    const int ste = row.spec->ste_arg;
    const bool identity = ste >= 0 && args[ste].toStringRef() == "identity";
    node = c10::make_intrusive<FakeQuantizeBackward>(row, std::vector<c10::IValue>(args.begin(), args.end()),
                                                     identity);
    node->set_next_edges(std::move(edges));
  }
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    op.redispatchBoxed(ks & c10::after_autograd_keyset, stack);
  }
  if (node) torch::autograd::set_history(stack->back().toTensor(), node);
}

}  // namespace

TORCH_LIBRARY_IMPL(lowbit, Autograd, m) {
  for (const FakeQuantizeAutograd& spec : autograd_table()) {
    m.impl(spec.op, torch::CppFunction::makeFromBoxedFunction<&fake_quantize_autograd_kernel>());
  }
}

}  // namespace lowbit::ops
