"""lowbit.ops.fake_quantize_learnable against torch._fake_quantize_learnable_per_{tensor,channel}_affine.

Bit for bit: outputs, input gradients (including the sign of zero), and every per-element term
of the scale and zero-point gradients (checked by one-hot upstream gradients: the sum of one
nonzero term and exact zeros is that term in any order). The totals are sums of those terms;
ATen sums with at::sum (order depends on its vector width and thread count), lowbit in its own
deterministic order, so totals are compared to float32 summation accuracy.
"""

from __future__ import annotations

import math

import pytest
import torch

from lowbit import ops


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def torch_learnable(x, scale, zp, qmin, qmax, gf, axis=None):
    x = x.detach().clone().requires_grad_(True)
    scale = scale.detach().clone().requires_grad_(True)
    zp = zp.detach().clone().requires_grad_(True)
    if axis is None:
        y = torch._fake_quantize_learnable_per_tensor_affine(x, scale, zp, qmin, qmax, gf)
    else:
        y = torch._fake_quantize_learnable_per_channel_affine(x, scale, zp, axis, qmin, qmax, gf)
    return x, scale, zp, y


def lowbit_learnable(x, scale, zp, qmin, qmax, gf, axis=None):
    x = x.detach().clone().requires_grad_(True)
    shape = [1] * x.dim()
    if axis is not None:
        shape[axis] = -1
    scale_p = scale.detach().clone().reshape(shape).requires_grad_(True)
    zp_p = zp.detach().clone().reshape(shape).requires_grad_(True)
    y = ops.fake_quantize_learnable(x, scale_p, zp_p, qmin, qmax, grad_factor=gf)
    return x, scale_p, zp_p, y


def test_methods_vectors():
    x = torch.tensor([-1.3, -0.2, 0.26, 0.74, 2.0, 5.0])
    dy = torch.tensor([1.0, 2, 3, 4, 5, 6])
    for gf, ds, dz in [(1.0, 21.92, -5.5), (1 / math.sqrt(18), 5.166593, -1.2963624)]:
        xx, s, z, y = lowbit_learnable(x, torch.tensor([0.5]), torch.tensor([1.0]), -2, 3, gf)
        y.backward(dy)
        assert y.tolist() == [-1.5, 0.0, 0.5, 0.5, 1.0, 1.0]
        assert xx.grad.tolist() == [1, 2, 3, 4, 0, 0]
        assert s.grad.item() == pytest.approx(ds, rel=1e-6)
        assert z.grad.item() == pytest.approx(dz, rel=1e-6)


@pytest.mark.parametrize("zp,y,ds,dz", [(1.5, [0, 1, 1], 2.0, -0.5), (2.5, [0, 1, 1], 1.8, -1.0),
                                        (0.5, [0, 1, 1.5], -0.2, 0.0)])
def test_zero_point_quirk(zp, y, ds, dz):
    # Forward rounds the zero point half to even, backward uses trunc(z + 0.5) (METHODS §4.3).
    x = torch.tensor([0.1, 0.9, 1.6])
    for impl in (lowbit_learnable, torch_learnable):
        xx, s, z, out = impl(x, torch.tensor([0.5]), torch.tensor([zp]), -4, 4, 1.0)
        out.backward(torch.ones(3))
        assert out.tolist() == y
        assert s.grad.item() == pytest.approx(ds, abs=1e-6)
        assert z.grad.item() == pytest.approx(dz, abs=1e-6)


def random_case(seed, shape, axis, qmin, qmax):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    channels = 1 if axis is None else shape[axis]
    scale = torch.rand(channels, generator=g) * 0.2 + 0.01
    zp = (torch.rand(channels, generator=g) * (qmax - qmin) + qmin).float()
    # Zero points on .5 exercise the rounding quirk; near-integer ones the clamp.
    zp[::3] = torch.floor(zp[::3]) + 0.5
    # Inputs exactly on rounding ties of x/scale and on the clip edges.
    sx = scale.reshape([-1] + [1] * (len(shape) - 1 - (axis or 0))) if axis is not None else scale
    if axis is not None:
        view = [1] * len(shape)
        view[axis] = -1
        sx = scale.reshape(view)
    ties = (torch.randint(qmin - 3, qmax + 3, shape, generator=g).float() + 0.5) * sx
    x = torch.where(torch.rand(shape, generator=g) < 0.3, ties, x)
    dy = torch.randn(shape, generator=g)
    dy[..., ::5] = -dy[..., ::5].abs()  # negative dy outside the range gives -0 in ATen's dx
    return x, scale, zp, dy


CASES = [
    pytest.param((2049,), None, 0, 255, id="per_tensor_quint8"),
    pytest.param((40, 33), None, -128, 127, id="per_tensor_qint8"),
    pytest.param((5, 7, 3, 4), None, -8, 7, id="per_tensor_4bit"),
    pytest.param((16, 37), 0, -128, 127, id="per_channel_axis0"),
    pytest.param((4, 6, 5, 5), 1, 0, 255, id="per_channel_axis1"),
    pytest.param((9, 8), 1, -8, 7, id="per_channel_last_axis"),
]


@pytest.mark.parametrize("shape,axis,qmin,qmax", CASES)
@pytest.mark.parametrize("grad_factor", [1.0, 0.0137])
def test_parity_with_torch(shape, axis, qmin, qmax, grad_factor):
    x, scale, zp, dy = random_case(7, shape, axis, qmin, qmax)
    tx, ts, tz, ty = torch_learnable(x, scale, zp, qmin, qmax, grad_factor, axis)
    lx, ls, lz, ly = lowbit_learnable(x, scale, zp, qmin, qmax, grad_factor, axis)
    assert torch.equal(bits(ly.detach()), bits(ty.detach()))
    ty.backward(dy)
    ly.backward(dy)
    assert torch.equal(bits(lx.grad), bits(tx.grad))  # dX bit for bit, signed zeros included
    torch.testing.assert_close(ls.grad.reshape(-1), ts.grad.reshape(-1), rtol=1e-5,
                               atol=1e-5 * (dy.abs().sum().item() + 1))
    torch.testing.assert_close(lz.grad.reshape(-1), tz.grad.reshape(-1), rtol=1e-5,
                               atol=1e-5 * (dy.abs().sum().item() + 1))


