"""Bad inputs: every error names the argument and the value; documented clamps of learnable
parameters behave as documented."""

from __future__ import annotations

import math

import pytest
import torch

from lowbit import ops

lib = torch.ops.lowbit
x = torch.randn(4, 6)
one = torch.tensor([1.0])


@pytest.mark.parametrize("call,match", [
    (lambda: ops.fake_quantize_lsq(x, torch.tensor([float("nan")]), -8, 7), r"scale must be finite; scale\[0\] = nan"),
    (lambda: ops.fake_quantize_lsq(x, torch.tensor([0.1, math.inf]), -8, 7), r"scale\[1\] = inf"),
    (lambda: ops.fake_quantize_lsq(x, one, 7, 7), r"qmin must be < qmax, got qmin=7, qmax=7"),
    (lambda: ops.fake_quantize_lsq(x, torch.ones(5), -8, 7), r"scale of shape \[5\] does not tile"),
    (lambda: ops.fake_quantize_lsq(x, one, -8, 7, rounding="half_up"), r"rounding must be one of .*half_up"),
    (lambda: lib.fake_quantize_lsq(x, one, None, -8, 7, 1.0, "half_up", None, 0), r"rounding must be 'half_even' or "
                                                                                  r"'stochastic', got 'half_up'"),
    (lambda: lib.fake_quantize_lsq(x, one, None, -8, 7, 1.0, "stochastic", None, 0), r"needs a seed tensor"),
    (lambda: ops.fake_quantize_lsq(x, one, -8, 7, grad_scale=0.0), r"grad_scale must be a positive finite number"),
    (lambda: lib.fake_quantize_lsq(x, one, None, -8, 7, -1.0, "half_even", None, 0), r"grad_scale must be positive"),
    (lambda: lib.fake_quantize_lsq(x, one, torch.ones(2), -8, 7, 1.0, "half_even", None, 0),
     r"scale and offset must have the same shape"),
    (lambda: ops.fake_quantize_lsq(x, one, -8, 7, offset=torch.tensor([math.nan])), r"offset\[0\] = nan"),
    (lambda: ops.fake_quantize_lsq(x.int(), one, -8, 7), r"x must be float32, float16 or bfloat16, got Int"),
    (lambda: ops.fake_quantize_lsq(x, torch.tensor([1]), -8, 7), r"scale must be a floating-point tensor"),
    (lambda: ops.fake_quantize_lsq(x, one, -8, 7, rounding="stochastic", seed=1, seed_offset=-3),
     r"seed_offset must be >= 0, got -3"),
    (lambda: ops.fake_quantize_learnable(x, one, torch.tensor([math.inf]), 0, 255), r"zero_point\[0\] = inf"),
    (lambda: ops.fake_quantize_learnable(x, one, one, 0, 255, grad_factor=math.nan), r"grad_factor must be a finite number, got grad_factor=nan"),
    (lambda: lib.fake_quantize_learnable(x, one, torch.tensor([True]), 0, 255, 1.0),
     r"zero_point must be a real tensor"),
    (lambda: ops.fake_quantize_pact(x, one, 0), r"bits must be in \[1, 16\], got bits=0"),
    (lambda: ops.fake_quantize_pact(x, one, 17), r"bits must be in \[1, 16\], got bits=17"),
    (lambda: ops.fake_quantize_pact(x, one, 1, signed=True), r"bits must be in \[2, 16\] for signed=True, got bits=1"),
    (lambda: ops.fake_quantize_pact(x, torch.tensor([-math.inf]), 4), r"alpha must be finite; alpha\[0\] = -inf"),
    (lambda: ops.fake_quantize_qil(x, one, one, None, 1), r"bits must be in \[2, 16\] for weight=True, got bits=1"),
    (lambda: lib.fake_quantize_qil(x, one, torch.ones(2), None, 4, True, "half_even", None, 0),
     r"c and d must have the same shape"),
    (lambda: ops.fake_quantize_qil(x, one, torch.tensor([math.nan]), None, 4), r"d\[0\] = nan"),
    (lambda: ops.fake_quantize_qil(x, one, one, torch.tensor([math.inf]), 4), r"gamma\[0\] = inf"),
    (lambda: ops.fake_quantize_dsq(x, one, torch.tensor([0.5]), torch.tensor([0.2]), 2),
     r"upper must be greater than lower; lower\[0\] = 1, upper\[0\] = 0.5"),
    (lambda: ops.fake_quantize_dsq(x, -one, one, torch.tensor([0.2]), 2, mode="medium"),
     r"mode must be one of 'hard', 'soft'; got mode='medium'"),
    (lambda: lib.fake_quantize_dsq(x, -one, one, one, 2, "medium", "half_even", None, 0),
     r"mode must be 'hard' or 'soft', got 'medium'"),
    (lambda: ops.fake_quantize_dsq(x, -one, one, torch.tensor([0.2]), 2, mode="soft", rounding="stochastic"),
     r"rounding='stochastic' needs mode='hard'"),
    (lambda: ops.fake_quantize_dsq(x, -one, one, torch.tensor([0.2]), 17), r"got bits=17"),
    (lambda: ops.fake_quantize_dsq(x, torch.tensor([-3e38]), torch.tensor([3e38]), torch.tensor([0.2]), 2),
     r"outside float32's usable range"),
    (lambda: ops.fake_quantize_sigmoid(x, torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.5, 1.0]), one, one,
                                       torch.tensor([2.0])), r"levels must be strictly increasing; levels\[1\] = 1, "
                                                             r"levels\[2\] = 1"),
    (lambda: ops.fake_quantize_sigmoid(x, torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.5]), one, one,
                                       torch.tensor([2.0])), r"thresholds must be a 1-D tensor with one value fewer "
                                                             r"than levels \(2\), got shape \[1\]"),
    (lambda: ops.fake_quantize_sigmoid(x, torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.5, 0.5]), one, one,
                                       torch.tensor([2.0])), r"thresholds must be non-decreasing; thresholds\[0\] = "
                                                             r"1.5, thresholds\[1\] = 0.5"),
    (lambda: ops.fake_quantize_sigmoid(x, torch.tensor([0.0, 1.0]), torch.tensor([0.5]), one, one,
                                       torch.tensor([0.0])), r"temperature must be > 0, got 0"),
    (lambda: ops.fake_quantize_sigmoid(x, torch.tensor([0.0, 1.0]), torch.tensor([0.5]), one, one,
                                       torch.tensor([1.0, 2.0])), r"temperature must hold one value, got shape \[2\]"),
    (lambda: ops.fake_quantize_sigmoid(x, torch.tensor([[0.0, 1.0]]), torch.tensor([0.5]), one, one,
                                       torch.tensor([1.0])), r"levels must be a 1-D tensor of at least 2 values"),
    (lambda: ops.fake_quantize_sigmoid(x, torch.tensor([0.0, 1.0]), torch.tensor([0.5]), one,
                                       torch.tensor([math.nan]), torch.tensor([1.0])), r"beta\[0\] = nan"),
])
def test_error_messages(call, match):
    with pytest.raises((RuntimeError, ValueError, TypeError), match=match):
        call()


def test_backward_op_checks_grad():
    with pytest.raises(RuntimeError, match=r"fake_quantize_pact_backward: grad must match x in dtype and shape"):
        lib.fake_quantize_pact_backward(torch.randn(3), x, one, 4, False, "half_even", None, 0)


# ---- documented clamps -------------------------------------------------------------------------


def _val(fn, *params):
    ps = [torch.tensor([v], requires_grad=True) for v in params]
    xx = x.clone().requires_grad_(True)
    y = fn(xx, *ps)
    y.backward(torch.ones_like(y))
    return y.detach(), xx.grad, [p.grad for p in ps]


def test_lsq_nonpositive_scale_is_used_as_eps():
    eps = 2.0**-23
    for s in (0.0, -0.3, 1e-30):
        y, dx, (ds,) = _val(lambda x, s: ops.fake_quantize_lsq(x, s, -8, 7), s)
        y_eps, dx_eps, (ds_eps,) = _val(lambda x, s: ops.fake_quantize_lsq(x, s, -8, 7), eps)
        assert torch.equal(y, y_eps) and torch.equal(dx, dx_eps) and torch.equal(ds, ds_eps)


def test_pact_nonpositive_alpha_is_used_as_eps():
    y, _, (da,) = _val(lambda x, a: ops.fake_quantize_pact(x, a, 4), -1.0)
    y2, _, (da2,) = _val(lambda x, a: ops.fake_quantize_pact(x, a, 4), 2.0**-23)
    assert torch.equal(y, y2) and torch.equal(da, da2)


def test_qil_clamps():
    # d <= 0 -> 2^-23; c < d -> c = d; gamma <= 0 -> 2^-23
    base = _val(lambda x, c, d: ops.fake_quantize_qil(x, c, d, None, 4), 0.3, 0.5)
    fixed = _val(lambda x, c, d: ops.fake_quantize_qil(x, c, d, None, 4), 0.5, 0.5)
    assert torch.equal(base[0], fixed[0]) and torch.equal(base[1], fixed[1])
    neg_d = _val(lambda x, c, d: ops.fake_quantize_qil(x, c, d, None, 4), 0.5, -1.0)
    eps_d = _val(lambda x, c, d: ops.fake_quantize_qil(x, c, d, None, 4), 0.5, 2.0**-23)
    assert torch.equal(neg_d[0], eps_d[0])


def test_dsq_alpha_clamped_to_documented_range():
    for a, clamped in [(0.0, 1e-4), (-1.0, 1e-4), (0.9, 0.5), (2.0, 0.5)]:
        y, dx, g = _val(lambda x, l, u, al: ops.fake_quantize_dsq(x, l, u, al, 2, mode="soft"), -1.0, 1.0, a)
        y2, dx2, g2 = _val(lambda x, l, u, al: ops.fake_quantize_dsq(x, l, u, al, 2, mode="soft"), -1.0, 1.0, clamped)
        assert torch.equal(y, y2) and torch.equal(dx, dx2)
        assert all(torch.equal(p, q) for p, q in zip(g, g2))


def test_non_finite_inputs():
    xs = torch.tensor([math.nan, math.inf, -math.inf, 0.3])
    for name, fn in {
        "lsq": lambda x: ops.fake_quantize_lsq(x, torch.tensor([0.1], requires_grad=True), -8, 7),
        "pact": lambda x: ops.fake_quantize_pact(x, torch.tensor([1.0], requires_grad=True), 4),
        "qil": lambda x: ops.fake_quantize_qil(x, torch.tensor([0.5], requires_grad=True),
                                               torch.tensor([0.3], requires_grad=True),
                                               torch.tensor([1.5], requires_grad=True), 4),
        "dsq": lambda x: ops.fake_quantize_dsq(x, torch.tensor([-1.0], requires_grad=True),
                                               torch.tensor([1.0], requires_grad=True),
                                               torch.tensor([0.2], requires_grad=True), 3, mode="soft"),
        "sigmoid": lambda x: ops.fake_quantize_sigmoid(x, ops.sigmoid_levels(2), torch.tensor([-0.5, 0.5]),
                                                       torch.tensor([1.0], requires_grad=True),
                                                       torch.tensor([1.0], requires_grad=True), torch.tensor([4.0])),
    }.items():
        xx = xs.clone().requires_grad_(True)
        y = fn(xx)
        assert math.isnan(y[0].item()), name  # NaN stays NaN
        assert math.isfinite(y[1].item()) and math.isfinite(y[2].item()), name  # ±Inf saturates
        y.backward(torch.ones_like(y))
        assert torch.isfinite(xx.grad).all() and xx.grad[0].item() == 0.0, name
