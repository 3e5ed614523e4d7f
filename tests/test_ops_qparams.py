"""``choose_qparams`` against torch.

* ``method="observer"`` equals torch.ao's ``MinMaxObserver`` / ``PerChannelMinMaxObserver``
  ``calculate_qparams`` bit for bit for every qscheme (per-tensor/per-channel, affine/symmetric),
  dtype (quint8, qint8, qint32, uint8, int8, int16, uint16, int32), reduce_range and custom range
  torch accepts, except where lowbit deviates on purpose (checked against lowbit's rule instead):

  - symmetric zero point of an unsigned range is always ``(qmin + qmax + 1) // 2``. torch.ao uses
    128 for (q)uint8 even under reduce_range's [0, 127] (a zero point outside the range) and the
    lower midpoint ``(qmin + qmax) // 2`` for custom unsigned ranges;
  - affine 32-bit ranges: torch computes ``qmin - round(min/scale)`` in int32 and overflows when
    ``round(min/scale) < -2^31`` (ranges whose negative side dominates), giving zero point 0;
    lowbit computes it exactly and clamps.

* ``method="fbgemm"`` equals the qparams ``torch.fused_moving_avg_obs_fake_quant`` writes
  (per-tensor and per-channel, symmetric and affine), for 2-16 bit ranges, on ~10^5 random ranges
  including tiny, zero, one-sided and degenerate ones. This path mirrors torch 2.13 (FBGEMM's
  ``ChooseQuantizationParams``, float scale, zero point from the end with the smaller
  ``|q| + |end/scale|``).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver

import lowbit
import reference as R

L = torch.ops.lowbit
EPS = torch.finfo(torch.float32).eps


def _bits(t):
    return t.float().contiguous().view(torch.int32)


def _ranges(n, gen):
    """(min, max) pairs: two-sided, one-sided, zero, tiny, huge and degenerate (min == max)."""
    a = torch.randn(n, generator=gen) * 10.0 ** torch.randint(-9, 5, (n,), generator=gen).float()
    b = torch.randn(n, generator=gen) * 10.0 ** torch.randint(-9, 5, (n,), generator=gen).float()
    kind = torch.randint(0, 6, (n,), generator=gen)
    a = torch.where(kind == 1, a.abs(), a)
    b = torch.where(kind == 1, b.abs(), b)
    a = torch.where(kind == 2, -a.abs(), a)
    b = torch.where(kind == 2, -b.abs(), b)
    b = torch.where(kind == 3, a, b)
    a = torch.where(kind == 4, 0.0, a)
    b = torch.where(kind == 5, a * (1 + 1e-7), b)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    lo = torch.cat([lo, torch.tensor([0.0, 0.0, -1e-38, 1e-38, -3e38, 0.0, -1.0, 1e-45])])
    hi = torch.cat([hi, torch.tensor([0.0, 1e-38, 0.0, 1e-38, 3e38, 1e-3, 1.0, 1e-45])])
    return lo, hi


# ---- METHODS vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("x,qmin,qmax,sym,scale_bits_or_value,zp", [
    ([-1, 0.5, 2, 3], 0, 255, False, 0x3C808081, 64),
    ([-1, 0.5, 2, 3], -128, 127, False, 0x3C808081, -64),
    ([-1, 0.5, 2, 3], 0, 127, False, 0.031496062874794006, 32),
    ([-1, 0.5, 2, 3], -128, 127, True, 0.0235294122248888, 0),
    ([-1, 0.5, 2, 3], 0, 255, True, 0.0235294122248888, 128),
    ([-1, 0.5, 2, 3], -127, 127, True, 0.023622047156095505, 0),
    ([-1, 0.5, 2, 3], 0, 15, False, 0.2666666805744171, 4),
    ([0.5, 2], 0, 255, False, 0.007843137718737125, 0),
    ([-2, -0.5], 0, 255, False, 0.007843137718737125, 255),
    ([0, 0], 0, 255, False, EPS, 0),
    ([1.5, 1.5], 0, 255, False, 0.0058823530562222, 0),
    ([-0.3, 0.7], 0, 255, False, 0.003921568859368563, 76),
])
def test_methods_1_2_observer_vectors(x, qmin, qmax, sym, scale_bits_or_value, zp):
    x = torch.tensor(x, dtype=torch.float32)
    scale, z = lowbit.ops.choose_qparams(x.min().reshape(1), x.max().reshape(1), qmin, qmax, symmetric=sym)
    if isinstance(scale_bits_or_value, int):
        assert int(_bits(scale)) == scale_bits_or_value
    else:
        assert scale.item() == torch.tensor(scale_bits_or_value, dtype=torch.float32).item()
    assert z.item() == zp and z.dtype == torch.int32 and scale.dtype == torch.float32


def test_methods_1_2_per_channel_vectors():
    x = torch.tensor([[-1, 0.5], [0.25, 2], [0, 0]])
    mn, mx = x.amin(1), x.amax(1)
    s, z = lowbit.ops.choose_qparams(mn, mx, 0, 255)
    assert s.tolist() == pytest.approx([0.0058823530, 0.0078431377, EPS], rel=1e-7) and z.tolist() == [170, 0, 0]
    s, z = lowbit.ops.choose_qparams(mn, mx, -128, 127, symmetric=True)
    assert s.tolist() == pytest.approx([0.0078431377, 0.0156862754, EPS], rel=1e-7) and z.tolist() == [0, 0, 0]


@pytest.mark.parametrize("lo,hi,qmin,qmax,sym,scale,zp", [
    (-1, 3, -128, 127, True, 0.023622047156095505, 0),
    (-1, 3, 0, 255, True, 0.023622047156095505, 128),
    (-3, 1, -128, 127, True, 0.0234375, 0),
    (-0.3, 0.7, 0, 255, False, 0.003921568859368563, 76),
    (0, 0, 0, 255, False, 0.1, 0),
    (0, 1e-3, 0, 255, False, 6.1e-5, 0),
])
def test_methods_1_3_fbgemm_vectors(lo, hi, qmin, qmax, sym, scale, zp):
    s, z = lowbit.ops.choose_qparams(torch.tensor([float(lo)]), torch.tensor([float(hi)]), qmin, qmax,
                                     symmetric=sym, method="fbgemm")
    assert s.item() == torch.tensor(scale, dtype=torch.float32).item() and z.item() == zp


# ---- observer parity ----------------------------------------------------------------------------

_DTYPES = [torch.quint8, torch.qint8, torch.qint32, torch.uint8, torch.int8, torch.int16, torch.uint16, torch.int32]
_CUSTOM = {torch.quint8: [(0, 15), (0, 127), (0, 254)], torch.uint8: [(0, 3), (0, 200)],
           torch.qint8: [(-8, 7), (-127, 127), (-64, 63)], torch.int8: [(-2, 1)],
           torch.qint32: [(-(2**20), 2**20 - 1)], torch.int32: [(-1000, 1000)]}


def _observer_configs(per_channel):
    tensor_schemes = (torch.per_channel_affine, torch.per_channel_symmetric) if per_channel else (
        torch.per_tensor_affine, torch.per_tensor_symmetric)
    for dtype in _DTYPES:
        for qscheme in tensor_schemes:
            for reduce_range in (False, True):
                for custom in [None] + _CUSTOM.get(dtype, []):
                    yield dtype, qscheme, reduce_range, custom


def _make_observer(cls, dtype, qscheme, reduce_range, custom, **kw):
    args = dict(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range, **kw)
    if custom is not None:
        args.update(quant_min=custom[0], quant_max=custom[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return cls(**args)
        except (AssertionError, NotImplementedError, ValueError):
            return None      # a configuration torch itself rejects


def _torch_rule_differs(obs, symmetric, min_val, scale):
    """Where lowbit deviates from torch.ao on purpose (module docstring); elementwise bool."""
    qmin, qmax = obs.quant_min, obs.quant_max
    n = min_val.numel()
    if symmetric:
        unsigned_dtype = obs.dtype in (torch.quint8, torch.uint8, torch.uint16)
        differs = unsigned_dtype and R.symmetric_zero_point(qmin, qmax) != (
            (qmin + qmax) // 2 if obs.has_customized_qrange else 2**15 if obs.dtype == torch.uint16 else 128)
        return torch.full((n,), bool(differs))
    if qmax - qmin > 2**16:
        code = torch.round(torch.minimum(min_val.float(), torch.zeros(())) / scale).double()
        return (code < -(2.0**31)).reshape(-1)
    return torch.zeros(n, dtype=torch.bool)


def _check_observer(obs, min_val, max_val, symmetric, what):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_scale, t_zp = obs.calculate_qparams()
    eps = float(obs.eps)
    scale, zp = L.choose_qparams(min_val, max_val, obs.quant_min, obs.quant_max, symmetric, "observer", eps)
    r_scale, r_zp = R.choose_qparams_observer_ref(min_val, max_val, obs.quant_min, obs.quant_max, symmetric, eps)
    # lowbit always equals its formula reference.
    assert torch.equal(_bits(scale), _bits(r_scale)) and torch.equal(zp, r_zp), what
    # ... and torch, bit for bit, except where the documented rule differs.
    differs = _torch_rule_differs(obs, symmetric, min_val, scale)
    assert torch.equal(_bits(scale).reshape(-1), _bits(t_scale).reshape(-1)), what
    same = ~differs
    assert torch.equal(zp.reshape(-1)[same].long(), t_zp.reshape(-1)[same].long()), what
    return int(differs.sum())


def test_minmax_observer_parity():
    gen = torch.Generator().manual_seed(0)
    checked = deviating = 0
    for dtype, qscheme, reduce_range, custom in _observer_configs(per_channel=False):
        obs = _make_observer(MinMaxObserver, dtype, qscheme, reduce_range, custom)
        if obs is None:
            continue
        symmetric = qscheme == torch.per_tensor_symmetric
        lo, hi = _ranges(12, gen)
        for i in range(lo.numel()):
            obs.reset_min_max_vals()
            obs(torch.stack([lo[i], hi[i]]))
            deviating += _check_observer(obs, obs.min_val.reshape(1), obs.max_val.reshape(1), symmetric,
                                         f"{dtype} {qscheme} rr={reduce_range} custom={custom} "
                                         f"[{lo[i].item()}, {hi[i].item()}]")
            checked += 1
    assert checked > 1000 and deviating < checked // 4, (checked, deviating)


def test_per_channel_minmax_observer_parity():
    gen = torch.Generator().manual_seed(1)
    configs = 0
    for dtype, qscheme, reduce_range, custom in _observer_configs(per_channel=True):
        for ch_axis in (0, 1):
            obs = _make_observer(PerChannelMinMaxObserver, dtype, qscheme, reduce_range, custom, ch_axis=ch_axis)
            if obs is None:
                continue
            lo, hi = _ranges(40, gen)
            x = torch.stack([lo, hi, (lo + hi) / 2], dim=1)            # [C, 3], C = 48
            x = x if ch_axis == 0 else x.t().contiguous()
            obs(x)
            symmetric = qscheme == torch.per_channel_symmetric
            _check_observer(obs, obs.min_val, obs.max_val, symmetric, f"{dtype} {qscheme} rr={reduce_range} {custom}")
            configs += 1
    assert configs > 50


def test_documented_symmetric_zero_point_deviation():
    """lowbit: upper midpoint for every unsigned range; torch.ao: 128 (even for [0,127]) or the lower midpoint."""
    mn, mx = torch.tensor([-1.0]), torch.tensor([3.0])
    assert L.choose_qparams(mn, mx, 0, 255, True)[1].item() == 128            # torch.ao: 128
    assert L.choose_qparams(mn, mx, 0, 127, True)[1].item() == 64             # torch.ao uint8 reduce_range: 128
    assert L.choose_qparams(mn, mx, 0, 15, True)[1].item() == 8               # torch.ao custom [0,15]: 7
    assert L.choose_qparams(mn, mx, 0, 65535, True)[1].item() == 2**15        # torch.ao uint16: 2^15
    assert L.choose_qparams(mn, mx, -8, 7, True)[1].item() == 0
    assert L.choose_qparams(mn, mx, 0, 15, True, "fbgemm")[1].item() == 8     # fbgemm: round((0+15)/2) = 8


def test_qint32_overflow_deviation():
    """torch.ao's int32 zero point overflows for ranges whose negative side dominates; lowbit is exact."""
    obs = MinMaxObserver(dtype=torch.qint32)
    obs(torch.tensor([-3000.0, 1000.0]))
    _, t_zp = obs.calculate_qparams()
    scale, zp = L.choose_qparams(obs.min_val.reshape(1), obs.max_val.reshape(1), -(2**31), 2**31 - 1)
    exact = -(2**31) - round(-3000.0 / scale.item())
    assert round(-3000.0 / scale.item()) < -(2**31)         # the int32 cast in torch.ao overflows ...
    assert t_zp.item() == 0                                  # ... and its zero point comes out 0,
    assert zp.item() == exact == 2**30                       # while the exact one is 2^30.


