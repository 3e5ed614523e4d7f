// Where fake-quantization ops put their full-size outputs when a fresh tensor would be waste.
// Two cases, both invisible to anyone who could tell the difference:
//  1. a backward op's dx, written over the incoming gradient when autograd hands over its only
//     reference (DonatedGradScope);
//  2. a forward op's output recomputed in backward for a QAT layer (lowbit/_recompute.py), written
//     into one workspace that every layer's recomputation reuses in turn (set_recompute_workspace_active).
// Why: on Linux a fresh full-size tensor is fresh pages, and their page faults cost about as much
// as the elementwise kernel that fills them (benchmarks/RESULTS.md, QAT step).
//
// 1. Donated gradient.
// A fake-quantization backward is dx = f(x, grad), element by element, and the incoming grad (the
// next layer's grad_input) dies right after it. Contract:
//  * Only the autograd node (ops/autograd_fake_quantize.cpp) donates, and only a gradient it
//    owns alone: one reference to the tensor, one to its storage, plain dense CPU memory, no
//    tensor subclass, dispatch mode or functionalization in sight (so tracing, FakeTensor and
//    user-visible tensors never see a mutation).
//  * A backward op called directly (torch.ops.lowbit.*_backward) never writes into its argument:
//    without a donation in scope, grad_output_buffer always allocates.
//  * The kernels read dy[i] before they write dx[i] and touch no other index for it, so dx may be
//    dy (every backward kernel is elementwise; tests compare donated and fresh results bit for bit).
// The donation is a thread-local scope: the op runs on the thread that donates.
//
// 2. Recompute workspace. A QAT layer does not keep its fake-quantized input for backward; the
// input is recomputed just before the layer's own backward needs it and is dead right after (see
// python/lowbit/_recompute.py). Layers run backward one after another, so one buffer serves them
// all. Contract:
//  * Only lowbit._recompute enters the scope, around one recomputation inside a backward pass, and
//    releases the workspace when that backward pass ends (an engine callback): no memory outlives
//    the backward pass, none is held in forward.
//  * The workspace is reused only when nothing else references its memory (the previous
//    recomputed input is gone, no user hook kept it); otherwise a fresh tensor is allocated and
//    becomes the workspace. The output is a plain tensor on the workspace's storage, never a
//    view of a tensor a user can reach.
//  * Thread-local: a recomputation runs on the thread that executes the backward pass.
#pragma once
#include <ATen/ATen.h>

#include "ops/recompute_workspace.h"  // set_recompute_workspace_active, release_recompute_workspace

namespace lowbit::ops {

// While alive, backward ops on this thread may write dx into the tensor `grad` (see the contract
// above). Identity only: the scope never dereferences `grad`, so it may outlive the handle the
// caller passed in.
class DonatedGradScope {
 public:
  explicit DonatedGradScope(const c10::TensorImpl* grad);
  ~DonatedGradScope();
  DonatedGradScope(const DonatedGradScope&) = delete;
  DonatedGradScope& operator=(const DonatedGradScope&) = delete;

 private:
  const c10::TensorImpl* previous_;
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

// The tensor a forward op writes its output into: contiguous, shaped and typed like x; from the
// recompute workspace while it is active, else fresh.
at::Tensor forward_output_buffer(const at::Tensor& x_contiguous);

}  // namespace lowbit::ops
