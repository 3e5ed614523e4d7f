"""Slow, readable pure-torch references of the affine ops, written from the formulas of METHODS.md.

Nothing here calls lowbit. Each function states the formula it implements; the lowbit ops are
tested against these bit for bit (tests/test_ops_affine.py, test_stochastic.py, ...).

Arithmetic choices that decide bit-exactness (METHODS §0, §1.4):

* ``inv = 1.0f / scale`` in float32 and ``v = x * inv`` in float32 (one rounding each), as PyTorch
  and FBGEMM do. Everything after that is exact in float64: rounding functions of a float32
  value, ``z + R(v)``, the clamp, and ``(q - z) * scale`` (an at most 17-bit integer times a
  24-bit scale fits float64's 53 bits), which is then rounded once to float32 and, for 16-bit
  inputs, once more to the input dtype, exactly as a float32 kernel storing to half/bf16 does.
* NaN propagates through the fake-quant formula (clamp keeps it); ±Inf saturates.
"""

from __future__ import annotations

import math

import numpy as np
import torch

ROUNDINGS = ("half_even", "half_away", "half_up", "floor", "ceil", "stochastic")
DETERMINISTIC_ROUNDINGS = ROUNDINGS[:-1]
STES = ("integer", "real", "identity")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


# ---- granularity -------------------------------------------------------------------------------


def padded_param_shape(param_shape, x_shape) -> list[int]:
    """``param_shape`` left-padded with ones to ``len(x_shape)`` (extra leading ones dropped)."""
    p = list(param_shape)
    while len(p) > len(x_shape) and p[0] == 1:
        p.pop(0)
    assert len(p) <= len(x_shape), (param_shape, x_shape)
    return [1] * (len(x_shape) - len(p)) + p


