"""lowbit's estimator ops against the slow autograd references of tests/reference_estimators.py.

Two kinds of inputs:

* exact grids: parameters and inputs chosen so float32 and float64 compute the same scaled
  values, which puts elements exactly on rounding ties and clip edges — decisions must agree
  exactly;
* random inputs per layout (per tensor, per channel of weights, per channel of NCHW
  activations, per feature of the last axis, groups), redrawn away from ties and edges only by
  the float32-vs-float64 rounding margin, so the discrete decisions are comparable.

Values and dx are compared to float32 accuracy; parameter gradients (sums) to float32 accuracy
relative to the sum of the absolute terms.
"""

from __future__ import annotations

import pytest
import torch

import lowbit
from lowbit import ops

import reference_estimators as ref

LAYOUTS = [
    pytest.param((7, 13), (1,), id="per_tensor"),
    pytest.param((70001,), (1,), id="per_tensor_long"),
    pytest.param((16, 3, 3, 3), (16, 1, 1, 1), id="per_channel_weight"),
    pytest.param((4, 8, 9, 11), (1, 8, 1, 1), id="per_channel_nchw"),
    pytest.param((33, 12), (12,), id="per_feature_last_axis"),
    pytest.param((6, 64), (6, 8), id="groups"),
]


def run(fn, x, params, dy):
    """y, dx and the parameter gradients of fn(x, *params) for upstream gradient dy."""
    x = x.detach().clone().requires_grad_(True)
    params = [p.detach().clone().requires_grad_(True) for p in params]
    y = fn(x, *params)
    y.backward(dy)
    return y.detach(), x.grad, [p.grad for p in params]


def compare(ours, theirs, *, value_atol=1e-6, dx_rtol=2e-6, grad_rtol=2e-5):
    y, dx, pg = ours
    y_ref, dx_ref, pg_ref = theirs
    torch.testing.assert_close(y.double(), y_ref, rtol=2e-6, atol=value_atol)
    torch.testing.assert_close(dx.double(), dx_ref, rtol=dx_rtol, atol=1e-6)
    for g, g_ref in zip(pg, pg_ref):
        scale = g_ref.abs().max().item() + 1.0
        torch.testing.assert_close(g.double(), g_ref.reshape(g.shape), rtol=grad_rtol, atol=grad_rtol * scale)


def gen(seed):
    g = torch.Generator().manual_seed(seed)
    return g


def uniform(shape, lo, hi, g):
    return torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo


# ---- LSQ / LSQ+ --------------------------------------------------------------------------------


@pytest.mark.parametrize("with_offset", [False, True])
def test_lsq_exact_grid_ties_and_edges(with_offset):
    # s = 0.25 and x on a 1/16 grid: v = (x - β)/s is exact in float32, hitting every .5 tie and
    # both clip edges (v = -4 and v = 3) exactly.
    x = torch.arange(-96, 97, dtype=torch.float64) / 16
    scale = torch.tensor([0.25], dtype=torch.float64)
    offset = torch.tensor([0.125], dtype=torch.float64) if with_offset else None
    dy = torch.linspace(-1, 2, x.numel(), dtype=torch.float64)
    params = [scale] + ([offset] if with_offset else [])

    def ours(x, s, *b):
        return ops.fake_quantize_lsq(x, s, -4, 3, offset=b[0] if b else None, grad_scale=0.5)

    def theirs(x, s, *b):
        return ref.lsq(x, s, -4, 3, offset=b[0] if b else None, grad_scale=0.5)

    mine = run(ours, x.float(), [p.float() for p in params], dy.float())
    expected = run(theirs, x, params, dy)
    assert torch.equal(mine[0].double(), expected[0])  # exact values on the grid
    assert torch.equal(mine[1].double(), expected[1])
    compare(mine, expected)