@pytest.mark.parametrize("shape,axis,qmin,qmax", CASES[:1] + CASES[3:4] + CASES[5:6])
def test_per_element_terms_bit_exact(shape, axis, qmin, qmax):
    # One-hot dy: each parameter gradient is then exactly one element's term.
    x, scale, zp, _ = random_case(11, shape, axis, qmin, qmax)
    g = torch.Generator().manual_seed(3)
    flat = torch.randperm(x.numel(), generator=g)[:150]
    for idx in flat.tolist():
        dy = torch.zeros(x.numel())
        dy[idx] = float(torch.randn(1, generator=g))
        dy = dy.reshape(shape)
        tx, ts, tz, ty = torch_learnable(x, scale, zp, qmin, qmax, 0.37, axis)
        lx, ls, lz, ly = lowbit_learnable(x, scale, zp, qmin, qmax, 0.37, axis)
        ty.backward(dy)
        ly.backward(dy)
        assert torch.equal(bits(lx.grad), bits(tx.grad))
        # +0 and -0 terms of other elements may sum either way; compare values, which are exact.
        assert torch.equal(ls.grad.reshape(-1), ts.grad.reshape(-1)), idx
        assert torch.equal(lz.grad.reshape(-1), tz.grad.reshape(-1)), idx


def test_parity_module_style_grad_factor():
    # torch.ao's _LearnableFakeQuantize with use_grad_scaling: grad_factor = 1/sqrt(numel * qmax).
    x, scale, zp, dy = random_case(13, (64, 50), None, 0, 255)
    gf = 1.0 / math.sqrt(x.numel() * 255)
    tx, ts, tz, ty = torch_learnable(x, scale, zp, 0, 255, gf)
    lx, ls, lz, ly = lowbit_learnable(x, scale, zp, 0, 255, gf)
    ty.backward(dy)
    ly.backward(dy)
    assert torch.equal(ly.detach(), ty.detach())
    assert torch.equal(lx.grad, tx.grad)
    torch.testing.assert_close(ls.grad.reshape(-1), ts.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lz.grad.reshape(-1), tz.grad, rtol=1e-5, atol=1e-6)


def test_tiny_and_negative_scales_clamp_like_torch_ao():
    # torch.ao clamps the scale to float32 eps before calling the op; lowbit does it inside.
    x = torch.randn(100)
    for s in (0.0, -0.5, 1e-12):
        ly = ops.fake_quantize_learnable(x, torch.tensor([s]), torch.tensor([3.0]), 0, 255)
        ty = torch._fake_quantize_learnable_per_tensor_affine(x, torch.tensor([2.0**-23]), torch.tensor([3.0]), 0,
                                                              255, 1.0)
        assert torch.equal(ly, ty)


def fma_sensitive_inputs(count=12, seed=0):
    """(scale, zero point, x) where zp + x·(1/s) rounds to a different code with and without a
    fused multiply-add, right at the lower clip edge: the dx mask tells the two forms apart."""
    import numpy as np

    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        s = np.float32(rng.uniform(0.001, 0.05))
        inv = np.float32(1) / s
        z = float(rng.integers(100, 250))
        x0 = np.float32((-128.5 - z) / np.float64(inv))
        b = np.frombuffer(x0.tobytes(), np.int32)[0]
        xs = np.frombuffer((b + np.arange(-3, 4)).astype(np.int32).tobytes(), np.float32)
        mul = np.round(np.float32(z) + (xs * inv).astype(np.float32))
        fused = np.round((np.float64(z) + xs.astype(np.float64) * np.float64(inv)).astype(np.float32))
        for i in np.nonzero(mul != fused)[0]:
            found.append((float(s), z, float(xs[i])))
    return found


def test_fma_sensitive_edge_follows_atens_capability():
    # ATen's AVX2/AVX-512 builds of its learnable gradient kernel fuse zp + x·inv into an FMA,
    # its DEFAULT build does not; lowbit follows the active one (core/lsq.h).
    for s, z, x in fma_sensitive_inputs():
        tx, ts, tz, ty = torch_learnable(torch.tensor([x]), torch.tensor([s]), torch.tensor([z]), -128, 255, 1.0)
        lx, ls, lz, ly = lowbit_learnable(torch.tensor([x]), torch.tensor([s]), torch.tensor([z]), -128, 255, 1.0)
        ty.backward(torch.ones(1))
        ly.backward(torch.ones(1))
        assert torch.equal(lx.grad, tx.grad), (s, z, x)
        assert torch.equal(ls.grad.reshape(-1), ts.grad), (s, z, x)
        assert torch.equal(lz.grad.reshape(-1), tz.grad), (s, z, x)


def test_parity_under_the_other_aten_capability():
    # Run this file's parity tests in a process whose ATen uses the other kernel build.
    import os
    import subprocess
    import sys

    import lowbit

    other = "avx2" if torch.backends.cpu.get_cpu_capability() == "DEFAULT" else "default"
    if other == "avx2" and not lowbit.build_info()["cpu_features"]["avx2"]:
        pytest.skip("this CPU has no AVX2, so ATen has no second capability to compare against")
    env = dict(os.environ, ATEN_CPU_CAPABILITY=other)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k",
           "parity_with_torch or per_element or fma_sensitive"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
