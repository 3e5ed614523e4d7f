"""The affine ops against the formula references of tests/reference.py, bit for bit: every rounding,
every STE, quantize/dequantize, per-tensor / per-channel / per-group / general blocks, 2-16 bit
signed and unsigned ranges, float32/float16/bfloat16, non-contiguous inputs, and the documented
results for empty, 0-d, NaN and ±Inf inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lowbit
import reference as R
from samples import QRANGES, AffineCase, adversarial_input, affine_cases, random_params, spread_input

L = torch.ops.lowbit
SEED = torch.tensor([20240607], dtype=torch.int64)


def _seed(rounding):
    return SEED if rounding == "stochastic" else None


def check_all_ops(case, rounding, *, seed=SEED, offset=0):
    """Forward, quantize, every STE through the backward op and through autograd, vs the references."""
    x, scale, zp, qmin, qmax = case.args()
    s_arg = seed if rounding == "stochastic" else None
    seed_int = int(seed.item())
    x_before = x.clone()

    y = L.fake_quantize_affine(x, scale, zp, qmin, qmax, rounding, "integer", s_arg, offset)
    assert y.is_contiguous() and y.dtype == x.dtype and y.shape == x.shape
    R.assert_same_bits(y, R.fake_quantize_ref(x, scale, zp, qmin, qmax, rounding, seed_int, offset),
                       f"{case.id} {rounding} forward")

    q = L.quantize_affine(x, scale, zp, qmin, qmax, rounding, s_arg, offset)
    R.assert_same_bits(q, R.quantize_ref(x, scale, zp, qmin, qmax, rounding, seed_int, offset),
                       f"{case.id} {rounding} quantize")

    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(x.dtype)
    for ste in R.STES:
        expected = R.fake_quantize_backward_ref(grad, x, scale, zp, qmin, qmax, rounding, ste, seed_int, offset)
        dx = L.fake_quantize_affine_backward(grad, x, scale, zp, qmin, qmax, rounding, ste, s_arg, offset)
        R.assert_same_bits(dx, expected, f"{case.id} {rounding} {ste} backward op")
        xr = x.detach().clone().requires_grad_(True)
        L.fake_quantize_affine(xr, scale, zp, qmin, qmax, rounding, ste, s_arg, offset).backward(grad)
        R.assert_same_bits(xr.grad, expected.reshape(x.shape), f"{case.id} {rounding} {ste} autograd")
    assert torch.equal(x, x_before), "the op must not modify its input"


@pytest.mark.parametrize("rounding", R.ROUNDINGS)
@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_layouts_match_reference(dtype, rounding):
    for case in affine_cases(dtype, qranges=("s8", "u4")):
        check_all_ops(case, rounding, offset=17)


@pytest.mark.parametrize("rounding", R.ROUNDINGS)
@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_adversarial_inputs_match_reference(dtype, rounding):
    """Ties, clip edges, half a step past the edges, ulp neighbours, ±0, huge values and ±Inf."""
    for case in affine_cases(dtype, qranges=("u8", "s2", "s16"), seed=3, adversarial=True):
        check_all_ops(case, rounding)


@pytest.mark.parametrize("qname", sorted(QRANGES))
def test_every_bit_width(qname):
    qmin, qmax = QRANGES[qname]
    gen = torch.Generator().manual_seed(qmax)
    for pshape in ((1,), (4, 5)):
        scale, zp = random_params(pshape, qmin, qmax, gen)
        x = spread_input((8, 20), scale, zp, qmin, qmax, gen)
        for rounding in R.ROUNDINGS:
            check_all_ops(AffineCase(f"{qname}{pshape}", x, scale, zp, qmin, qmax), rounding)
            q = L.quantize_affine(x, scale, zp, qmin, qmax, rounding, _seed(rounding))
            assert q.dtype == R.code_dtype(qmin, qmax)
            assert qmin <= int(q.min()) and int(q.max()) <= qmax
            if qmax - qmin < 64:
                assert int(q.min()) == qmin and int(q.max()) == qmax, "spread input reaches both clip edges"


@st.composite
def _random_case(draw):
    ndim = draw(st.integers(0, 4))
    shape = [draw(st.integers(1 if ndim <= 2 else 1, 7)) for _ in range(ndim)]
    if ndim and draw(st.booleans()):
        shape[draw(st.integers(0, ndim - 1))] *= draw(st.sampled_from([1, 2, 4]))
    pshape = []
    for size in shape:
        divisors = [d for d in range(1, size + 1) if size % d == 0]
        pshape.append(draw(st.sampled_from(divisors)))
    # Drop some leading ones: the parameter may have fewer dims than x.
    while pshape and pshape[0] == 1 and draw(st.booleans()):
        pshape.pop(0)
    qname = draw(st.sampled_from(sorted(QRANGES)))
    dtype = draw(st.sampled_from(R.FLOAT_DTYPES))
    rounding = draw(st.sampled_from(R.ROUNDINGS))
    adversarial = draw(st.booleans())
    layout = draw(st.sampled_from(["contiguous", "transposed", "expanded_stride"]))
    seed = draw(st.integers(0, 2**31))
    offset = draw(st.integers(0, 2**40))
    return shape, pshape, qname, dtype, rounding, adversarial, layout, seed, offset


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_case())
def test_random_shapes_and_granularities(params):
    shape, pshape, qname, dtype, rounding, adversarial, layout, seed, offset = params
    qmin, qmax = QRANGES[qname]
    gen = torch.Generator().manual_seed(seed)
    scale, zp = random_params(pshape, qmin, qmax, gen)
    x = (adversarial_input if adversarial else spread_input)(shape, scale, zp, qmin, qmax, gen).to(dtype)
    if layout == "transposed" and x.dim() >= 2:
        x = x.transpose(0, -1).contiguous().transpose(0, -1)
    elif layout == "expanded_stride" and x.dim() >= 1:
        x = torch.stack([x, torch.zeros_like(x)], dim=-1)[..., 0]
    case = AffineCase(f"{shape}/{pshape}/{qname}/{dtype}/{layout}", x, scale, zp, qmin, qmax)
    check_all_ops(case, rounding, seed=torch.tensor([seed]), offset=offset)


# ---- dequantize ---------------------------------------------------------------------------------


@pytest.mark.parametrize("out_dtype", R.FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("qname", ["u8", "s8", "s16", "u16", "s4"])
def test_dequantize_matches_reference(qname, out_dtype):
    qmin, qmax = QRANGES[qname]
    gen = torch.Generator().manual_seed(7)
    for shape, pshape in (((33,), (1,)), ((3, 4, 5), (1, 4, 1)), ((6, 12), (6, 3)), ((), (1,)), ((0, 4), (1, 4))):
        scale, zp = random_params(pshape, qmin, qmax, gen)
        q = torch.randint(qmin, qmax + 1, shape, generator=gen).to(R.code_dtype(qmin, qmax))
        y = L.dequantize_affine(q, scale, zp, out_dtype)
        assert y.dtype == out_dtype and y.is_contiguous()
        R.assert_same_bits(y, R.dequantize_ref(q, scale, zp, out_dtype), f"{qname} {shape}")
        if q.dim() == 2 and q.numel():
            qt = q.t().contiguous().t()
            R.assert_same_bits(L.dequantize_affine(qt, scale, zp, out_dtype), y, "non-contiguous codes")


def test_dequantize_int32_codes_and_default_dtype():
    q = torch.tensor([-70000, -1, 0, 1, 70000, 2**24], dtype=torch.int32)
    scale, zp = torch.tensor([0.5]), torch.tensor([3], dtype=torch.int32)
    y = lowbit.ops.dequantize_affine(q, scale, zp)
    assert y.dtype == torch.float32
    R.assert_same_bits(y, R.dequantize_ref(q, scale, zp), "int32 codes")


@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_quantize_dequantize_round_trip_equals_fake_quantize(dtype):
    """For finite x: dequantize(quantize(x)) == fake_quantize(x), bit for bit, in every rounding."""
    for case in affine_cases(dtype, qranges=("s8", "u16"), seed=5):
        x, scale, zp, qmin, qmax = case.args()
        for rounding in R.ROUNDINGS:
            seed = _seed(rounding)
            q = L.quantize_affine(x, scale, zp, qmin, qmax, rounding, seed, 9)
            y = L.fake_quantize_affine(x, scale, zp, qmin, qmax, rounding, "integer", seed, 9)
            R.assert_same_bits(L.dequantize_affine(q, scale, zp, dtype), y, f"{case.id} {rounding}")


# ---- documented vectors and edge cases ---------------------------------------------------------


def test_methods_1_4_per_tensor_vector():
    """METHODS §1.4 [torch 1.13]: s=0.5, z=0, [-4, 4]: RNE ties and the integer-domain STE mask."""
    x = torch.tensor([0.25, 0.75, -0.25, 1.25, -1.25, 2.5, 100, -100, 0.74, 1.9, 2.1, 2.25, 2.26, -2.24, -2.25, -2.26],
                     requires_grad=True)
    y = lowbit.ops.fake_quantize_affine(x, torch.tensor([0.5]), torch.tensor([0], dtype=torch.int32), -4, 4)
    y.backward(torch.ones_like(y))
    assert y.tolist() == [0.0, 1.0, 0.0, 1.0, -1.0, 2.0, 2.0, -2.0, 0.5, 2.0, 2.0, 2.0, 2.0, -2.0, -2.0, -2.0]
    assert x.grad.tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0]
    y3 = lowbit.ops.fake_quantize_affine(x[:5].detach(), torch.tensor([0.5]), torch.tensor([3], dtype=torch.int32), 0, 7)
    assert y3.tolist() == [0.0, 1.0, 0.0, 1.0, -1.0]


def test_methods_1_4_per_channel_vector():
    x = torch.tensor([[0.1, -0.26, 0.5], [1.0, 3.0, -2.0]], requires_grad=True)
    y = lowbit.ops.fake_quantize_affine(x, torch.tensor([[0.1], [1.0]]), torch.tensor([[0], [2]], dtype=torch.int32),
                                        -2, 2)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(y, torch.tensor([[0.1, -0.2, 0.2], [0.0, 0.0, -2.0]]), rtol=0, atol=1e-7)
    assert x.grad.tolist() == [[1, 0, 0], [0, 0, 1]]


def test_methods_2_ste_variants_differ_past_the_edge():
    """s=0.5, [-4, 4]: x=2.1 passes the integer STE (RNE(4.2)=4) but not the real one (2.1 > 2.0)."""
    x = torch.tensor([2.1, 2.26, 2.0, -2.0, -2.1])
    s, z, g = torch.tensor([0.5]), torch.tensor([0], dtype=torch.int32), torch.ones(5)
    masks = {ste: L.fake_quantize_affine_backward(g, x, s, z, -4, 4, "half_even", ste).tolist() for ste in R.STES}
    assert masks["integer"] == [1, 0, 1, 1, 1]
    assert masks["real"] == [0, 0, 1, 1, 0]
    assert masks["identity"] == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("rounding,expected", [
    ("half_even", [2, 4, -2, -4, 0, -0.0, 0, 1, -1]),
    ("half_away", [3, 4, -3, -4, 1, -1, 0, 1, -1]),
    ("half_up", [3, 4, -2, -3, 1, -0.0, 0, 1, -1]),
    ("floor", [2, 3, -3, -4, 0, -1, 0, 1, -2]),
    ("ceil", [3, 4, -2, -3, 1, -0.0, 1, 2, -1]),
])
def test_rounding_mode_vectors(rounding, expected):
    """Each rounding's ties and near-ties with scale 1 (x·inv = x exactly)."""
    x = torch.tensor([2.5, 3.5, -2.5, -3.5, 0.5, -0.5, 0.49999997, 1.0000001, -1.0000001])
    q = L.quantize_affine(x, torch.tensor([1.0]), torch.tensor([0], dtype=torch.int32), -100, 100, rounding)
    assert q.tolist() == [int(e) for e in expected]
    y = L.fake_quantize_affine(x, torch.tensor([1.0]), torch.tensor([0], dtype=torch.int32), -100, 100, rounding)
    assert y.tolist() == [float(e) for e in expected]


