"""PT2 support of every op: ``torch.library.opcheck`` over the shared samples (schema, autograd
registration, fake kernel vs real kernel, AOT dispatch with dynamic shapes), ``torch.compile`` with
``fullgraph=True`` (no graph break), dynamic shapes without recompiles, parameter/seed/switch
changes without recompiles, gradients through compiled code equal to eager, and ``torch.export``.

Most compiles use the ``aot_eager`` backend (it traces through AOTAutograd and the fake kernels,
which is what these tests are about, and costs a fraction of Inductor's codegen); one test runs
the full Inductor pipeline.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

import lowbit
import reference as R
from samples import op_samples

L = torch.ops.lowbit
SAMPLES = op_samples()


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.id for s in SAMPLES])
def test_opcheck(sample):
    torch.library.opcheck(sample.op, sample.args, sample.kwargs)


def test_every_op_is_sampled_and_pt2_compliant():
    ops = {"quantize_affine", "dequantize_affine", "fake_quantize_affine", "fake_quantize_affine_backward",
           "choose_qparams", "observe_minmax_", "observe_moving_average_minmax_"}
    sampled = {s.op.name().split("::")[1].split(".")[0] for s in SAMPLES}
    assert ops <= sampled, ops - sampled
    for name in ops:
        assert torch.Tag.pt2_compliant_tag in getattr(L, name).default.tags, name


@pytest.fixture
def compile_counter():
    torch._dynamo.reset()
    counters.clear()
    yield lambda backend="aot_eager": CompileCounterWithBackend(backend)
    assert not counters["graph_break"], dict(counters["graph_break"])
    torch._dynamo.reset()


def _qat_step(x, scale, zp, lo, hi, seed, enabled):
    """An observer update, qparams from it, and fake quant of three kinds, as a QAT layer would do."""
    L.observe_moving_average_minmax_(x.detach(), lo, hi, 0.1, enabled)
    s, z = L.choose_qparams(lo, hi, -128, 127, False, "observer")
    a = L.fake_quantize_affine(x, s, z, -128, 127, "half_even", "integer", None, 0, enabled)
    b = L.fake_quantize_affine(x, scale, zp, -8, 7, "stochastic", "real", seed, 3)
    c = L.dequantize_affine(L.quantize_affine(x, scale, zp, -8, 7, "half_away"), scale, zp, x.dtype)
    return a * 2 + b + c


def _inputs(shape, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen) * 3).to(dtype).requires_grad_(True)
    C = shape[1]
    scale = torch.rand(1, C, *([1] * (len(shape) - 2)), generator=gen) * 0.5 + 0.05
    zp = torch.randint(-8, 8, scale.shape, generator=gen, dtype=torch.int32)
    lo, hi = torch.full(scale.shape, math.inf), torch.full(scale.shape, -math.inf)
    return x, scale, zp, lo, hi, torch.tensor([11]), torch.tensor(True)


def _eager_and_compiled(fn, compiled, args):
    """Runs fn eagerly and compiled on copies of args; returns (outputs, x.grad, buffers) of both."""
    results = []
    for f in (fn, compiled):
        a = [t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t for t in args]
        y = f(*a)
        y.backward(torch.ones_like(y))
        results.append((y.detach(), a[0].grad, a[3].clone(), a[4].clone()))
    return results


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_compiled_qat_step_matches_eager(compile_counter, dtype):
    cnt = compile_counter()
    compiled = torch.compile(_qat_step, backend=cnt, fullgraph=True)
    args = _inputs((4, 6, 5), dtype)
    (y, g, lo, hi), (cy, cg, clo, chi) = _eager_and_compiled(_qat_step, compiled, args)
    R.assert_same_bits(cy, y, "output")
    R.assert_same_bits(cg, g, "x.grad")
    R.assert_same_bits(clo, lo, "observer min")
    R.assert_same_bits(chi, hi, "observer max")
    assert cnt.frame_count == 1


def test_dynamic_shapes_do_not_recompile(compile_counter):
    cnt = compile_counter()
    compiled = torch.compile(_qat_step, backend=cnt, fullgraph=True, dynamic=True)
    for shape in ((4, 6, 5), (7, 6, 9), (2, 6, 33)):
        (y, g, lo, hi), (cy, cg, clo, chi) = _eager_and_compiled(_qat_step, compiled, _inputs(shape))
        R.assert_same_bits(cy, y, f"{shape} output")
        R.assert_same_bits(cg, g, f"{shape} grad")
        R.assert_same_bits(clo, lo, f"{shape} observer")
    assert cnt.frame_count == 1
    assert not counters["recompiles"], dict(counters["recompiles"])


def test_mark_dynamic_two_shapes_one_compile(compile_counter):
    cnt = compile_counter()

    def f(x, s, z, lo, hi):
        L.observe_minmax_(x, lo, hi)
        return L.fake_quantize_affine(x, s, z, 0, 15, "floor", "integer") + 1

    compiled = torch.compile(f, backend=cnt, fullgraph=True)
    s, z = torch.tensor([0.1]), torch.tensor([3], dtype=torch.int32)
    for n in (64, 100, 3):
        x = torch.randn(n, 8)
        torch._dynamo.mark_dynamic(x, 0)
        lo, hi = torch.full((1, 8), math.inf), torch.full((1, 8), -math.inf)
        R.assert_same_bits(compiled(x, s, z, lo, hi), f(x, s, z, lo.clone(), hi.clone()), f"n={n}")
        R.assert_same_bits(lo, x.amin(0, keepdim=True), f"n={n} observer")
    assert cnt.frame_count == 1


def test_parameter_seed_and_switch_values_do_not_recompile(compile_counter):
    cnt = compile_counter()

    def f(x, s, z, seed, on):
        return L.fake_quantize_affine(x, s, z, -8, 7, "stochastic", "integer", seed, 0, on)

    compiled = torch.compile(f, backend=cnt, fullgraph=True)
    x = torch.randn(4, 16)
    for s, z, seed, on in ((0.1, 0, 1, True), (0.37, 3, 2, True), (1.5, -8, 3, False), (0.2, 7, 1, True)):
        args = (x, torch.tensor([s]), torch.tensor([z], dtype=torch.int32), torch.tensor([seed]), torch.tensor(on))
        R.assert_same_bits(compiled(*args), f(*args), f"{s} {z} {seed} {on}")
    assert cnt.frame_count == 1
    assert not counters["recompiles"], dict(counters["recompiles"])


def test_python_wrappers_compile_without_graph_breaks(compile_counter):
    cnt = compile_counter()

    def f(x, s, z, lo, hi):
        lowbit.ops.observe_minmax_(x, lo, hi)
        s2, z2 = lowbit.ops.choose_qparams(lo, hi, 0, 255, symmetric=True, method="fbgemm")
        q = lowbit.ops.quantize_affine(x, s, z, -8, 7, rounding="ceil")
        return lowbit.ops.fake_quantize_affine(x, s2, z2, 0, 255, ste="identity") + lowbit.ops.dequantize_affine(
            q, s, z)

    compiled = torch.compile(f, backend=cnt, fullgraph=True)
    x = torch.randn(3, 8)
    args = (x, torch.tensor([0.1]), torch.tensor([1], dtype=torch.int32))
    e_lo, e_hi = torch.full((3, 1), math.inf), torch.full((3, 1), -math.inf)
    c_lo, c_hi = e_lo.clone(), e_hi.clone()
    R.assert_same_bits(compiled(*args, c_lo, c_hi), f(*args, e_lo, e_hi), "output")
    R.assert_same_bits(c_lo, e_lo, "min buffer")
    assert cnt.frame_count == 1


def test_inductor_forward_backward_and_observer():
    """The full Inductor pipeline on a QAT-like step: outputs, gradients and buffers equal eager."""
    torch._dynamo.reset()
    counters.clear()
    cnt = CompileCounterWithBackend("inductor")
    compiled = torch.compile(_qat_step, backend=cnt, fullgraph=True, dynamic=True)
    for shape in ((4, 6, 5), (3, 6, 7)):
        (y, g, lo, hi), (cy, cg, clo, chi) = _eager_and_compiled(_qat_step, compiled, _inputs(shape, seed=2))
        R.assert_same_bits(cy, y, "output")
        R.assert_same_bits(cg, g, "grad")
        R.assert_same_bits(clo, lo, "observer min")
        R.assert_same_bits(chi, hi, "observer max")
    assert cnt.frame_count == 1 and not counters["graph_break"]
    torch._dynamo.reset()


def test_torch_export():
    class QuantStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("lo", torch.full((1, 6, 1), math.inf))
            self.register_buffer("hi", torch.full((1, 6, 1), -math.inf))

        def forward(self, x):
            L.observe_minmax_(x, self.lo, self.hi)
            s, z = L.choose_qparams(self.lo, self.hi, -128, 127)
            return L.fake_quantize_affine(x, s, z, -128, 127)

    x = torch.randn(2, 6, 9)
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(QuantStep(), (x,), dynamic_shapes={"x": {0: batch}})
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("fake_quantize_affine" in t for t in targets), targets
    x2 = torch.randn(5, 6, 9)
    R.assert_same_bits(ep.module()(x2), QuantStep()(x2), "exported program")
