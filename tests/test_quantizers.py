"""FakeQuantize: parity with torch.ao's FakeQuantize + observers, switches, dtype, lazy shapes."""

import math

import pytest
import torch
from torch.ao import quantization as tq

import lowbit
from lowbit import QuantSpec
from lowbit.formats import Int
from lowbit.nn import FakeQuantize


def _torch_dtype(fmt: Int):
    return torch.qint8 if fmt.signed else torch.quint8


def _torch_qscheme(spec: QuantSpec):
    per_channel = spec.granularity == "per_channel"
    if spec.symmetric:
        return torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric
    return torch.per_channel_affine if per_channel else torch.per_tensor_affine


def _torch_fake_quantize(spec: QuantSpec, axis: int):
    per_channel = spec.granularity == "per_channel"
    if spec.observer == "ema":
        observer = tq.MovingAveragePerChannelMinMaxObserver if per_channel else tq.MovingAverageMinMaxObserver
        kwargs = dict(averaging_constant=spec.averaging_constant)
    else:
        observer = tq.PerChannelMinMaxObserver if per_channel else tq.MinMaxObserver
        kwargs = {}
    if per_channel:
        kwargs["ch_axis"] = axis
    if spec.format not in (Int(8), Int(8, signed=False)):
        # A custom range; torch.ao then uses the lower midpoint (qmin + qmax) // 2 as the
        # symmetric unsigned zero point where lowbit always uses the upper one (128 for uint8), so
        # the symmetric parity cases with custom ranges are signed.
        kwargs.update(quant_min=spec.qmin, quant_max=spec.qmax)
    return tq.FakeQuantize(observer=observer, dtype=_torch_dtype(spec.format), qscheme=_torch_qscheme(spec),
                           **kwargs)


# (spec, input shape, channel axis): weights per-channel on axis 0, activations on axis 1.
PARITY_CASES = [
    (QuantSpec(Int(8, signed=False), symmetric=False), (4, 3, 5, 5), None),
    (QuantSpec(Int(8)), (4, 3, 5, 5), None),
    (QuantSpec(Int(8, signed=False)), (64,), None),
    (QuantSpec(Int(8), symmetric=False, observer="ema"), (4, 3, 5, 5), None),
    (QuantSpec(Int(8, signed=False), symmetric=False, observer="ema", averaging_constant=0.3), (8, 17), None),
    (QuantSpec(Int(8, narrow_range=True)), (33, 7), None),
    (QuantSpec(Int(4)), (4, 3, 5, 5), None),
    (QuantSpec(Int(4), symmetric=False), (4, 3, 5, 5), None),
    (QuantSpec(Int(8), granularity="per_channel"), (6, 4, 3, 3), 0),
    (QuantSpec(Int(8), granularity="per_channel", symmetric=False), (6, 4, 3, 3), 0),
    (QuantSpec(Int(8, narrow_range=True), granularity="per_channel", observer="ema"), (6, 10), 0),
    (QuantSpec(Int(8, signed=False), granularity="per_channel", axis=1, symmetric=False, observer="ema"),
     (4, 5, 6, 6), 1),
    (QuantSpec(Int(8, signed=False), granularity="per_channel", axis=1), (4, 5, 6, 6), 1),
]


@pytest.mark.parametrize("spec, shape, axis", PARITY_CASES, ids=lambda v: v.describe() if isinstance(v, QuantSpec)
                         else None)
def test_parity_with_torch_ao_fake_quantize(spec, shape, axis):
    torch.manual_seed(0)
    ours = FakeQuantize(spec, shape=shape).train()
    ref = _torch_fake_quantize(spec, axis).train()
    for step in range(6):
        if step == 3:  # freeze the ranges in both
            ours.disable_observer()
            ref.disable_observer()
        # Shifted, scaled batches so the ranges move (and stay asymmetric).
        x = (torch.randn(shape) * (1 + step) + 0.3 * step).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        y, y_ref = ours(x), ref(x_ref)
        grad = torch.randn(shape)
        y.backward(grad)
        y_ref.backward(grad)

        obs = ref.activation_post_process
        torch.testing.assert_close(ours.min_val.flatten(), obs.min_val.flatten(), rtol=0, atol=0)
        torch.testing.assert_close(ours.max_val.flatten(), obs.max_val.flatten(), rtol=0, atol=0)
        scale, zero_point = ours.calculate_qparams()
        assert scale.dtype == torch.float32 and zero_point.dtype == torch.int32
        assert tuple(scale.shape) == spec.param_shape(shape)
        torch.testing.assert_close(scale.flatten(), ref.scale.flatten(), rtol=0, atol=0)
        torch.testing.assert_close(zero_point.flatten(), ref.zero_point.flatten().to(torch.int32), rtol=0, atol=0)
        assert torch.equal(y, y_ref), f"step {step}: outputs differ"
        assert torch.equal(x.grad, x_ref.grad), f"step {step}: input gradients differ"