@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_non_finite_contract(dtype):
    """±Inf saturates with zero gradient; NaN stays NaN in fake quant (gradient 0) and becomes z in codes."""
    x = torch.tensor([math.nan, math.inf, -math.inf, 0.3], dtype=dtype, requires_grad=True)
    s, z = torch.tensor([0.25]), torch.tensor([2], dtype=torch.int32)
    y = lowbit.ops.fake_quantize_affine(x, s, z, -8, 7)
    assert math.isnan(y[0].item())
    assert y[1].item() == (7 - 2) * 0.25 and y[2].item() == (-8 - 2) * 0.25
    y.backward(torch.ones_like(y))
    assert x.grad.tolist() == [0, 0, 0, 1]
    q = lowbit.ops.quantize_affine(x.detach(), s, z, -8, 7)
    assert q.tolist() == [2, 7, -8, 3]
    for ste in ("real", "integer"):
        dx = L.fake_quantize_affine_backward(torch.ones(4, dtype=dtype), x.detach(), s, z, -8, 7, "half_even", ste)
        assert dx.tolist() == [0, 0, 0, 1], ste
    dx = L.fake_quantize_affine_backward(torch.ones(4, dtype=dtype), x.detach(), s, z, -8, 7, "half_even", "identity")
    assert dx.tolist() == [1, 1, 1, 1]
    # Masked entries are dy * 0, as in torch's backward: a non-finite incoming gradient stays
    # visible (NaN) instead of being silently zeroed; a masked negative dy gives -0.
    g = torch.tensor([math.inf, math.nan, -math.inf, 2.0], dtype=dtype)
    dx = L.fake_quantize_affine_backward(g, x.detach(), s, z, -8, 7)
    assert torch.isnan(dx[:3]).all() and dx[3].item() == 2
    dx = L.fake_quantize_affine_backward(-torch.ones(4, dtype=dtype), x.detach(), s, z, -8, 7)
    assert torch.signbit(dx[:3]).all() and (dx[:3] == 0).all()


