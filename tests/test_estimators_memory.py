"""Each estimator's autograd node keeps only the input (and its tiny parameters) for backward, as
lowbit.ops.estimator_saved_bytes_per_element reports; the backward op is one fused pass that
allocates dx and no other full-size tensor."""

from __future__ import annotations

import pytest
import torch

from lowbit import ops

SHAPE = (64, 32, 9, 9)
N = 64 * 32 * 9 * 9

CASES = {
    "lsq": lambda x: ops.fake_quantize_lsq(x, torch.tensor([0.1], requires_grad=True), -8, 7, grad_scale=0.01),
    "lsq+": lambda x: ops.fake_quantize_lsq(x, torch.tensor([0.1], requires_grad=True), 0, 15,
                                            offset=torch.tensor([-0.3], requires_grad=True)),
    "learnable": lambda x: ops.fake_quantize_learnable(x, torch.tensor([0.1], requires_grad=True),
                                                       torch.tensor([3.0], requires_grad=True), 0, 255),
    "pact": lambda x: ops.fake_quantize_pact(x, torch.ones(1, 32, 1, 1, requires_grad=True), 4),
    "qil": lambda x: ops.fake_quantize_qil(x, torch.tensor([0.9], requires_grad=True),
                                           torch.tensor([0.5], requires_grad=True),
                                           torch.tensor([1.2], requires_grad=True), 4),
    "dsq": lambda x: ops.fake_quantize_dsq(x, torch.tensor([-1.0], requires_grad=True),
                                           torch.tensor([1.0], requires_grad=True),
                                           torch.tensor([0.2], requires_grad=True), 3),
    "sigmoid": lambda x: ops.fake_quantize_sigmoid(x, ops.sigmoid_levels(2), torch.tensor([-0.5, 0.5]),
                                                   torch.tensor([1.0], requires_grad=True),
                                                   torch.tensor([1.0], requires_grad=True), torch.tensor([5.0])),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(CASES))
def test_saved_bytes_per_element(name, dtype):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    x = torch.randn(SHAPE, dtype=dtype, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = CASES[name](x)
    full_size = [t for t in saved if t.numel() >= N]
    small = [t for t in saved if t.numel() < N]
    bytes_per_element = sum(t.numel() * t.element_size() for t in full_size) / N
    assert bytes_per_element == ops.estimator_saved_bytes_per_element(name, dtype)
    assert all(t.data_ptr() == x.data_ptr() for t in full_size), "the only full-size tensor saved is x itself"
    assert sum(t.numel() for t in small) < 100
    y.backward(torch.ones_like(y))
    assert x.grad.shape == x.shape


def test_reported_sizes():
    assert ops.estimator_saved_bytes_per_element("lsq") == 4
    assert ops.estimator_saved_bytes_per_element("dsq", torch.float16) == 2
    with pytest.raises(ValueError, match="estimator must be one of"):
        ops.estimator_saved_bytes_per_element("adaround")


def test_backward_allocates_only_dx():
    # The profiler's memory events of one backward op call: dx (N elements) plus parameter-sized
    # outputs and small scratch; no second full-size buffer.
    x = torch.randn(SHAPE)
    grad = torch.randn(SHAPE)
    s = torch.tensor([0.1])
    b = torch.tensor([0.0])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        torch.ops.lowbit.fake_quantize_lsq_backward(grad, x, s, b, -8, 7, 1.0, "half_even", None, 0)
    top = [e for e in prof.events() if e.name == "lowbit::fake_quantize_lsq_backward"]
    assert len(top) == 1
    # Net allocation of the op (outputs included): dx plus a few parameter-sized tensors.
    assert N * 4 <= top[0].cpu_memory_usage <= N * 4 + 256, top[0].cpu_memory_usage
