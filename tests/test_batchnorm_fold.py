"""Batch-norm folding (lowbit.fold_batchnorm) and the integer models it enables: a ResNet block
written the usual way (Conv-BN-ReLU, ``out += identity``) converts to integer convolutions and
int8_add with no float layer left, bit-exact with its integer simulation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lowbit
from lowbit import QuantSpec
from lowbit.formats import Int
from lowbit.nn.integer import IntAdd, IntConv2d

W8 = QuantSpec(Int(8, narrow_range=True), granularity="per_channel")
A8 = QuantSpec(Int(8, signed=False), symmetric=False, observer="ema")


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(c, affine=False)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16), Block(16))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def trained_statistics(model):
    """Non-trivial running statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.2)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model


def test_fold_batchnorm_keeps_the_eval_function_and_names_the_pairs():
    torch.manual_seed(0)
    model = trained_statistics(Net()).eval()
    x = torch.randn(4, 3, 16, 16)
    want = model(x)
    weight = model.stem[0].weight
    folds = lowbit.fold_batchnorm(model)
    assert folds == [("stem.0", "stem.1"), ("blocks.0.conv1", "blocks.0.bn1"), ("blocks.0.conv2", "blocks.0.bn2"),
                     ("blocks.1.conv1", "blocks.1.bn1"), ("blocks.1.conv2", "blocks.1.bn2")]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.stem[0].weight is weight and model.stem[0].bias is not None  # same Parameter, new bias
    torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
    assert lowbit.fold_batchnorm(model) == []  # nothing left


