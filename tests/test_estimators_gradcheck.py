"""Gradient checks of the smooth estimators (soft DSQ, the sigmoid staircase).

lowbit computes in float32 (its kernels take float32/float16/bfloat16), so instead of gradcheck in
float64 on the op, two checks:
* a careful float32 finite-difference check of the op itself: central differences with a step
  sized for float32, the loss accumulated in float64, away from DSQ's interval boundaries (where
  Q_S's α/l/u derivatives jump by design);
* torch.autograd.gradcheck in float64 on the reference formulas the op is compared to
  (tests/reference_estimators.py), so the chain "formula -> reference -> op" is closed.
"""

from __future__ import annotations

import pytest
import torch

from lowbit import ops

import reference_estimators as ref


def fd_check_params(f, x, params, h=2e-3, rtol=2e-3, atol=2e-4, h_x=1e-3, value_scale=1.0):
    """d/dp of L = Σ w·f(x, p) for each (per-tensor) parameter p, and d/dx elementwise: analytic
    vs central differences. value_scale: the magnitude of the op's intermediate values (its
    float32 rounding noise is relative to those, not to the possibly cancelled output)."""
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ps = [p.detach().clone().requires_grad_(True) for p in params]
    xx = x.detach().clone().requires_grad_(True)
    y = f(xx, *ps)
    (y.double() * w).sum().backward()

    def loss(xv, pv):
        with torch.no_grad():
            return (f(xv, *pv).double() * w).sum().item()

    for i, p in enumerate(ps):
        up = [q.detach().clone() for q in ps]
        dn = [q.detach().clone() for q in ps]
        up[i] += h
        dn[i] -= h
        fd = (loss(x, up) - loss(x, dn)) / (2 * h)
        assert p.grad.item() == pytest.approx(fd, rel=rtol, abs=atol * x.numel() ** 0.5), f"parameter {i}"
    # x: each output depends on its own input only, so one perturbation of all of x checks all.
    # Each float32 output carries a few ulps (of its intermediate values) of rounding, which the
    # difference quotient divides by 2h: that sets the per-element tolerance on top of rtol.
    with torch.no_grad():
        y_up, y_dn = f(x + h_x, *ps).double(), f(x - h_x, *ps).double()
    fd_x = (y_up - y_dn) / (2 * h_x) * w
    noise = 8 * 2.0**-24 * (y_up.abs() + y_dn.abs() + value_scale) / (2 * h_x) * w.abs()
    err = (xx.grad.double() - fd_x).abs()
    assert bool((err <= rtol * fd_x.abs() + noise).all()), float((err - noise).max())


def dsq_inputs(lower, upper, bits, n, seed, margin=0.02):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g) * (upper - lower) * 1.4 + lower - 0.2 * (upper - lower)
    delta = (upper - lower) / (2**bits - 1)
    v = (x - lower) / delta
    # Away from interval boundaries and the clip edges by more than the FD step.
    ok = ((v - v.round()).abs() > margin) & ((x - lower).abs() > margin) & ((x - upper).abs() > margin)
    return x[ok]


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.45])
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_soft_dsq_finite_differences(alpha, bits):
    x = dsq_inputs(-1.0, 1.5, bits, 4000, seed=bits, margin=0.05)
    delta = 2.5 / (2**bits - 1)

    def f(x, l, u, a):
        return ops.fake_quantize_dsq(x, l, u, a, bits, mode="soft")

    # A smaller step for α: the soft staircase sharpens quickly as α → 0.
    fd_check_params(f, x, [torch.tensor([-1.0]), torch.tensor([1.5]), torch.tensor([alpha])], h=1e-3 * (1 + alpha),
                    h_x=0.005 * delta, value_scale=1.5)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 12.0])
@pytest.mark.parametrize("levels", [[-1.0, 0.0, 1.0], [0.0, 1.0, 2.0, 3.0], [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]])
def test_sigmoid_finite_differences(temperature, levels):
    levels = torch.tensor(levels)
    thresholds = ops.sigmoid_thresholds(levels)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(3000, generator=g) - 0.3) * 4

    def f(x, a, b):
        return ops.fake_quantize_sigmoid(x, levels, thresholds, a, b, torch.tensor([temperature]))

    h = 1e-3 / temperature
    span = float(levels.abs().max() + (levels[1:] - levels[:-1]).sum())
    fd_check_params(f, x, [torch.tensor([0.8]), torch.tensor([1.3])], h=h, rtol=3e-3, h_x=1e-3, value_scale=span)


def test_reference_soft_dsq_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    x = dsq_inputs(-1.0, 1.0, 2, 60, seed=4, margin=0.05).double().requires_grad_(True)
    l = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    u = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, l, u, a: ref.dsq(x, l, u, a, 2, mode="soft"), (x, l, u, a))
    del g


def test_reference_sigmoid_gradcheck_float64():
    x = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    levels = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    a = torch.tensor([0.9], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.4], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, a, b: ref.sigmoid_staircase(x, levels, ops.sigmoid_thresholds(levels), a, b,
                                              torch.tensor(5.0, dtype=torch.float64)), (x, a, b))


def test_soft_dsq_per_channel_finite_differences():
    # Per-channel parameters: perturb one channel's parameter at a time.
    g = torch.Generator().manual_seed(9)
    x = torch.rand(3, 400, generator=g) * 2.4 - 1.2
    lower = torch.tensor([[-1.0], [-0.8], [-1.1]])
    upper = torch.tensor([[1.0], [0.9], [1.2]])
    alpha = torch.tensor([[0.2], [0.3], [0.1]])
    delta = (upper - lower) / 3
    v = (x - lower) / delta
    keep = ((v - v.round()).abs() > 0.03) & ((x - lower).abs() > 0.03) & ((x - upper).abs() > 0.03)
    x = torch.where(keep, x, lower + 0.5 * delta)  # park excluded elements mid-interval
    w = torch.randn(x.shape, generator=g, dtype=torch.float64)
    ps = [p.clone().requires_grad_(True) for p in (lower, upper, alpha)]
    (ops.fake_quantize_dsq(x, *ps, 2, mode="soft").double() * w).sum().backward()
    h = 1e-3
    for i, p in enumerate(ps):
        for c in range(3):
            up = [q.detach().clone() for q in ps]
            dn = [q.detach().clone() for q in ps]
            up[i][c] += h
            dn[i][c] -= h
            lu = (ops.fake_quantize_dsq(x, *up, 2, mode="soft").double() * w).sum().item()
            ld = (ops.fake_quantize_dsq(x, *dn, 2, mode="soft").double() * w).sum().item()
            assert p.grad[c].item() == pytest.approx((lu - ld) / (2 * h), rel=3e-3, abs=5e-3), (i, c)
