"""int4 weight-only linear: packing round trip, every kernel path bit-equal to the scalar
reference, float64 reference within float32 accumulation error, dtypes, odd shapes, the tiny-
activation fallback, bad inputs, opcheck and torch.compile."""

from __future__ import annotations

import pytest
import torch

import lowbit
from lowbit import ops
from _int8_ref import ALL_PATHS, path_or_skip


def _case(n, k, group, m=3, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), dtype=torch.uint8, generator=gen)
    scale = torch.rand(n, k // group, generator=gen) * 0.02 + 0.001
    zero = torch.randint(0, 16, (n, k // group), dtype=torch.int32, generator=gen)
    x = torch.randn(m, k, generator=gen).to(dtype)
    bias = torch.randn(n, generator=gen)
    return q, scale, zero, x, bias


def _reference(x, q, scale, zero, bias):
    group = q.shape[1] // scale.shape[1]
    w = (q.double() - zero.double().repeat_interleave(group, 1)) * scale.double().repeat_interleave(group, 1)
    y = x.double() @ w.T
    return y if bias is None else y + bias.double()


def _tolerance(x, q, scale):
    group = q.shape[1] // scale.shape[1]
    w_abs = (15 * scale.double()).repeat_interleave(group, 1)
    return 4e-6 * (x.double().abs() @ w_abs.T) + 1e-30


@pytest.mark.parametrize("n, k, group", [(1, 8, 8), (8, 16, 8), (37, 64, 16), (13, 128, 128), (70, 256, 32),
                                         (9, 40, 8)])
def test_pack_unpack_round_trip_and_layout(n, k, group):
    q, *_ = _case(n, k, group)
    packed = ops.int4_pack_weight(q)
    assert packed.shape == ((n + 7) // 8, k // 8, 8) and packed.dtype == torch.int32
    assert torch.equal(ops.int4_unpack_weight(packed, n), q)
    # packed[b][t][j] holds q[8b + j][8t + i] in bits 4i..4i+3 (word j = channel 8b + j over 8 columns)
    words = packed.long() & 0xFFFFFFFF  # [blocks, K/8, 8]
    shifts = 4 * torch.arange(8)
    nibbles = (words.unsqueeze(-1) >> shifts) & 0xF  # [blocks, K/8, 8 channels, 8 columns]
    codes = nibbles.permute(0, 2, 1, 3).reshape(-1, k)  # [blocks * 8, K]
    assert torch.equal(codes[:n], q.long())
    assert not codes[n:].any()  # padding channels are zero


@pytest.mark.parametrize("path", ALL_PATHS)
def test_int4_linear_paths_equal_scalar_and_reference(path):
    path_or_skip(path)
    # The last three shapes cut the AVX2 kernel's per-thread activation buffer (128 KB) into chunks:
    # 40 rows at group 128 into row chunks of 32 + 8 and K chunks of one group each; K = 8192 at
    # group 64 into two K chunks for one row and for three; one group of 8192 needs a larger buffer.
    for n, k, group, m in [(1, 8, 8, 1), (37, 64, 16, 3), (13, 128, 128, 1), (70, 256, 32, 5), (9, 40, 8, 2),
                           (64, 512, 64, 4), (17, 96, 96, 7), (20, 512, 128, 40), (16, 8192, 64, 1),
                           (11, 8192, 64, 3), (9, 8192, 8192, 2)]:
        q, scale, zero, x, bias = _case(n, k, group, m, seed=n + k)
        packed = ops.int4_pack_weight(q)
        for b in (None, bias):
            with lowbit.use_kernel_path("scalar"):
                want = ops.int4_weight_linear(x, packed, scale, zero, b)
            with lowbit.use_kernel_path(path):
                got = ops.int4_weight_linear(x, packed, scale, zero, b)
            assert got.dtype == torch.float32 and got.shape == (m, n)
            assert torch.equal(got, want), (path, n, k, group, m)
            with lowbit.use_kernel_path(path):
                got_packed = ops.int4_weight_linear_packed(x, packed, ops.int4_pack_params(scale, zero), n, b)
            assert torch.equal(got_packed, want), (path, n, k, group, m)
            err = (got.double() - _reference(x, q, scale, zero, b)).abs()
            assert (err <= _tolerance(x, q, scale)).all(), (n, k, group, err.max().item())


@pytest.mark.parametrize("n, groups", [(1, 1), (8, 3), (21, 4)])
def test_pack_params_layout(n, groups):
    gen = torch.Generator().manual_seed(n)
    scale = torch.rand(n, groups, generator=gen) + 0.1
    zero = torch.randint(0, 16, (n, groups), dtype=torch.int32, generator=gen)
    params = ops.int4_pack_params(scale, zero)
    blocks = (n + 7) // 8
    assert params.shape == (blocks, groups, 2, 8) and params.dtype == torch.float32
    # params[b][g][0][l] = scale[8b + l][g], params[b][g][1][l] = zero_point[8b + l][g]; padding 0
    padded_s = torch.zeros(blocks * 8, groups)
    padded_z = torch.zeros(blocks * 8, groups)
    padded_s[:n], padded_z[:n] = scale, zero.float()
    assert torch.equal(params[:, :, 0, :], padded_s.view(blocks, 8, groups).transpose(1, 2))
    assert torch.equal(params[:, :, 1, :], padded_z.view(blocks, 8, groups).transpose(1, 2))


@pytest.mark.parametrize("path", ALL_PATHS)
def test_int4_linear_ignores_the_callers_denormals_are_zero(path):
    """torch.set_flush_denormal(True) sets DAZ, which would read the conversion-free variant's
    subnormal weight operands as 0; the kernel clears it for its own duration and restores it."""
    path_or_skip(path)
    q, scale, zero, x, bias = _case(19, 128, 32, m=5, seed=14)
    packed = ops.int4_pack_weight(q)
    with lowbit.use_kernel_path("scalar"):
        want = ops.int4_weight_linear(x, packed, scale, zero, bias)
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no denormals-are-zero mode")
    try:
        with lowbit.use_kernel_path(path):
            got = ops.int4_weight_linear(x, packed, scale, zero, bias)
        assert torch.tensor([2.0 ** -140]).item() == 0.0  # the caller's mode is still on
    finally:
        torch.set_flush_denormal(False)
    assert torch.equal(got, want)


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("special", ["tiny", "huge", "inf"])
def test_int4_linear_out_of_range_activations_take_the_exact_fallback(path, special):
    """Outside 2^-100 <= |x| < 2^64 (int4_weight.h) the q·16^j chains could meet subnormals or
    overflow where the specification does not: the kernels then extract nibbles with shifts."""
    path_or_skip(path)
    q, scale, zero, x, bias = _case(24, 64, 16, m=3, seed=5)
    if special == "tiny":
        x[1, 6] = 3e-31
        x[2, 14] = -1e-38
    elif special == "huge":
        x[1, 3] = 2.0 ** 64
        x[2, 14] = -3e25  # 16^6 · 15 · 3e25 · 16 terms would overflow float32 in the scaled chain
        x[2, 15] = 2.5e30
    else:
        x[1, 6] = float("inf")
        x[2, 14] = float("nan")
    packed = ops.int4_pack_weight(q)
    with lowbit.use_kernel_path("scalar"):
        want = ops.int4_weight_linear(x, packed, scale, zero, bias)
    with lowbit.use_kernel_path(path):
        got = ops.int4_weight_linear(x, packed, scale, zero, bias)
    if special == "inf":
        assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got[~got.isnan()], want[~want.isnan()])
        assert got[0].isfinite().all() and not got[1].isfinite().any() and got[2].isnan().all()
        return
    assert torch.equal(got, want)
    assert ((got.double() - _reference(x, q, scale, zero, bias)).abs() <= _tolerance(x, q, scale)).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_int4_linear_low_precision_activations(dtype):
    q, scale, zero, x, bias = _case(40, 128, 32, m=4, seed=6, dtype=dtype)
    packed = ops.int4_pack_weight(q)
    got = ops.int4_weight_linear(x, packed, scale, zero, bias)
    assert got.dtype == dtype
    # Computed in float32 from the exactly widened activations, rounded once at the end.
    want = ops.int4_weight_linear(x.float(), packed, scale, zero, bias).to(dtype)
    assert torch.equal(got, want)
    # bf16 scales are widened exactly too
    got_bf16_scale = ops.int4_weight_linear(x, packed, scale.bfloat16(), zero, bias)
    want_bf16_scale = ops.int4_weight_linear(x, packed, scale.bfloat16().float(), zero, bias)
    assert torch.equal(got_bf16_scale, want_bf16_scale)


def test_int4_linear_batch_dims_threads_and_empty():
    q, scale, zero, _, bias = _case(96, 256, 64, seed=7)
    packed = ops.int4_pack_weight(q)
    x = torch.randn(2, 3, 256)
    y = ops.int4_weight_linear(x, packed, scale, zero, bias)
    assert y.shape == (2, 3, 96)
    assert torch.equal(y, ops.int4_weight_linear(x.reshape(6, 256), packed, scale, zero, bias).reshape(2, 3, 96))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert torch.equal(ops.int4_weight_linear(x, packed, scale, zero, bias), y)
    finally:
        torch.set_num_threads(previous)
    assert ops.int4_weight_linear(torch.zeros(0, 256), packed, scale, zero).shape == (0, 96)


def test_int4_linear_matches_quantize_affine_workflow():
    """Codes from lowbit's own quantize_affine with a [N, K/g] scale (the blocked convention)."""
    gen = torch.Generator().manual_seed(8)
    w = torch.randn(24, 64, generator=gen)
    group = 16
    wg = w.reshape(24, 64 // group, group)
    lo, hi = wg.amin(-1).clamp(max=0), wg.amax(-1).clamp(min=0)
    scale, zero = ops.choose_qparams(lo, hi, 0, 15)
    codes = ops.quantize_affine(w, scale, zero, 0, 15)
    packed = ops.int4_pack_weight(codes)
    x = torch.randn(5, 64, generator=gen)
    y = ops.int4_weight_linear(x, packed, scale, zero)
    w_deq = ops.dequantize_affine(codes, scale, zero)
    assert torch.allclose(y, x @ w_deq.T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda q, s, z, x, p: ops.int4_pack_weight(q.float()), r"codes must be an integer tensor"),
    (lambda q, s, z, x, p: ops.int4_pack_weight(q[:, :60]), r"in_features must be a multiple of 8, got 60"),
    (lambda q, s, z, x, p: ops.int4_pack_weight(q.int() + 1), r"codes\[\d+\]\[\d+\] = 16 is outside \[0, 15\]"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x.double(), p, s, z), r"x must be float32, bfloat16 or float16"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x[:, :56], p, s, z), r"group size K / scale.size\(1\) = 14"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x[:, :60], p, s, z), r"group size K / scale.size\(1\) = 15 must be a multiple of 8"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x[:, :32], p, s[:, :2], z[:, :2]), r"24 output channels and K = 32 pack to"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p, s[:, :3], z[:, :3]), r"3 groups per output channel"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p, s, z[:, :2]), r"zero_point must have scale's shape"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p, torch.ones(24, 16), torch.zeros(24, 16, dtype=torch.int32)),
     r"group size K / scale.size\(1\) = 4 must be a multiple of 8"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p, s.index_fill(1, torch.tensor([1]), -1.0), z),
     r"scale must be positive and finite .* scale\[1\] = -1"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p, s, z + 12), r"zero_point\[\d+\] = 1\d is outside \[qmin, qmax\] = \[0, 15\]"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p, s, z.float()), r"zero_point must be an integer tensor"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p.float(), s, z), r"packed_weight must be the int32 tensor"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p, s[:16], z[:16]), r"16 output channels and K = 64 pack to"),
    (lambda q, s, z, x, p: ops.int4_weight_linear(x, p, s, z, torch.zeros(23)), r"bias must be a 1-D floating-point"),
    (lambda q, s, z, x, p: ops.int4_unpack_weight(p, 30), r"30 output channels and K = 64 pack to"),
    (lambda q, s, z, x, p: ops.int4_pack_params(s, z + 12), r"int4_pack_params: zero_point\[\d+\] = 1\d is outside"),
    (lambda q, s, z, x, p: ops.int4_pack_params(s.neg(), z), r"int4_pack_params: scale must be positive"),
    (lambda q, s, z, x, p: ops.int4_pack_params(s[0], z[0]), r"scale must be 2-D"),
    (lambda q, s, z, x, p: ops.int4_weight_linear_packed(x, p, ops.int4_pack_params(s, z), 25),
     r"packed_params must be the contiguous float32 tensor int4_pack_params returns for 25 output channels"),
    (lambda q, s, z, x, p: ops.int4_weight_linear_packed(x, p, ops.int4_pack_params(s, z).double(), 24),
     r"packed_params must be the contiguous float32 tensor"),
    (lambda q, s, z, x, p: ops.int4_weight_linear_packed(x, p, ops.int4_pack_params(s[:, :3], z[:, :3]), 24),
     r"packed_params has 3 groups per output channel"),
    (lambda q, s, z, x, p: ops.int4_weight_linear_packed(x[:, :32], p, ops.int4_pack_params(s[:, :2], z[:, :2]), 24),
     r"24 output channels and K = 32 pack to"),
    (lambda q, s, z, x, p: ops.int4_weight_linear_packed(x, p, ops.int4_pack_params(s, z), -1), r"n must be >= 0"),
])
def test_int4_bad_inputs(call, match):
    q, scale, zero, x, _ = _case(24, 64, 16, seed=9)
    packed = ops.int4_pack_weight(q)
    with pytest.raises(RuntimeError, match=match):
        call(q, scale, zero, x, packed)


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n, group, m", [(24, 16, 3), (21, 8, 1), (32, 8, 1), (16, 64, 0)])
@pytest.mark.parametrize("bad", ["nan", "inf", "zero", "negative", "tiny_subnormal", "zero_point_16",
                                 "zero_point_negative"])