def test_eps_and_unobserved():
    s, z = L.choose_qparams(torch.tensor([0.0, math.inf, -1.0]), torch.tensor([0.0, -math.inf, 1.0]), -128, 127,
                            False, "observer", 1e-3)
    assert s.tolist() == pytest.approx([1e-3, 1.0, 2 / 255], rel=1e-6) and z.tolist()[:2] == [-128, 0]
    s, z = L.choose_qparams(torch.tensor(math.inf), torch.tensor(-math.inf), 0, 255, True, "fbgemm")
    assert s.shape == () and s.item() == 1.0 and z.item() == 0


def test_shapes_and_input_dtypes():
    gen = torch.Generator().manual_seed(3)
    lo, hi = _ranges(40, gen)
    lo, hi = lo[:48].reshape(6, 8), hi[:48].reshape(6, 8)
    for method in ("observer", "fbgemm"):
        s, z = L.choose_qparams(lo, hi, -8, 7, False, method)
        assert s.shape == (6, 8) and z.shape == (6, 8) and s.dtype == torch.float32 and z.dtype == torch.int32
        s2, z2 = L.choose_qparams(lo.t(), hi.t(), -8, 7, False, method)
        assert torch.equal(_bits(s2), _bits(s.t())) and torch.equal(z2, z.t())
        lb, hb = lo.to(torch.bfloat16), hi.to(torch.bfloat16)
        s3, z3 = L.choose_qparams(lb, hb, -8, 7, False, method)
        s4, z4 = L.choose_qparams(lb.float(), hb.float(), -8, 7, False, method)
        assert torch.equal(_bits(s3), _bits(s4)) and torch.equal(z3, z4)
    s, z = L.choose_qparams(torch.empty(0, 3), torch.empty(0, 3), 0, 255)
    assert s.shape == (0, 3) and z.shape == (0, 3)


