"""The C++ autograd node of the fake-quantization ops (cpp/ops/autograd_fake_quantize.cpp).

Gradient values are checked against references elsewhere (test_estimators_reference.py,
test_ops_reference.py); here: that autograd gives exactly the backward op's results, that dx
reuses the incoming gradient's buffer only when autograd hands over the only reference (and a
gradient anyone else can see is never overwritten), and the autograd plumbing users rely on:
saved-tensor hooks, version checks, retain_graph, grad_fn names, clear errors."""

from __future__ import annotations

import pytest
import torch

import lowbit  # noqa: F401  (registers the ops)
from lowbit import ops

lib = torch.ops.lowbit
SEED = torch.tensor([5], dtype=torch.int64)


def _param(*values, shape=(1,)):
    return [torch.full(shape, v, requires_grad=True) for v in values]


# name -> (forward op, backward op, builder of the forward arguments (x first), indices of the
# arguments that receive gradients, in the backward op's output order)
CASES = {
    "affine": (lib.fake_quantize_affine, lib.fake_quantize_affine_backward,
               lambda x: (x, torch.tensor([0.1]), torch.tensor([3], dtype=torch.int32), -8, 7), [0]),
    "affine_real_ste_stochastic": (
        lib.fake_quantize_affine, lib.fake_quantize_affine_backward,
        lambda x: (x, torch.tensor([0.1]), torch.tensor([0], dtype=torch.int32), -8, 7, "stochastic", "real", SEED),
        [0]),
    "lsq": (lib.fake_quantize_lsq, lib.fake_quantize_lsq_backward,
            lambda x: (x, *_param(0.2), None, -8, 7, 0.1), [0, 1, 2]),
    "lsq_plus_per_channel": (lib.fake_quantize_lsq, lib.fake_quantize_lsq_backward,
                             lambda x: (x, *_param(0.2, shape=(6, 1)), *_param(0.1, shape=(6, 1)), 0, 15), [0, 1, 2]),
    "learnable": (lib.fake_quantize_learnable, lib.fake_quantize_learnable_backward,
                  lambda x: (x, *_param(0.05), *_param(2.4), 0, 255, 0.5), [0, 1, 2]),
    "pact_stochastic": (lib.fake_quantize_pact, lib.fake_quantize_pact_backward,
                        lambda x: (x, *_param(1.5), 4, True, "stochastic", SEED, 0), [0, 1]),
    "qil": (lib.fake_quantize_qil, lib.fake_quantize_qil_backward,
            lambda x: (x, *_param(0.8, 0.5, 1.2), 4, True), [0, 1, 2, 3]),
    "qil_activation": (lib.fake_quantize_qil, lib.fake_quantize_qil_backward,
                       lambda x: (x, *_param(1.0, 0.7), None, 3, False), [0, 1, 2, 3]),
    "dsq_soft": (lib.fake_quantize_dsq, lib.fake_quantize_dsq_backward,
                 lambda x: (x, *_param(-1.0, 1.0, 0.2), 2, "soft"), [0, 1, 2, 3]),
    "sigmoid": (lib.fake_quantize_sigmoid, lib.fake_quantize_sigmoid_backward,
                lambda x: (x, torch.tensor([-1.0, 0.0, 1.0]), torch.tensor([-0.5, 0.5]), *_param(1.0, 1.5),
                           torch.tensor([8.0])), [0, 3, 4]),
}


def _x(shape=(4, 6, 370), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 1.5).requires_grad_(True)


def _backward_op_bytes(run):
    """Bytes the lowbit *_backward ops allocate while run() executes (profiler memory events of
    the ops they call): ~numel * 4 when dx is a fresh tensor, only the small parameter gradients
    when dx is written over the incoming gradient."""
    from torch.profiler import ProfilerActivity, profile

    def inside_backward_op(event):
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith("lowbit::") and parent.name.endswith("_backward"):
                return True
            parent = parent.cpu_parent
        return False

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    names = {e.name for e in prof.events()}
    assert any(n.startswith("lowbit::") and n.endswith("_backward") for n in names), "no backward op ran"
    return sum(max(e.self_cpu_memory_usage, 0) for e in prof.events() if inside_backward_op(e))


def _expected(name, x, dy):
    """The backward op called directly on detached copies: what autograd must return."""
    fwd, bwd, build, grad_args = CASES[name]
    args = build(x)
    detached = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
    outs = bwd(dy, *detached)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return args, {i: o for i, o in zip(grad_args, outs) if args[i] is not None}


@pytest.mark.parametrize("name", sorted(CASES))
def test_autograd_equals_backward_op_with_a_donated_gradient(name):
    """Through a multiply, the incoming gradient is a fresh tensor that autograd hands over:
    dx is written over it, and every gradient is bitwise the backward op's."""
    fwd, _, build, grad_args = CASES[name]
    x = _x()
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    args, expected = _expected(name, x, dy * 2.0)
    y = fwd(*args)
    # The multiply's backward (C++) makes a fresh gradient and hands its only reference over.
    allocated = _backward_op_bytes(lambda: (y * 2.0).backward(dy))
    for i, want in expected.items():
        if isinstance(args[i], torch.Tensor) and args[i].requires_grad:
            assert torch.equal(args[i].grad, want), f"gradient of argument {i}"
    assert allocated < x.numel() * 4 // 2, f"dx should reuse the incoming gradient, the op allocated {allocated} B"


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_held_by_the_caller_is_never_overwritten(name):
    fwd, _, build, _ = CASES[name]
    x = _x(seed=1)
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    dy_copy = dy.clone()
    args, expected = _expected(name, x, dy)
    y = fwd(*args)
    allocated = _backward_op_bytes(lambda: y.backward(dy))
    assert allocated >= x.numel() * 4, "a gradient the caller holds must not be reused"
    assert torch.equal(dy, dy_copy)
    assert torch.equal(x.grad, expected[0])
    assert x.grad.data_ptr() != dy.data_ptr()