def test_fake_quant_switch_matches_torch_ao():
    spec = QuantSpec(Int(8, signed=False), symmetric=False)
    ours, ref = FakeQuantize(spec).train(), _torch_fake_quantize(spec, None).train()
    ours.disable_fake_quant()
    ref.disable_fake_quant()
    x = torch.randn(100)
    assert torch.equal(ours(x), x) and torch.equal(ref(x), x)
    # The observer still runs while fake quantization is off (as in torch.ao).
    assert ours.min_val.item() == x.min().item() and ours.max_val.item() == x.max().item()
    ours.enable_fake_quant()
    ref.enable_fake_quant()
    x = torch.randn(100) * 3
    assert torch.equal(ours(x), ref(x))


def test_fbgemm_qparams_match_torch_fused_observer_fake_quant():
    spec = QuantSpec(Int(8, signed=False), symmetric=False, observer="ema", qparams="fbgemm")
    ours = FakeQuantize(spec).train()
    ref = tq.FusedMovingAvgObsFakeQuantize(observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                           dtype=torch.quint8, qscheme=torch.per_tensor_affine).train()
    torch.manual_seed(1)
    for step in range(4):
        x = torch.randn(3, 50) * (step + 1) - 0.5
        y, y_ref = ours(x), ref(x)
        scale, zero_point = ours.calculate_qparams()
        assert scale.item() == ref.scale.item() and zero_point.item() == ref.zero_point.item()
        assert torch.equal(y, y_ref)


def test_methods_test_vectors():
    # METHODS.md 1.2 [torch 1.13]: quint8 affine MinMax on [-1, .5, 2, 3] -> (0x3C808081, 64).
    fq = FakeQuantize(QuantSpec(Int(8, signed=False), symmetric=False)).train()
    fq(torch.tensor([-1.0, 0.5, 2.0, 3.0]))
    scale, zero_point = fq.calculate_qparams()
    assert scale.item() == 0.01568627543747425 and zero_point.item() == 64
    # MovingAverage c=0.01: batches [-1, 1] then [-3, 5] -> min -1.02, max 1.04, zp 126.
    fq = FakeQuantize(QuantSpec(Int(8, signed=False), symmetric=False, observer="ema")).train()
    fq(torch.tensor([-1.0, 1.0]))
    fq(torch.tensor([-3.0, 5.0]))
    scale, zero_point = fq.calculate_qparams()
    assert math.isclose(fq.min_val.item(), -1.02, rel_tol=1e-6) and math.isclose(fq.max_val.item(), 1.04,
                                                                                 rel_tol=1e-6)
    assert math.isclose(scale.item(), 0.0080784308, rel_tol=1e-7) and zero_point.item() == 126


def test_never_observed_gives_unit_scale_and_eval_does_not_observe():
    fq = FakeQuantize(QuantSpec(Int(8))).eval()
    x = torch.tensor([0.4, 0.6, 1.5, 300.0, -300.0])
    y = fq(x)
    scale, zero_point = fq.calculate_qparams()
    assert scale.item() == 1.0 and zero_point.item() == 0
    assert torch.equal(y, torch.tensor([0.0, 1.0, 2.0, 127.0, -128.0]))
    assert fq.min_val.item() == math.inf and fq.max_val.item() == -math.inf  # eval mode left it alone
    fq.train()(x)
    assert fq.min_val.item() == -300.0 and fq.max_val.item() == 300.0
    fq.reset_observer()
    assert fq.min_val.item() == math.inf


