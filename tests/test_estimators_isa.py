"""Every estimator op gives bit-identical outputs, input gradients and parameter gradients on every
kernel path this CPU supports (the scalar path is the reference) and for any thread count.

The inputs mix random values with ties, clip edges, ±0, ±Inf, NaN, huge and tiny values, and
lengths with vector tails. AVX-512 cannot run on machines without it: that case skips with the
reason printed (other machines run it).
"""

from __future__ import annotations

import pytest
import torch

import lowbit
from lowbit import ops

ALL_PATHS = ("scalar", "avx2", "avx512")


def special_values(n: int, scale: float, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(n, generator=gen) * 2
    ties = (torch.randint(-20, 20, (n,), generator=gen).float() + 0.5) * scale
    x = torch.where(torch.rand(n, generator=gen) < 0.25, ties, x)
    specials = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 1e-30, 1e-40,
                             -1e-40, scale * 7, -scale * 8, scale * 7.5, 3.0, -3.0, 1.0, -1.0])
    idx = torch.randperm(n, generator=gen)[: specials.numel()]
    x[idx] = specials[: idx.numel()]
    return x


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype in (torch.float16, torch.bfloat16):
        ia, ib = a.view(torch.int16), b.view(torch.int16)
    elif a.dtype == torch.float32:
        ia, ib = a.view(torch.int32), b.view(torch.int32)
    else:
        ia, ib = a.view(torch.int64), b.view(torch.int64)
    both_nan = a.isnan() & b.isnan()
    return bool(((ia == ib) | both_nan).all())


CASES = {
    "lsq": (lambda x, p, r: ops.fake_quantize_lsq(x, p[0], -8, 7, grad_scale=0.3, rounding=r, seed=123, seed_offset=5),
            [0.125], True),
    "lsq+": (lambda x, p, r: ops.fake_quantize_lsq(x, p[0], 0, 15, offset=p[1], rounding=r, seed=7), [0.2, -0.4],
             True),
    "learnable": (lambda x, p, r: ops.fake_quantize_learnable(x, p[0], p[1], -128, 127, grad_factor=0.01),
                  [0.0173, 3.5], False),
    "pact": (lambda x, p, r: ops.fake_quantize_pact(x, p[0], 3, rounding=r, seed=9), [1.7], True),
    "pact_signed": (lambda x, p, r: ops.fake_quantize_pact(x, p[0], 4, signed=True, rounding=r, seed=9), [1.7],
                    True),
    "qil_weight": (lambda x, p, r: ops.fake_quantize_qil(x, p[0], p[1], p[2], 4, rounding=r, seed=3),
                   [0.9, 0.6, 1.4], True),
    "qil_weight_linear": (lambda x, p, r: ops.fake_quantize_qil(x, p[0], p[1], None, 3, rounding=r, seed=3),
                          [0.5, 0.25], True),
    "qil_activation": (lambda x, p, r: ops.fake_quantize_qil(x, p[0], p[1], None, 4, weight=False, rounding=r,
                                                             seed=3), [1.0, 0.8], True),
    "dsq_hard": (lambda x, p, r: ops.fake_quantize_dsq(x, p[0], p[1], p[2], 3, rounding=r, seed=11),
                 [-1.2, 1.5, 0.2], True),
    "dsq_soft": (lambda x, p, r: ops.fake_quantize_dsq(x, p[0], p[1], p[2], 2, mode="soft"), [-1.0, 1.0, 0.05],
                 False),
    "sigmoid": (lambda x, p, r: ops.fake_quantize_sigmoid(x, ops.sigmoid_levels(3), ops.sigmoid_thresholds(
        ops.sigmoid_levels(3)), p[0], p[1], torch.tensor([12.0])), [0.7, 1.9], False),
    "sigmoid_hard": (lambda x, p, r: ops.fake_quantize_sigmoid(x, ops.sigmoid_levels(2, signed=False),
                                                               torch.tensor([0.5, 1.5, 2.5]), p[0], p[1],
                                                               torch.tensor([3.0]), hard=True), [0.7, 1.9], False),
}


def evaluate(name, x, dy, params_shape, rounding):
    fn, values, _ = CASES[name]
    xx = x.clone().requires_grad_(True)
    ps = [torch.full(params_shape, v).requires_grad_(True) for v in values]
    y = fn(xx, ps, rounding)
    y.backward(dy)
    return [y.detach(), xx.grad] + [p.grad for p in ps]


def roundings(name):
    return ["half_even", "stochastic"] if CASES[name][2] else ["half_even"]


PARAMS = [(name, r) for name in sorted(CASES) for r in roundings(name)]


@pytest.mark.parametrize("path", ["avx2", "avx512"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name,rounding", PARAMS)
def test_paths_bit_identical_to_scalar(name, rounding, dtype, path):
    if path not in lowbit.supported_kernel_paths():
        pytest.skip(f"this CPU cannot run the {path} kernel path (supported: {lowbit.supported_kernel_paths()}); "
                    f"machines with it run this test")
    g = torch.Generator().manual_seed(hash((name, str(dtype))) % 2**31)
    for shape, pshape in [((1000 + 13,), (1,)), ((3, 5, 7, 9), (1, 5, 1, 1)), ((37, 24), (37, 1))]:
        n = 1
        for s in shape:
            n *= s
        x = special_values(n, 0.125, g).reshape(shape).to(dtype)
        dy = torch.randn(shape, generator=g).to(dtype)
        with lowbit.use_kernel_path("scalar"):
            expected = evaluate(name, x, dy, pshape, rounding)
        with lowbit.use_kernel_path(path):
            got = evaluate(name, x, dy, pshape, rounding)
        for i, (a, b) in enumerate(zip(got, expected)):
            assert same_bits(a, b), f"{name} {rounding} {dtype} {shape}: output {i} differs on {path}"


@pytest.mark.parametrize("name,rounding", PARAMS)
def test_thread_count_does_not_change_results(name, rounding):
    g = torch.Generator().manual_seed(5)
    threads = torch.get_num_threads()
    try:
        for shape, pshape in [((200_003,), (1,)), ((8, 16, 40, 41), (1, 16, 1, 1)), ((64, 3000), (64, 1))]:
            n = 1
            for s in shape:
                n *= s
            x = special_values(n, 0.125, g).reshape(shape)
            dy = torch.randn(shape, generator=g)
            torch.set_num_threads(1)
            one = evaluate(name, x, dy, pshape, rounding)
            torch.set_num_threads(max(2, threads))
            many = evaluate(name, x, dy, pshape, rounding)
            for i, (a, b) in enumerate(zip(one, many)):
                assert same_bits(a, b), f"{name} {shape}: output {i} depends on the thread count"
    finally:
        torch.set_num_threads(threads)


def test_scalar_path_is_always_available():
    assert "scalar" in lowbit.supported_kernel_paths()
    missing = [p for p in ALL_PATHS if p not in lowbit.supported_kernel_paths()]
    if missing:
        print(f"kernel paths this CPU cannot run (their bit-exactness tests skip here): {missing}")
