"""Stochastic rounding (METHODS §7): reproducible from (seed, offset), offsets compose, unbiased within
3 sigma, backward mask consistent with the forward's draws, independent of thread count, kernel path
and memory layout. Element ``i`` (row-major index of x) uses Philox draw ``offset + i`` of stream ``seed``.
"""

from __future__ import annotations

import math

import pytest
import torch

import lowbit
import reference as R

L = torch.ops.lowbit
ONE = torch.tensor([1.0])
ZERO = torch.tensor([0], dtype=torch.int32)


def _sr(x, seed, offset=0, scale=ONE, zp=ZERO, qmin=-32768, qmax=32767):
    return L.fake_quantize_affine(x, scale, zp, qmin, qmax, "stochastic", "integer", torch.tensor([seed]), offset)


def _codes(x, seed, offset=0, scale=ONE, zp=ZERO, qmin=-32768, qmax=32767):
    return L.quantize_affine(x, scale, zp, qmin, qmax, "stochastic", torch.tensor([seed]), offset)


def test_reproducible_and_seed_sensitive():
    x = torch.rand(4096) * 20 - 10
    a, b = _sr(x, 5, 100), _sr(x, 5, 100)
    assert torch.equal(a, b)
    frac = x - x.floor()
    for other in (_sr(x, 6, 100), _sr(x, 5, 101), _sr(x, 5 + 2**32, 100), _sr(x, -5, 100)):
        differ = (other != a).float().mean().item()
        # Two independent draws disagree with probability 2 f (1 - f) per element.
        expected = (2 * frac * (1 - frac)).mean().item()
        assert abs(differ - expected) < 0.05, (differ, expected)


def test_matches_the_philox_reference():
    x = torch.randn(3, 1000) * 4
    for seed, offset in ((0, 0), (2**63 - 1, 7), (-1, 2**40), (12345, 3)):
        R.assert_same_bits(_sr(x, seed, offset), R.fake_quantize_ref(x, ONE, ZERO, -32768, 32767, "stochastic",
                                                                     seed, offset), f"seed={seed} offset={offset}")


def test_seed_tensor_dtypes():
    x = torch.rand(512) * 8
    ref = _sr(x, 77)
    for seed in (torch.tensor([77], dtype=torch.int32), torch.tensor(77), torch.tensor([77], dtype=torch.int16)):
        y = L.fake_quantize_affine(x, ONE, ZERO, -128, 127, "stochastic", "integer", seed, 0)
        assert torch.equal(y, ref)


