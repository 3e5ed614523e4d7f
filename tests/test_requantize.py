"""quantize_multiplier and requantize: METHODS §9 vectors, exact-integer references, every kernel
path against the scalar one, granularities, bad inputs, opcheck and torch.compile."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit
from lowbit import ops
from _int8_ref import (ALL_PATHS, INT32_MAX, INT32_MIN, int32_edges, mbqm_ref, path_or_skip,
                       quantize_multiplier_ref, requantize_ref, rounding_divide_by_pot_ref, srdhm_ref)

# ---- the references themselves against METHODS §9.2 -------------------------------------------


def test_reference_primitives_match_methods_vectors():
    assert [srdhm_ref(3, 2**30), srdhm_ref(5, 2**30), srdhm_ref(-3, 2**30), srdhm_ref(-1, 2**30),
            srdhm_ref(1, 2**30)] == [2, 3, -1, 0, 1]
    assert srdhm_ref(INT32_MIN, INT32_MIN) == INT32_MAX
    assert srdhm_ref(INT32_MAX, INT32_MAX) == 2147483646
    cases = [((5, 1), 3), ((-5, 1), -3), ((3, 1), 2), ((-3, 1), -2), ((6, 2), 2), ((-6, 2), -2), ((10, 2), 3),
             ((-10, 2), -3), ((7, 2), 2), ((-1, 1), -1), ((1, 1), 1), ((INT32_MAX, 31), 1), ((INT32_MIN, 31), -1)]
    for (x, e), want in cases:
        assert rounding_divide_by_pot_ref(x, e) == want, (x, e)
    assert mbqm_ref(5, 2**30, -1, "double") == 2 and mbqm_ref(5, 2**30, -1, "single") == 1
    assert mbqm_ref(3, 2**30, -1, "double") == 1 and mbqm_ref(3, 2**30, -1, "single") == 1
    assert mbqm_ref(-5, 2**30, -1, "double") == -1 and mbqm_ref(-5, 2**30, -1, "single") == -1


# ---- quantize_multiplier -----------------------------------------------------------------------

METHODS_MULTIPLIERS = [
    (0.0123, 1690499128, -6), (0.5, 0x40000000, 0), (0.25, 0x40000000, -1), (0.75, 0x60000000, 0),
    (1.0, 0x40000000, 1), (1.5, 0x60000000, 1), (0.999999999999, 0x40000000, 1), (3e-4, 1319413953, -11),
    (2.0**-32, 0x40000000, -31), (0.0, 0, 0),
]


@pytest.mark.parametrize("rounding", ["double", "single"])
def test_quantize_multiplier_methods_vectors(rounding):
    real = torch.tensor([r for r, _, _ in METHODS_MULTIPLIERS], dtype=torch.float64)
    m, s = ops.quantize_multiplier(real, rounding=rounding)
    assert m.dtype == torch.int32 and s.dtype == torch.int32 and m.shape == real.shape
    assert m.tolist() == [v for _, v, _ in METHODS_MULTIPLIERS]
    assert s.tolist() == [v for _, _, v in METHODS_MULTIPLIERS]


def test_quantize_multiplier_flush_and_single_clamp():
    m, s = ops.quantize_multiplier(torch.tensor([2.0**-33, 2.0**-32 * 0.74], dtype=torch.float64))
    assert m.tolist() == [0, 0] and s.tolist() == [0, 0]
    big = torch.tensor([2.0**30, 1.5 * 2**30], dtype=torch.float64)
    m, s = ops.quantize_multiplier(big, rounding="double")
    assert s.tolist() == [31, 31] and m.tolist() == [2**30, 3 * 2**29]
    m, s = ops.quantize_multiplier(big, rounding="single")
    assert s.tolist() == [30, 30] and m.tolist() == [2**31 - 1, 2**31 - 1]


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, max_value=2.0**30, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_matches_tflite_transcription(real):
    for single, rounding in ((False, "double"), (True, "single")):
        m, s = ops.quantize_multiplier(torch.tensor([real], dtype=torch.float64), rounding=rounding)
        assert (m.item(), s.item()) == quantize_multiplier_ref(real, single)
    m, s = ops.quantize_multiplier(torch.tensor([real], dtype=torch.float64))
    if m.item() != 0:
        assert 2**30 <= m.item() < 2**31
        assert math.isclose(m.item() * 2.0 ** (s.item() - 31), real, rel_tol=2.0**-30)


def test_quantize_multiplier_shapes_and_float32():
    real = torch.rand(3, 4, dtype=torch.float64) * 0.01 + 1e-4
    m, s = ops.quantize_multiplier(real)
    assert m.shape == (3, 4) and s.shape == (3, 4)
    m32, s32 = ops.quantize_multiplier(real.float())
    want = [quantize_multiplier_ref(float(v)) for v in real.float().double().flatten()]
    assert list(zip(m32.flatten().tolist(), s32.flatten().tolist())) == want
    m0, s0 = ops.quantize_multiplier(0.5)
    assert (m0.item(), s0.item()) == (2**30, 0)


@pytest.mark.parametrize("bad, match", [
    (torch.tensor([-0.5], dtype=torch.float64), r"real_multiplier\[0\] = -0.5"),
    (torch.tensor([0.1, float("nan")], dtype=torch.float64), r"real_multiplier\[1\] = nan"),
    (torch.tensor([float("inf")], dtype=torch.float64), r"real_multiplier\[0\] = inf"),
    (torch.tensor([2.0**31], dtype=torch.float64), r"too large: its shift 32"),
    (torch.tensor([1], dtype=torch.int32), r"real_multiplier must be a floating-point tensor"),
])
def test_quantize_multiplier_bad_inputs(bad, match):
    with pytest.raises(RuntimeError, match=match):
        ops.quantize_multiplier(bad)


def test_quantize_multiplier_bad_rounding():
    with pytest.raises(RuntimeError, match=r"rounding must be 'double'.*got 'nearest'"):
        ops.quantize_multiplier(torch.tensor([0.5], dtype=torch.float64), rounding="nearest")


# ---- requantize: values --------------------------------------------------------------------------


def test_requantize_methods_9_3_vector():
    # S_in 0.05, S_w 0.01, S_out 0.1, Z_out 3: acc [1470, -1645] -> q_out [10, -5] with either rounding.
    m, s = ops.quantize_multiplier(torch.tensor([0.05 * 0.01 / 0.1], dtype=torch.float64))
    assert (m.item(), s.item()) == (1374389535, -7)
    acc = torch.tensor([1470, -1645], dtype=torch.int32)
    for rounding in ("double", "single"):
        out = ops.requantize(acc, m, s, 3, -128, 127, rounding=rounding)
        assert out.dtype == torch.int8 and out.tolist() == [10, -5]


def _random_case(gen: torch.Generator, n: int, rounding: str):
    acc = torch.randint(INT32_MIN, INT32_MAX, (n,), dtype=torch.int64, generator=gen)
    # Mix full-range values with small ones (the realistic accumulator sizes) and the edges.
    small = torch.randint(-(2**20), 2**20, (n,), dtype=torch.int64, generator=gen)
    acc = torch.where(torch.rand(n, generator=gen) < 0.5, acc, small)
    edges = int32_edges().to(torch.int64)
    acc[: edges.numel()] = edges
    hi_shift = 31 if rounding == "double" else 30
    shift = torch.randint(-31, hi_shift + 1, (n,), dtype=torch.int64, generator=gen)
    mult = torch.randint(2**30, 2**31, (n,), dtype=torch.int64, generator=gen)
    special = torch.tensor([0, 2**30, 2**31 - 1, INT32_MIN, -1, 1, -(2**30)], dtype=torch.int64)
    mult[-special.numel():] = special
    return acc.to(torch.int32), mult.to(torch.int32), shift.to(torch.int32)


QRANGES = [(0, 255), (-128, 127), (-32768, 32767), (0, 65535), (INT32_MIN, INT32_MAX), (-5, 3)]


@pytest.mark.parametrize("rounding", ["double", "single"])
@pytest.mark.parametrize("path", ALL_PATHS)
def test_requantize_channels_kernel_matches_reference(path, rounding):
    """Per-element parameters (the channels kernel): every lane sees different multiplier/shift."""
    path_or_skip(path)
    gen = torch.Generator().manual_seed(1)
    n = 1003  # not a multiple of 8 or 16: vector body and scalar tail
    acc, mult, shift = _random_case(gen, n, rounding)
    # Also with every shift <= 0: whole vectors then take the no-left-shift form, except the ones
    # holding an INT32_MIN multiplier (the special values at the end).
    acc_min = torch.where(mult == INT32_MIN, INT32_MIN, acc)  # SRDHM's saturating lane, too
    cases = [(acc, mult, shift), (acc_min, mult, -shift.abs())]
    for (acc, mult, shift), (qmin, qmax) in [(c, q) for c in cases for q in QRANGES]:
        zp = torch.randint(qmin, qmax, (n,), dtype=torch.int64, generator=gen).to(torch.int32)
        want = requantize_ref(acc, mult, shift, zp, qmin, qmax, rounding)
        with lowbit.use_kernel_path(path):
            got = ops.requantize(acc, mult, shift, zp, qmin, qmax, rounding=rounding)
        assert got.dtype == ops.code_dtype(qmin, qmax)
        np.testing.assert_array_equal(got.to(torch.int64).numpy(), want, err_msg=f"range {(qmin, qmax)}")


@pytest.mark.parametrize("rounding", ["double", "single"])
@pytest.mark.parametrize("path", ALL_PATHS)
def test_requantize_run_kernel_matches_reference(path, rounding):
    """Per-tensor parameters (the run kernel), for every shift and several multipliers."""
    path_or_skip(path)
    gen = torch.Generator().manual_seed(2)
    acc, _, _ = _random_case(gen, 301, rounding)
    hi_shift = 31 if rounding == "double" else 30
    for shift in range(-31, hi_shift + 1):
        for mult in (2**30, 1374389535, 2**31 - 1, 0, INT32_MIN):
            for qmin, qmax, zp in ((INT32_MIN, INT32_MAX, 0), (0, 255, 7), (-128, 127, -3), (INT32_MIN, INT32_MAX, 9)):
                m = torch.tensor([mult], dtype=torch.int32)
                s = torch.tensor([shift], dtype=torch.int32)
                with lowbit.use_kernel_path(path):
                    got = ops.requantize(acc, m, s, zp, qmin, qmax, rounding=rounding)
                want = requantize_ref(acc, mult, shift, zp, qmin, qmax, rounding)
                np.testing.assert_array_equal(got.to(torch.int64).numpy(), want,
                                              err_msg=f"shift {shift} mult {mult} range {(qmin, qmax)} zp {zp}")


@pytest.mark.parametrize("path", ALL_PATHS)
def test_requantize_paths_equal_scalar_large(path):
    path_or_skip(path)
    gen = torch.Generator().manual_seed(3)
    acc = torch.randint(INT32_MIN, INT32_MAX, (64, 257), dtype=torch.int32, generator=gen)
    m, s = ops.quantize_multiplier(torch.rand(257, dtype=torch.float64, generator=gen) * 2.0)
    zp = torch.randint(-20, 20, (257,), dtype=torch.int32, generator=gen)
    for rounding in ("double", "single"):
        with lowbit.use_kernel_path("scalar"):
            want = ops.requantize(acc, m, s, zp, -128, 127, rounding=rounding)
        with lowbit.use_kernel_path(path):
            got = ops.requantize(acc, m, s, zp, -128, 127, rounding=rounding)
        assert torch.equal(got, want)


# ---- requantize: granularities -------------------------------------------------------------------


def _expand_params(param: torch.Tensor, shape) -> torch.Tensor:
    """Expand a blocked parameter tensor to `shape` (each element repeated over its block)."""
    p = param.reshape((1,) * (len(shape) - param.dim()) + tuple(param.shape))
    for d, (xs, ps) in enumerate(zip(shape, p.shape)):
        p = p.repeat_interleave(xs // ps, dim=d)
    return p


GRANULARITIES = [
    ((37, 19), (1,)),               # per-tensor
    ((37, 19), (19,)),              # per output channel of a GEMM result (channels path, period 19)
    ((2, 6, 5, 7), (1, 6, 1, 1)),   # per channel of NCHW, runs of 35 (run kernel)
    ((2, 6, 3, 3), (1, 6, 1, 1)),   # per channel of NCHW, runs of 9 (channels path)
    ((8, 64), (8, 4)),              # groups of 16 along the last axis (run kernel)
    ((8, 24), (8, 6)),              # groups of 4 (short runs, gathered per chunk)
    ((3, 4, 5), (3, 4, 5)),         # elementwise parameters
    ((40, 50), (40, 1)),            # per row
    ((0, 5), (5,)),                 # empty
]


@pytest.mark.parametrize("rounding", ["double", "single"])
@pytest.mark.parametrize("shape, pshape", GRANULARITIES)
def test_requantize_granularities(shape, pshape, rounding):
    gen = torch.Generator().manual_seed(4)
    acc = torch.randint(-(2**24), 2**24, shape, dtype=torch.int32, generator=gen)
    real = torch.rand(pshape, dtype=torch.float64, generator=gen) * 0.01 + 1e-4
    m, s = ops.quantize_multiplier(real, rounding=rounding)
    zp = torch.randint(-10, 10, pshape, dtype=torch.int32, generator=gen)
    want = requantize_ref(acc, _expand_params(m, shape), _expand_params(s, shape), _expand_params(zp, shape),
                          -128, 127, rounding).reshape(shape)
    for path in lowbit.supported_kernel_paths():
        with lowbit.use_kernel_path(path):
            got = ops.requantize(acc, m, s, zp, -128, 127, rounding=rounding)
            got_scalar_zp = ops.requantize(acc, m, s, 5, -128, 127, rounding=rounding)
        np.testing.assert_array_equal(got.to(torch.int64).numpy(), want, err_msg=path)
        want5 = requantize_ref(acc, _expand_params(m, shape), _expand_params(s, shape), 5, -128, 127,
                               rounding).reshape(shape)
        np.testing.assert_array_equal(got_scalar_zp.to(torch.int64).numpy(), want5, err_msg=path)


def test_requantize_noncontiguous_input():
    acc = torch.randint(-(2**20), 2**20, (16, 12), dtype=torch.int32).t()
    m, s = ops.quantize_multiplier(torch.full((16,), 0.003, dtype=torch.float64))
    got = ops.requantize(acc, m, s, 0, -128, 127)
    assert torch.equal(got, ops.requantize(acc.contiguous(), m, s, 0, -128, 127))


def test_requantize_fused_relu6_is_a_clamp():
    # S_out = 6/255 with Z_out = 0: ReLU6 is qmin = 0, qmax = RHAZ(6 / S_out) = 255 -> plain u8 range.
    acc = torch.arange(-1000, 1000, 7, dtype=torch.int32)
    m, s = ops.quantize_multiplier(torch.tensor([0.2], dtype=torch.float64))
    relu = ops.requantize(acc, m, s, 10, 10, 127)
    full = ops.requantize(acc, m, s, 10, -128, 127)
    assert torch.equal(relu.to(torch.int32), full.to(torch.int32).clamp(min=10))


# ---- requantize: bad inputs ----------------------------------------------------------------------


def _ok():
    return (torch.zeros(4, 6, dtype=torch.int32), torch.full((6,), 2**30, dtype=torch.int32),
            torch.full((6,), -3, dtype=torch.int32), torch.zeros(6, dtype=torch.int32))


@pytest.mark.parametrize("mutate, match", [
    (lambda a: a.update(acc=a["acc"].float()), r"acc must be an int32 tensor.*Float"),
    (lambda a: a.update(multiplier=a["multiplier"].long()), r"multiplier and shift must be int32"),
    (lambda a: a.update(shift=a["shift"][:3]), r"multiplier and shift must have the same shape"),
    (lambda a: a.update(shift=torch.tensor([-3, -3, 32, -3, -3, -3], dtype=torch.int32)),
     r"shift\[2\] = 32 is outside \[-31, 31\]"),
    (lambda a: a.update(shift=torch.full((6,), -32, dtype=torch.int32)), r"shift\[0\] = -32"),
    (lambda a: a.update(zero_point=torch.tensor([0, 0, 200, 0, 0, 0], dtype=torch.int32)),
     r"zero_point\[2\] = 200 is outside \[qmin, qmax\] = \[-128, 127\]"),
    (lambda a: a.update(zero_point=torch.zeros(3, dtype=torch.int32)), r"zero_point must hold one element"),
    (lambda a: a.update(zero_point=torch.zeros(6)), r"zero_point must be an integer tensor"),
    (lambda a: a.update(qmin=5, qmax=5), r"qmin must be < qmax, got qmin=5, qmax=5"),
    (lambda a: a.update(qmax=2**31), r"must lie inside the int32 range"),
    (lambda a: a.update(multiplier=torch.full((5,), 2**30, dtype=torch.int32),
                        shift=torch.zeros(5, dtype=torch.int32), zero_point=torch.zeros(5, dtype=torch.int32)),
     r"multiplier of shape \[5\] does not tile the input"),
    (lambda a: a.update(rounding="half_even"), r"rounding must be 'double'.*got 'half_even'"),
])
def test_requantize_bad_inputs(mutate, match):
    acc, m, s, z = _ok()
    args = dict(acc=acc, multiplier=m, shift=s, zero_point=z, qmin=-128, qmax=127, rounding="double")
    mutate(args)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.lowbit.requantize(args["acc"], args["multiplier"], args["shift"], args["zero_point"], args["qmin"],
                                    args["qmax"], args["rounding"])


def test_requantize_single_rounding_rejects_shift_31():
    acc, m, s, z = _ok()
    with pytest.raises(RuntimeError, match=r"shift\[0\] = 31 is outside \[-31, 30\] \(rounding='single'\)"):
        ops.requantize(acc, m, torch.full((6,), 31, dtype=torch.int32), z, -128, 127, rounding="single")


# ---- opcheck and torch.compile -------------------------------------------------------------------


def test_opcheck_quantize_multiplier():
    real = torch.rand(5, dtype=torch.float64) * 0.01
    torch.library.opcheck(torch.ops.lowbit.quantize_multiplier.default, (real, "double"))
    torch.library.opcheck(torch.ops.lowbit.quantize_multiplier.default, (real.reshape(5, 1), "single"))


@pytest.mark.parametrize("pshape", [(1,), (8,)])
def test_opcheck_requantize(pshape):
    acc = torch.randint(-(2**20), 2**20, (6, 8), dtype=torch.int32)
    m, s = ops.quantize_multiplier(torch.rand(pshape, dtype=torch.float64) * 0.01 + 1e-3)
    z = torch.zeros(pshape, dtype=torch.int32)
    for rounding in ("double", "single"):
        torch.library.opcheck(torch.ops.lowbit.requantize.default, (acc, m, s, z, -128, 127, rounding))
        torch.library.opcheck(torch.ops.lowbit.requantize.default, (acc, m, s, z, 0, 65535, rounding))


def test_compile_fullgraph_no_recompiles():
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    backend = CompileCounterWithBackend("inductor")

    def f(acc, real, zp):
        m, s = torch.ops.lowbit.quantize_multiplier(real, "double")
        return torch.ops.lowbit.requantize(acc, m, s, zp, -128, 127, "double")

    cf = torch.compile(f, backend=backend, fullgraph=True)
    for i in range(3):  # new values, same shapes: one compile
        acc = torch.randint(-(2**20), 2**20, (4, 16), dtype=torch.int32)
        real = torch.rand(16, dtype=torch.float64) * 0.01 + 1e-4 * (i + 1)
        zp = torch.full((16,), i, dtype=torch.int32)
        assert torch.equal(cf(acc, real, zp), f(acc, real, zp))
    assert backend.frame_count == 1
    assert not counters["recompiles"]
    assert not counters["graph_break"]
