"""QuantLinear / QuantConv2d against references built from torch's own fake-quant ops."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lowbit import QuantSpec
from lowbit.formats import Int
from lowbit.nn import FakeQuantize, QuantConv2d, QuantLinear

W_PER_CHANNEL = QuantSpec(Int(8, narrow_range=True), granularity="per_channel")
W_PER_TENSOR = QuantSpec(Int(8))
A_AFFINE = QuantSpec(Int(8, signed=False), symmetric=False, observer="ema")
A_PER_CHANNEL = QuantSpec(Int(8, signed=False), granularity="per_channel", symmetric=False)


def _torch_fake_quantize(x, quantizer: FakeQuantize, axis):
    """torch.fake_quantize_* with the quantizer's current qparams (None: no quantizer)."""
    if quantizer is None:
        return x
    scale, zero_point = quantizer.calculate_qparams()
    if scale.numel() == 1:
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, quantizer.qmin, quantizer.qmax)
    return torch.fake_quantize_per_channel_affine(x, scale.flatten(), zero_point.flatten(), axis % x.dim(),
                                                  quantizer.qmin, quantizer.qmax)


def _check_against_reference(layer, reference_forward, x, input_axis):
    """One training forward/backward of `layer` vs torch ops with the qparams `layer` used."""
    x = x.clone().requires_grad_()
    y = layer(x)
    grad = torch.randn_like(y)
    y.backward(grad)

    x_ref = x.detach().clone().requires_grad_()
    w_ref = layer.weight.detach().clone().requires_grad_()
    b_ref = None if layer.bias is None else layer.bias.detach().clone().requires_grad_()
    y_ref = reference_forward(_torch_fake_quantize(x_ref, layer.input_quantizer, input_axis),
                              _torch_fake_quantize(w_ref, layer.weight_quantizer, 0), b_ref)
    y_ref.backward(grad)
    assert torch.equal(y, y_ref)
    assert torch.equal(x.grad, x_ref.grad)
    assert torch.equal(layer.weight.grad, w_ref.grad)
    if b_ref is not None:
        assert torch.equal(layer.bias.grad, b_ref.grad)


@pytest.mark.parametrize("weight_spec, activation_spec, shape", [
    (W_PER_CHANNEL, A_AFFINE, (8, 12)),
    (W_PER_TENSOR, None, (8, 12)),
    (None, A_AFFINE, (8, 12)),
    (W_PER_CHANNEL, A_PER_CHANNEL, (3, 5, 12)),
    (QuantSpec(Int(4), granularity="per_channel", symmetric=False, observer="ema"), A_AFFINE, (2, 3, 4, 12)),
])
@pytest.mark.parametrize("bias", [True, False])
def test_quant_linear_matches_reference(weight_spec, activation_spec, shape, bias):
    torch.manual_seed(0)
    layer = QuantLinear(12, 7, bias=bias, weight_spec=weight_spec, activation_spec=activation_spec).train()
    for step in range(3):
        _check_against_reference(layer, F.linear, torch.randn(shape) * (step + 1), -1)
        layer.zero_grad()
    if activation_spec is not None and activation_spec.observer == "minmax":
        fresh = QuantLinear(12, 7, activation_spec=activation_spec).train()
        x = torch.randn(shape)
        fresh(x)
        per_channel = activation_spec.granularity == "per_channel"
        expected = x.reshape(-1, 12).amax(0) if per_channel else x.max().reshape(1)
        assert torch.equal(fresh.input_quantizer.max_val, expected)


def test_quant_linear_per_group_weights():
    torch.manual_seed(0)
    spec = QuantSpec(Int(4), granularity="per_group", group_size=4)
    layer = QuantLinear(16, 6, weight_spec=spec).train()
    assert layer.weight_quantizer.param_shape == (6, 4)
    x = torch.randn(5, 16)
    y = layer(x)
    scale, zero_point = layer.weight_quantizer.calculate_qparams()
    # Groups of 4 along in_features == per-channel fake quant of the [6*4, 4] reshaped weight.
    w_ref = torch.fake_quantize_per_channel_affine(layer.weight.detach().reshape(24, 4), scale.flatten(),
                                                   zero_point.flatten(), 0, -8, 7).reshape(6, 16)
    assert torch.equal(y, F.linear(x, w_ref, layer.bias))


CONV_CONFIGS = [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 1), padding=(1, 0), dilation=(2, 1), bias=False),
    dict(kernel_size=3, padding="same", dilation=2),
    dict(kernel_size=3, groups=2, padding=1),
    dict(kernel_size=3, padding=2, padding_mode="reflect"),
    dict(kernel_size=3, padding=1, padding_mode="replicate", stride=(1, 2)),
    dict(kernel_size=3, padding=1, padding_mode="circular"),
]