# ---- fbgemm parity ------------------------------------------------------------------------------

_FBGEMM_QRANGES = [(0, 255), (-128, 127), (0, 127), (-64, 63), (0, 15), (-8, 7), (-2, 1), (0, 3),
                   (0, 65535), (-32768, 32767), (-3, 5), (-127, 127)]


def _fused_qparams(lo, hi, qmin, qmax, symmetric, per_channel):
    """The qparams torch.fused_moving_avg_obs_fake_quant writes after its first observation of [lo, hi]."""
    C = lo.numel()
    if per_channel:
        x = torch.stack([lo, hi], dim=1)
        rmin, rmax = torch.full((C,), math.inf), torch.full((C,), -math.inf)
    else:
        x = torch.stack([lo.reshape(()), hi.reshape(())])
        rmin, rmax = torch.tensor(math.inf), torch.tensor(-math.inf)
    scale, zp = torch.ones(C), torch.zeros(C, dtype=torch.int32)
    torch.fused_moving_avg_obs_fake_quant(x, torch.tensor([1]), torch.tensor([1]), rmin, rmax, scale, zp, 0.01,
                                          qmin, qmax, 0, per_channel, symmetric)
    assert torch.equal(rmin, lo.reshape(rmin.shape)) and torch.equal(rmax, hi.reshape(rmax.shape))
    return scale, zp


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("qrange", _FBGEMM_QRANGES, ids=str)
def test_fbgemm_parity_per_channel(qrange, symmetric):
    qmin, qmax = qrange
    gen = torch.Generator().manual_seed(qmax - qmin + symmetric)
    lo, hi = _ranges(4000, gen)
    t_scale, t_zp = _fused_qparams(lo, hi, qmin, qmax, symmetric, per_channel=True)
    scale, zp = L.choose_qparams(lo, hi, qmin, qmax, symmetric, "fbgemm")
    bad = (_bits(scale) != _bits(t_scale)) | (zp != t_zp)
    if bad.any():
        i = int(bad.nonzero()[0])
        pytest.fail(f"{int(bad.sum())} mismatches; first [{lo[i].item()!r}, {hi[i].item()!r}]: torch "
                    f"({t_scale[i].item()!r}, {t_zp[i].item()}) lowbit ({scale[i].item()!r}, {zp[i].item()})")
    # The readable reference agrees too (a sample of it: it is slow Python).
    for i in range(0, lo.numel(), 40):
        rs, rz = R.choose_qparams_fbgemm_ref(lo[i].item(), hi[i].item(), qmin, qmax, symmetric)
        assert (rs, rz) == (scale[i].item(), zp[i].item()), (lo[i].item(), hi[i].item())