def test_gradient_kept_by_a_hook_is_never_overwritten():
    x = _x(seed=2)
    scale = torch.tensor([0.2], requires_grad=True)
    kept = []
    y = lib.fake_quantize_lsq(x, scale, None, -8, 7, 0.1)
    y.register_hook(lambda g: kept.append(g))
    (y * 3.0).sum().backward()
    assert torch.equal(kept[0], torch.full_like(kept[0], 3.0))
    assert x.grad.data_ptr() != kept[0].data_ptr()


def test_one_gradient_shared_by_two_quantizers():
    """An add sends one gradient tensor to both branches: neither may write over it."""
    x1, x2 = _x(seed=3), _x(seed=4)
    s1, s2 = torch.tensor([0.2], requires_grad=True), torch.tensor([0.3], requires_grad=True)
    dy = torch.randn(x1.shape, generator=torch.Generator().manual_seed(5))
    out = lib.fake_quantize_lsq(x1, s1, None, -8, 7, 0.1) + lib.fake_quantize_lsq(x2, s2, None, -8, 7, 0.1)
    (out * 1.5).backward(dy)
    g = dy * 1.5
    for x, s, gx in ((x1, s1, x1.grad), (x2, s2, x2.grad)):
        want = lib.fake_quantize_lsq_backward(g, x.detach(), s.detach(), None, -8, 7, 0.1)
        assert torch.equal(gx, want[0]) and torch.equal(s.grad, want[1])


def test_retain_graph_backward_twice_gives_the_same_gradients():
    x = _x(seed=5)
    scale = torch.tensor([0.2], requires_grad=True)
    y = lib.fake_quantize_lsq(x, scale, None, -8, 7, 0.1) * 2.0
    first = torch.autograd.grad(y.sum(), (x, scale), retain_graph=True)
    second = torch.autograd.grad(y.sum(), (x, scale))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    with pytest.raises(RuntimeError, match="second time"):
        torch.autograd.grad(y.sum(), (x, scale))


def test_only_requested_gradients_and_no_graph_without_grad():
    x = _x(seed=6)
    scale = torch.tensor([0.2], requires_grad=True)
    y = lib.fake_quantize_lsq(x, scale, None, -8, 7, 0.1)
    assert y.grad_fn.name() == "FakeQuantizeLsqBackward"
    (gs,) = torch.autograd.grad(y.sum(), scale)
    assert gs.shape == scale.shape and x.grad is None
    with torch.no_grad():
        assert lib.fake_quantize_lsq(x, scale, None, -8, 7, 0.1).grad_fn is None
    plain = lib.fake_quantize_lsq(x.detach(), scale.detach(), None, -8, 7, 0.1)
    assert plain.grad_fn is None and not plain.requires_grad
    # Only the scale requires grad: the node still gives it its gradient.
    only_scale = lib.fake_quantize_lsq(x.detach(), scale, None, -8, 7, 0.1)
    assert only_scale.requires_grad


def test_identity_ste_passes_the_gradient_through_and_saves_nothing():
    x = _x(seed=7)
    y = lib.fake_quantize_affine(x, torch.tensor([0.1]), torch.tensor([0], dtype=torch.int32), -8, 7,
                                 "half_even", "identity")
    dy = torch.randn(x.shape)
    y.backward(dy)
    assert torch.equal(x.grad, dy)


def test_saved_tensor_hooks_see_the_saved_input():
    x = _x(seed=8)
    scale = torch.tensor([0.2], requires_grad=True)
    packed = []

    def pack(t):
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = lib.fake_quantize_lsq(x, scale, None, -8, 7, 0.1)
    assert any(t is x for t in packed)
    y.sum().backward()
    assert x.grad is not None


def test_in_place_change_of_a_saved_input_is_an_error():
    x = _x(seed=9)
    scale = torch.tensor([0.2], requires_grad=True)
    xin = x * 1.0
    y = lib.fake_quantize_lsq(xin, scale, None, -8, 7, 0.1)
    with torch.no_grad():
        xin.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_forward_mode_ad_is_a_clear_error():
    import torch.autograd.forward_ad as fwAD

    x = torch.randn(3, 4)
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, torch.ones_like(x))
        with pytest.raises(RuntimeError, match="forward-mode AD"):
            lib.fake_quantize_lsq(dual, torch.tensor([0.2]), None, -8, 7, 0.1)


def test_wrapper_and_module_paths_reuse_the_gradient_buffer_in_a_layer():
    """The QAT layer path (lowbit.ops wrapper -> op -> layer) donates as well: a fake-quantized
    input feeding a linear layer gets dx written over the layer's grad_input."""
    x = _x((8, 64), seed=10)
    scale = torch.tensor([0.05], requires_grad=True)
    w = torch.randn(32, 64, requires_grad=True)
    xq = ops.fake_quantize_lsq(x, scale, -8, 7)
    allocated = _backward_op_bytes(lambda: torch.nn.functional.linear(xq, w).sum().backward())
    assert allocated < x.numel() * 4 // 2
    want = lib.fake_quantize_lsq_backward(torch.ones(8, 32) @ w.detach(), x.detach(), scale.detach(), None, -8, 7,
                                          1.0)
    assert torch.allclose(x.grad, want[0]) and torch.allclose(scale.grad, want[1])
