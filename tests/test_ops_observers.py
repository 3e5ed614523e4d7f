"""The in-place observer ops against torch.ao's observers and the formula references.

``observe_minmax_`` equals ``MinMaxObserver`` / ``PerChannelMinMaxObserver`` and
``observe_moving_average_minmax_`` equals ``MovingAverageMinMaxObserver`` /
``MovingAveragePerChannelMinMaxObserver`` (and the running min/max of
``torch.fused_moving_avg_obs_fake_quant``) bit for bit over several batches, float32/16/bf16
inputs, contiguous or not. The buffer's shape sets the granularity (per-tensor ``[1]``,
per-channel ``[C, 1]`` / ``[1, C, 1, 1]``, per-group ``[N, K // g]``, general blocks). Documented
lowbit behaviour (torch propagates NaN instead): NaN elements are ignored, an all-NaN block
leaves its buffer unchanged; an empty input or ``enabled=False`` changes nothing.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.ao.quantization.observer import (MinMaxObserver, MovingAverageMinMaxObserver,
                                            MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver)

import lowbit
import reference as R

L = torch.ops.lowbit


def _fresh(shape):
    return torch.full(shape, math.inf), torch.full(shape, -math.inf)


def _batches(shape, n, gen, dtype=torch.float32, with_inf=False):
    out = []
    for i in range(n):
        x = torch.randn(shape, generator=gen) * (1 + i % 3) + (i % 4 - 1.5)
        if with_inf and i == n - 1:
            x.view(-1)[3] = math.inf
        out.append(x.to(dtype))
    return out


def _same(a, b, what):
    assert torch.equal(a.reshape(-1), b.reshape(-1)), f"{what}: {a.reshape(-1)[:6]} vs {b.reshape(-1)[:6]}"


@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_minmax_per_tensor_matches_torch(dtype):
    gen = torch.Generator().manual_seed(0)
    obs = MinMaxObserver()
    lo, hi = _fresh((1,))
    for i, x in enumerate(_batches((7, 33), 5, gen, dtype, with_inf=True)):
        obs(x)
        lowbit.ops.observe_minmax_(x, lo, hi)
        _same(lo, obs.min_val, f"min after batch {i}")
        _same(hi, obs.max_val, f"max after batch {i}")


@pytest.mark.parametrize("layout", ["rows_axis0", "nchw_axis1", "nchw_channels_last", "rows_transposed"])
@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_minmax_per_channel_matches_torch(layout, dtype):
    gen = torch.Generator().manual_seed(1)
    shape, axis, buf_shape = {"rows_axis0": ((12, 40), 0, (12, 1)), "nchw_axis1": ((3, 8, 5, 6), 1, (1, 8, 1, 1)),
                              "nchw_channels_last": ((3, 8, 5, 6), 1, (1, 8, 1, 1)),
                              "rows_transposed": ((12, 40), 0, (12, 1))}[layout]
    obs = PerChannelMinMaxObserver(ch_axis=axis)
    lo, hi = _fresh(buf_shape)
    for i, x in enumerate(_batches(shape, 4, gen, dtype)):
        if layout == "nchw_channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        elif layout == "rows_transposed":
            x = x.t().contiguous().t()
        obs(x)
        lowbit.ops.observe_minmax_(x, lo, hi)
        _same(lo, obs.min_val, f"{layout} min after batch {i}")
        _same(hi, obs.max_val, f"{layout} max after batch {i}")


@pytest.mark.parametrize("c", [0.01, 0.3, 1.0])
@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_moving_average_matches_torch(dtype, c):
    gen = torch.Generator().manual_seed(2)
    obs = MovingAverageMinMaxObserver(averaging_constant=c)
    pc = MovingAveragePerChannelMinMaxObserver(averaging_constant=c, ch_axis=1)
    lo, hi = _fresh((1,))
    plo, phi = _fresh((1, 6, 1, 1))
    for i, x in enumerate(_batches((2, 6, 4, 5), 6, gen, dtype)):
        obs(x)
        pc(x)
        lowbit.ops.observe_moving_average_minmax_(x, lo, hi, averaging_constant=c)
        lowbit.ops.observe_moving_average_minmax_(x, plo, phi, averaging_constant=c)
        _same(lo, obs.min_val, f"c={c} min after batch {i}")
        _same(hi, obs.max_val, f"c={c} max after batch {i}")
        _same(plo, pc.min_val, f"c={c} per-channel min after batch {i}")
        _same(phi, pc.max_val, f"c={c} per-channel max after batch {i}")
        # ... and the qparams the observers derive from them (both default to quint8 affine).
        for o, (a, b), (qmin, qmax) in ((obs, (lo, hi), (0, 255)), (pc, (plo, phi), (0, 255))):
            t_scale, t_zp = o.calculate_qparams()
            scale, zp = lowbit.ops.choose_qparams(a, b, qmin, qmax)
            _same(scale.view(torch.int32), t_scale.view(torch.int32), f"c={c} scale after batch {i}")
            _same(zp.long(), t_zp.long(), f"c={c} zero point after batch {i}")


@pytest.mark.parametrize("per_channel", [False, True])
def test_moving_average_matches_fused_op(per_channel):
    """The running min/max of torch.fused_moving_avg_obs_fake_quant (FusedMovingAvgObsFakeQuantize)."""
    gen = torch.Generator().manual_seed(3)
    C = 5
    if per_channel:
        rmin, rmax = _fresh((C,))
    else:
        rmin, rmax = torch.tensor(math.inf), torch.tensor(-math.inf)
    lo, hi = _fresh((C, 1) if per_channel else (1,))
    scale, zp = torch.ones(C if per_channel else 1), torch.zeros(C if per_channel else 1, dtype=torch.int32)
    for i, x in enumerate(_batches((C, 40), 12, gen)):
        torch.fused_moving_avg_obs_fake_quant(x, torch.tensor([1]), torch.tensor([1]), rmin, rmax, scale, zp, 0.013,
                                              0, 255, 0, per_channel, False)
        lowbit.ops.observe_moving_average_minmax_(x, lo, hi, averaging_constant=0.013)
        _same(lo, rmin, f"min after batch {i}")
        _same(hi, rmax, f"max after batch {i}")
        s, z = lowbit.ops.choose_qparams(lo, hi, 0, 255, method="fbgemm")
        _same(s, scale, f"fbgemm scale after batch {i}")
        _same(z, zp, f"fbgemm zero point after batch {i}")


def test_methods_moving_average_vector():
    """METHODS §1.2 [torch 1.13]: batches [-1, 1] then [-3, 5], c = 0.01 -> (-1.02, 1.04), scale 0.0080784308, zp 126."""
    lo, hi = _fresh((1,))
    lowbit.ops.observe_moving_average_minmax_(torch.tensor([-1.0, 1.0]), lo, hi)
    lowbit.ops.observe_moving_average_minmax_(torch.tensor([-3.0, 5.0]), lo, hi)
    assert lo.item() == pytest.approx(-1.02) and hi.item() == pytest.approx(1.04)
    s, z = lowbit.ops.choose_qparams(lo, hi, 0, 255)
    assert s.item() == pytest.approx(0.0080784308, rel=1e-7) and z.item() == 126


@pytest.mark.parametrize("shape,buf_shape", [
    ((6, 48), (6, 4)),                 # per-group
    ((8, 12), (2, 3)),                 # 2-D blocks
    ((4, 6, 10), (2, 1, 5)),           # general 3-D blocks
    ((5, 7), (7,)),                    # per-column, fewer dims than x
    ((), (1,)),                        # 0-d x
    ((9,), ()),                        # 0-d buffers
])
@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_blocked_buffers_match_reference(shape, buf_shape, dtype):
    gen = torch.Generator().manual_seed(4)
    lo, hi = _fresh(buf_shape)
    elo, ehi = lo.clone(), hi.clone()
    mlo, mhi = lo.clone(), hi.clone()
    emlo, emhi = lo.clone(), hi.clone()
    for x in _batches(shape, 3, gen, dtype):
        lowbit.ops.observe_minmax_(x, lo, hi)
        elo, ehi = R.observe_minmax_ref(x, elo, ehi)
        lowbit.ops.observe_moving_average_minmax_(x, mlo, mhi, averaging_constant=0.25)
        emlo, emhi = R.observe_moving_average_ref(x, emlo, emhi, 0.25)
        for a, b, what in ((lo, elo, "min"), (hi, ehi, "max"), (mlo, emlo, "ema min"), (mhi, emhi, "ema max")):
            R.assert_same_bits(a, b, f"{shape}/{buf_shape} {what}")


def test_nan_is_ignored():
    x = torch.tensor([[1.0, math.nan, -2.0], [math.nan, math.nan, math.nan], [math.nan, 5.0, 0.5]])
    lo, hi = _fresh((3, 1))
    lowbit.ops.observe_minmax_(x, lo, hi)
    assert lo.reshape(-1).tolist() == [-2.0, math.inf, 0.5] and hi.reshape(-1).tolist() == [1.0, -math.inf, 5.0]
    mlo, mhi = torch.tensor([[0.0], [-1.0], [0.0]]), torch.tensor([[2.0], [1.0], [1.0]])
    lowbit.ops.observe_moving_average_minmax_(x, mlo, mhi, averaging_constant=0.5)
    assert mlo.reshape(-1).tolist() == [-1.0, -1.0, 0.25] and mhi.reshape(-1).tolist() == [1.5, 1.0, 3.0]
    # An all-NaN block of a fresh buffer stays unobserved; choose_qparams then gives (1, 0).
    flo, fhi = _fresh((3, 1))
    lowbit.ops.observe_moving_average_minmax_(x, flo, fhi)
    s, z = lowbit.ops.choose_qparams(flo, fhi, 0, 255)
    assert s[1].item() == 1.0 and z[1].item() == 0
    # NaN in the middle of long vectors (the SIMD path) is ignored too.
    long = torch.randn(1000)
    ref_lo, ref_hi = long.min(), long.max()
    long[::7] = math.nan
    lo1, hi1 = _fresh((1,))
    lowbit.ops.observe_minmax_(long, lo1, hi1)
    kept = long[~torch.isnan(long)]
    assert lo1.item() == kept.min().item() >= ref_lo.item() and hi1.item() == kept.max().item() <= ref_hi.item()


def test_empty_and_disabled_change_nothing():
    lo, hi = torch.tensor([[-1.0], [2.0]]), torch.tensor([[1.0], [3.0]])
    before = lo.clone(), hi.clone()
    lowbit.ops.observe_minmax_(torch.empty(2, 0), lo, hi)
    lowbit.ops.observe_moving_average_minmax_(torch.empty(2, 0), lo, hi)
    x = torch.randn(2, 5) * 100
    for enabled in (torch.tensor(False), torch.tensor([0])):
        lowbit.ops.observe_minmax_(x, lo, hi, enabled=enabled)
        lowbit.ops.observe_moving_average_minmax_(x, lo, hi, enabled=enabled)
    assert torch.equal(lo, before[0]) and torch.equal(hi, before[1])
    lowbit.ops.observe_minmax_(x, lo, hi, enabled=torch.tensor(True))
    assert not torch.equal(lo, before[0])


@pytest.mark.parametrize("buf_shape", [(1,), (1, 16, 1), (16, 1, 1), (1, 1, 64)])
def test_large_inputs_across_threads(buf_shape):
    """Inputs big enough to be split over tasks (a block's runs spread over threads) match the reference
    and do not depend on the thread count."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(16, 96, 64, generator=gen)          # 98304 elements: several 32768-element tasks
    x.view(-1)[12345] = -1e6
    x.view(-1)[70000] = 1e6
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            lo, hi = _fresh(buf_shape)
            lowbit.ops.observe_minmax_(x, lo, hi)
            mlo, mhi = -torch.ones(buf_shape), torch.ones(buf_shape)
            lowbit.ops.observe_moving_average_minmax_(x, mlo, mhi, averaging_constant=0.1)
            results.append((lo, hi, mlo, mhi))
    finally:
        torch.set_num_threads(threads)
    elo, ehi = R.block_minmax_ref(x, buf_shape)
    for lo, hi, mlo, mhi in results:
        R.assert_same_bits(lo, elo, "min")
        R.assert_same_bits(hi, ehi, "max")
        for a, b in zip((mlo, mhi), results[0][2:]):
            R.assert_same_bits(a, b, "ema vs 1 thread")
