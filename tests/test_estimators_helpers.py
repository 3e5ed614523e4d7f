"""Estimator helpers: LSQ gradient scale and initialisations, LSQ+ MSE init, PACT regulariser,
Quantization Networks' temperature schedule, levels and thresholds."""

from __future__ import annotations

import math

import pytest
import torch

from lowbit import ops


def test_lsq_grad_scale():
    assert ops.lsq_grad_scale(1000, 3) == pytest.approx(0.018257418583505537, rel=1e-15)
    for bad in [(0, 3), (10, 0), (10.5, 3), (True, 3)]:
        with pytest.raises(ValueError, match="must be a positive int"):
            ops.lsq_grad_scale(*bad)


def test_lsq_init_scale_per_tensor_and_per_channel():
    w = torch.tensor([[1.0, -3.0], [0.5, 0.5]])
    assert ops.lsq_init_scale(w, 3).item() == pytest.approx(2 * 1.25 / math.sqrt(3))
    per_row = ops.lsq_init_scale(w, 3, param_shape=(2, 1))
    assert per_row.shape == (2, 1)
    assert per_row.flatten().tolist() == pytest.approx([2 * 2.0 / math.sqrt(3), 2 * 0.5 / math.sqrt(3)])
    with pytest.raises(ValueError, match="does not tile"):
        ops.lsq_init_scale(w, 3, param_shape=(3, 1))


def test_lsq_plus_weight_init():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 100, generator=g) * 0.1 + 0.02
    s = ops.lsq_plus_init_weight_scale(w, 4)
    mu, sd = w.mean(), w.std(unbiased=False)
    assert s.item() == pytest.approx(max(abs(mu - 3 * sd), abs(mu + 3 * sd)).item() / 8, rel=1e-5)
    assert ops.lsq_plus_init_weight_scale(w, 4, param_shape=(64, 1)).shape == (64, 1)


def test_lsq_plus_activation_init_minimises_mse():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20000, generator=g) * 0.5 - 0.2  # swish-like asymmetric activations
    x = torch.where(x < -0.3, -0.3 + 0.01 * x, x)
    s, b = ops.lsq_plus_init_activation(x, 0, 15)

    def mse(s, b):
        return (ops.fake_quantize_lsq(x, s, 0, 15, offset=b) - x).square().mean().item()

    best = mse(s, b)
    # Better than the plain min-max range, and no better point among nearby perturbations.
    mn, mx = x.min(), x.max()
    assert best <= mse(((mx - mn) / 15).reshape(1), mn.reshape(1)) + 1e-12
    for ds in (0.97, 1.03):
        for db in (-0.01, 0.01):
            assert best <= mse(s * ds, b + db) * 1.02
    per_channel = ops.lsq_plus_init_activation(x.reshape(4, 5000), 0, 15, param_shape=(4, 1), grid=6)
    assert per_channel[0].shape == (4, 1) and per_channel[1].shape == (4, 1)


def test_pact_regularizer():
    a = torch.tensor([2.0, 3.0], requires_grad=True)
    r = ops.pact_regularizer(a, 1e-3)
    assert r.item() == pytest.approx(1e-3 * 13)
    r.backward()
    assert a.grad.tolist() == pytest.approx([4e-3, 6e-3])
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        ops.pact_regularizer(a, -1.0)


def test_sigmoid_temperature_schedule():
    assert ops.sigmoid_temperature(0) == 10.0
    assert ops.sigmoid_temperature(4) == 50.0
    assert ops.sigmoid_temperature(500) == 2000.0
    assert ops.sigmoid_temperature(3, base=5.0, max_temperature=12.0) == 12.0
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        ops.sigmoid_temperature(-1)


def test_sigmoid_levels_and_thresholds():
    assert ops.sigmoid_levels(2).tolist() == [-1.0, 0.0, 1.0]
    assert ops.sigmoid_levels(3).tolist() == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert ops.sigmoid_levels(2, signed=False).tolist() == [0.0, 1.0, 2.0, 3.0]
    assert ops.sigmoid_thresholds(torch.tensor([-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0])).tolist() == \
        [-3.0, -1.5, -0.5, 0.5, 1.5, 3.0]
    with pytest.raises(ValueError, match="bits must be in"):
        ops.sigmoid_levels(1)
    # At a high temperature the soft staircase approaches the hard one.
    levels = ops.sigmoid_levels(3)
    x = torch.linspace(-4, 4, 1001)
    x = x[((x.unsqueeze(1) - ops.sigmoid_thresholds(levels)).abs() > 0.05).all(1)]
    args = (levels, ops.sigmoid_thresholds(levels), torch.tensor([1.0]), torch.tensor([1.0]))
    soft = ops.fake_quantize_sigmoid(x, *args, torch.tensor([ops.sigmoid_temperature(199)]))
    hard = ops.fake_quantize_sigmoid(x, *args, torch.tensor([1.0]), hard=True)
    assert (soft - hard).abs().max().item() < 1e-6