@pytest.mark.parametrize("ste", ["integer", "real", "identity"])
def test_ste_variants(ste):
    # int4 narrow [-7, 7], range +-3.5 -> scale 0.5 (METHODS.md 2): x = 3.6 is code 7.2 -> 7, inside
    # the integer range, but past the real clip 3.5; 3.75 is code 7.5 -> 8 (half even), outside.
    fq = FakeQuantize(QuantSpec(Int(4, narrow_range=True), ste=ste)).eval()
    fq.min_val.fill_(-3.5)
    fq.max_val.fill_(3.5)
    assert fq.calculate_qparams()[0].item() == 0.5
    x = torch.tensor([0.3, 3.6, 3.75, -3.74, -100.0, 100.0], requires_grad=True)
    y = fq(x)
    assert y.tolist() == [0.5, 3.5, 3.5, -3.5, -3.5, 3.5]
    y.sum().backward()
    expected = {"integer": [1, 1, 0, 1, 0, 0], "real": [1, 0, 0, 0, 0, 0], "identity": [1, 1, 1, 1, 1, 1]}[ste]
    assert x.grad.tolist() == expected


def test_stochastic_rounding_in_training_only():
    spec = QuantSpec(Int(4), rounding="stochastic")
    fq = FakeQuantize(spec).train()
    nearest = FakeQuantize(QuantSpec(Int(4))).train()
    torch.manual_seed(0)
    x = torch.randn(4096)
    y = fq(x)
    y_nearest = nearest(x)
    scale, zero_point = fq.calculate_qparams()
    codes = y / scale
    assert torch.equal(codes, codes.round())  # on the grid
    assert not torch.equal(y, y_nearest)  # but not always the nearest point
    assert (y - x).abs().max() <= scale.item() * (1 + 1e-6)
    # Stochastic rounding is unbiased on average: the mean error is far below half a step.
    assert (y - x).mean().abs() < 0.05 * scale.item()
    fq.eval()
    nearest.eval()
    assert torch.equal(fq(x), nearest(x))


def test_lazy_shape_from_first_input_and_state_dict():
    spec = QuantSpec(Int(8), granularity="per_channel", axis=1)
    fq = FakeQuantize(spec)
    assert fq.param_shape is None
    assert "lazy" in repr(fq)
    with pytest.raises(RuntimeError, match="has no parameters yet"):
        fq.calculate_qparams()
    x = torch.randn(2, 3, 4, 4)
    fq(x)
    assert fq.param_shape == (3, 1, 1)
    torch.testing.assert_close(fq.max_val.flatten(), x.amax(dim=(0, 2, 3)), rtol=0, atol=0)

    fresh = FakeQuantize(spec)
    fresh.load_state_dict(fq.state_dict())
    assert fresh.param_shape == (3, 1, 1)
    assert torch.equal(fresh(x), fq(x))


def test_lazy_quantizer_refuses_to_materialize_under_compile():
    fq = FakeQuantize(QuantSpec(Int(8), granularity="per_channel", axis=1))
    compiled = torch.compile(fq, backend="eager", fullgraph=True)
    with pytest.raises(Exception, match="does not know its parameter shape yet"):
        compiled(torch.randn(2, 3, 4, 4))


def test_statistics_stay_float32_when_the_module_is_cast():
    fq = FakeQuantize(QuantSpec(Int(8), granularity="per_channel"), shape=(4, 8)).train()
    fq(torch.randn(4, 8))
    before = fq.min_val.clone()
    fq.to(torch.bfloat16)
    assert fq.min_val.dtype == torch.float32 and torch.equal(fq.min_val, before)
    fq.half()
    assert fq.max_val.dtype == torch.float32
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    y = fq.eval()(x)
    assert y.dtype == torch.bfloat16
    scale, zero_point = fq.calculate_qparams()
    assert torch.equal(y, lowbit.ops.fake_quantize_affine(x, scale, zero_point, -128, 127))


def test_switch_arguments_are_checked():
    fq = FakeQuantize(QuantSpec(Int(8)))
    with pytest.raises(TypeError, match="enabled must be a bool, got enabled=1"):
        fq.enable_observer(1)
    with pytest.raises(TypeError, match="spec must be a lowbit.QuantSpec"):
        FakeQuantize("int8")
    with pytest.raises(ValueError, match=r"group_size=3 does not divide"):
        FakeQuantize(QuantSpec(Int(4), granularity="per_group", group_size=3), shape=(4, 8))
    assert "observer=on, fake_quant=on" in repr(fq)
    fq.disable_observer().disable_fake_quant()
    assert "observer=off, fake_quant=off" in repr(fq)
    assert fq.observer_enabled.dtype == torch.bool and not fq.observer_enabled.item()