@pytest.mark.parametrize("qrange", [(-32768, 32767), (0, 65535), (-2048, 2047)], ids=str)
def test_fbgemm_small_scale_zero_point_end(qrange):
    """Tiny two-sided ranges of wide integer ranges go through the 6.1e-5 cutoff, after which the two
    error estimates (FBGEMM's |q| + |end/s| vs ATen quant_utils' |q| - |end/s|) pick different ends
    for ~0.2% of them, and those round differently. lowbit must follow torch 2.13 (FBGEMM's sums)."""
    qmin, qmax = qrange
    gen = torch.Generator().manual_seed(qmax)
    n = 20000
    lo = -torch.rand(n, generator=gen) * 10.0 ** torch.randint(-9, 0, (n,), generator=gen).float()
    hi = torch.rand(n, generator=gen) * 10.0 ** torch.randint(-9, 1, (n,), generator=gen).float()
    t_scale, t_zp = _fused_qparams(lo, hi, qmin, qmax, False, per_channel=True)
    scale, zp = L.choose_qparams(lo, hi, qmin, qmax, False, "fbgemm")
    assert torch.equal(_bits(scale), _bits(t_scale))
    assert torch.equal(zp, t_zp), f"{int((zp != t_zp).sum())} zero points differ"


@pytest.mark.parametrize("lo,hi,zp", [
    (-4.07815079483953e-08, 0.0017818596679717302, -32767),     # the difference form gives -32766
    (-2.7043306261020916e-08, 0.001184536493383348, -32767),    # -32766
    (-0.0007222105050459504, 0.06533511728048325, -32052),      # -32051
    (-0.00019167279242537916, 0.0003419526619836688, -9228),    # -9229
    (-1.0376398677180987e-05, 1.70646171682165e-06, 23511),     # 23512
])
def test_fbgemm_zero_point_regressions(lo, hi, zp):
    t_scale, t_zp = _fused_qparams(torch.tensor([lo]), torch.tensor([hi]), -32768, 32767, False, per_channel=True)
    scale, ours = L.choose_qparams(torch.tensor([lo]), torch.tensor([hi]), -32768, 32767, False, "fbgemm")
    assert t_zp.item() == zp == ours.item() and scale.item() == t_scale.item()
    assert R.choose_qparams_fbgemm_ref(lo, hi, -32768, 32767, False)[1] == zp