@pytest.mark.parametrize("x_shape,p_shape", LAYOUTS)
@pytest.mark.parametrize("with_offset", [False, True])
def test_lsq_random(x_shape, p_shape, with_offset):
    g = gen(1)
    qmin, qmax = (-8, 7) if not with_offset else (0, 15)
    scale = uniform(p_shape, 0.05, 0.3, g).float().double()
    offset = uniform(p_shape, -0.5, 0.5, g).float().double() if with_offset else None
    s_x = ref.expand_blocks(scale, x_shape)
    b_x = ref.expand_blocks(offset, x_shape) if with_offset else torch.zeros_like(s_x)

    def bad(x):
        v = (x.double() - b_x) / s_x
        return ref.near_half_integer(v, 1e-3) | ((v - qmin).abs() < 1e-3) | ((v - qmax).abs() < 1e-3)

    x = ref.resample_until_clear(uniform(x_shape, -3, 3, g).float(), bad, g, 3.0).double()
    dy = uniform(x_shape, -1, 1, g)
    params = [scale] + ([offset] if with_offset else [])
    gs = ref.lsq_grad_scale(x.numel(), qmax)

    def ours(x, s, *b):
        return ops.fake_quantize_lsq(x, s, qmin, qmax, offset=b[0] if b else None, grad_scale=gs)

    def theirs(x, s, *b):
        return ref.lsq(x, s, qmin, qmax, offset=b[0] if b else None, grad_scale=gs)

    compare(run(ours, x.float(), [p.float() for p in params], dy.float()), run(theirs, x, params, dy))


# ---- PACT ------------------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True])
def test_pact_exact_grid_ties_and_edges(signed):
    # α = 3 with 2 bits unsigned (L/α = 1) or 3 bits signed (L/α = 1): scaled values equal x, so
    # x on a 1/4 grid hits every tie and the edges 0 / ±3 exactly.
    bits = 3 if signed else 2
    x = torch.arange(-20, 21, dtype=torch.float64) / 4
    alpha = torch.tensor([3.0], dtype=torch.float64)
    dy = torch.linspace(-1, 2, x.numel(), dtype=torch.float64)
    mine = run(lambda x, a: ops.fake_quantize_pact(x, a, bits, signed=signed), x.float(), [alpha.float()], dy.float())
    expected = run(lambda x, a: ref.pact(x, a, bits, signed=signed), x, [alpha], dy)
    assert torch.equal(mine[0].double(), expected[0])
    compare(mine, expected)


@pytest.mark.parametrize("x_shape,p_shape", LAYOUTS)
@pytest.mark.parametrize("signed", [False, True])
def test_pact_random(x_shape, p_shape, signed):
    g = gen(2)
    bits = 4
    L = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    alpha = uniform(p_shape, 0.5, 2.0, g).float().double()
    a_x = ref.expand_blocks(alpha, x_shape)

    def bad(x):
        x = x.double()
        lo = -a_x if signed else torch.zeros_like(a_x)
        v = torch.minimum(torch.maximum(x, lo), a_x) * L / a_x
        return ref.near_half_integer(v, 1e-3) | ((x - a_x).abs() < 1e-4) | ((x - lo).abs() < 1e-4)

    x = ref.resample_until_clear(uniform(x_shape, -3, 3, g).float(), bad, g, 3.0).double()
    dy = uniform(x_shape, -1, 1, g)
    compare(run(lambda x, a: ops.fake_quantize_pact(x, a, bits, signed=signed), x.float(), [alpha.float()], dy.float()),
            run(lambda x, a: ref.pact(x, a, bits, signed=signed), x, [alpha], dy))


# ---- QIL -------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [True, False])
def test_qil_exact_grid_ties_and_edges(weight):
    # c = 0.5, d = 0.25: u = 2|w| - 0.5 is exact; |w| on a 1/32 grid hits the interval edges
    # 0.25 / 0.75 and, with qD = 3 (3-bit weights) or 7 (3-bit activations), rounding ties.
    x = torch.arange(-40, 41, dtype=torch.float64) / 32
    c = torch.tensor([0.5], dtype=torch.float64)
    d = torch.tensor([0.25], dtype=torch.float64)
    dy = torch.linspace(-1, 2, x.numel(), dtype=torch.float64)
    mine = run(lambda x, c, d: ops.fake_quantize_qil(x, c, d, None, 3, weight=weight), x.float(),
               [c.float(), d.float()], dy.float())
    expected = run(lambda x, c, d: ref.qil(x, c, d, None, 3, weight=weight), x, [c, d], dy)
    assert torch.equal(mine[0].double(), expected[0].float().double())
    compare(mine, expected)


