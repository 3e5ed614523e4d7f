"""Parity with PyTorch's own fake-quant ops (METHODS §1.4): ``fake_quantize_affine`` with half-even
rounding and the integer STE equals ``torch.fake_quantize_per_tensor_affine`` and
``torch.fake_quantize_per_channel_affine`` bit for bit, outputs and input gradients, in float32,
float16 and bfloat16, on random and adversarial inputs (exact ties, clip edges, half a step past
them and their ulp neighbours, ±0, huge values, ±Inf).

Gradients are bitwise too, including the sign of masked zeros: like torch's ``dY * mask``, the
backward multiplies by the mask (a masked negative dY gives -0, an infinite one NaN).
NaN inputs are excluded from the parity (torch maps NaN to the qmin level; lowbit keeps NaN, as
documented in cpp/core/affine.h) and tested in test_ops_affine.py.
"""

from __future__ import annotations

import math

import pytest
import torch

import lowbit
import reference as R
from samples import QRANGES, adversarial_input, random_params, spread_input

DTYPES = R.FLOAT_DTYPES
TORCH_QRANGES = ["u8", "s8", "s4", "u4", "u7", "s16", "u16"]


def _lowbit(x, scale, zp, qmin, qmax, grad):
    xr = x.detach().clone().requires_grad_(True)
    y = lowbit.ops.fake_quantize_affine(xr, scale, zp, qmin, qmax)
    y.backward(grad)
    return y.detach(), xr.grad


def _torch(fn, x, grad):
    xr = x.detach().clone().requires_grad_(True)
    y = fn(xr)
    y.backward(grad)
    return y.detach(), xr.grad


def _inputs(shape, scale_for_inputs, zp_for_inputs, qmin, qmax, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    xs = [spread_input(shape, scale_for_inputs, zp_for_inputs, qmin, qmax, gen),
          adversarial_input(shape, scale_for_inputs, zp_for_inputs, qmin, qmax, gen)]
    return [x.to(dtype) for x in xs], torch.randn(shape, generator=gen).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("qname", TORCH_QRANGES)
def test_per_tensor_parity(qname, dtype):
    qmin, qmax = QRANGES[qname]
    gen = torch.Generator().manual_seed(qmax + 7)
    for trial in range(6):
        scale, zp = random_params((1,), qmin, qmax, gen, pow2=trial % 2 == 1)
        xs, grad = _inputs((1031,), scale, zp, qmin, qmax, dtype, seed=trial)
        for x in xs:
            y, dx = _lowbit(x, scale, zp, qmin, qmax, grad)
            s_f, z_i = float(scale), int(zp)
            ty, tdx = _torch(lambda t: torch.fake_quantize_per_tensor_affine(t, s_f, z_i, qmin, qmax), x, grad)
            R.assert_same_bits(y, ty, f"{qname} {dtype} scalar-qparams output")
            R.assert_same_bits(dx, tdx, f"{qname} {dtype} scalar-qparams grad")
            ty2, tdx2 = _torch(lambda t: torch.fake_quantize_per_tensor_affine(t, scale, zp, qmin, qmax), x, grad)
            R.assert_same_bits(y, ty2, f"{qname} {dtype} tensor-qparams output")
            R.assert_same_bits(dx, tdx2, f"{qname} {dtype} tensor-qparams grad")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["nchw_axis1", "rows_axis0", "last_axis", "nchw_axis1_channels_last",
                                    "rows_axis0_transposed"])
def test_per_channel_parity(layout, dtype):
    shape, axis = {"nchw_axis1": ((3, 8, 5, 7), 1), "rows_axis0": ((16, 67), 0), "last_axis": ((9, 4, 12), 2),
                   "nchw_axis1_channels_last": ((3, 8, 5, 7), 1), "rows_axis0_transposed": ((16, 67), 0)}[layout]
    C = shape[axis]
    param_shape = [1] * len(shape)
    param_shape[axis] = C
    for qname in ("u8", "s8", "s4", "s16"):
        qmin, qmax = QRANGES[qname]
        gen = torch.Generator().manual_seed(qmax + axis)
        for trial in range(3):
            scale, zp = random_params((C,), qmin, qmax, gen, pow2=trial == 1)
            ps, pz = scale.reshape(param_shape), zp.reshape(param_shape)
            xs, grad = _inputs(shape, ps, pz, qmin, qmax, dtype, seed=trial)
            for x in xs:
                if layout.endswith("channels_last"):
                    x = x.contiguous(memory_format=torch.channels_last)
                elif layout.endswith("transposed"):
                    x = x.t().contiguous().t()
                y, dx = _lowbit(x, ps, pz, qmin, qmax, grad)
                ty, tdx = _torch(lambda t: torch.fake_quantize_per_channel_affine(t, scale, zp, axis, qmin, qmax),
                                 x, grad)
                # torch's per-channel CPU kernel casts z + RNE(x/s) to int64 before clamping, which
                # overflows beyond 2^63 (see test_per_channel_overflow_is_a_torch_bug): compare the rest.
                ok = _per_channel_code_fits_int64(x, ps)
                assert ok.float().mean() > 0.6
                R.assert_same_bits(y[ok], ty[ok], f"{layout} {qname} {dtype} output")
                R.assert_same_bits(dx[ok], tdx[ok], f"{layout} {qname} {dtype} grad")
                R.assert_same_bits(y[~ok], R.fake_quantize_ref(x, ps, pz, qmin, qmax)[~ok], "saturated by lowbit")