def test_finite_inputs_never_give_nan():
    gen = torch.Generator().manual_seed(11)
    x = torch.cat([torch.randn(1000, generator=gen) * 10.0 ** torch.randint(-30, 30, (1000,), generator=gen),
                   torch.tensor([3.4e38, -3.4e38, 1e-45, -1e-45, 0.0, -0.0])])
    for rounding in R.ROUNDINGS:
        for dtype in R.FLOAT_DTYPES:
            xd = x.to(dtype)
            xd = torch.where(torch.isfinite(xd), xd, 0)
            for scale in (1e-30, 1e-3, 1.0, 1e30):
                y = L.fake_quantize_affine(xd, torch.tensor([scale]), torch.tensor([0], dtype=torch.int32), -128, 127,
                                           rounding, "integer", _seed(rounding))
                assert not torch.isnan(y).any(), (rounding, dtype, scale)


@pytest.mark.parametrize("dtype", R.FLOAT_DTYPES, ids=str)
def test_empty_and_zero_dim(dtype):
    s, z = torch.tensor([0.1]), torch.tensor([1], dtype=torch.int32)
    for x in (torch.empty(0, dtype=dtype), torch.empty(3, 0, 2, dtype=dtype)):
        for rounding in R.ROUNDINGS:
            y = L.fake_quantize_affine(x, s, z, -8, 7, rounding, "integer", _seed(rounding))
            assert y.shape == x.shape and y.dtype == dtype
            q = L.quantize_affine(x, s, z, -8, 7, rounding, _seed(rounding))
            assert q.shape == x.shape and q.dtype == torch.int8
        assert L.dequantize_affine(q, s, z, dtype).shape == x.shape
        assert L.fake_quantize_affine_backward(x, x, s, z, -8, 7).shape == x.shape
    x0 = torch.tensor(0.34, dtype=dtype)
    for scale, zp in ((s, z), (s.reshape(()), z.reshape(())), (s.reshape(1, 1), z.reshape(1, 1))):
        y = L.fake_quantize_affine(x0, scale, zp, -8, 7)
        assert y.shape == () and y.dtype == dtype
        R.assert_same_bits(y, R.fake_quantize_ref(x0, s, z, -8, 7), "0-d")
        assert L.quantize_affine(x0, scale, zp, -8, 7).shape == ()