@pytest.mark.parametrize("x_shape,p_shape", LAYOUTS)
@pytest.mark.parametrize("weight,with_gamma", [(True, True), (True, False), (False, False)])
def test_qil_random(x_shape, p_shape, weight, with_gamma):
    g = gen(3)
    bits = 4
    qd = 2 ** (bits - 1) - 1 if weight else 2**bits - 1
    d = uniform(p_shape, 0.2, 0.6, g).float().double()
    c = (d + uniform(p_shape, 0.0, 0.5, g)).float().double()
    gamma = uniform(p_shape, 0.6, 1.8, g).float().double() if with_gamma else None
    c_x, d_x = ref.expand_blocks(c, x_shape), ref.expand_blocks(d, x_shape)
    g_x = ref.expand_blocks(gamma, x_shape) if with_gamma else torch.ones_like(c_x)

    def bad(x):
        x = x.double()
        a = x.abs() if weight else x
        u = (0.5 / d_x * a - 0.5 * c_x / d_x + 0.5).clamp(1e-12, 1.0)
        t = u**g_x
        inside = (a >= c_x - d_x) & (a <= c_x + d_x)
        return ((a - (c_x - d_x)).abs() < 1e-3) | ((a - (c_x + d_x)).abs() < 1e-3) | (
            inside & ref.near_half_integer(t * qd, 1e-3)) | (x.abs() < 1e-4)

    x = ref.resample_until_clear(uniform(x_shape, -1.5, 1.5, g).float(), bad, g, 1.5).double()
    dy = uniform(x_shape, -1, 1, g)
    params = [c, d] + ([gamma] if with_gamma else [])

    def ours(x, c, d, *gm):
        return ops.fake_quantize_qil(x, c, d, gm[0] if gm else None, bits, weight=weight)

    def theirs(x, c, d, *gm):
        return ref.qil(x, c, d, gm[0] if gm else None, bits, weight=weight)

    # u = A·|w| + B cancels near the pruning edge; u^(γ-1) turns float32's absolute error of u into
    # a relative error of dx up to ~1e-5 there.
    compare(run(ours, x.float(), [p.float() for p in params], dy.float()), run(theirs, x, params, dy),
            dx_rtol=5e-5, grad_rtol=5e-5)


# ---- DSQ -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_dsq_exact_grid_ties_and_edges(mode):
    # l = 0, u = 3, 2 bits: Δ = 1, so v = x exactly; x on a 1/4 grid hits the interval
    # boundaries, the hard rounding ties and both clip edges.
    x = torch.arange(-8, 21, dtype=torch.float64) / 4
    params = [torch.tensor([0.0], dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64),
              torch.tensor([0.2], dtype=torch.float64)]
    dy = torch.linspace(-1, 2, x.numel(), dtype=torch.float64)
    mine = run(lambda x, l, u, a: ops.fake_quantize_dsq(x, l, u, a, 2, mode=mode), x.float(),
               [p.float() for p in params], dy.float())
    expected = run(lambda x, l, u, a: ref.dsq(x, l, u, a, 2, mode=mode), x, [p.float().double() for p in params], dy)
    if mode == "hard":
        assert torch.equal(mine[0].double(), expected[0])
    compare(mine, expected, grad_rtol=5e-5)


