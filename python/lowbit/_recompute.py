"""Keep the fake-quantized input of a layer out of the autograd graph: recompute it in backward.

A quantized layer computes ``y = op(q(x), w_q)``. The float op (conv, linear) saves its input
``q(x)`` for the weight gradient, while ``x`` itself stays alive anyway: the quantizer's own
backward keeps it, and so does the layer that produced it (ReLU keeps its output). Saving ``q(x)``
therefore costs one extra activation per layer, about +50% of a CNN's training memory. Instead,
while the float op runs, a saved-tensor hook replaces ``q(x)`` by a recipe (``x`` and the
quantizer's frozen arguments), and backward recomputes ``q(x)`` from it without autograd: one
elementwise pass, bit for bit the same values (the kernels are deterministic and thread- and
ISA-independent; stochastic rounding replays the same generator state).

Not installed when it cannot be exact or would interfere:

* under ``torch.compile`` / ``torch.export`` tracing (the compiler's partitioner decides what
  to save there);
* when other saved-tensor hooks are active (``torch.utils.checkpoint``, CPU offloading: the
  user already manages this memory);
* when grad mode is off.

Inside a backward pass the recomputed input goes into one workspace that every layer's
recomputation reuses in turn (the previous layer's copy is dead by then), freed when the backward
pass ends: no fresh full-size tensor, and no page faults, per layer (cpp/ops/output_buffers.h).

It never keeps more than saving the copy would: the recipe holds ``x``, which has the copy's size
and is normally kept anyway (by the quantizer's own backward when ``x`` needs a gradient, by the
caller for a model input).

Double backward (``create_graph=True``) through the layer's weight gradient sees the recomputed
input as a constant; QAT never differentiates twice, and ``recompute_input=False`` on the layer
turns the hook off.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Callable, Iterable, Optional

import torch

_thread = threading.local()  # .release_queued_for: the backward pass whose workspace release is queued


def _release_workspace() -> None:
    _thread.release_queued_for = None
    sys.modules["lowbit._C"]._release_recompute_workspace()


@contextlib.contextmanager
def _recompute_workspace():
    """Within a backward pass, forward fake-quantization ops write into the recompute workspace,
    released by an engine callback when the pass ends. Outside one (a saved tensor unpacked by
    hand) the output is a fresh tensor."""
    task = torch._C._current_graph_task_id()
    if task == -1:
        yield
        return
    native = sys.modules["lowbit._C"]
    if getattr(_thread, "release_queued_for", None) != task:
        torch.autograd.Variable._execution_engine.queue_callback(_release_workspace)
        _thread.release_queued_for = task
    previous = native._set_recompute_workspace_active(True)
    try:
        yield
    finally:
        native._set_recompute_workspace_active(previous)


class Recompute:
    """How to recompute a quantizer's output ``q(x)`` without keeping it.

    ``fn()`` must return exactly the tensor the forward returned (same values, shape and strides).
    ``guards`` are the tensors ``fn`` reads (the input and the quantizer's parameters and
    switches); their version counters are checked so that an in-place change between forward and
    backward raises instead of yielding a wrong gradient.
    """

    __slots__ = ("fn", "guards", "versions", "rng_state")

    def __init__(self, fn: Callable[[], torch.Tensor], guards: Iterable[torch.Tensor],
                 rng_state: Optional[torch.Tensor] = None):
        self.fn = fn
        self.guards = tuple(guards)
        self.versions = tuple(t._version for t in self.guards)
        self.rng_state = rng_state

    def __call__(self) -> torch.Tensor:
        for t, v in zip(self.guards, self.versions):
            if t._version != v:
                raise RuntimeError(
                    "lowbit: a tensor a quantizer read in forward (its input or one of its parameters/buffers, "
                    f"shape {tuple(t.shape)}) was modified in place before backward; the layer's input cannot be "
                    "recomputed. Avoid the in-place update, or set recompute_input=False on the layer")
        with torch.no_grad(), _recompute_workspace():
            if self.rng_state is None:
                return self.fn()
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(self.rng_state)
                return self.fn()


class _Token:
    __slots__ = ("recompute", "size", "stride", "offset")

    def __init__(self, recompute, size, stride, offset):
        self.recompute, self.size, self.stride, self.offset = recompute, size, stride, offset


def hooks_available() -> bool:
    """Whether a layer may install its recompute hook now (see the module docstring)."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or not torch.is_grad_enabled():
        return False
    return torch._C._autograd._top_saved_tensors_default_hooks(False) is None


@contextlib.contextmanager
def recompute_saved(xq: torch.Tensor, recompute: Recompute):
    """Within the block, tensors saved for backward that view ``xq``'s memory are stored as
    ``recompute`` (plus the view's geometry) instead of keeping ``xq`` alive."""
    # The hooks must not reference xq: autograd keeps both hooks alive with every saved tensor.
    storage, device, dtype = xq.untyped_storage().data_ptr(), xq.device, xq.dtype
    base_offset, base_size, base_stride = xq.storage_offset(), tuple(xq.shape), xq.stride()

    def pack(t: torch.Tensor):
        if t.device == device and t.dtype == dtype and t.untyped_storage().data_ptr() == storage:
            return _Token(recompute, tuple(t.shape), t.stride(), t.storage_offset() - base_offset)
        return t

    def unpack(saved):
        if not isinstance(saved, _Token):
            return saved
        full = saved.recompute()
        if tuple(full.shape) != base_size or full.stride() != base_stride:
            raise RuntimeError(f"lowbit: recomputed quantizer output has shape {tuple(full.shape)} and strides "
                               f"{full.stride()}, forward had {base_size} and {base_stride}")
        return full.as_strided(saved.size, saved.stride, full.storage_offset() + saved.offset)

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield
