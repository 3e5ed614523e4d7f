"""Slow, readable reference implementations of lowbit's estimators, written from the formulas in
METHODS.md §3–§6 with plain PyTorch autograd (float64 by default).

Straight-through pieces are written as ``value.detach() + (path - path.detach())``: the forward
value comes from the formula, the gradient from the differentiable ``path``. Parameters reach
the references in the op's granularity layout (a tensor that broadcasts against ``x``).

These are the tests' ground truth for gradients; they are not used by the library.
"""

from __future__ import annotations

import math

import torch


def round_ste(v: torch.Tensor) -> torch.Tensor:
    """Round half to even forward, identity backward."""
    return v + (torch.round(v) - v).detach()


def grad_scaled(p: torch.Tensor, g: float) -> torch.Tensor:
    """Forward value p, gradient g·dL/dp (LSQ's gradient scaling)."""
    return p * g + (p - p * g).detach()


def pad_param(p: torch.Tensor, ndim: int) -> torch.Tensor:
    """A parameter in lowbit's layout, left-padded with ones so it broadcasts against x."""
    while p.dim() > ndim and p.shape[0] == 1:
        p = p.reshape(p.shape[1:])
    return p.reshape((1,) * (ndim - p.dim()) + tuple(p.shape))


def expand_blocks(p: torch.Tensor, x_shape) -> torch.Tensor:
    """Each parameter element repeated over its block of x (the granularity convention)."""
    p = pad_param(p, len(x_shape))
    for d, (xs, ps) in enumerate(zip(x_shape, p.shape)):
        if ps != xs:
            p = p.repeat_interleave(xs // ps, dim=d)
    return p


# ---- LSQ / LSQ+ (§4.1–4.2) -------------------------------------------------------------------


def lsq(x, scale, qmin, qmax, offset=None, grad_scale=1.0):
    s = expand_blocks(grad_scaled(scale, grad_scale), x.shape)
    b = expand_blocks(grad_scaled(offset, grad_scale), x.shape) if offset is not None else torch.zeros_like(s)
    v = (x - b) / s
    inside = (v > qmin) & (v < qmax)
    below = v <= qmin
    # Strictly inside: the code follows v (STE through the rounding); clipped: a constant code.
    vc = torch.where(inside, v, torch.where(below, torch.full_like(v, qmin), torch.full_like(v, qmax)))
    return round_ste(vc) * s + b


# ---- PACT (§3) -------------------------------------------------------------------------------


def pact(x, alpha, bits, signed=False):
    a = expand_blocks(alpha, x.shape)
    levels = (2 ** (bits - 1) - 1) if signed else (2**bits - 1)
    lo = -a if signed else torch.zeros_like(a)
    inside = (x >= lo) & (x <= a)
    yc_value = torch.minimum(torch.maximum(x, lo), a).detach()
    # Paper gradients: dx on [lo, α]; dα where x >= α (and -1 where x <= -α when signed). The two
    # cases overlap at x = α, as in the paper.
    yc = yc_value + (x - x.detach()) * inside + (a - a.detach()) * (x >= a)
    if signed:
        yc = yc - (a - a.detach()) * (x <= -a)
    ad = a.detach()
    return round_ste(yc * (levels / ad)) * (ad / levels)


# ---- QIL (§5) --------------------------------------------------------------------------------


def qil(x, c, d, gamma, bits, weight=True):
    c = expand_blocks(c, x.shape)
    d = expand_blocks(d, x.shape)
    g = expand_blocks(gamma, x.shape) if gamma is not None else torch.ones_like(c)
    qd = (2 ** (bits - 1) - 1) if weight else (2**bits - 1)
    a = x.abs() if weight else x
    sign = torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x)) if weight else torch.ones_like(x)
    alpha = 0.5 / d
    beta = -0.5 * c / d + 0.5
    inside = (a >= c - d) & (a <= c + d)
    u = alpha * a + beta
    # Keep u^γ and its derivatives finite outside the interval (they are discarded there).
    # (The clamp only guards float rounding at the interval's ends: value clamped, gradient kept.)
    u_clamped = u + (u.clamp(1e-12, 1.0) - u).detach()
    u_safe = torch.where(inside, u_clamped, torch.full_like(u, 0.5))
    t = u_safe**g
    t = torch.where(inside, t, torch.where(a > c + d, torch.ones_like(t), torch.zeros_like(t)))
    return sign * round_ste(t * qd) / qd


# ---- DSQ (§6.1) ------------------------------------------------------------------------------


def dsq(x, lower, upper, alpha, bits, mode="hard"):
    l = expand_blocks(lower, x.shape)
    u = expand_blocks(upper, x.shape)
    a = expand_blocks(alpha, x.shape).clamp(1e-4, 0.5)
    L = 2**bits - 1
    delta = (u - l) / L
    i = torch.clamp(torch.floor((x - l) / delta), 0, L - 1).detach()
    m = l + (i + 0.5) * delta
    s = 1.0 / (1.0 - a)
    k = torch.log(2.0 / a - 1.0) / delta
    phi = s * torch.tanh(k * (x - m))
    qs_inside = l + delta * (i + (phi + 1.0) / 2.0)
    qs = torch.where(x < l, l + 0 * x, torch.where(x > u, u + 0 * x, qs_inside))
    if mode == "soft":
        return qs
    hard = l + delta * torch.clamp(torch.round((x - l) / delta), 0, L)
    return qs + (hard - qs).detach()


# ---- Quantization Networks (§6.2) ------------------------------------------------------------


def sigmoid_staircase(x, levels, thresholds, alpha, beta, temperature, hard=False):
    a = expand_blocks(alpha, x.shape)
    b = expand_blocks(beta, x.shape)
    steps = levels[1:] - levels[:-1]
    bx = b * x
    soft = levels[0].expand_as(x) + 0 * x
    hard_sum = levels[0].expand_as(x).clone()
    for i in range(steps.numel()):
        soft = soft + steps[i] * torch.sigmoid(temperature * (bx - thresholds[i]))
        hard_sum = hard_sum + steps[i] * (bx > thresholds[i]).to(x.dtype)
    y = a * soft
    if hard:
        y = y + (a * hard_sum - y).detach()
    return y


def lsq_grad_scale(numel: int, qmax: int) -> float:
    return 1.0 / math.sqrt(numel * qmax)


# ---- test-input helpers ----------------------------------------------------------------------


def near_half_integer(v: torch.Tensor, margin: float) -> torch.Tensor:
    return (v - torch.floor(v) - 0.5).abs() < margin


def near_integer(v: torch.Tensor, margin: float) -> torch.Tensor:
    return (v - torch.round(v)).abs() < margin


def resample_until_clear(x: torch.Tensor, bad_fn, gen: torch.Generator, spread: float, max_rounds: int = 100):
    """Redraw the elements of x for which bad_fn(x) is True (decision points too close to a
    rounding tie or a clip edge for float32 and float64 to agree on them)."""
    x = x.clone()
    for _ in range(max_rounds):
        bad = bad_fn(x)
        n = int(bad.sum())
        if n == 0:
            return x
        x[bad] = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1).to(x.dtype) * spread
    raise AssertionError("could not draw inputs away from the decision boundaries")