@pytest.mark.parametrize("symmetric", [False, True])
def test_fbgemm_parity_per_tensor(symmetric):
    gen = torch.Generator().manual_seed(5)
    lo, hi = _ranges(60, gen)
    for qmin, qmax in ((0, 255), (-128, 127), (-8, 7), (-32768, 32767)):
        for i in range(lo.numel()):
            t_scale, t_zp = _fused_qparams(lo[i:i + 1], hi[i:i + 1], qmin, qmax, symmetric, per_channel=False)
            scale, zp = L.choose_qparams(lo[i], hi[i], qmin, qmax, symmetric, "fbgemm")
            assert int(_bits(scale)) == int(_bits(t_scale)) and zp.item() == t_zp.item(), (
                lo[i].item(), hi[i].item(), qmin, qmax)


def test_fbgemm_and_observer_differ_where_methods_says():
    """METHODS §1.3: fbgemm's 0.1 for a zero range, the 6.1e-5 cutoff, and symmetric scales over 127 / 128."""
    one = lambda v: torch.tensor([float(v)])  # noqa: E731
    obs = L.choose_qparams(one(0), one(0), 0, 255, False, "observer")
    fb = L.choose_qparams(one(0), one(0), 0, 255, False, "fbgemm")
    assert obs[0].item() == EPS and fb[0].item() == pytest.approx(0.1)
    assert L.choose_qparams(one(-1), one(3), -128, 127, True, "observer")[0].item() == pytest.approx(3 / 127.5)
    assert L.choose_qparams(one(-1), one(3), -128, 127, True, "fbgemm")[0].item() == pytest.approx(3 / 127)
