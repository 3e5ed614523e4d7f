// The switch of the recompute workspace (contract in ops/output_buffers.h), without ATen: the
// pybind module (cpp/module.cpp) exposes it to lowbit._recompute.
#pragma once

namespace lowbit::ops {

// Switches on (or off) writing forward fake-quantization outputs into this thread's recompute
// workspace; returns the previous setting, to restore it.
bool set_recompute_workspace_active(bool active);

// Frees this thread's recompute workspace (end of a backward pass).
void release_recompute_workspace();

// Bytes this thread's recompute workspace holds now (0 outside a backward pass).
long long recompute_workspace_bytes();

}  // namespace lowbit::ops