@pytest.mark.parametrize("x_shape,p_shape", LAYOUTS)
@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_dsq_random(x_shape, p_shape, mode):
    g = gen(4)
    bits = 3
    L = 2**bits - 1
    lower = uniform(p_shape, -1.5, -0.5, g).float().double()
    upper = uniform(p_shape, 0.5, 1.5, g).float().double()
    alpha = uniform(p_shape, 0.05, 0.45, g).float().double()
    l_x, u_x = ref.expand_blocks(lower, x_shape), ref.expand_blocks(upper, x_shape)

    def bad(x):
        x = x.double()
        v = (x - l_x) / ((u_x - l_x) / L)
        return ref.near_integer(v, 1e-3) | ref.near_half_integer(v, 1e-3)

    x = ref.resample_until_clear(uniform(x_shape, -2, 2, g).float(), bad, g, 2.0).double()
    dy = uniform(x_shape, -1, 1, g)
    compare(run(lambda x, l, u, a: ops.fake_quantize_dsq(x, l, u, a, bits, mode=mode), x.float(),
                [lower.float(), upper.float(), alpha.float()], dy.float()),
            run(lambda x, l, u, a: ref.dsq(x, l, u, a, bits, mode=mode), x, [lower, upper, alpha], dy),
            grad_rtol=5e-5)


# ---- sigmoid staircase -----------------------------------------------------------------------


@pytest.mark.parametrize("x_shape,p_shape", LAYOUTS)
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("signed_levels", [True, False])
def test_sigmoid_random(x_shape, p_shape, hard, signed_levels):
    g = gen(5)
    levels = ops.sigmoid_levels(2, signed=signed_levels).double()
    thresholds = ops.sigmoid_thresholds(levels)
    temperature = torch.tensor([7.5], dtype=torch.float64)
    alpha = uniform(p_shape, 0.5, 1.5, g).float().double()
    beta = uniform(p_shape, 0.5, 2.0, g).float().double()
    b_x = ref.expand_blocks(beta, x_shape)

    def bad(x):
        bx = b_x * x.double()
        return ((bx.unsqueeze(-1) - thresholds).abs() < 1e-4).any(-1)

    x = ref.resample_until_clear(uniform(x_shape, -2, 3, g).float(), bad, g, 2.5).double()
    dy = uniform(x_shape, -1, 1, g)

    def ours(x, a, b):
        return ops.fake_quantize_sigmoid(x, levels.float(), thresholds.float(), a, b, temperature.float(), hard=hard)

    def theirs(x, a, b):
        return ref.sigmoid_staircase(x, levels, thresholds, a, b, temperature, hard=hard)

    compare(run(ours, x.float(), [alpha.float(), beta.float()], dy.float()), run(theirs, x, [alpha, beta], dy),
            value_atol=2e-6, grad_rtol=5e-5)


def test_sigmoid_hard_values_are_levels():
    levels = torch.tensor([-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0])
    thresholds = ops.sigmoid_thresholds(levels)
    x = torch.linspace(-6, 6, 1001)
    y = ops.fake_quantize_sigmoid(x, levels, thresholds, torch.tensor([0.5]), torch.tensor([1.0]),
                                  torch.tensor([10.0]), hard=True)
    assert set((y / 0.5).unique().tolist()) <= set(levels.tolist())
    expected = levels[torch.bucketize(x, thresholds, right=False)] * 0.5
    assert torch.equal(y, expected)


# ---- half precision: the float32 math on the converted values, rounded once --------------------

HALF_CASES = {
    "lsq": (lambda x, p: ops.fake_quantize_lsq(x, p[0], -8, 7, offset=p[1]), [0.1, 0.05]),
    "pact": (lambda x, p: ops.fake_quantize_pact(x, p[0], 3), [1.3]),
    "qil": (lambda x, p: ops.fake_quantize_qil(x, p[0], p[1], p[2], 4), [0.6, 0.4, 1.3]),
    "dsq_soft": (lambda x, p: ops.fake_quantize_dsq(x, p[0], p[1], p[2], 3, mode="soft"), [-1.0, 1.2, 0.2]),
    "dsq_hard": (lambda x, p: ops.fake_quantize_dsq(x, p[0], p[1], p[2], 3), [-1.0, 1.2, 0.2]),
    "sigmoid": (lambda x, p: ops.fake_quantize_sigmoid(x, ops.sigmoid_levels(2), torch.tensor([-0.5, 0.5]), p[0],
                                                       p[1], torch.tensor([5.0])), [1.0, 1.5]),
    "learnable": (lambda x, p: ops.fake_quantize_learnable(x, p[0], p[1], 0, 255), [0.01, 128.3]),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(HALF_CASES))
