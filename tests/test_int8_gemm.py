"""int8 GEMM: packing, int8_gemm and int8_linear against int64 references on every kernel path,
odd shapes, the vpmaddubsw saturation edge, the K overflow boundary, bad inputs, opcheck,
torch.compile and torch.export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lowbit
from lowbit import ops
from _int8_ref import ALL_PATHS, path_or_skip, requantize_ref

ODD_SHAPES = [  # (M, N, K): tails in every dimension, K = 1, M = 1, one panel, many panels
    (1, 1, 1), (1, 16, 4), (2, 17, 5), (3, 33, 7), (5, 15, 129), (16, 16, 16), (17, 31, 67), (33, 48, 256),
    (40, 1, 3), (1, 100, 1000), (15, 20, 2), (2, 5, 1),
]


def _rand(shape, dtype, gen, seven_bit=False):
    """Full-range codes, or u8 codes <= 127 (7-bit: the AVX2 vpmaddubsw tiles take those)."""
    lo, hi = (0, 128 if seven_bit else 256) if dtype == torch.uint8 else (-128, 128)
    return torch.randint(lo, hi, shape, dtype=dtype, generator=gen)


ACT_KINDS = [(torch.uint8, False), (torch.uint8, True), (torch.int8, False)]
ACT_IDS = ["u8", "u8_7bit", "s8"]


def _ref_gemm(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return a.to(torch.int64) @ w.to(torch.int64).T


# ---- packing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, k", [(1, 1), (16, 4), (17, 5), (33, 130), (3, 1000), (0, 5), (5, 0)])
def test_pack_unpack_round_trip_and_layout(n, k):
    gen = torch.Generator().manual_seed(n * 1000 + k)
    w = _rand((n, k), torch.int8, gen)
    packed, col_sums = ops.int8_pack_weight(w)
    panels = (n + 15) // 16
    assert packed.shape == (panels, k, 16) and packed.dtype == torch.int8
    assert col_sums.dtype == torch.int32 and torch.equal(col_sums.long(), w.long().sum(1))
    assert torch.equal(ops.int8_unpack_weight(packed, n, k), w)
    # The documented layout (gemm_int8.h): full quads [q][c][4], then the tail quad [c][K % 4].
    padded = torch.zeros(panels * 16, k, dtype=torch.int8)
    padded[:n] = w
    full, rest = k // 4, k % 4
    for p in range(panels):
        block = padded[16 * p:16 * p + 16]
        head = block[:, :4 * full].reshape(16, full, 4).permute(1, 0, 2).reshape(-1)
        tail = block[:, 4 * full:].reshape(-1)
        assert torch.equal(packed[p].reshape(-1), torch.cat([head, tail]))


def test_pack_noncontiguous_weight():
    w = torch.randint(-128, 128, (40, 24), dtype=torch.int8).t()
    packed, _ = ops.int8_pack_weight(w)
    assert torch.equal(ops.int8_unpack_weight(packed, 24, 40), w)


# ---- int8_gemm -----------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ACT_KINDS, ids=ACT_IDS)
@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_gemm_odd_shapes_match_int64_reference(path, act):
    path_or_skip(path)
    adtype, seven_bit = act
    gen = torch.Generator().manual_seed(7)
    for m, n, k in ODD_SHAPES:
        a, w = _rand((m, k), adtype, gen, seven_bit), _rand((n, k), torch.int8, gen)
        packed, cs = ops.int8_pack_weight(w)
        with lowbit.use_kernel_path(path):
            got = ops.int8_gemm(a, packed, cs)
        assert got.dtype == torch.int32 and got.shape == (m, n)
        assert torch.equal(got.long(), _ref_gemm(a, w)), (path, m, n, k)


@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_gemm_row_tile_paths(path):
    """Blocks of 1 row, few rows and many rows take different micro-tiles; all must agree."""
    path_or_skip(path)
    gen = torch.Generator().manual_seed(8)
    w = _rand((37, 75), torch.int8, gen)
    packed, cs = ops.int8_pack_weight(w)
    for m in (1, 2, 3, 4, 5, 6, 7, 15, 16, 17, 31, 33, 64):
        for adtype, seven_bit in ACT_KINDS:
            a = _rand((m, 75), adtype, gen, seven_bit)
            with lowbit.use_kernel_path(path):
                got = ops.int8_gemm(a, packed, cs)
            assert torch.equal(got.long(), _ref_gemm(a, w)), (path, m, adtype)


@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_gemm_paths_equal_scalar_threaded(path):
    """Large enough to be split over threads, by panels and by rows."""
    path_or_skip(path)
    gen = torch.Generator().manual_seed(9)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for m, n, k in [(8, 512, 300), (512, 16, 260), (130, 130, 131), (64, 4096, 64)]:
            for adtype, seven_bit in ACT_KINDS:
                a, w = _rand((m, k), adtype, gen, seven_bit), _rand((n, k), torch.int8, gen)
                packed, cs = ops.int8_pack_weight(w)
                with lowbit.use_kernel_path("scalar"):
                    want = ops.int8_gemm(a, packed, cs)
                with lowbit.use_kernel_path(path):
                    got = ops.int8_gemm(a, packed, cs)
                assert torch.equal(got, want), (path, m, n, k, adtype)
                assert torch.equal(got.long(), _ref_gemm(a, w))
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_gemm_saturation_edge(path):
    """Values where vpmaddubsw's int16 pair sum saturates (255·127·2 > 32767, 255·-128·2 < -32768)."""
    path_or_skip(path)
    k = 64
    cases = []
    for a_val in (255, 254, 128, 127):  # 127: the 7-bit vpmaddubsw tiles at their own edge
        for w_val in (-128, 127, -127):
            cases.append((torch.full((3, k), a_val, dtype=torch.uint8), torch.full((20, k), w_val, dtype=torch.int8)))
    alt = torch.tensor([255, 255, 0, 255], dtype=torch.uint8).repeat(3, k // 4)
    cases.append((alt, torch.tensor([-128, -128, 127, 127], dtype=torch.int8).repeat(20, k // 4)))
    cases.append((torch.full((3, k), -128, dtype=torch.int8), torch.full((20, k), -128, dtype=torch.int8)))
    # One byte of 128 among 7-bit rows moves the block off the vpmaddubsw tiles.
    mixed = torch.full((5, k), 127, dtype=torch.uint8)
    mixed[3, 17] = 128
    cases.append((mixed, torch.full((20, k), -128, dtype=torch.int8)))
    for a, w in cases:
        packed, cs = ops.int8_pack_weight(w)
        with lowbit.use_kernel_path(path):
            got = ops.int8_gemm(a, packed, cs)
        assert torch.equal(got.long(), _ref_gemm(a, w)), (path, a[0, 0].item(), w[0, 0].item())


@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_gemm_k_overflow_boundary(path):
    """At the largest K the worst case still fits in int32 exactly; one more is refused."""
    path_or_skip(path)
    for adtype, a_val, w_val, k_max in ((torch.uint8, 255, -128, 65793), (torch.int8, -128, -128, 131071)):
        a = torch.full((2, k_max), a_val, dtype=adtype)
        w = torch.full((17, k_max), w_val, dtype=torch.int8)
        packed, cs = ops.int8_pack_weight(w)
        with lowbit.use_kernel_path(path):
            got = ops.int8_gemm(a, packed, cs)
        want = a_val * w_val * k_max
        assert abs(want) <= 2**31 - 1 and abs(a_val * w_val * (k_max + 1)) > 2**31 - 1
        assert (got.long() == want).all()
        a1 = torch.full((1, k_max + 1), a_val, dtype=adtype)
        p1, cs1 = ops.int8_pack_weight(torch.zeros((1, k_max + 1), dtype=torch.int8))
        with pytest.raises(RuntimeError, match=rf"K = {k_max + 1} is too large .* \(at most {k_max}\)"):
            ops.int8_gemm(a1, p1, cs1)
    # u8 with positive weights at the boundary: 255·127·K; 7-bit rows at the same K
    a = torch.full((1, 65793), 255, dtype=torch.uint8)
    w = torch.full((3, 65793), 127, dtype=torch.int8)
    packed, cs = ops.int8_pack_weight(w)
    with lowbit.use_kernel_path(path):
        assert (ops.int8_gemm(a, packed, cs).long() == 255 * 127 * 65793).all()
        assert (ops.int8_gemm(a // 2, packed, cs).long() == 127 * 127 * 65793).all()


def test_int8_gemm_batch_dims_noncontiguous_and_empty():
    gen = torch.Generator().manual_seed(10)
    w = _rand((9, 12), torch.int8, gen)
    packed, cs = ops.int8_pack_weight(w)
    a = _rand((2, 3, 12), torch.uint8, gen)
    got = ops.int8_gemm(a, packed, cs)
    assert got.shape == (2, 3, 9) and torch.equal(got.long(), _ref_gemm(a.reshape(6, 12), w).reshape(2, 3, 9))
    at = _rand((12, 5), torch.int8, gen).t()
    assert torch.equal(ops.int8_gemm(at, packed, cs).long(), _ref_gemm(at, w))
    assert ops.int8_gemm(torch.zeros((0, 12), dtype=torch.uint8), packed, cs).shape == (0, 9)
    p0, cs0 = ops.int8_pack_weight(torch.zeros((0, 12), dtype=torch.int8))
    assert ops.int8_gemm(a, p0, cs0).shape == (2, 3, 0)
    pk, csk = ops.int8_pack_weight(torch.zeros((4, 0), dtype=torch.int8))
    assert torch.equal(ops.int8_gemm(torch.zeros((3, 0), dtype=torch.uint8), pk, csk), torch.zeros(3, 4, dtype=torch.int32))


# ---- int8_linear ---------------------------------------------------------------------------------


def _linear_ref(x, w, bias, zx, zw, mult, shift, zo, qmin, qmax, rounding):
    n = w.shape[0]
    zw = torch.as_tensor(zw).to(torch.int64).expand(n)
    acc = (x.to(torch.int64) - zx) @ (w.to(torch.int64) - zw[:, None]).T
    if bias is not None:
        acc = acc + bias.to(torch.int64)
    assert acc.abs().max() < 2**31
    m = mult.to(torch.int64).expand(n)
    s = shift.to(torch.int64).expand(n)
    out = requantize_ref(acc.numpy(), m.numpy()[None, :], s.numpy()[None, :], zo, qmin, qmax, rounding)
    return torch.from_numpy(out.reshape(acc.shape))


def test_int8_linear_methods_9_3_vector():
    # TFLite-style: S_in 0.05, Z_in -10, S_w 0.01 (symmetric), bias [400, -200], S_out 0.1, Z_out 3.
    x = torch.tensor([[0, -15, 10, 30]], dtype=torch.int8)
    w = torch.tensor([[30, -50, 12, 7], [-100, 25, 50, -33]], dtype=torch.int8)
    bias = torch.tensor([400, -200], dtype=torch.int32)
    packed, cs = ops.int8_pack_weight(w)
    m, s = ops.quantize_multiplier(torch.tensor([0.05 * 0.01 / 0.1], dtype=torch.float64))
    for path in lowbit.supported_kernel_paths():
        for rounding in ("double", "single"):
            with lowbit.use_kernel_path(path):
                out = ops.int8_linear(x, packed, cs, bias, -10, 0, m, s, 3, -128, 127, rounding=rounding)
            assert out.dtype == torch.int8 and out.tolist() == [[10, -5]], (path, rounding)
    # acc = [1470, -1645] (METHODS): check through int8_gemm + the folded terms too.
    acc = ops.int8_gemm(x, packed, cs).long() + 10 * cs.long() + bias.long()
    assert acc.tolist() == [[1470, -1645]]


LINEAR_CASES = [
    # (xdtype, zx, zw per-channel?, zw values, bias?, (qmin, qmax), per-channel multiplier?)
    (torch.uint8, 128, False, 0, True, (0, 255), False),
    (torch.uint8, 0, False, 0, False, (0, 255), True),
    (torch.uint8, 37, True, None, True, (-128, 127), True),
    (torch.int8, -10, False, 0, True, (-128, 127), True),
    (torch.int8, 5, True, None, False, (0, 255), False),
    (torch.uint8, 128, False, 3, True, (128, 255), True),   # fused ReLU: qmin = out zero point
    (torch.int8, 0, False, 0, True, (-128, 127), False),
    ("u8_7bit", 64, True, None, True, (0, 255), True),     # reduce_range activations
]


@pytest.mark.parametrize("rounding", ["double", "single"])
@pytest.mark.parametrize("case", range(len(LINEAR_CASES)))
@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_linear_matches_reference(path, case, rounding):
    path_or_skip(path)
    xdtype, zx, zw_per_channel, zw_value, has_bias, (qmin, qmax), per_channel_m = LINEAR_CASES[case]
    gen = torch.Generator().manual_seed(100 + case)
    seven_bit = xdtype == "u8_7bit"
    xdtype = torch.uint8 if seven_bit else xdtype
    for m_rows, n, k in [(1, 33, 70), (5, 17, 5), (19, 48, 129), (2, 1, 1)]:
        x = _rand((m_rows, k), xdtype, gen, seven_bit)
        w = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen)
        zw = (torch.randint(-20, 20, (n,), dtype=torch.int32, generator=gen) if zw_per_channel
              else torch.tensor([zw_value], dtype=torch.int32))
        bias = torch.randint(-5000, 5000, (n,), dtype=torch.int32, generator=gen) if has_bias else None
        real = (torch.rand(n if per_channel_m else 1, dtype=torch.float64, generator=gen) * 0.002 + 1e-4)
        mult, shift = ops.quantize_multiplier(real, rounding=rounding)
        zo = (qmin + qmax + 1) // 2 if qmin != 128 else 128
        packed, cs = ops.int8_pack_weight(w)
        with lowbit.use_kernel_path(path):
            got = ops.int8_linear(x, packed, cs, bias, zx, zw, mult, shift, zo, qmin, qmax, rounding=rounding)
        want = _linear_ref(x, w, bias, zx, zw, mult, shift, zo, qmin, qmax, rounding)
        assert got.dtype == (torch.uint8 if qmin >= 0 else torch.int8)
        assert torch.equal(got.long(), want), (path, m_rows, n, k)


@pytest.mark.parametrize("rounding", ["double", "single"])
@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_linear_epilogue_shift_signs(path, rounding):
    """The epilogue takes a shortcut for vectors of channels whose shifts are all <= 0 and whose
    multipliers are not INT32_MIN (no saturating left shift); channels with a positive shift
    (real multiplier >= 1, saturating on large sums) or an INT32_MIN multiplier in the same
    vector take the full form. Blocks of every kind, against the int64 reference."""
    path_or_skip(path)
    gen = torch.Generator().manual_seed(21)
    n, k = 72, 300
    mult = torch.randint(2**30, 2**31, (n,), dtype=torch.int64, generator=gen)
    shift = torch.randint(-12, 1, (n,), dtype=torch.int64, generator=gen)
    shift[17] = 2                   # channels 16-31: one positive shift
    shift[40:48] = torch.arange(1, 9)  # 40-47: all positive (an 8-lane vector of them)
    mult[50] = -(2**31)             # 48-63: an INT32_MIN multiplier
    shift[50] = -1
    hi = 30 if rounding == "single" else 31
    shift = shift.clamp(max=hi)
    mult, shift = mult.to(torch.int32), shift.to(torch.int32)
    w = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen)
    packed, cs = ops.int8_pack_weight(w)
    bias = torch.randint(-(2**20), 2**20, (n,), dtype=torch.int32, generator=gen)
    for m_rows in (1, 5, 40):
        x = torch.randint(0, 256, (m_rows, k), dtype=torch.uint8, generator=gen)
        with lowbit.use_kernel_path(path):
            got = ops.int8_linear(x, packed, cs, bias, 3, 0, mult, shift, 100, 0, 255, rounding=rounding)
        want = _linear_ref(x, w, bias, 3, 0, mult, shift, 100, 0, 255, rounding)
        assert torch.equal(got.long(), want), (path, m_rows)


@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_linear_paths_equal_scalar_large_threaded(path):
    path_or_skip(path)
    gen = torch.Generator().manual_seed(11)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for m_rows, n, k, seven_bit in [(64, 272, 200, False), (300, 20, 100, True), (1, 1024, 515, False),
                                        (3, 1024, 515, True)]:
            x = _rand((m_rows, k), torch.uint8, gen, seven_bit)
            w = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen)
            packed, cs = ops.int8_pack_weight(w)
            bias = torch.randint(-(2**16), 2**16, (n,), dtype=torch.int32, generator=gen)
            mult, shift = ops.quantize_multiplier(torch.rand(n, dtype=torch.float64, generator=gen) * 1e-3)
            zw = torch.randint(-3, 3, (n,), dtype=torch.int32, generator=gen)
            for rounding in ("double", "single"):
                args = (x, packed, cs, bias, 120, zw, mult, shift, 128, 0, 255)
                with lowbit.use_kernel_path("scalar"):
                    want = ops.int8_linear(*args, rounding=rounding)
                with lowbit.use_kernel_path(path):
                    got = ops.int8_linear(*args, rounding=rounding)
                assert torch.equal(got, want), (path, m_rows, n, k, rounding)
    finally:
        torch.set_num_threads(previous)


def test_int8_linear_equals_gemm_then_requantize():
    gen = torch.Generator().manual_seed(12)
    x = _rand((7, 90), torch.uint8, gen)
    w = torch.randint(-127, 128, (21, 90), dtype=torch.int8, generator=gen)
    packed, cs = ops.int8_pack_weight(w)
    bias = torch.randint(-999, 999, (21,), dtype=torch.int32, generator=gen)
    mult, shift = ops.quantize_multiplier(torch.rand(21, dtype=torch.float64, generator=gen) * 1e-3)
    out = ops.int8_linear(x, packed, cs, bias, 100, 0, mult, shift, 128, 0, 255)
    acc = ((x.long() - 100) @ w.long().T + bias.long()).to(torch.int32)
    assert torch.equal(out, ops.requantize(acc, mult, shift, 128, 0, 255))


def test_int8_linear_agrees_with_fbgemm_within_one_lsb():
    """PyTorch's quantized Linear requantizes in float, lowbit in fixed point: at most 1 LSB apart."""
    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    gen = torch.Generator().manual_seed(13)
    k, n = 64, 24
    wf = torch.randn(n, k, generator=gen) * 0.2
    bf = torch.randn(n, generator=gen)
    lin = torch.ao.nn.quantized.Linear(k, n)
    wq = torch.quantize_per_tensor(wf, 0.004, 0, torch.qint8)
    lin.set_weight_bias(wq, bf)
    lin.scale, lin.zero_point = 0.05, 120
    xq = torch.quantize_per_tensor(torch.rand(9, k, generator=gen) * 2.0, 0.01, 3, torch.quint8)
    want = lin(xq).int_repr()
    qb = torch.round(bf / (0.01 * 0.004)).to(torch.int32)
    mult, shift = ops.quantize_multiplier(torch.tensor([0.01 * 0.004 / 0.05], dtype=torch.float64))
    packed, cs = ops.int8_pack_weight(wq.int_repr())
    got = ops.int8_linear(xq.int_repr(), packed, cs, qb, 3, 0, mult, shift, 120, 0, 255)
    assert (got.int() - want.int()).abs().max() <= 1


# ---- bad inputs ----------------------------------------------------------------------------------


def _linear_args():
    w = torch.randint(-127, 128, (20, 10), dtype=torch.int8)
    packed, cs = ops.int8_pack_weight(w)
    mult, shift = ops.quantize_multiplier(torch.tensor([1e-3], dtype=torch.float64))
    return dict(x=torch.zeros((3, 10), dtype=torch.uint8), packed_weight=packed, weight_col_sums=cs,
                bias=torch.zeros(20, dtype=torch.int32), x_zero_point=torch.tensor([0]),
                weight_zero_point=torch.tensor([0]), multiplier=mult, shift=shift,
                out_zero_point=torch.tensor([128]), qmin=0, qmax=255, rounding="double")


def _call_linear(args):
    return torch.ops.lowbit.int8_linear(*args.values())


@pytest.mark.parametrize("change, match", [
    (dict(x=torch.zeros((3, 10))), r"x must be uint8 or int8 activation codes, got Float"),
    (dict(x=torch.zeros((3, 11), dtype=torch.uint8)), r"packed_weight has shape \[2, 10, 16\] but .* K = 11 packs to \[2, 11, 16\]"),
    (dict(weight_col_sums=torch.zeros(20, dtype=torch.int64)), r"weight_col_sums must be the 1-D int32"),
    (dict(weight_col_sums=torch.zeros(40, dtype=torch.int32)), r"40 output channels"),
    (dict(packed_weight=torch.zeros((2, 10, 16), dtype=torch.uint8)), r"packed_weight must be the int8 tensor"),
    (dict(bias=torch.zeros(20)), r"bias must be int32 at scale"),
    (dict(bias=torch.zeros(19, dtype=torch.int32)), r"bias must have one element per output channel \(20\), got shape \[19\]"),
    (dict(x_zero_point=torch.tensor([256])), r"x_zero_point = 256 is outside the range of x's dtype"),
    (dict(x_zero_point=torch.tensor([1, 2])), r"x_zero_point must hold one element"),
    (dict(x_zero_point=torch.tensor([1.0])), r"x_zero_point must be an integer tensor"),
    (dict(weight_zero_point=torch.zeros(7, dtype=torch.int32)), r"weight_zero_point must hold one element .* \(20\)"),
    (dict(weight_zero_point=torch.tensor([200])), r"weight_zero_point\[0\] = 200 is outside the int8 range"),
    (dict(multiplier=torch.tensor([2**30], dtype=torch.int64)), r"multiplier and shift must be int32"),
    (dict(shift=torch.tensor([32], dtype=torch.int32)), r"shift\[0\] = 32 is outside \[-31, 31\]"),
    (dict(out_zero_point=torch.tensor([300])), r"out_zero_point = 300 is outside \[qmin, qmax\] = \[0, 255\]"),
    (dict(qmin=-200, qmax=100), r"must fit uint8 \[0, 255\] or int8"),
    (dict(qmin=5, qmax=5, out_zero_point=torch.tensor([5])), r"qmin must be < qmax"),
    (dict(rounding="up"), r"rounding must be 'double'"),
    (dict(bias=torch.full((20,), 2**31 - 1, dtype=torch.int32)), r"the int32 accumulator could overflow"),
])
def test_int8_linear_bad_inputs(change, match):
    args = _linear_args()
    args.update(change)
    with pytest.raises(RuntimeError, match=match):
        _call_linear(args)


def test_int8_linear_overflow_bound_on_k():
    k = 65793  # fits for u8 with zx = 0 and symmetric weights, not with zx = 255 and zw = -128
    packed, cs = ops.int8_pack_weight(torch.zeros((1, k), dtype=torch.int8))
    mult, shift = ops.quantize_multiplier(torch.tensor([1e-6], dtype=torch.float64))
    x = torch.full((1, k), 255, dtype=torch.uint8)
    ops.int8_linear(x, packed, cs, None, 0, 0, mult, shift, 0, 0, 255)
    with pytest.raises(RuntimeError, match=r"could overflow: K = 65793, max \|x - x_zero_point\| = 255, "
                                           r"max \|w - weight_zero_point\| = 255"):
        ops.int8_linear(x, packed, cs, None, 0, -128, mult, shift, 0, 0, 255)


@pytest.mark.parametrize("call, match", [
    (lambda: ops.int8_pack_weight(torch.zeros(4, 4)), r"weight must be an int8 tensor, got Float"),
    (lambda: ops.int8_pack_weight(torch.zeros(2, 4, 4, dtype=torch.int8)), r"weight must be 2-D"),
    (lambda: ops.int8_unpack_weight(ops.int8_pack_weight(torch.zeros(4, 4, dtype=torch.int8))[0], 4, 9),
     r"packed_weight has shape \[1, 4, 16\] but .* K = 9 packs to \[1, 9, 16\]"),
    (lambda: ops.int8_unpack_weight(torch.zeros(1, 4, 16, dtype=torch.int8), -1, 4), r"n and k must be >= 0"),
    (lambda: ops.int8_gemm(torch.zeros(2, 4, dtype=torch.int32), *ops.int8_pack_weight(torch.zeros(4, 4, dtype=torch.int8))),
     r"a must be uint8 or int8 activation codes, got Int"),
])
def test_pack_and_gemm_bad_inputs(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


# ---- opcheck, compile, export --------------------------------------------------------------------


def test_opcheck_int8_ops():
    gen = torch.Generator().manual_seed(14)
    w = torch.randint(-127, 128, (20, 10), dtype=torch.int8, generator=gen)
    torch.library.opcheck(torch.ops.lowbit.int8_pack_weight.default, (w,))
    packed, cs = ops.int8_pack_weight(w)
    torch.library.opcheck(torch.ops.lowbit.int8_unpack_weight.default, (packed, 20, 10))
    for adtype in (torch.uint8, torch.int8):
        a = _rand((2, 3, 10), adtype, gen)
        torch.library.opcheck(torch.ops.lowbit.int8_gemm.default, (a, packed, cs))
    args = _linear_args()
    args["x"] = _rand((4, 10), torch.uint8, gen)
    torch.library.opcheck(torch.ops.lowbit.int8_linear.default, tuple(args.values()))
    args["bias"] = None
    args["qmin"], args["qmax"], args["out_zero_point"] = -128, 127, torch.tensor([0])
    torch.library.opcheck(torch.ops.lowbit.int8_linear.default, tuple(args.values()))


class _Int8Linear(torch.nn.Module):
    def __init__(self, w, bias, mult, shift):
        super().__init__()
        packed, cs = ops.int8_pack_weight(w)
        self.register_buffer("packed", packed)
        self.register_buffer("col_sums", cs)
        self.register_buffer("bias", bias)
        self.register_buffer("mult", mult)
        self.register_buffer("shift", shift)
        self.register_buffer("zx", torch.tensor([128], dtype=torch.int32))
        self.register_buffer("zw", torch.tensor([0], dtype=torch.int32))
        self.register_buffer("zo", torch.tensor([128], dtype=torch.int32))

    def forward(self, x):
        return torch.ops.lowbit.int8_linear(x, self.packed, self.col_sums, self.bias, self.zx, self.zw, self.mult,
                                            self.shift, self.zo, 0, 255, "double")


def _module():
    gen = torch.Generator().manual_seed(15)
    w = torch.randint(-127, 128, (24, 40), dtype=torch.int8, generator=gen)
    mult, shift = ops.quantize_multiplier(torch.rand(24, dtype=torch.float64, generator=gen) * 1e-3)
    return _Int8Linear(w, torch.randint(-999, 999, (24,), dtype=torch.int32, generator=gen), mult, shift)


def test_compile_fullgraph_int8_linear_no_recompiles():
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    mod = _module()
    backend = CompileCounterWithBackend("inductor")
    cm = torch.compile(mod, backend=backend, fullgraph=True)
    for i in range(3):
        x = torch.randint(0, 256, (5, 40), dtype=torch.uint8)
        mod.zo.fill_(100 + i)  # new parameter values must not recompile
        assert torch.equal(cm(x), mod(x))
    assert backend.frame_count == 1
    assert not counters["recompiles"] and not counters["graph_break"]


def test_export_int8_linear():
    mod = _module()
    x = torch.randint(0, 256, (5, 40), dtype=torch.uint8)
    ep = torch.export.export(mod, (x,))
    assert any(node.target is torch.ops.lowbit.int8_linear.default for node in ep.graph.nodes)
    assert torch.equal(ep.module()(x), mod(x))


def test_avx512_vnni_kernel_selected_where_available():
    path_or_skip("avx512")
    if not lowbit.build_info()["cpu_features"]["avx512vnni"]:
        pytest.skip("this CPU has AVX-512 but not AVX512-VNNI: the avx512 path runs the AVX2 GEMM")
    with lowbit.use_kernel_path("avx512"):
        assert ops.int8_gemm_kernel_name() == "qu8s8_gemm_rq_8x32c4__avx512vnni"


def test_kernel_names_follow_the_path():
    with lowbit.use_kernel_path("scalar"):
        assert ops.int8_gemm_kernel_name(torch.uint8, "s32") == "qu8s8_gemm_s32_1x16c4__scalar"
    if "avx2" in lowbit.supported_kernel_paths():
        with lowbit.use_kernel_path("avx2"):
            assert ops.int8_gemm_kernel_name(torch.int8, "rq") == "qs8s8_gemm_rq_2x16c4__avx2"
