// Where a backward op puts dx: a fresh tensor, or the incoming gradient's own buffer when the
// autograd node that calls the op holds the only reference to it.
//
// Why: a fake-quantization backward is dx = f(x, grad), element by element, and the incoming grad
// (the next layer's grad_input) dies right after it. Writing dx over grad saves one full-size
// allocation per quantizer and step; on Linux a fresh tensor of that size is fresh pages, and
// their page faults cost about as much as the kernel itself (benchmarks/RESULTS.md, QAT step).
//
// Contract:
//  * Only the autograd node (ops/autograd_fake_quantize.cpp) donates, and only a gradient it
//    owns alone: one reference to the tensor, one to its storage, plain dense CPU memory, no
//    tensor subclass, dispatch mode or functionalization in sight (so tracing, FakeTensor and
//    user-visible tensors never see a mutation).
//  * A backward op called directly (torch.ops.lowbit.*_backward) never writes into its argument:
//    without a donation in scope, grad_output_buffer always allocates.
//  * The kernels read dy[i] before they write dx[i] and touch no other index for it, so dx may be
//    dy (every backward kernel is elementwise; tests compare donated and fresh results bit for bit).
// The donation is a thread-local scope: the op runs on the thread that donates.
#pragma once
#include <ATen/ATen.h>

namespace lowbit::ops {

// While alive, backward ops on this thread may write dx into `grad` (see the contract above).
class DonatedGradScope {
 public:
  explicit DonatedGradScope(const at::Tensor* grad);
  ~DonatedGradScope();
  DonatedGradScope(const DonatedGradScope&) = delete;
  DonatedGradScope& operator=(const DonatedGradScope&) = delete;

 private:
  const at::Tensor* previous_;
};

// True if `grad` is the donated gradient of the current scope.
bool is_donated_grad(const at::Tensor& grad);

// The tensor dx goes into: `grad_contiguous` itself when it is the donated gradient (contiguous
// already, same dtype and shape as x: the ops check that before), else a fresh tensor like x.
inline at::Tensor grad_output_buffer(const at::Tensor& grad_contiguous, const at::Tensor& x_contiguous) {
  if (is_donated_grad(grad_contiguous) && grad_contiguous.scalar_type() == x_contiguous.scalar_type() &&
      grad_contiguous.sizes() == x_contiguous.sizes() && grad_contiguous.is_contiguous()) {
    return grad_contiguous;
  }
  return at::empty(x_contiguous.sizes(), x_contiguous.options());
}

}  // namespace lowbit::ops
