// Output-buffer reuse of the fake-quantization ops; the contracts are in output_buffers.h.
#include "ops/output_buffers.h"

namespace lowbit::ops {
namespace {
thread_local const c10::TensorImpl* t_donated_grad = nullptr;
thread_local bool t_in_recompute = false;
thread_local at::Tensor t_recompute_workspace;  // a flat buffer; its storage is what gets reused
}  // namespace

DonatedGradScope::DonatedGradScope(const c10::TensorImpl* grad) : previous_(t_donated_grad) { t_donated_grad = grad; }
DonatedGradScope::~DonatedGradScope() { t_donated_grad = previous_; }

bool is_donated_grad(const at::Tensor& grad) {
  return t_donated_grad != nullptr && grad.defined() && grad.unsafeGetTensorImpl() == t_donated_grad;
}

bool set_recompute_workspace_active(bool active) {
  const bool previous = t_in_recompute;
  t_in_recompute = active;
  return previous;
}

void release_recompute_workspace() { t_recompute_workspace = at::Tensor(); }

long long recompute_workspace_bytes() {
  return t_recompute_workspace.defined() ? static_cast<long long>(t_recompute_workspace.storage().nbytes()) : 0;
}

at::Tensor forward_output_buffer(const at::Tensor& x_contiguous) {
  if (!t_in_recompute || !x_contiguous.device().is_cpu()) {
    return at::empty(x_contiguous.sizes(), x_contiguous.options());
  }
  at::Tensor& ws = t_recompute_workspace;
  const int64_t need = x_contiguous.numel();
  // One reference to the workspace tensor (ours) and one to its storage (the workspace tensor's):
  // the previous recomputed input is gone and nobody kept it.
  const bool reusable = ws.defined() && ws.use_count() == 1 && ws.storage().use_count() == 1 &&
                        ws.scalar_type() == x_contiguous.scalar_type() && ws.numel() >= need;
  if (!reusable) {
    ws = at::empty({need}, x_contiguous.options());
  }
  // A plain tensor on the workspace's storage (not an autograd view of the workspace).
  return at::empty({0}, x_contiguous.options()).set_(ws.storage(), 0, x_contiguous.sizes());
}

}  // namespace lowbit::ops