def test_half_inputs_equal_float32_math_rounded_once(name, dtype):
    fn, values = HALF_CASES[name]
    g = gen(6)
    x = (torch.randn(1000, generator=g) * 1.5).to(dtype)
    dy = torch.randn(1000, generator=g).to(dtype)

    def go(x, dy):
        xx = x.clone().requires_grad_(True)
        ps = [torch.tensor([v], requires_grad=True) for v in values]
        y = fn(xx, ps)
        y.backward(dy)
        return y.detach(), xx.grad, [p.grad for p in ps]

    y16, dx16, pg16 = go(x, dy)
    y32, dx32, pg32 = go(x.float(), dy.float())
    assert y16.dtype == dtype and dx16.dtype == dtype
    assert torch.equal(y16, y32.to(dtype))
    assert torch.equal(dx16, dx32.to(dtype))
    for a, b in zip(pg16, pg32):
        assert torch.equal(a, b)


def test_empty_input():
    x = torch.empty(0, 4, requires_grad=True)
    s = torch.tensor([0.1], requires_grad=True)
    y = ops.fake_quantize_lsq(x, s, -8, 7)
    y.sum().backward()
    assert y.shape == (0, 4) and x.grad.shape == (0, 4)
    assert s.grad.item() == 0.0


DISABLED_CASES = {
    "lsq": lambda x, e: ops.fake_quantize_lsq(x, torch.tensor([0.1], requires_grad=True), -8, 7,
                                              offset=torch.tensor([0.2], requires_grad=True), enabled=e),
    "learnable": lambda x, e: ops.fake_quantize_learnable(x, torch.tensor([0.1], requires_grad=True),
                                                          torch.tensor([2.0], requires_grad=True), 0, 255, enabled=e),
    "pact": lambda x, e: ops.fake_quantize_pact(x, torch.tensor([1.0], requires_grad=True), 3, enabled=e),
    "qil": lambda x, e: ops.fake_quantize_qil(x, torch.tensor([0.5], requires_grad=True),
                                              torch.tensor([0.4], requires_grad=True),
                                              torch.tensor([1.0], requires_grad=True), 3, enabled=e),
    "dsq": lambda x, e: ops.fake_quantize_dsq(x, torch.tensor([-1.0], requires_grad=True),
                                              torch.tensor([1.0], requires_grad=True),
                                              torch.tensor([0.2], requires_grad=True), 3, enabled=e),
    "sigmoid": lambda x, e: ops.fake_quantize_sigmoid(x, ops.sigmoid_levels(2), torch.tensor([-0.5, 0.5]),
                                                      torch.tensor([1.0], requires_grad=True),
                                                      torch.tensor([1.0], requires_grad=True), torch.tensor([4.0]),
                                                      enabled=e),
}


@pytest.mark.parametrize("name", sorted(DISABLED_CASES))
def test_disabled_is_identity_with_zero_parameter_grads(name):
    x = torch.randn(5, 7).requires_grad_(True)
    dy = torch.randn(5, 7)
    y = DISABLED_CASES[name](x, torch.tensor([False]))
    assert torch.equal(y, x.detach())
    params = [t for t in y.grad_fn.next_functions]
    y.backward(dy)
    assert torch.equal(x.grad, dy)
    leaves = [fn.variable for fn, _ in params if fn is not None and hasattr(fn, "variable")]
    leaves = [p for p in leaves if p is not x]
    assert leaves and all(p.grad is not None and bool((p.grad == 0).all()) for p in leaves)
    on = DISABLED_CASES[name](x.detach(), torch.tensor([True]))
    assert not torch.equal(on, x.detach())