def expand_param(param: torch.Tensor, x_shape) -> torch.Tensor:
    """Each parameter element repeated over its block: the result has ``x_shape``.

    The granularity rule of DESIGN.md: the padded parameter shape divides ``x_shape`` and element
    ``(i0, i1, ...)`` covers ``x[i0*b0:(i0+1)*b0, i1*b1:(i1+1)*b1, ...]``, ``b_d = x_d / p_d``.
    """
    x_shape = list(x_shape)
    p = param.reshape(padded_param_shape(param.shape, x_shape))
    for d, (xs, ps) in enumerate(zip(x_shape, p.shape)):
        assert ps == 1 or xs % ps == 0, (param.shape, x_shape)
        if ps != xs and ps != 1:
            p = p.repeat_interleave(xs // ps, dim=d)
    return p.expand(x_shape)


def block_view(x: torch.Tensor, param_shape) -> torch.Tensor:
    """``x`` reshaped to ``[p0, b0, p1, b1, ...]`` so that reducing the odd dims gives per-block values."""
    p = padded_param_shape(param_shape, x.shape)
    shape = []
    for xs, ps in zip(x.shape, p):
        shape += [ps, xs // ps]
    return x.reshape(shape)


# ---- rounding (METHODS §0, §7) -----------------------------------------------------------------


def round_ref(v: torch.Tensor, rounding: str, u: torch.Tensor | None = None) -> torch.Tensor:
    """R(v) for a float64 tensor holding float32 values (so ``|v| + 0.5`` is exact).

    half_even: ties to even; half_away: ties away from zero; half_up: ``floor(v + 0.5)``;
    floor; ceil; stochastic: ``floor(v) + [u < v - floor(v)]`` with ``u`` in [0, 1).
    """
    assert v.dtype == torch.float64
    if rounding == "half_even":
        return torch.round(v)
    if rounding == "half_away":
        return torch.copysign(torch.floor(v.abs() + 0.5), v)
    if rounding == "half_up":
        return torch.floor(v + 0.5)
    if rounding == "floor":
        return torch.floor(v)
    if rounding == "ceil":
        return torch.ceil(v)
    if rounding == "stochastic":
        assert u is not None and u.shape == v.shape
        f = torch.floor(v)
        return torch.where(u.double() < v - f, f + 1, f)
    raise ValueError(rounding)


# ---- Philox4x32-10 and the stochastic-rounding stream (METHODS §7, cpp/core/rounding.h) --------

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter_lo: np.ndarray, counter_hi: np.ndarray, seed: int) -> list[np.ndarray]:
    """Random123's philox4x32-10 on counters ``{lo, hi, 0, 0}`` with key ``{lo(seed), hi(seed)}``.

    Vectorized over the counter arrays (uint64 holding 32-bit words); returns the four output words.
    """
    seed &= (1 << 64) - 1
    c0 = counter_lo.astype(np.uint64)
    c1 = counter_hi.astype(np.uint64)
    c2 = np.zeros_like(c0)
    c3 = np.zeros_like(c0)
    k0 = np.uint64(seed & 0xFFFFFFFF)
    k1 = np.uint64(seed >> 32)
    for _ in range(10):
        p0 = _M0 * c0  # 32 x 32 -> 64 bits, exact in uint64
        p1 = _M1 * c2
        n0 = (p1 >> np.uint64(32)) ^ c1 ^ k0
        n2 = (p0 >> np.uint64(32)) ^ c3 ^ k1
        c1 = p1 & _MASK32
        c3 = p0 & _MASK32
        c0, c2 = n0, n2
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return [c0, c1, c2, c3]


def stochastic_uniform(seed: int, offset: int, n: int) -> torch.Tensor:
    """Draws ``offset .. offset + n - 1`` of stream ``seed`` as float32 in [0, 1) (24 bits each).

    Draw ``i`` is lane ``i % 4`` of the Philox block with counter ``i // 4``, top 24 bits, times 2^-24.
    """
    idx = np.arange(n, dtype=np.uint64) + np.uint64(offset & ((1 << 64) - 1))
    block = idx >> np.uint64(2)
    words = philox4x32_10(block & _MASK32, block >> np.uint64(32), seed)
    lane = (idx & np.uint64(3)).astype(np.int64)
    out = np.choose(lane, words)
    return torch.from_numpy(((out >> np.uint64(8)).astype(np.float64) / 16777216.0).astype(np.float32))


# ---- affine quantization (METHODS §1.1, §1.4, §2) ----------------------------------------------


def code_dtype(qmin: int, qmax: int) -> torch.dtype:
    """Smallest integer dtype holding [qmin, qmax] (the documented output dtype of quantize_affine)."""
    if qmin >= 0 and qmax <= 255:
        return torch.uint8
    if qmin >= -128 and qmax <= 127:
        return torch.int8
    if qmin >= -32768 and qmax <= 32767:
        return torch.int16
    return torch.int32


def _codes(x, scale, zero_point, rounding, seed, offset):
    """(unclamped code qf = z + R(x * inv) in float64, z in float64, s in float32), all shaped like x."""
    xf = x.detach().float()
    s = expand_param(scale.detach().float(), x.shape)
    z = expand_param(zero_point.detach(), x.shape).double()
    inv = torch.ones_like(s) / s                      # float32 reciprocal, correctly rounded
    v = (xf * inv).double()                           # float32 product, then exact widening
    u = None
    if rounding == "stochastic":
        u = stochastic_uniform(int(seed), int(offset), x.numel()).reshape(x.shape)
    return z + round_ref(v, rounding, u), z, s


def fake_quantize_ref(x, scale, zero_point, qmin, qmax, rounding="half_even", seed=0, offset=0):
    """``FQ(x) = (clamp(z + R(x/s), qmin, qmax) - z) * s`` in x's dtype; NaN stays NaN."""
    qf, z, s = _codes(x, scale, zero_point, rounding, seed, offset)
    q = torch.clamp(qf, qmin, qmax)                  # NaN passes through torch.clamp
    y = ((q - z) * s.double()).float()               # exact product, one rounding to float32
    return y.to(x.dtype)


def ste_mask_ref(x, scale, zero_point, qmin, qmax, rounding="half_even", ste="integer", seed=0, offset=0):
    """The STE pass-through mask of METHODS §2 (bool, shaped like x).

    integer: ``qmin <= z + R(x/s) <= qmax`` (PyTorch); real: ``(qmin-z)s <= x <= (qmax-z)s`` with
    the edges rounded to float32 (TensorRT/TF); identity: everywhere. NaN never passes, ±Inf
    passes only under identity.
    """
    if ste == "identity":
        return torch.ones(x.shape, dtype=torch.bool)
    if ste == "integer":
        qf, _, _ = _codes(x, scale, zero_point, rounding, seed, offset)
        return (qf >= qmin) & (qf <= qmax)
    if ste == "real":
        s = expand_param(scale.detach().float(), x.shape).double()
        z = expand_param(zero_point.detach(), x.shape).double()
        lo = ((qmin - z) * s).float()
        hi = ((qmax - z) * s).float()
        xf = x.detach().float()
        return (xf >= lo) & (xf <= hi)
    raise ValueError(ste)


def fake_quantize_backward_ref(grad, x, scale, zero_point, qmin, qmax, rounding="half_even", ste="integer",
                               seed=0, offset=0):
    """``dx = dy · mask`` as a multiply (torch's convention): a masked negative dy gives -0 and a
    masked non-finite dy gives NaN."""
    mask = ste_mask_ref(x, scale, zero_point, qmin, qmax, rounding, ste, seed, offset)
    return grad * mask.to(grad.dtype)


def quantize_ref(x, scale, zero_point, qmin, qmax, rounding="half_even", seed=0, offset=0):
    """``clamp(z + R(x/s), qmin, qmax)`` as the smallest integer dtype; NaN becomes the zero point."""
    qf, z, _ = _codes(x, scale, zero_point, rounding, seed, offset)
    q = torch.where(torch.isnan(qf), z, torch.clamp(qf, qmin, qmax))
    return q.to(code_dtype(qmin, qmax))


def dequantize_ref(q, scale, zero_point, dtype=torch.float32):
    """``(q - z) * s`` in float32 (each step rounded to float32, as the kernel does), then ``dtype``."""
    s = expand_param(scale.float(), q.shape)
    z = expand_param(zero_point, q.shape).float()
    return ((q.float() - z) * s).to(dtype)


# ---- observers (METHODS §1.2, §8.1) ------------------------------------------------------------


def block_minmax_ref(x: torch.Tensor, param_shape) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-block (min, max) of x as float32, NaN ignored; an all-NaN block gives (+inf, -inf)."""
    xf = x.detach().float()
    lo = torch.where(torch.isnan(xf), math.inf, xf)
    hi = torch.where(torch.isnan(xf), -math.inf, xf)
    p = padded_param_shape(param_shape, x.shape)
    odd = tuple(range(1, 2 * len(p), 2))
    if x.numel() == 0:
        full = torch.full(list(param_shape), math.inf)
        return full, -full
    mn = block_view(lo, param_shape).amin(dim=odd) if odd else lo.clone()
    mx = block_view(hi, param_shape).amax(dim=odd) if odd else hi.clone()
    return mn.reshape(param_shape), mx.reshape(param_shape)


def observe_minmax_ref(x, min_val, max_val):
    """Running min/max: ``min = min(min, block_min(x))`` (NaN ignored). Returns new buffers."""
    bmin, bmax = block_minmax_ref(x, min_val.shape)
    return torch.minimum(min_val, bmin), torch.maximum(max_val, bmax)


def observe_moving_average_ref(x, min_val, max_val, c):
    """EMA min/max in float32: first observation (+inf/-inf buffer) copied, then ``m + c(b - m)``.

    A block with no non-NaN value leaves its buffer unchanged.
    """
    bmin, bmax = block_minmax_ref(x, min_val.shape)
    c32 = torch.tensor(c, dtype=torch.float32)
    fresh = torch.isposinf(min_val) & torch.isneginf(max_val)
    seen = bmin <= bmax
    new_min = torch.where(fresh, bmin, min_val + c32 * (bmin - min_val))
    new_max = torch.where(fresh, bmax, max_val + c32 * (bmax - max_val))
    return torch.where(seen, new_min, min_val), torch.where(seen, new_max, max_val)


# ---- qparams (METHODS §1.2, §1.3) --------------------------------------------------------------


def symmetric_zero_point(qmin: int, qmax: int) -> int:
    """lowbit's documented rule: 0 for signed ranges, the upper midpoint for unsigned ones."""
    return 0 if qmin < 0 else (qmin + qmax + 1) // 2


def choose_qparams_observer_ref(min_val, max_val, qmin, qmax, symmetric=False, eps=2.0**-23):
    """torch.ao's observer formula in float32 tensors, zero point computed exactly (Python ints).

    affine: ``s = max((max' - min') / (qmax - qmin), eps)``, ``z = clamp(qmin - RNE(min'/s))``;
    symmetric: ``s = max(amax / ((qmax - qmin) / 2), eps)``, ``z = symmetric_zero_point``;
    ``min' = min(min, 0)``, ``max' = max(max, 0)``; the never-observed range (+inf, -inf) -> (1, 0).
    """
    mn = min_val.float()
    mx = max_val.float()
    unobserved = torch.isposinf(mn) & torch.isneginf(mx)
    mn = torch.where(unobserved, 0.0, mn)
    mx = torch.where(unobserved, 0.0, mx)
    min_neg = torch.minimum(mn, torch.zeros(()))
    max_pos = torch.maximum(mx, torch.zeros(()))
    eps_t = torch.tensor(eps, dtype=torch.float32)
    if symmetric:
        amax = torch.maximum(-min_neg, max_pos)
        half = torch.tensor((qmax - qmin) / 2, dtype=torch.float32)
        scale = torch.maximum(amax / half, eps_t)
        zp = torch.full(mn.shape, symmetric_zero_point(qmin, qmax), dtype=torch.int64)
    else:
        scale = torch.maximum((max_pos - min_neg) / torch.tensor(float(qmax - qmin), dtype=torch.float32), eps_t)
        r = torch.round(min_neg / scale).double()
        zp = torch.tensor([min(max(qmin - int(v), qmin), qmax) for v in r.reshape(-1).tolist()],
                          dtype=torch.int64).reshape(mn.shape)
    scale = torch.where(unobserved, 1.0, scale)
    zp = torch.where(unobserved, 0, zp)
    return scale, zp.to(torch.int32)


def choose_qparams_fbgemm_ref(min_val: float, max_val: float, qmin: int, qmax: int, symmetric: bool):
    """fbgemm::ChooseQuantizationParams (FBGEMM src/QuantUtils.cc, used by torch 2.13's fused op).

    1. symmetric and min < 0 < max: widen to ``m·[-(R/2 + 1), R/2]``, ``m = max(|min/sq_min|, |max/sq_max|)``
    2. include zero; ``s = float((double(max) - min) / (qmax - qmin))``; 0.1 if s == 0 or 1/s == inf
    3. ``s < 6.1e-5``: s = 6.1e-5 and min/max rescaled (or re-derived when one end is 0)
    4. zero point from the end with the smaller ``|q_end| + |end / s|`` (double), or the midpoint
       when symmetric with min < 0 < max; clamped, then RNE.
    """
    f32 = np.float32
    lo, hi = f32(min_val), f32(max_val)
    with np.errstate(all="ignore"):
        if lo < 0 and hi > 0 and symmetric:
            sq_min = -((qmax - qmin) // 2 + 1)
            sq_max = (qmax - qmin) // 2
            m = max(abs(float(lo / f32(sq_min))), abs(float(hi / f32(sq_max))))
            lo, hi = f32(m * sq_min), f32(m * sq_max)
        lo, hi = min(lo, f32(0)), max(hi, f32(0))
        scale = f32((float(hi) - float(lo)) / (qmax - qmin))
        if scale == 0 or np.isinf(f32(1) / scale):
            scale = f32(0.1)
        small = f32(6.1e-5)
        if scale < small:
            org = scale
            scale = small
            if lo == 0:
                hi = f32(small * f32(qmax - qmin))
            elif hi == 0:
                lo = f32(-small * f32(qmax - qmin))
            else:
                amp = f32(small / org)
                lo, hi = f32(lo * amp), f32(hi * amp)
    s = float(scale)
    zp_min, zp_max = qmin - float(lo) / s, qmax - float(hi) / s
    err_min, err_max = abs(qmin) + abs(float(lo) / s), abs(qmax) + abs(float(hi) / s)
    zp = zp_min if err_min < err_max else zp_max
    if lo < 0 and hi > 0 and symmetric:
        zp = (qmin + qmax) / 2
    nudged = qmin if zp < qmin else qmax if zp > qmax else int(np.rint(zp))
    return float(scale), nudged


# ---- comparison helpers ------------------------------------------------------------------------

_INT_VIEW = {torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
             torch.float64: torch.int64}


def assert_same_bits(actual: torch.Tensor, expected: torch.Tensor, msg: str = "", zero_sign: bool = True):
    """Equal dtype, shape and bit patterns; any NaN matches any NaN. ``zero_sign=False`` lets -0 match +0."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype, msg)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, msg)
    if not actual.dtype.is_floating_point:
        bad = actual != expected
    else:
        a, e = actual.detach().contiguous(), expected.detach().contiguous()
        if not zero_sign:
            a, e = a + 0.0, e + 0.0                   # -0 + 0 = +0; exact for everything else
        an, en = torch.isnan(a), torch.isnan(e)
        bad = (an != en) | (~an & (a.view(_INT_VIEW[a.dtype]) != e.view(_INT_VIEW[e.dtype])))
    if bool(bad.any()):
        idx = bad.nonzero()[:5].tolist()
        af, ef = actual.reshape(-1), expected.reshape(-1)
        flat = bad.reshape(-1).nonzero()[:5].reshape(-1).tolist()
        raise AssertionError(f"{msg}: {int(bad.sum())} of {bad.numel()} elements differ, first at {idx}: "
                             f"actual {[af[i].item() for i in flat]} expected {[ef[i].item() for i in flat]}")