def _per_channel_code_fits_int64(x, param_scale):
    inv = 1.0 / R.expand_param(param_scale, x.shape).float()
    return (x.float() * inv).abs() < 2.0**62


def test_per_channel_overflow_is_a_torch_bug():
    """torch.fake_quantize_per_channel_affine (CPU, torch 2.13) sends +Inf and codes past 2^63 to the
    qmin level (an int64 cast of an out-of-range float), unlike its own per-tensor op, which
    saturates them to qmax. lowbit saturates in both granularities: +Inf and huge values -> qmax."""
    x = torch.tensor([[1e30, 3e38, math.inf, -1e30, -math.inf, 1.0]])
    scale, zp = torch.tensor([0.1]), torch.tensor([3], dtype=torch.int32)
    torch_pc = torch.fake_quantize_per_channel_affine(x, scale, zp, 0, 0, 255)
    torch_pt = torch.fake_quantize_per_tensor_affine(x, 0.1, 3, 0, 255)
    ours = lowbit.ops.fake_quantize_affine(x, scale.reshape(1, 1), zp.reshape(1, 1), 0, 255)
    qmax_level, qmin_level = (255 - 3) * 0.1, (0 - 3) * 0.1
    assert torch_pc[0, :3].tolist() == pytest.approx([qmin_level] * 3)      # torch per-channel: wrong end
    assert torch_pt[0, :3].tolist() == pytest.approx([qmax_level] * 3)      # torch per-tensor: saturates
    R.assert_same_bits(ours, torch_pt, "lowbit saturates like torch's per-tensor op")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_infinities_match_torch(dtype):
    """±Inf saturate to the qmax/qmin level with a zero gradient, in both libraries."""
    x = torch.tensor([math.inf, -math.inf, 1.0, -1.0, 3e38, -3e38], dtype=dtype).clamp(
        min=torch.finfo(dtype).min, max=torch.finfo(dtype).max)
    x[0], x[1] = math.inf, -math.inf
    grad = torch.ones_like(x)
    scale, zp = torch.tensor([0.1]), torch.tensor([3], dtype=torch.int32)
    y, dx = _lowbit(x, scale, zp, -8, 7, grad)
    ty, tdx = _torch(lambda t: torch.fake_quantize_per_tensor_affine(t, 0.1, 3, -8, 7), x, grad)
    R.assert_same_bits(y, ty, "inf output")
    R.assert_same_bits(dx, tdx, "inf grad")


def test_masked_gradient_is_dy_times_mask():
    """Masked gradients are dY * 0 as in torch: -0 for a negative dY, NaN for an infinite dY."""
    x = torch.tensor([100.0, -100.0, 0.1, 100.0])
    grad = torch.tensor([-2.0, -3.0, -4.0, math.inf])
    _, dx = _lowbit(x, torch.tensor([0.1]), torch.tensor([0], dtype=torch.int32), -8, 7, grad)
    _, tdx = _torch(lambda t: torch.fake_quantize_per_tensor_affine(t, 0.1, 0, -8, 7), x, grad)
    R.assert_same_bits(dx, tdx, "masked grads")
    assert torch.signbit(dx[:2]).all() and torch.isnan(dx[3])


def test_default_fake_quant_modules_agree():
    """torch.ao's FakeQuantize (MovingAverageMinMaxObserver, quint8) then the same fake quant from
    lowbit's observer op + choose_qparams + fake_quantize_affine: identical outputs and gradients."""
    from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver

    fq = FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8)
    lo, hi = torch.full((1,), math.inf), torch.full((1,), -math.inf)
    gen = torch.Generator().manual_seed(0)
    for step in range(4):
        x = (torch.randn(257, generator=gen) * (step + 1) + step).requires_grad_(True)
        xl = x.detach().clone().requires_grad_(True)
        y = fq(x)
        lowbit.ops.observe_moving_average_minmax_(xl.detach(), lo, hi)
        scale, zp = lowbit.ops.choose_qparams(lo, hi, 0, 255)
        yl = lowbit.ops.fake_quantize_affine(xl, scale, zp, 0, 255)
        R.assert_same_bits(yl, y.detach(), f"step {step} output")
        g = torch.randn(257, generator=gen)
        y.backward(g)
        yl.backward(g)
        R.assert_same_bits(xl.grad, x.grad, f"step {step} grad")