@pytest.mark.parametrize("config", CONV_CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("weight_spec, activation_spec", [
    (W_PER_CHANNEL, A_AFFINE),
    (QuantSpec(Int(4), granularity="per_channel", symmetric=False), A_PER_CHANNEL),
])
def test_quant_conv2d_matches_reference(config, weight_spec, activation_spec):
    torch.manual_seed(0)
    layer = QuantConv2d(4, 6, weight_spec=weight_spec, activation_spec=activation_spec, **config).train()
    reference = nn.Conv2d(4, 6, **config)  # only its _conv_forward (padding modes) is used
    for step in range(2):
        _check_against_reference(layer, reference._conv_forward, torch.randn(2, 4, 9, 10) * (step + 1), 1)
        layer.zero_grad()


def test_quant_conv2d_unbatched_input_uses_the_same_quantizers():
    torch.manual_seed(0)
    layer = QuantConv2d(3, 5, 3, padding=1, weight_spec=W_PER_CHANNEL, activation_spec=A_PER_CHANNEL)
    assert layer.input_quantizer.param_shape == (3, 1, 1)
    assert layer.weight_quantizer.param_shape == (5, 1, 1, 1)
    x = torch.randn(3, 8, 8)
    layer.train()(x.unsqueeze(0))
    layer.eval()
    assert torch.equal(layer(x), layer(x.unsqueeze(0)).squeeze(0))


def test_from_float_shares_parameters_hooks_and_mode():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding="valid", padding_mode="zeros", bias=True).eval()
    calls = []
    conv.register_forward_hook(lambda mod, args, out: calls.append(out.shape))
    q = QuantConv2d.from_float(conv, weight_spec=W_PER_CHANNEL, activation_spec=A_AFFINE)
    assert q.weight is conv.weight and q.bias is conv.bias
    assert (q.stride, q.padding, q.groups, q.padding_mode, q.training) == ((2, 2), "valid", 1, "zeros", False)
    q(torch.randn(1, 2, 7, 7))
    assert calls == [torch.Size([1, 3, 3, 3])]
    lin = nn.Linear(4, 2, bias=False)
    ql = QuantLinear.from_float(lin, weight_spec=W_PER_TENSOR)
    assert ql.weight is lin.weight and ql.bias is None and ql.input_quantizer is None
    assert "in_features=4, out_features=2, bias=False" in repr(ql) and "weight_quantizer" in repr(ql)
    with pytest.raises(TypeError, match="module must be an nn.Linear, got Conv2d"):
        QuantLinear.from_float(conv)


def test_disabled_quantizers_give_the_float_layer():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3)
    q = QuantLinear.from_float(copy.deepcopy(lin), weight_spec=W_PER_CHANNEL, activation_spec=A_AFFINE)
    q.weight_quantizer.disable_fake_quant()
    q.input_quantizer.disable_fake_quant()
    x = torch.randn(4, 6)
    assert torch.equal(q(x), lin(x))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match=r"QuantLinear: activation_spec granularity='per_group' is not supported"):
        QuantLinear(8, 4, activation_spec=QuantSpec(Int(8), granularity="per_group", group_size=4))
    with pytest.raises(ValueError, match=r"QuantLinear: per-channel input quantization runs along the feature "
                                         r"axis \(-1\); got activation_spec axis=0"):
        QuantLinear(8, 4, activation_spec=QuantSpec(Int(8), granularity="per_channel", axis=0))
    with pytest.raises(ValueError, match=r"QuantConv2d: .*axis \(1 or -3\); got activation_spec axis=2"):
        QuantConv2d(8, 4, 3, activation_spec=QuantSpec(Int(8), granularity="per_channel", axis=2))
    with pytest.raises(TypeError, match=r"QuantConv2d: weight_spec must be a lowbit.QuantSpec or None, got "
                                        r"weight_spec='int8'"):
        QuantConv2d(8, 4, 3, weight_spec="int8")
    with pytest.raises(ValueError, match=r"group_size=4 does not divide dimension 3 \(size 3\)"):
        QuantConv2d(8, 4, 3, weight_spec=QuantSpec(Int(4), granularity="per_group", group_size=4))
    # per_group weights along the input channels of a conv work with an explicit axis.
    conv = QuantConv2d(8, 4, 3, weight_spec=QuantSpec(Int(4), granularity="per_group", group_size=4, axis=1))
    assert conv.weight_quantizer.param_shape == (4, 2, 3, 3)