def test_enabled_switch():
    x = torch.randn(5, 8, requires_grad=True)
    s, z = torch.tensor([0.3]), torch.tensor([0], dtype=torch.int32)
    for flag in (torch.tensor(False), torch.tensor([False]), torch.tensor(0, dtype=torch.uint8)):
        y = lowbit.ops.fake_quantize_affine(x, s, z, -2, 1, enabled=flag)
        assert torch.equal(y, x.detach()) and y.data_ptr() != x.data_ptr()
        g = torch.randn(5, 8)
        (dx,) = torch.autograd.grad(y, x, g)
        assert torch.equal(dx, g)
    y_on = lowbit.ops.fake_quantize_affine(x, s, z, -2, 1, enabled=torch.tensor(True))
    R.assert_same_bits(y_on, R.fake_quantize_ref(x, s, z, -2, 1), "enabled=True")


def test_python_wrappers():
    """ops.* accept Python numbers for the parameters and draw a stochastic seed from torch's generator."""
    x = torch.randn(64)
    y = lowbit.ops.fake_quantize_affine(x, 0.25, 0, -8, 7)
    R.assert_same_bits(y, R.fake_quantize_ref(x, torch.tensor([0.25]), torch.tensor([0]), -8, 7), "python numbers")
    q = lowbit.ops.quantize_affine(x, 0.25, 3, 0, 15)
    assert q.dtype == torch.uint8
    assert torch.equal(lowbit.ops.dequantize_affine(q, 0.25, 3), R.dequantize_ref(q, torch.tensor([0.25]),
                                                                                 torch.tensor([3])))
    torch.manual_seed(3)
    a = lowbit.ops.fake_quantize_affine(x, 0.25, 0, -8, 7, rounding="stochastic")
    torch.manual_seed(3)
    b = lowbit.ops.fake_quantize_affine(x, 0.25, 0, -8, 7, rounding="stochastic")
    assert torch.equal(a, b)
    assert lowbit.ops.code_dtype(-8, 7) == torch.int8 and lowbit.ops.code_dtype(0, 65535) == torch.int32
    with pytest.raises(TypeError, match="scale must be a tensor"):
        lowbit.ops.fake_quantize_affine(x, "0.1", 0, -8, 7)
    with pytest.raises(TypeError, match="seed must be"):
        lowbit.ops.fake_quantize_affine(x, 0.1, 0, -8, 7, rounding="stochastic", seed=1.5)
