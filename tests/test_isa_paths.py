"""Every kernel path this CPU supports against the scalar reference path, bit for bit: all ops, all
dtypes, all roundings and STEs, code types, run lengths that hit the unrolled body, the single-vector
loop and every tail length, unaligned starts, NaN/±Inf/ties/signed zeros.

Paths the CPU lacks (AVX-512 on an AVX2-only machine) are skipped with the reason printed; they run
on machines that have them.
"""

from __future__ import annotations

import math

import pytest
import torch

import lowbit
import reference as R
from samples import QRANGES, adversarial_input, random_params

L = torch.ops.lowbit
ALL_PATHS = ("avx2", "avx512")
# 0..40 covers every tail of 8- and 16-lane vectors and their 2x-unrolled loops; then around 64/128.
LENGTHS = list(range(0, 41)) + [47, 63, 64, 65, 127, 128, 129, 1031]


def _path_or_skip(path):
    if path not in lowbit.supported_kernel_paths():
        features = {k: v for k, v in lowbit.build_info()["cpu_features"].items() if v}
        pytest.skip(f"this CPU cannot run the {path} kernels (supported: {lowbit.supported_kernel_paths()}, "
                    f"features: {sorted(features)}); they are tested on machines that have it")
    return path


def _on(path, fn):
    with lowbit.use_kernel_path(path):
        return fn()


def _rows(length, qname, dtype, seed, pow2):
    """[rows, length] adversarial values with one (scale, zero point) per row: runs of ``length``."""
    qmin, qmax = QRANGES[qname]
    gen = torch.Generator().manual_seed(seed)
    rows = 6
    scale, zp = random_params((rows, 1), qmin, qmax, gen, pow2=pow2)
    x = adversarial_input((rows, length + 3), scale, zp, qmin, qmax, gen)
    x[0, ::5] = math.nan
    # An unaligned start: the kernels see pointers at an odd element offset.
    return x[:, 3:].contiguous().to(dtype), scale, zp, qmin, qmax


def _compare(path, fn, what):
    expected = _on("scalar", fn)
    actual = _on(path, fn)
    if isinstance(expected, tuple):
        for a, e in zip(actual, expected):
            R.assert_same_bits(a, e, f"{path}: {what}")
    else:
        R.assert_same_bits(actual, expected, f"{path}: {what}")


@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("path", ALL_PATHS)
def test_fake_quantize_and_quantize_paths(path, dtype):
    _path_or_skip(path)
    seed = torch.tensor([99])
    for i, length in enumerate(LENGTHS):
        qname = ("s8", "u8", "s4", "u16", "s16", "u2")[i % 6]
        x, scale, zp, qmin, qmax = _rows(length, qname, dtype, seed=i, pow2=i % 2 == 0)
        grad = torch.randn(x.shape).to(dtype)
        for rounding in R.ROUNDINGS:
            s = seed if rounding == "stochastic" else None
            what = f"len={length} {qname} {dtype} {rounding}"
            _compare(path, lambda: L.fake_quantize_affine(x, scale, zp, qmin, qmax, rounding, "integer", s, 5),
                     what + " forward")
            _compare(path, lambda: L.quantize_affine(x, scale, zp, qmin, qmax, rounding, s, 5), what + " quantize")
            for ste in R.STES:
                _compare(path, lambda: L.fake_quantize_affine_backward(grad, x, scale, zp, qmin, qmax, rounding, ste,
                                                                       s, 5), f"{what} {ste} backward")


@pytest.mark.parametrize("path", ALL_PATHS)
def test_paths_match_reference_too(path):
    """Not only equal to the scalar path: both equal the formula reference (the scalar path could be wrong too)."""
    _path_or_skip(path)
    for dtype in R.FLOAT_DTYPES:
        x, scale, zp, qmin, qmax = _rows(1031, "s8", dtype, seed=3, pow2=True)
        for rounding in R.DETERMINISTIC_ROUNDINGS:
            y = _on(path, lambda: L.fake_quantize_affine(x, scale, zp, qmin, qmax, rounding))
            R.assert_same_bits(y, R.fake_quantize_ref(x, scale, zp, qmin, qmax, rounding), f"{path} {rounding}")


@pytest.mark.parametrize("out_dtype", R.FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("path", ALL_PATHS)
def test_dequantize_paths(path, out_dtype):
    _path_or_skip(path)
    gen = torch.Generator().manual_seed(1)
    for length in LENGTHS:
        for qname in ("u8", "s8", "s16", "u16"):
            qmin, qmax = QRANGES[qname]
            scale, zp = random_params((4, 1), qmin, qmax, gen)
            q = torch.randint(qmin, qmax + 1, (4, length), generator=gen).to(R.code_dtype(qmin, qmax))
            _compare(path, lambda: L.dequantize_affine(q, scale, zp, out_dtype), f"len={length} {qname}")


@pytest.mark.parametrize("path", ALL_PATHS)
def test_observer_paths(path):
    _path_or_skip(path)
    gen = torch.Generator().manual_seed(2)
    for dtype in R.FLOAT_DTYPES:
        for length in LENGTHS[1:]:
            x = (torch.randn(5, length, generator=gen) * 10).to(dtype)
            x[1, ::3] = math.nan                              # NaN among values: ignored
            x[2, :] = math.nan                                # an all-NaN run
            x[3, length // 2] = -math.inf
            x[4, ::4] = -0.0

            def run(x=x):
                lo, hi = torch.full((5, 1), math.inf), torch.full((5, 1), -math.inf)
                L.observe_minmax_(x, lo, hi)
                mlo, mhi = torch.full((5, 1), -1.0), torch.ones(5, 1)
                L.observe_moving_average_minmax_(x, mlo, mhi, 0.3)
                return lo, hi, mlo, mhi

            _compare(path, run, f"len={length} {dtype}")
            lo, hi, _, _ = _on(path, run)
            elo, ehi = R.block_minmax_ref(x, (5, 1))
            R.assert_same_bits(lo, elo, f"{path} min vs reference len={length}", zero_sign=False)
            R.assert_same_bits(hi, ehi, f"{path} max vs reference len={length}", zero_sign=False)


@pytest.mark.parametrize("path", ALL_PATHS)
def test_per_channel_runs_with_tails(path):
    """NCHW per-channel: runs of H*W = 13 elements (one vector plus a tail) per parameter."""
    _path_or_skip(path)
    gen = torch.Generator().manual_seed(4)
    scale, zp = random_params((1, 5, 1, 1), -128, 127, gen)
    x = adversarial_input((3, 5, 13, 1), scale, zp, -128, 127, gen)
    for dtype in R.FLOAT_DTYPES:
        xd = x.to(dtype).contiguous(memory_format=torch.channels_last)
        for rounding in R.DETERMINISTIC_ROUNDINGS:
            _compare(path, lambda: L.fake_quantize_affine(xd, scale, zp, -128, 127, rounding), f"{dtype} {rounding}")
            _compare(path, lambda: L.fake_quantize_affine_backward(xd, xd, scale, zp, -128, 127, rounding, "real"),
                     f"{dtype} {rounding} real STE")


def test_use_kernel_path_restores():
    before = lowbit.kernel_path()
    for path in lowbit.supported_kernel_paths():
        with lowbit.use_kernel_path(path):
            assert lowbit.kernel_path() == path == lowbit.build_info()["kernel_path"]
        assert lowbit.kernel_path() == before
    with pytest.raises(RuntimeError, match="boom"):
        with lowbit.use_kernel_path("scalar"):
            raise RuntimeError("boom")
    assert lowbit.kernel_path() == before
    assert lowbit.supported_kernel_paths()[0] == "scalar"
