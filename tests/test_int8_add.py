"""int8_add: exact-integer reference of TFLite's ADD recipe on every kernel path, float agreement
within one LSB, broadcasting, bad inputs, opcheck and torch.compile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lowbit
from lowbit import ops
from _int8_ref import ALL_PATHS, mbqm_ref, path_or_skip, quantize_multiplier_ref


def _add_ref(a, b, zp, mult, shift, qmin, qmax, left_shift=20, rounding="double"):
    out = []
    for x, y in zip(a.flatten().tolist(), b.flatten().tolist()):
        ya = mbqm_ref((x - zp[0]) * (1 << left_shift), mult[0], shift[0], rounding)
        yb = mbqm_ref((y - zp[1]) * (1 << left_shift), mult[1], shift[1], rounding)
        out.append(min(qmax, max(qmin, zp[2] + mbqm_ref(ya + yb, mult[2], shift[2], rounding))))
    return torch.tensor(out).reshape(a.shape)


def test_int8_add_params_follow_tflite():
    m, s = ops.int8_add_params(0.02, 0.05, 0.08)
    twice = 2 * max(0.02, 0.05)
    want = [quantize_multiplier_ref(r) for r in (0.02 / twice, 0.05 / twice, twice / (2**20 * 0.08))]
    assert list(zip(m.tolist(), s.tolist())) == want
    assert all(v <= 0 for v in s.tolist()[:2])


@pytest.mark.parametrize("rounding", ["double", "single"])
@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_add_matches_exact_reference(path, rounding):
    path_or_skip(path)
    gen = torch.Generator().manual_seed(0)
    for dtype, zp, scales, (qmin, qmax), left_shift in [
        (torch.uint8, (128, 100, 120), (0.02, 0.05, 0.08), (0, 255), 20),
        (torch.uint8, (0, 255, 0), (0.1, 0.1, 0.1), (0, 255), 20),          # ReLU output range
        (torch.int8, (-3, 7, 0), (0.013, 0.007, 0.011), (-128, 127), 20),
        (torch.int8, (0, 0, -128), (0.5, 0.01, 0.02), (-128, 127), 22),
        (torch.uint8, (17, 200, 30), (0.003, 0.3, 0.05), (-128, 127), 15),
    ]:
        lo, hi = (0, 256) if dtype == torch.uint8 else (-128, 128)
        a = torch.randint(lo, hi, (1037,), dtype=dtype, generator=gen)
        b = torch.randint(lo, hi, (1037,), dtype=dtype, generator=gen)
        a[:4] = torch.tensor([lo, hi - 1, lo, hi - 1])
        b[:4] = torch.tensor([lo, hi - 1, hi - 1, lo])
        m, s = ops.int8_add_params(*scales, left_shift=left_shift, rounding=rounding)
        with lowbit.use_kernel_path(path):
            got = ops.int8_add(a, b, zp, m, s, qmin, qmax, left_shift=left_shift, rounding=rounding)
        want = _add_ref(a, b, zp, m.tolist(), s.tolist(), qmin, qmax, left_shift, rounding)
        assert torch.equal(got.long(), want), (dtype, zp, scales)
        real = (scales[0] * (a.double() - zp[0]) + scales[1] * (b.double() - zp[1])) / scales[2] + zp[2]
        assert (got.double() - real.round().clamp(qmin, qmax)).abs().max() <= 1


def test_int8_add_broadcast_threads_and_shapes():
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(0, 256, (4, 8, 33, 33), dtype=torch.uint8, generator=gen)
    b = torch.randint(0, 256, (1, 8, 1, 33), dtype=torch.uint8, generator=gen)
    m, s = ops.int8_add_params(0.03, 0.02, 0.04)
    want = ops.int8_add(a, b.expand_as(a).contiguous(), (120, 130, 128), m, s, 0, 255)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = ops.int8_add(a, b, (120, 130, 128), m, s, 0, 255)
    finally:
        torch.set_num_threads(previous)
    assert got.shape == a.shape and torch.equal(got, want)
    assert ops.int8_add(a[:0], a[:0], (0, 0, 0), m, s, 0, 255).shape == (0, 8, 33, 33)


@pytest.mark.parametrize("kwargs, match", [
    (dict(b=torch.zeros(5, dtype=torch.int8)), r"a and b must both be uint8 or both int8"),
    (dict(zero_points=torch.tensor([0, 0], dtype=torch.int32)), r"zero_points must be an int32 tensor of 3"),
    (dict(zero_points=torch.tensor([300, 0, 0], dtype=torch.int32)), r"zero_points\[0\] = 300 is outside"),
    (dict(zero_points=torch.tensor([0, 0, 300], dtype=torch.int32)), r"zero_points\[2\] = 300 \(the output's\)"),
    (dict(shifts=torch.tensor([1, 0, -5], dtype=torch.int32)), r"shifts\[0\] = 1 must be in \[-31, 0\]"),
    (dict(multipliers=torch.tensor([-1, 1, 1], dtype=torch.int32)), r"multipliers\[0\] = -1 must be >= 0"),
    (dict(left_shift=23), r"left_shift must be in \[0, 22\], got 23"),
    (dict(qmin=0, qmax=300), r"must fit uint8"),
    (dict(rounding="up"), r"rounding must be 'double'"),
])
def test_int8_add_bad_inputs(kwargs, match):
    m, s = ops.int8_add_params(0.1, 0.1, 0.1)
    args = dict(a=torch.zeros(5, dtype=torch.uint8), b=torch.zeros(5, dtype=torch.uint8),
                zero_points=torch.tensor([0, 0, 0], dtype=torch.int32), multipliers=m, shifts=s, qmin=0, qmax=255,
                left_shift=20, rounding="double")
    args.update(kwargs)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.lowbit.int8_add(*args.values())
    with pytest.raises(RuntimeError, match=r"broadcast|size"):
        ops.int8_add(torch.zeros(5, dtype=torch.uint8), torch.zeros(4, dtype=torch.uint8), (0, 0, 0), m, s, 0, 255)


def test_opcheck_and_compile_int8_add():
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    m, s = ops.int8_add_params(0.03, 0.02, 0.04)
    zp = torch.tensor([120, 130, 128], dtype=torch.int32)
    a = torch.randint(0, 256, (3, 40), dtype=torch.uint8)
    b = torch.randint(0, 256, (3, 40), dtype=torch.uint8)
    torch.library.opcheck(torch.ops.lowbit.int8_add.default, (a, b, zp, m, s, 0, 255, 20, "double"))
    zp_s8 = torch.tensor([120, 130, 0], dtype=torch.int32)
    torch.library.opcheck(torch.ops.lowbit.int8_add.default, (a, b[:1], zp_s8, m, s, -128, 127, 18, "single"))
    torch._dynamo.reset()
    counters.clear()
    backend = CompileCounterWithBackend("inductor")
    f = lambda x, y, z: torch.ops.lowbit.int8_add(x, y, z, m, s, 0, 255, 20, "double")  # noqa: E731
    cf = torch.compile(f, backend=backend, fullgraph=True)
    for i in range(3):
        z = zp + torch.tensor([0, 0, i], dtype=torch.int32)
        assert torch.equal(cf(a, b, z), f(a, b, z))
    assert backend.frame_count == 1 and not counters["recompiles"] and not counters["graph_break"]