class NotFoldable(nn.Module):
    """BatchNorms that must stay: after a non-conv, after a conv read twice, without statistics,
    and a conv that feeds a BatchNorm but is also called again."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 1)
        self.bn_after_relu = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 1)
        self.bn_shared_input = nn.BatchNorm2d(4)
        self.c3 = nn.Conv2d(4, 4, 1)
        self.bn_no_stats = nn.BatchNorm2d(4, track_running_stats=False)

    def forward(self, x):
        h = self.bn_after_relu(F.relu(self.c1(x)))
        y = self.c2(h)
        h = self.bn_shared_input(y) + y
        return self.bn_no_stats(self.c3(h))


def test_fold_batchnorm_leaves_what_it_cannot_fold():
    model = NotFoldable().eval()
    x = torch.randn(2, 3, 5, 5)
    want = model(x)
    assert lowbit.fold_batchnorm(model) == []
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 3
    assert torch.equal(model(x), want)


def test_fold_batchnorm_errors():
    with pytest.raises(TypeError, match="must be an nn.Module"):
        lowbit.fold_batchnorm("model")

    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.bn = nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)

        def forward(self, x):
            return self.bn(self.c(x)) if x.sum() > 0 else x

    with pytest.raises(lowbit.ConversionError, match="torch.fx cannot capture"):
        lowbit.fold_batchnorm(Untraceable())


def calibrate(model, shape, n=4):
    g = torch.Generator().manual_seed(1)
    model.train()
    with torch.no_grad():
        for _ in range(n):
            model(torch.randn(*shape, generator=g))
    lowbit.disable_observer(model)
    return model.eval()


def test_integer_simulation_folds_by_default_and_converts_to_integer_layers_only():
    torch.manual_seed(0)
    float_model = trained_statistics(Net()).eval()
    qat = calibrate(lowbit.prepare_qat(copy.deepcopy(float_model), weight=W8, activation=A8, simulation="integer"),
                    (8, 3, 16, 16))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in qat.modules())
    converted = lowbit.convert(qat)
    assert converted.float_nodes == []
    assert sum(isinstance(m, IntConv2d) for m in converted.modules()) == 5
    adds = [m for m in converted.modules() if isinstance(m, IntAdd)]
    assert len(adds) == 2 and all(a.kernel_bounds is not None for a in adds)  # the int8_add kernel
    x = torch.randn(6, 3, 16, 16)
    assert torch.equal(converted(x), qat(x))
    # Close to the float model it came from (8-bit, folded statistics: a few LSB at the logits).
    assert (converted(x) - float_model(x)).abs().max() < 0.25


def test_integer_simulation_without_folding_keeps_batchnorm_in_float_and_stays_exact():
    torch.manual_seed(0)
    model = trained_statistics(Net()).eval()
    qat = calibrate(lowbit.prepare_qat(model, weight=W8, activation=A8, simulation="integer", fold_batchnorm=False),
                    (8, 3, 16, 16))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in qat.modules()) == 5
    converted = lowbit.convert(qat)
    x = torch.randn(3, 3, 16, 16)
    assert torch.equal(converted(x), qat(x))


def test_float_simulation_folds_only_when_asked():
    kept = lowbit.prepare_qat(Net(), weight=W8, activation=A8)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in kept.modules()) == 5
    folded = lowbit.prepare_qat(Net(), weight=W8, activation=A8, fold_batchnorm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with pytest.raises(TypeError, match="fold_batchnorm must be True, False or None"):
        lowbit.prepare_qat(Net(), weight=W8, activation=A8, fold_batchnorm="yes")


@pytest.mark.parametrize("signed_out", [False, True])
def test_int_add_kernel_route_equals_the_reference_route(signed_out):
    """IntAdd runs the fused int8_add kernel; its codes (and dtype) equal the reference formula's,
    also when a fused ReLU makes the kernel's clamp range unsigned on a signed output grid."""
    from lowbit.nn import _integer as I

    torch.manual_seed(3)
    out_spec = QuantSpec(Int(8, signed=signed_out), symmetric=False, observer="ema")

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(4, 8, 3, padding=1), nn.Conv2d(4, 8, 1), nn.Conv2d(8, 2, 1)

        def forward(self, x):
            return self.c(F.relu(self.a(x) + self.b(x)))

    qat = calibrate(lowbit.prepare_qat(Res(), weight=W8, activation=out_spec, simulation="integer"), (4, 4, 9, 9))
    converted = lowbit.convert(qat)
    (add,) = [m for m in converted.modules() if isinstance(m, IntAdd)]
    assert add.kernel_bounds is not None
    gen = torch.Generator().manual_seed(4)
    dtype = torch.int8 if signed_out else torch.uint8
    lo, hi = (-128, 128) if signed_out else (0, 256)
    a = torch.randint(lo, hi, (3, 8, 9, 9), dtype=dtype, generator=gen)
    b = torch.randint(lo, hi, (3, 8, 9, 9), dtype=dtype, generator=gen)
    params = (add.lhs_multiplier, add.lhs_shift, add.rhs_multiplier, add.rhs_shift, add.multiplier, add.shift)
    want = I.add_codes(a, add.lhs_zero_point, b, add.rhs_zero_point, params, add.left_shift, add.output_zero_point,
                       add.output_qmin, add.output_qmax, add.requant_rounding, add.act_min, add.act_max)
    got = add(a, b)
    assert got.dtype == want.dtype and torch.equal(got, want)
    x = torch.randn(2, 4, 9, 9)
    assert torch.equal(converted(x), qat(x))


def test_int_add_kernel_arguments_follow_a_loaded_state_dict_and_pickle():
    import io

    torch.manual_seed(0)
    make = lambda: calibrate(lowbit.prepare_qat(trained_statistics(Net()).eval(), weight=W8, activation=A8,
                                                simulation="integer"), (8, 3, 16, 16))
    first, second = make(), make()
    with torch.no_grad():  # a different calibration: other scales at the adds
        second.train()
        lowbit.enable_observer(second)
        second(3 * torch.randn(8, 3, 16, 16))
        lowbit.disable_observer(second)
        second.eval()
    a, b = lowbit.convert(first), lowbit.convert(second)
    x = torch.randn(2, 3, 16, 16)
    a.load_state_dict(b.state_dict())
    assert torch.equal(a(x), b(x))
    buffer = io.BytesIO()
    torch.save(a, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), b(x))