def test_int4_bad_parameter_values_every_path_and_position(path, threads, n, group, m, bad):
    """scale and zero_point are checked while they are packed (a fast check per thread's share of
    the channel blocks, then exact checks that name the element); the error must name it wherever it
    sits: a full or the partial last channel block, the first or the last group, either thread's
    share of the blocks, and with no rows at all."""
    path_or_skip(path)
    q, scale, zero, x, _ = _case(n, 64, group, m=m, seed=12)
    packed = ops.int4_pack_weight(q)
    groups = 64 // group
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for row, g in [(0, 0), (n - 1, groups - 1), (n // 2, groups // 2)]:
            s, z = scale.clone(), zero.clone()
            flat = row * groups + g
            if bad.startswith("zero_point"):
                z[row, g] = 16 if bad == "zero_point_16" else -1
                match = rf"zero_point\[{flat}\] = {z[row, g].item()} is outside \[qmin, qmax\] = \[0, 15\]"
            else:
                s[row, g] = {"nan": float("nan"), "inf": float("inf"), "zero": 0.0, "negative": -0.5,
                             "tiny_subnormal": 2.0 ** -149}[bad]
                match = rf"scale must be positive and finite .* scale\[{flat}\] = "
            with lowbit.use_kernel_path(path), pytest.raises(RuntimeError, match=match):
                ops.int4_weight_linear(x, packed, s, z)
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("path", ALL_PATHS)
def test_int4_subnormal_scale_with_finite_reciprocal_is_accepted(path):
    """The kernels' fast check rejects subnormal scales; the exact check then accepts those whose
    reciprocal is finite, and the computed result stands (equal to the scalar reference)."""
    path_or_skip(path)
    q, scale, zero, x, bias = _case(21, 64, 16, m=2, seed=13)
    scale[3, 1] = 2.0 ** -127  # 1 / scale = 2^127
    scale[20, 3] = 2.0 ** -126  # the smallest normal scale: passes the fast check itself
    packed = ops.int4_pack_weight(q)
    with lowbit.use_kernel_path("scalar"):
        want = ops.int4_weight_linear(x, packed, scale, zero, bias)
    with lowbit.use_kernel_path(path):
        got = ops.int4_weight_linear(x, packed, scale, zero, bias)
    assert torch.equal(got, want)
    assert ((got.double() - _reference(x, q, scale, zero, bias)).abs() <= _tolerance(x, q, scale)).all()


def test_opcheck_int4_ops():
    q, scale, zero, x, bias = _case(24, 64, 16, seed=10)
    torch.library.opcheck(torch.ops.lowbit.int4_pack_weight.default, (q,))
    packed = ops.int4_pack_weight(q)
    torch.library.opcheck(torch.ops.lowbit.int4_unpack_weight.default, (packed, 24))
    torch.library.opcheck(torch.ops.lowbit.int4_weight_linear.default, (x, packed, scale, zero, bias))
    torch.library.opcheck(torch.ops.lowbit.int4_weight_linear.default, (x.bfloat16(), packed, scale, zero, None))
    torch.library.opcheck(torch.ops.lowbit.int4_pack_params.default, (scale, zero))
    params = ops.int4_pack_params(scale, zero)
    torch.library.opcheck(torch.ops.lowbit.int4_weight_linear_packed.default, (x, packed, params, 24, bias))
    torch.library.opcheck(torch.ops.lowbit.int4_weight_linear_packed.default, (x.half(), packed, params, 24, None))


def test_compile_fullgraph_int4_linear():
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    q, scale, zero, x, bias = _case(24, 64, 16, seed=11)
    packed = ops.int4_pack_weight(q)
    backend = CompileCounterWithBackend("inductor")

    params = ops.int4_pack_params(scale, zero)

    def f(x, scale):
        y = torch.ops.lowbit.int4_weight_linear(x, packed, scale, zero, bias)
        return torch.relu(y + torch.ops.lowbit.int4_weight_linear_packed(x, packed, params, 24, None))

    cf = torch.compile(f, backend=backend, fullgraph=True)
    for i in range(3):
        s = scale * (1 + i)
        assert torch.equal(cf(x, s), f(x, s))
    assert backend.frame_count == 1 and not counters["recompiles"] and not counters["graph_break"]
