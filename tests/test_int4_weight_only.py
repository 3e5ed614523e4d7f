"""Int4WeightOnlyLinear and quantize_int4_weight_only: quantization against a pure-torch
reference, the packed buffers, dtypes, state_dict round trip, torch.compile and the model-level
swap with its errors and warnings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lowbit
from lowbit import ops
from lowbit.nn import Int4WeightOnlyLinear, quantize_int4_weight_only


def _reference_qparams(w: torch.Tensor, group: int):
    """torch.ao's MinMaxObserver arithmetic per group, onto [0, 15]: the range widened to 0,
    scale = (max - min) / 15 (at least 2^-23), zero point = 0 - round(min / scale), clamped."""
    g = w.float().reshape(w.shape[0], -1, group)
    lo, hi = g.amin(-1).clamp(max=0), g.amax(-1).clamp(min=0)
    scale = ((hi - lo) / 15).clamp(min=2.0 ** -23)
    zero = (0 - torch.round(lo / scale)).clamp(0, 15).to(torch.int32)
    q = torch.clamp(torch.round(w.float() / scale.repeat_interleave(group, 1)) + zero.repeat_interleave(group, 1), 0, 15)
    return q.to(torch.uint8), scale, zero


@pytest.mark.parametrize("n, k, group", [(40, 256, 64), (8, 128, 128), (13, 64, 8), (96, 512, 128)])
def test_from_float_matches_reference_quantization_and_dequantized_linear(n, k, group):
    torch.manual_seed(n + k)
    linear = nn.Linear(k, n)
    layer = Int4WeightOnlyLinear.from_float(linear, group)
    codes, scale, zero = layer.codes_and_qparams()
    want_codes, want_scale, want_zero = _reference_qparams(linear.weight.detach(), group)
    assert torch.equal(scale, want_scale) and torch.equal(zero, want_zero)
    assert torch.equal(codes, want_codes)
    x = torch.randn(5, k)
    y = layer(x)
    assert torch.equal(y, ops.int4_weight_linear(x, ops.int4_pack_weight(codes), scale, zero, linear.bias.detach()))
    w_deq = layer.dequantized_weight()
    ref = x.double() @ w_deq.double().T + linear.bias.double()
    assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-5)
    # Quantization error: each weight within half a step of its group's grid.
    step = scale.repeat_interleave(group, 1)
    assert ((w_deq - linear.weight.detach()).abs() <= 0.5 * step * (1 + 1e-5)).all()


def test_buffers_dtypes_size_and_state_dict_round_trip():
    torch.manual_seed(1)
    linear = nn.Linear(256, 64, bias=False)
    layer = Int4WeightOnlyLinear.from_float(linear, 128)
    assert layer.bias is None
    assert layer.packed_weight.dtype == torch.int32 and layer.packed_weight.shape == (8, 32, 8)
    assert layer.packed_params.dtype == torch.float32 and layer.packed_params.shape == (8, 2, 2, 8)
    weight_bytes = layer.packed_weight.numel() * 4 + layer.packed_params.numel() * 4
    assert weight_bytes * 7 < linear.weight.numel() * 4  # 1/8 of float32 plus 2 floats per 128 weights
    fresh = Int4WeightOnlyLinear(256, 64, 128, bias=False)
    fresh.load_state_dict(layer.state_dict())
    x = torch.randn(3, 256)
    assert torch.equal(fresh(x), layer(x))
    for dtype in (torch.bfloat16, torch.float16):
        got = layer(x.to(dtype))
        assert got.dtype == dtype and torch.equal(got, layer(x.to(dtype).float()).to(dtype))


def test_bfloat16_linear_is_quantized_from_its_float32_values():
    torch.manual_seed(2)
    linear = nn.Linear(64, 16).to(torch.bfloat16)
    layer = Int4WeightOnlyLinear.from_float(linear, 32)
    codes, scale, zero = layer.codes_and_qparams()
    want_codes, want_scale, want_zero = _reference_qparams(linear.weight.detach().float(), 32)
    assert torch.equal(codes, want_codes) and torch.equal(scale, want_scale) and torch.equal(zero, want_zero)
    assert layer.bias.dtype == torch.float32


def test_all_zero_group_and_constant_groups_quantize_exactly():
    linear = nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[1, :8] = 0.75  # one positive constant group: range [0, 0.75]
    layer = Int4WeightOnlyLinear.from_float(linear, 8)
    assert torch.equal(layer.dequantized_weight(), linear.weight.detach())


def test_compile_fullgraph_and_export():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8))
    quantize_int4_weight_only(model, group_size=32)
    x = torch.randn(4, 64)
    want = model(x)
    compiled = torch.compile(model, fullgraph=True)
    assert torch.equal(compiled(x), want)
    exported = torch.export.export(model, (x,))
    assert torch.equal(exported.module()(x), want)


def test_quantize_int4_weight_only_swaps_linears_and_warns_about_the_rest():
    torch.manual_seed(4)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.Linear(128, 256)
            self.down = nn.Linear(256, 128)
            self.head = nn.Linear(100, 10)  # 100 is not a multiple of the group

        def forward(self, x):
            return self.head(self.down(torch.relu(self.up(x)))[..., :100])

    model = Block()
    x = torch.randn(2, 128)
    want = model(x)
    with pytest.warns(UserWarning, match=r"kept as they are: 'head' \(in_features 100 is not a multiple of group_size 64\)"):
        out = lowbit.quantize_int4_weight_only(model, group_size=64)
    assert out is model
    assert isinstance(model.up, Int4WeightOnlyLinear) and isinstance(model.down, Int4WeightOnlyLinear)
    assert type(model.head) is nn.Linear
    got = model(x)
    assert (got - want).abs().max() < 0.1 * want.abs().max()

    only_up = Block()
    quantize_int4_weight_only(only_up, 64, filter_fn=lambda name, layer: name == "up")
    assert isinstance(only_up.up, Int4WeightOnlyLinear) and type(only_up.down) is nn.Linear


def test_bad_inputs():
    with pytest.raises(ValueError, match="group_size must be a positive multiple of 8, got 12"):
        Int4WeightOnlyLinear.from_float(nn.Linear(48, 4), 12)
    with pytest.raises(ValueError, match="in_features = 40 is not a multiple of group_size = 16"):
        Int4WeightOnlyLinear.from_float(nn.Linear(40, 4), 16)
    with pytest.raises(TypeError, match="from_float takes an nn.Linear"):
        Int4WeightOnlyLinear.from_float(nn.Conv2d(8, 8, 1), 8)
    bad = nn.Linear(16, 4)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        Int4WeightOnlyLinear.from_float(bad, 8)
    with pytest.raises(ValueError, match=r"no layer to convert; kept: '0' \(in_features 20 is not a multiple"):
        quantize_int4_weight_only(nn.Sequential(nn.Linear(20, 4)), 16)
    with pytest.raises(ValueError, match="group_size must be a positive multiple of 8"):
        quantize_int4_weight_only(nn.Sequential(nn.Linear(16, 4)), 0)


@pytest.mark.parametrize("spec", [
    lowbit.QuantSpec(lowbit.formats.Int(4, signed=False), granularity="per_group", group_size=32, symmetric=False),
    lowbit.QuantSpec(lowbit.formats.Int(4), granularity="per_group", group_size=16),
    lowbit.QuantSpec(lowbit.formats.Int(4), granularity="per_channel"),
    lowbit.QuantSpec(lowbit.formats.Int(3, signed=False), symmetric=False),
])
def test_weight_only_qat_layers_deploy_on_their_trained_grid(spec):
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 16))
    lowbit.prepare_qat(model, weight=spec)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):  # a few QAT steps, so the grids are the trained ones
        x = torch.randn(32, 64)
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x = torch.randn(7, 64)
    with torch.no_grad():
        want = model(x)
        fq_weights = [layer.weight_quantizer(layer.weight) for layer in (model[0], model[2])]
    lowbit.quantize_int4_weight_only(model)
    assert isinstance(model[0], Int4WeightOnlyLinear) and isinstance(model[2], Int4WeightOnlyLinear)
    for layer, fq in zip((model[0], model[2]), fq_weights):
        assert torch.equal(layer.dequantized_weight(), fq)  # the same weights, exactly
    got = model(x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_from_quantized_refuses_what_it_cannot_run():
    act = lowbit.QuantSpec(lowbit.formats.Int(8, signed=False), symmetric=False)
    w4 = lowbit.QuantSpec(lowbit.formats.Int(4), granularity="per_channel")
    both = lowbit.prepare_qat(nn.Sequential(nn.Linear(16, 4)), weight=w4, activation=act)
    both(torch.randn(2, 16))
    with pytest.raises(ValueError, match="quantizes its input too"):
        Int4WeightOnlyLinear.from_quantized(both[0])
    wide = lowbit.prepare_qat(nn.Sequential(nn.Linear(16, 4)), weight=lowbit.QuantSpec(lowbit.formats.Int(8)))
    wide(torch.randn(2, 16))
    with pytest.raises(ValueError, match=r"weight grid \[-128, 127\] has more than 16 levels"):
        Int4WeightOnlyLinear.from_quantized(wide[0])
    with pytest.warns(UserWarning, match=r"kept as they are: '0' \(from_quantized: the weight grid"):
        lowbit.quantize_int4_weight_only(nn.Sequential(wide[0], nn.Linear(16, 4)), group_size=16)
    with pytest.raises(TypeError, match="takes a lowbit.nn.QuantLinear"):
        Int4WeightOnlyLinear.from_quantized(nn.Linear(16, 4))