@pytest.mark.parametrize("layout", ["per_tensor", "per_channel", "per_group"])
def test_offsets_compose(layout):
    """Quantizing x in two pieces, the second at offset + len(first piece), equals quantizing x whole."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10, 24, generator=gen) * 3
    scale, zp = {"per_tensor": (torch.tensor([0.3]), torch.tensor([1], dtype=torch.int32)),
                 "per_channel": (torch.rand(10, 1, generator=gen) + 0.1, torch.zeros(10, 1, dtype=torch.int32)),
                 "per_group": (torch.rand(10, 3, generator=gen) + 0.1, torch.ones(10, 3, dtype=torch.int32))}[layout]
    whole = _sr(x, 9, 1000, scale, zp, -8, 7)
    codes = _codes(x, 9, 1000, scale, zp, -8, 7)
    for rows in (1, 4, 9):
        top = _sr(x[:rows], 9, 1000, scale[:rows] if scale.numel() > 1 else scale, zp[:rows] if zp.numel() > 1 else zp,
                  -8, 7)
        bottom = _sr(x[rows:], 9, 1000 + rows * 24, scale[rows:] if scale.numel() > 1 else scale,
                     zp[rows:] if zp.numel() > 1 else zp, -8, 7)
        assert torch.equal(torch.cat([top, bottom]), whole), rows
    q_top = _codes(x[:4], 9, 1000, scale[:4] if scale.numel() > 1 else scale, zp[:4] if zp.numel() > 1 else zp, -8, 7)
    assert torch.equal(q_top, codes[:4])


def test_draws_follow_the_logical_index_not_memory():
    x = torch.randn(2, 6, 5, 7) * 2
    scale, zp = torch.rand(1, 6, 1, 1) + 0.2, torch.zeros(1, 6, 1, 1, dtype=torch.int32)
    ref = _sr(x, 4, 0, scale, zp, -8, 7)
    assert torch.equal(_sr(x.contiguous(memory_format=torch.channels_last), 4, 0, scale, zp, -8, 7), ref)
    xt = torch.randn(9, 13)
    assert torch.equal(_sr(xt.t(), 4), _sr(xt.t().contiguous(), 4))


@pytest.mark.parametrize("value", [2.3, -2.3, 0.1, 0.5, 0.9, 1000.75, -0.25])
def test_unbiased_within_three_sigma(value):
    """METHODS §7: P(round up) = frac(x), so E[SR(x)] = x; checked with 3-sigma bounds on 100000 draws."""
    n = 100_000
    x = torch.full((n,), value)
    q = _sr(x, 2024, 0)
    lo = math.floor(value)
    f = value - lo
    assert set(torch.unique(q).tolist()) <= {lo, lo + 1}
    p_up = (q == lo + 1).double().mean().item()
    sigma = math.sqrt(f * (1 - f) / n)
    assert abs(p_up - f) < 3 * sigma, (p_up, f, sigma)
    assert abs(q.double().mean().item() - value) < 3 * sigma


def test_unbiased_fake_quantize_and_independent_neighbours():
    """Mean error of FQ over many random x is ~0; neighbouring draws (same Philox block or not) are independent."""
    gen = torch.Generator().manual_seed(1)
    n = 200_000
    scale = torch.tensor([0.37])
    x = (torch.rand(n, generator=gen) * 40 - 20) * 0.37
    y = _sr(x, 31, 0, scale, ZERO, -128, 127)
    err = (y.double() - x.double()) / 0.37
    frac = (x / 0.37 - torch.floor(x / 0.37)).double()
    sigma = math.sqrt((frac * (1 - frac)).sum().item()) / n
    assert abs(err.mean().item()) < 3 * sigma + 1e-6
    up = _codes(torch.full((n,), 0.5), 8, 0).double()
    for lag in (1, 2, 3, 4, 5, 8):
        both = (up[:-lag] * up[lag:]).mean().item()
        assert abs(both - 0.25) < 3 * math.sqrt(0.25 * 0.75 / (n - lag)), (lag, both)


def test_values_on_the_grid_never_move():
    x = torch.arange(-100, 101, dtype=torch.float32) * 0.25
    for seed in range(5):
        y = _sr(x, seed, 0, torch.tensor([0.25]), ZERO, -128, 127)
        assert torch.equal(y, x)


def test_backward_mask_uses_the_forward_draws():
    """Codes just past qmax round to qmax (gradient passes) or qmax + 1 (blocked) by the same draws the
    forward used: a forward with the range widened by one shows which, and the backward agrees."""
    x = torch.linspace(6.01, 7.99, 4001)          # codes in (6, 8): stochastic result 6, 7 or 8
    seed, offset = torch.tensor([3]), 11
    wide = L.quantize_affine(x, ONE, ZERO, -8, 8, "stochastic", seed, offset)
    dx = L.fake_quantize_affine_backward(torch.ones_like(x), x, ONE, ZERO, -8, 7, "stochastic", "integer", seed, offset)
    assert torch.equal(dx == 1, wide <= 7)
    assert 0.2 < (dx == 1).float().mean().item() < 0.8
    xr = x.clone().requires_grad_(True)
    y = lowbit.ops.fake_quantize_affine(xr, ONE, ZERO, -8, 7, rounding="stochastic", seed=seed, offset=offset)
    y.sum().backward()
    assert torch.equal(xr.grad, dx)


def test_independent_of_thread_count_and_kernel_path():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 70_001, generator=gen) * 5          # several parallel tasks of 32768 elements
    scale = torch.rand(3, 1, generator=gen) + 0.1
    zp = torch.zeros(3, 1, dtype=torch.int32)
    seed = torch.tensor([555])
    g = torch.randn(x.shape, generator=gen)

    def run():
        return (L.fake_quantize_affine(x, scale, zp, -8, 7, "stochastic", "integer", seed, 17),
                L.quantize_affine(x, scale, zp, -8, 7, "stochastic", seed, 17),
                L.fake_quantize_affine_backward(g, x, scale, zp, -8, 7, "stochastic", "integer", seed, 17))

    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            for path in lowbit.supported_kernel_paths():
                with lowbit.use_kernel_path(path):
                    results.append((n, path, run()))
    finally:
        torch.set_num_threads(threads)
    for n, path, outs in results[1:]:
        for a, b in zip(outs, results[0][2]):
            R.assert_same_bits(a, b, f"threads={n} path={path}")
