"""Integer simulation and lowbit.convert: converted models equal their simulation bit for bit.

The core contract (issue 5, METHODS §9.4): after calibration or QAT with
``prepare_qat(..., simulation="integer")``, ``lowbit.convert(model)(x)`` equals
``model.eval()(x)`` element for element, for the digits CNN and for an MLP with residual adds.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lowbit
from lowbit import ConversionError, QuantSpec
from lowbit.convert import Mismatch, _mismatch
from lowbit.formats import Int
from lowbit.nn.integer import Dequantize, IntAdd, IntConv2d, IntLinear, IntReLU, Quantize
from lowbit.nn.simulation import QuantAdd

W8 = QuantSpec(Int(8, narrow_range=True), granularity="per_channel")
A8 = QuantSpec(Int(8, signed=False), symmetric=False, observer="ema")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- models written the way users write them ------------------------------------------------------------


def digits_cnn():
    from lowbit import demo

    return demo.build_model()


class ResidualMLP(nn.Module):
    """Residual adds as plain ``+``; ReLU as a module, F.relu, torch.relu and clamp(min=0)."""

    def __init__(self, d_in=64, width=48, classes=10):
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.a1, self.a2 = nn.Linear(width, width), nn.Linear(width, width)
        self.b1, self.b2 = nn.Linear(width, width), nn.Linear(width, width)
        self.act = nn.ReLU()
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        h = self.act(self.stem(x))
        h = h + self.a2(F.relu(self.a1(h)))
        h = torch.relu(h + self.b2(self.b1(h).clamp(min=0)))
        return self.head(h)


class ResidualCNN(nn.Module):
    """Conv options (stride, dilation, groups, depthwise, padding modes), ReLU6, pooling, input residual."""

    def __init__(self, padding_mode="zeros", bias=True):
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3, padding=1, padding_mode=padding_mode, bias=bias)
        self.c1 = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2, bias=bias)
        self.dw = nn.Conv2d(8, 8, 3, padding="same", groups=8, bias=bias)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=bias)
        self.relu6 = nn.ReLU6()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 2 * 2, 5)

    def forward(self, x):
        h = F.relu(self.c0(x))
        h = h + F.relu6(self.c1(h))
        h = self.relu6(self.dw(h)) + h
        h = self.pool(F.hardtanh(self.c2(h), 0.0, 6.0))
        return self.fc(torch.flatten(h, 1))


class InputResidual(nn.Module):
    """``x + f(x)`` on the model input, then a float island (softmax) between integer layers."""

    def __init__(self, d=24):
        super().__init__()
        self.f = nn.Linear(d, d)
        self.g = nn.Linear(d, d)
        self.h = nn.Linear(d, 4)

    def forward(self, x):
        y = x + self.f(x)
        z = torch.softmax(self.g(y), dim=-1) * 2.0
        return self.h(z + y)


def calibrate(model, batches):
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    return model


def qat_steps(model, batches, targets, steps=4, lr=1e-2):
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for i in range(steps):
        x, t = batches[i % len(batches)], targets[i % len(targets)]
        loss = F.cross_entropy(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def randn_batches(shape, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for _ in range(n)]


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from lowbit import demo

    return demo.load_data(0)


def assert_exact(model, converted, x):
    expected = model.eval()(x)
    got = converted(x)
    mismatched = int((expected != got).sum())
    assert mismatched == 0, f"{mismatched} of {expected.numel()} elements differ"
    assert torch.equal(expected, got)


# ---- the contract: 0 mismatching elements ---------------------------------------------------------------


def test_digits_cnn_integer_simulation_equals_converted(digits):
    torch.manual_seed(0)
    model = digits_cnn()
    qat_steps(model, [digits.x_train[i:i + 64] for i in range(0, 640, 64)],
              [digits.y_train[i:i + 64] for i in range(0, 640, 64)], steps=10, lr=0.05)  # a little float training
    model = lowbit.prepare_qat(model, weight=W8, activation=A8, simulation="integer")
    assert isinstance(model, torch.fx.GraphModule)
    batches = [digits.x_train[i:i + 64] for i in range(0, 1280, 64)]
    targets = [digits.y_train[i:i + 64] for i in range(0, 1280, 64)]
    qat_steps(model, batches, targets, steps=12, lr=1e-2)
    lowbit.disable_observer(model)
    qat_steps(model, batches, targets, steps=6, lr=1e-3)

    converted = lowbit.convert(model)
    assert_exact(model, converted, digits.x_test)
    assert_exact(model, converted, digits.x_train)
    report = lowbit.compare_simulation(model, converted, digits.x_test)
    assert report.exact and report.output.mismatched == 0
    assert set(report.layers) == {"0", "2"} and all(m.total > 0 for m in report.layers.values())
    # The layers run on the int8 kernels; the reference route gives the same integers.
    assert {m.route for m in converted.modules() if isinstance(m, (IntLinear, IntConv2d))} == {"int8"}
    assert {m.int8_op for m in converted.modules() if isinstance(m, IntConv2d)} == {"int8_conv2d"}
    assert_exact(model, converted, digits.x_test[:1])  # a batch of one image (the threaded per-image split off)
    assert_exact(model, converted, digits.x_test[:8])
    assert_exact(model, lowbit.convert(model, use_kernels=False), digits.x_test)


def test_residual_mlp_integer_simulation_equals_converted(digits):
    torch.manual_seed(1)
    model = lowbit.prepare_qat(ResidualMLP(), weight=W8, activation=A8, simulation="integer")
    x_train = digits.x_train.flatten(1)
    batches = [x_train[i:i + 64] for i in range(0, 1280, 64)]
    targets = [digits.y_train[i:i + 64] for i in range(0, 1280, 64)]
    qat_steps(model, batches, targets, steps=16, lr=0.05)
    lowbit.disable_observer(model)
    qat_steps(model, batches, targets, steps=4, lr=1e-3)

    converted = lowbit.convert(model)
    assert_exact(model, converted, digits.x_test.flatten(1))
    assert_exact(model, converted, x_train)
    # Both residual adds run in integer, the second with its ReLU fused; every ReLU form is fused.
    adds = [m for m in converted.modules() if isinstance(m, IntAdd)]
    assert [a.fused_activation for a in adds] == [None, "relu"]
    acts = {n: m.fused_activation for n, m in converted.named_modules() if isinstance(m, IntLinear)}
    assert acts == {"stem": "relu", "a1": "relu", "a2": None, "b1": "relu", "b2": None, "head": None}
    assert not converted.head.quantized_output  # the logits come from the int32 accumulator


def test_simulation_graph_wiring():
    model = lowbit.prepare_qat(ResidualMLP(), weight=W8, activation=A8, simulation="integer")
    # No ReLU is left in the graph: all are fused clamps.
    targets = [n.target for n in model.graph.nodes]
    assert not any(t in (F.relu, torch.relu, "clamp") for t in targets)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    # One quantizer per value: a consumer's input quantizer *is* its producer's output quantizer.
    assert model.a1.input_quantizer is model.stem.output_quantizer
    assert model.a2.input_quantizer is model.a1.output_quantizer
    adds = [m for m in model.modules() if isinstance(m, QuantAdd)]
    assert len(adds) == 2
    assert adds[0].lhs_quantizer is model.stem.output_quantizer and adds[0].rhs_quantizer is model.a2.output_quantizer
    assert model.b1.input_quantizer is adds[0].output_quantizer
    assert model.head.input_quantizer is adds[1].output_quantizer
    assert model.head.output_quantizer is None
    # Entry quantizer of the model input: the stem's own input quantizer, run once in the graph.
    assert model.stem.input_quantizer is model.x_quantizer
    # Quantizers: entry 1 + outputs (stem a1 a2 b1 b2 + 2 adds) 7 + 6 weights.
    assert len(dict(lowbit.named_quantizers(model))) == 14
    assert all(m.simulation == "integer" for m in model.modules() if isinstance(m, lowbit.nn.QuantLinear))


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
@pytest.mark.parametrize("use_kernels", [True, False], ids=["int8", "reference"])
def test_conv_options_relu6_pooling_and_residuals(padding_mode, use_kernels):
    torch.manual_seed(2)
    model = lowbit.prepare_qat(ResidualCNN(padding_mode), weight=W8, activation=A8, simulation="integer")
    batches = randn_batches((8, 3, 8, 8))
    calibrate(model, batches)
    targets = [torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(i)) for i in range(4)]
    qat_steps(model, batches, targets, steps=3)
    converted = lowbit.convert(model, use_kernels=use_kernels)
    for x in randn_batches((8, 3, 8, 8), seed=7) + [3 * torch.randn(2, 3, 8, 8)]:
        assert_exact(model, converted, x)
    fused = {n: m.fused_activation for n, m in converted.named_modules() if isinstance(m, (IntConv2d, IntAdd))}
    assert fused["c0"] == "relu" and fused["c1"] == "relu6" and fused["c2"] == "relu6"
    assert sum(isinstance(m, IntAdd) for m in converted.modules()) == 2


class ConvOptions(nn.Module):
    """Conv options int8_conv2d takes through convert: asymmetric "same" padding (even kernel),
    stride/dilation/groups per axis, depthwise with channel multiplier 2, and a float-output head."""

    def __init__(self, padding_mode="zeros"):
        super().__init__()
        self.a = nn.Conv2d(4, 8, 4, padding="same", padding_mode=padding_mode)  # pads 1 before, 2 after
        self.b = nn.Conv2d(8, 8, (3, 2), stride=(2, 1), padding=(2, 1), dilation=(2, 1), groups=4)
        self.dw = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=8)
        self.head = nn.Conv2d(16, 3, 1)  # no output quantizer: float out of the int32 accumulators

    def forward(self, x):
        h = F.relu(self.a(x))
        h = F.relu6(self.b(h))
        return self.head(self.dw(h))


@pytest.mark.parametrize("padding_mode", ["zeros", "replicate"])
@pytest.mark.parametrize("act", ["uint8_affine", "int8_affine"])
@pytest.mark.parametrize("weight", ["int8_per_channel", "int8_asymmetric_per_channel"])
@pytest.mark.parametrize("threads", [1, 2])
def test_converted_convs_run_int8_conv2d_exactly(padding_mode, act, weight, threads):
    torch.manual_seed(5)
    model = lowbit.prepare_qat(ConvOptions(padding_mode), weight=WEIGHT_SPECS[weight], activation=ACTIVATION_SPECS[act],
                               simulation="integer")
    calibrate(model, randn_batches((6, 4, 11, 9)))
    converted = lowbit.convert(model)
    ops_used = {n: m.int8_op for n, m in converted.named_modules() if isinstance(m, IntConv2d)}
    assert ops_used == {"a": "int8_conv2d", "b": "int8_conv2d", "dw": "int8_conv2d", "head": "im2col+int8_gemm"}
    torch.set_num_threads(threads)
    for x in randn_batches((6, 4, 11, 9), seed=3) + [3 * torch.randn(1, 4, 11, 9), torch.randn(4, 7, 5)]:
        assert_exact(model, converted, x)  # batches, one image and an unbatched CHW input
    # The packed weights unpack to the codes the reference route stores.
    reference = lowbit.convert(model, use_kernels=False)
    for name in ops_used:
        assert torch.equal(converted.get_submodule(name).weight_codes(), reference.get_submodule(name).weight_codes())


ACTIVATION_SPECS = {
    "uint8_affine": A8,
    "int8_symmetric": QuantSpec(Int(8), symmetric=True),
    "int8_affine": QuantSpec(Int(8), symmetric=False, observer="ema"),
    "uint4_affine": QuantSpec(Int(4, signed=False), symmetric=False),
    "int12_affine": QuantSpec(Int(12), symmetric=False),
}
WEIGHT_SPECS = {
    "int8_per_channel": W8,
    "int8_per_tensor": QuantSpec(Int(8, narrow_range=True)),
    "int8_asymmetric_per_channel": QuantSpec(Int(8), granularity="per_channel", symmetric=False),
    "int4_per_channel": QuantSpec(Int(4), granularity="per_channel"),
    "uint8_per_tensor": QuantSpec(Int(8, signed=False), symmetric=False),
}


@pytest.mark.parametrize("act", ACTIVATION_SPECS, ids=list(ACTIVATION_SPECS))
@pytest.mark.parametrize("weight", WEIGHT_SPECS, ids=list(WEIGHT_SPECS))
@pytest.mark.parametrize("rounding", ["double", "single"])
def test_formats_and_roundings_are_exact(act, weight, rounding):
    torch.manual_seed(3)
    model = lowbit.prepare_qat(ResidualMLP(d_in=12, width=16, classes=3), weight=WEIGHT_SPECS[weight],
                               activation=ACTIVATION_SPECS[act], simulation="integer", requant_rounding=rounding)
    calibrate(model, randn_batches((32, 12)))
    converted = lowbit.convert(model)
    for x in randn_batches((64, 12), n=2, seed=5):
        assert_exact(model, converted, x)
    routes = {m.route for m in converted.modules() if isinstance(m, IntLinear)}
    eight_bit = act in ("uint8_affine", "int8_symmetric", "int8_affine", "uint4_affine") \
        and weight not in ("uint8_per_tensor",)
    assert routes == ({"int8"} if eight_bit else {"reference"})


def test_float_islands_input_residual_and_skipped_layers():
    torch.manual_seed(4)
    model = lowbit.prepare_qat(InputResidual(), weight=W8, activation=A8, simulation="integer", skip=["h"])
    calibrate(model, randn_batches((16, 24)))
    converted = lowbit.convert(model)
    for x in randn_batches((16, 24), n=2, seed=9):
        assert_exact(model, converted, x)
    kinds = [type(m).__name__ for _, m in converted.named_children()]
    # x + f(x) is an integer add of the model input's entry codes and f's codes.
    assert kinds.count("IntAdd") == 1 and kinds.count("Quantize") == 1
    # g feeds softmax (float), so it returns float from its accumulator; the final add reads y's
    # codes dequantized; h was skipped and stays an nn.Linear.
    assert not converted.g.quantized_output
    assert isinstance(converted.h, nn.Linear) and not isinstance(converted.h, IntLinear)
    assert sum(isinstance(m, Dequantize) for m in converted.modules()) == 1
    assert converted.float_nodes == ["add_1"]
    with pytest.raises(ConversionError, match=r"strict=True\): these nodes read integer codes but run in float on "
                                              r"dequantized values: add_1 \(call_function add\)"):
        lowbit.convert(model, strict=True)


class PoolingCNN(nn.Module):
    """Average pooling in every form users write it."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3, padding=1)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 1)
        self.pool = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        h = self.pool(F.relu(self.c0(x)))                                      # 9x9 -> 4x4 (floor)
        h = F.avg_pool2d(self.c1(h), 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        g = self.c2(h)
        a = self.gap(g).flatten(1)
        b = g.mean((2, 3))
        c = torch.flatten(F.adaptive_avg_pool2d(h, (1, 1)), 1)
        return self.fc(a + b + c)


@pytest.mark.parametrize("act", ["uint8_affine", "int8_affine"])
def test_average_pooling_is_integer_and_exact(act):
    torch.manual_seed(13)
    model = lowbit.prepare_qat(PoolingCNN(), weight=W8, activation=ACTIVATION_SPECS[act], simulation="integer")
    calibrate(model, randn_batches((8, 3, 9, 9)))
    pools = [m for m in model.modules() if isinstance(m, lowbit.nn.simulation.QuantAvgPool)]
    assert [p.pool.kind for p in pools] == ["avg_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "mean",
                                            "adaptive_avg_pool2d"]
    converted = lowbit.convert(model)
    assert sum(type(m).__name__ == "IntAvgPool" for m in converted.modules()) == 5
    assert sum(isinstance(m, IntAdd) for m in converted.modules()) == 2
    for x in randn_batches((8, 3, 9, 9), n=3, seed=21):
        assert_exact(model, converted, x)


@pytest.mark.parametrize("kind, params, dims, keepdim", [
    ("adaptive_avg_pool2d", dict(output_size=1), (-2, -1), True),
    ("adaptive_avg_pool2d", dict(output_size=(1, 1)), (-2, -1), True),
    ("mean", dict(dim=(2, 3), keepdim=False), (2, 3), False),
    ("mean", dict(dim=-1, keepdim=True), (-1,), True),
])
@pytest.mark.parametrize("dtype, zp", [(torch.uint8, 0), (torch.uint8, 131), (torch.int8, -7)])
def test_global_average_of_codes_against_the_formula(kind, params, dims, keepdim, dtype, zp):
    """Global poolings and means sum the codes in int64 (no float64 copy): against
    round_half_away(Σ(q - z) / count) + z written out here, ties included."""
    from lowbit.nn._integer import AvgPool

    gen = torch.Generator().manual_seed(zp + 300)
    lo, hi = (0, 256) if dtype == torch.uint8 else (-128, 128)
    codes = torch.randint(lo, hi, (3, 5, 4, 6), dtype=dtype, generator=gen)
    codes[0, 0] = zp            # an exact zero
    codes[0, 1] = zp + 1        # exact mean, sum > 0
    codes[0, 2, :2] = zp + 1    # a tie: mean +0.5 (rounds away from zero)
    codes[0, 2, 2:] = zp
    codes[0, 3, :2] = zp - 1    # a tie: mean -0.5
    codes[0, 3, 2:] = zp
    z = torch.tensor([zp], dtype=torch.int32)
    got = AvgPool(kind, **params).codes(codes, z, lo, hi - 1)
    centered = codes.to(torch.int64) - zp
    count = 1
    for d in dims:
        count *= codes.shape[d]
    total = centered.sum(dim=dims, keepdim=keepdim)
    mean = total.double() / count
    want = (torch.sign(mean) * torch.floor(mean.abs() + 0.5)).to(torch.int64) + zp
    assert got.dtype == dtype and torch.equal(got.to(torch.int64), want.clamp(lo, hi - 1))


def test_average_of_codes_rounds_half_away_from_zero():
    from lowbit.nn._integer import AvgPool

    pool = AvgPool("mean", dim=-1, keepdim=False)
    codes = torch.tensor([[10, 11], [10, 13], [9, 10], [7, 10], [0, 255]], dtype=torch.uint8)
    z = torch.tensor([10], dtype=torch.int32)
    # centered pairs (0, 1) (0, 3) (-1, 0) (-3, 0) (-10, 245): halves 0.5 1.5 -0.5 -1.5 117.5
    assert pool.codes(codes, z, 0, 255).tolist() == [11, 12, 9, 8, 128]


def test_max_pools_without_integer_kernels_run_on_a_float_copy_of_the_codes():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(2, 4, 3, padding=1)
            self.amp = nn.AdaptiveMaxPool2d((3, 2))
            self.fa, self.fb = nn.Linear(4 * 3 * 2, 3), nn.Linear(4 * 2, 3)

        def forward(self, x):
            h = self.c(x)
            a = self.amp(h).flatten(1)
            b = F.max_pool1d(h.flatten(2), 32)  # [B, 4, 2]
            return self.fa(a) + self.fb(b.flatten(1))

    torch.manual_seed(15)
    model = lowbit.prepare_qat(Net(), weight=W8, activation=A8, simulation="integer")
    calibrate(model, randn_batches((4, 2, 8, 8)))
    converted = lowbit.convert(model)
    assert converted.c.quantized_output and converted.float_nodes == []  # the pools run on codes
    for x in randn_batches((4, 2, 8, 8), seed=3):
        assert_exact(model, converted, x)


def test_standalone_relu_and_float_add_stay_exact():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            h = self.a(x)
            r = F.relu(h)  # h has two users: this ReLU is not fused, it runs on codes
            y = self.b(r) + h
            return self.c(y) + 1.0 + y  # adds reaching no integer layer stay float

    torch.manual_seed(5)
    model = lowbit.prepare_qat(Net(), weight=W8, activation=A8, simulation="integer")
    calibrate(model, randn_batches((16, 8)))
    converted = lowbit.convert(model)
    assert any(isinstance(m, IntReLU) for m in converted.modules())
    assert sum(isinstance(m, IntAdd) for m in converted.modules()) == 1
    for x in randn_batches((16, 8), seed=2):
        assert_exact(model, converted, x)


def test_disabled_fake_quant_gives_the_float_model_and_enabling_restores_exactness():
    torch.manual_seed(6)
    float_model = ResidualMLP(d_in=12, width=16, classes=3)
    reference = copy.deepcopy(float_model)
    model = lowbit.prepare_qat(float_model, weight=W8, activation=A8, simulation="integer")
    calibrate(model, randn_batches((32, 12)))
    x = torch.randn(16, 12)
    converted = lowbit.convert(model)
    lowbit.disable_fake_quant(model)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), reference.eval()(x))
    lowbit.enable_fake_quant(model)
    assert_exact(model, converted, x)


def test_state_dict_round_trip_of_an_integer_simulation_model():
    torch.manual_seed(7)
    model = lowbit.prepare_qat(ResidualMLP(d_in=12, width=16, classes=3), weight=W8, activation=A8,
                               simulation="integer")
    calibrate(model, randn_batches((32, 12)))
    fresh = lowbit.prepare_qat(ResidualMLP(d_in=12, width=16, classes=3), weight=W8, activation=A8,
                               simulation="integer")
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(16, 12)
    assert torch.equal(lowbit.convert(fresh)(x), lowbit.convert(model)(x))


# ---- gradients -------------------------------------------------------------------------------------------


def test_integer_simulation_gradients_are_the_straight_through_ones():
    # One layer without an output quantizer: the float simulation's STE gradients exactly.
    torch.manual_seed(8)
    base = nn.Sequential(nn.Linear(10, 6))
    sim_int = lowbit.prepare_qat(copy.deepcopy(base), weight=W8, activation=A8, simulation="integer")
    sim_float = lowbit.prepare_qat(copy.deepcopy(base), weight=W8, activation=A8)
    batches = randn_batches((32, 10))
    calibrate(sim_int, batches), calibrate(sim_float, batches)
    x = torch.randn(32, 10, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    r = torch.randn(32, 6)
    (sim_int(x) * r).sum().backward()
    (sim_float(x2) * r).sum().backward()
    assert torch.equal(x.grad, x2.grad)
    layer_int, layer_float = sim_int.get_submodule("0"), sim_float[0]
    assert torch.equal(layer_int.weight.grad, layer_float.weight.grad)
    assert torch.equal(layer_int.bias.grad, layer_float.bias.grad)


def test_output_quantizer_mask_and_fused_relu_in_the_gradient():
    torch.manual_seed(9)
    model = lowbit.prepare_qat(nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2)), weight=W8,
                               activation=A8, simulation="integer")
    calibrate(model, randn_batches((32, 6)))
    model.eval()
    x = (3 * torch.randn(64, 6)).requires_grad_(True)
    model(x).sum().backward()
    layer, second = model.get_submodule("0"), model.get_submodule("2")
    # Reference: d/dx of FQ_out(relu(linear(FQ_in(x), FQ_w(W), b))) . (W2_fq^T 1), by autograd on fake-quant ops.
    with torch.no_grad():
        w2 = second.weight_quantizer(second.weight)
    xr = x.detach().clone().requires_grad_(True)
    so, zo = layer.output_quantizer.calculate_qparams()
    z = F.relu(F.linear(model.input_1_quantizer(xr), layer.weight_quantizer(layer.weight), layer.bias))
    y = lowbit.ops.fake_quantize_affine(z, so, zo, 0, 255)
    (y @ w2.t()).sum().backward()
    assert torch.allclose(x.grad, xr.grad, rtol=0, atol=1e-6)
    assert (x.grad == 0).any() and (x.grad != 0).any()


# ---- torch.compile ---------------------------------------------------------------------------------------


def test_compiled_integer_simulation_qat_step_has_no_graph_break():
    import torch._dynamo
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    torch.manual_seed(10)
    model = lowbit.prepare_qat(ResidualMLP(d_in=12, width=16, classes=3), weight=W8, activation=A8,
                               simulation="integer")
    calibrate(model, randn_batches((16, 12)))  # eager first: quantizers know their shapes
    eager = copy.deepcopy(model)
    backend = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    opt_eager = torch.optim.SGD(eager.parameters(), lr=0.05)
    batches = randn_batches((16, 12), n=6, seed=3)
    targets = [torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(i)) for i in range(6)]
    for step, (x, t) in enumerate(zip(batches, targets)):
        if step == 3:
            lowbit.disable_observer(model), lowbit.disable_observer(eager)
        loss = F.cross_entropy(compiled(x), t)
        loss_eager = F.cross_entropy(eager(x), t)
        assert torch.equal(loss, loss_eager), step
        opt.zero_grad(), opt_eager.zero_grad()
        loss.backward(), loss_eager.backward()
        for (name, p), q in zip(model.named_parameters(), eager.parameters()):
            assert torch.equal(p.grad, q.grad), (step, name)
        opt.step(), opt_eager.step()
    assert backend.frame_count == 1, f"{backend.frame_count} frames: a graph break or a recompile"
    # Eval (no grad) is a second graph; the compiled integer forward equals the converted model.
    model.eval()
    x = torch.randn(16, 12)
    with torch.no_grad():
        assert torch.equal(compiled(x), lowbit.convert(model)(x))
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    torch._dynamo.reset()


def test_inductor_integer_simulation_trains_and_matches_the_converted_model():
    import torch._dynamo

    torch._dynamo.reset()
    torch.manual_seed(14)
    model = lowbit.prepare_qat(ResidualMLP(d_in=12, width=16, classes=3), weight=W8, activation=A8,
                               simulation="integer")
    calibrate(model, randn_batches((16, 12)))
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, fullgraph=True)  # Inductor
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step, x in enumerate(randn_batches((16, 12), n=3, seed=4)):
        t = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(step))
        loss, loss_eager = F.cross_entropy(compiled(x), t), F.cross_entropy(eager(x), t)
        # The forward value is integer arithmetic: Inductor computes it exactly like eager.
        assert torch.equal(loss, loss_eager), step
        opt.zero_grad(), eager.zero_grad()
        loss.backward(), loss_eager.backward()
        for p, q in zip(model.parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)  # float STE path may fuse
        opt.step()
        with torch.no_grad():  # keep the twins on identical weights (gradients may differ in the last bits)
            for p, q in zip(model.parameters(), eager.parameters()):
                q.copy_(p)
    model.eval()
    x = torch.randn(16, 12)
    with torch.no_grad():
        assert torch.equal(compiled(x), lowbit.convert(model)(x))
    torch._dynamo.reset()


def test_converted_model_compiles_and_exports():
    import torch._dynamo

    torch._dynamo.reset()
    torch.manual_seed(11)
    model = lowbit.prepare_qat(ResidualMLP(d_in=12, width=16, classes=3), weight=W8, activation=A8,
                               simulation="integer")
    calibrate(model, randn_batches((16, 12)))
    converted = lowbit.convert(model)
    x = torch.randn(16, 12)
    compiled = torch.compile(converted, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(x), converted(x))
    exported = torch.export.export(converted, (x,))
    assert torch.equal(exported.module()(x), converted(x))
    # The integer-simulation model exports too (its fake-quant switches become torch.where).
    exported = torch.export.export(model.eval(), (x,))
    with torch.no_grad():
        assert torch.equal(exported.module()(x), converted(x))
    torch._dynamo.reset()


# ---- float simulation: how far it is from the converted model ---------------------------------------------


def test_float_simulation_differs_by_requantization_lsbs(digits):
    torch.manual_seed(0)
    model = lowbit.prepare_qat(digits_cnn(), weight=W8, activation=A8)  # default float simulation
    calibrate(model, [digits.x_train[i:i + 128] for i in range(0, 1280, 128)])
    converted = lowbit.convert(model)
    report = lowbit.compare_simulation(model, converted, digits.x_test)
    assert report.output.total == digits.x_test.shape[0] * 10
    assert set(report.layers) == {"0", "2"}
    for name, m in report.layers.items():
        # Requantized codes land on the float simulation's codes or one LSB away near ties.
        assert 0 < m.mismatched < 0.05 * m.total, (name, m)
        assert set(m.lsb_histogram) <= {1, 2}, (name, m)
    assert "LSB" in str(report)
    # The float-simulation model is left as it was (convert works on a copy).
    assert all(type(m) is not IntLinear for m in model.modules())


@pytest.mark.parametrize("estimator,symmetric", [("lsq", True), ("lsq", False), ("learnable", True),
                                                 ("learnable", False)])
def test_learnable_quantizers_report_the_grid_their_forward_uses(estimator, symmetric):
    """calculate_qparams() of the convertible learnable quantizers: fake quantization with it
    equals the quantizer's own eval forward bit for bit, including clamped scales and zero points
    on rounding ties."""
    from lowbit.quantizers import make_quantizer

    torch.manual_seed(3)
    x = torch.randn(16, 6, 5) * 3
    act = make_quantizer(QuantSpec(Int(4, signed=False), symmetric=symmetric, estimator=estimator))
    wq = make_quantizer(QuantSpec(Int(4, narrow_range=True), granularity="per_channel", estimator=estimator),
                        shape=(16, 6, 5))
    for q in (act, wq):
        with pytest.raises(RuntimeError, match="not initialised"):
            q.calculate_qparams()
        q.initialize(x)
        with torch.no_grad():  # learned values the op clamps or rounds: a negative and a tiny step, .5 zero points
            q.scale.view(-1)[0] = -0.25
            q.scale.view(-1)[-1] = 1e-9
            if estimator == "learnable" and not symmetric:
                q.zero_point.view(-1)[0] = 3.5  # half to even: 4 (truncation would give 3)
                q.zero_point.view(-1)[-1] = 40.0
        q.eval()
        scale, zero_point = q.calculate_qparams()
        assert scale.dtype == torch.float32 and zero_point.dtype == torch.int32 and scale.shape == q.scale.shape
        with torch.no_grad():
            want = q(x)
        got = lowbit.ops.fake_quantize_affine(x, scale, zero_point, q.qmin, q.qmax)
        assert torch.equal(got, want)


@pytest.mark.parametrize("estimator", ["lsq", "learnable"])
def test_lsq_and_learnable_qat_models_convert(digits, estimator):
    torch.manual_seed(0)
    weight = QuantSpec(Int(8, narrow_range=True), granularity="per_channel", estimator=estimator)
    act = QuantSpec(Int(8, signed=False), symmetric=estimator == "lsq", estimator=estimator)
    model = lowbit.prepare_qat(digits_cnn(), weight=weight, activation=act)
    qat_steps(model, [digits.x_train[i:i + 64] for i in range(0, 640, 64)],
              [digits.y_train[i:i + 64] for i in range(0, 640, 64)], steps=10, lr=1e-3)
    model.eval()
    converted = lowbit.convert(model)
    assert sum(isinstance(m, (IntConv2d, IntLinear)) for m in converted.modules()) == 3
    report = lowbit.compare_simulation(model, converted, digits.x_test)
    for name, m in report.layers.items():
        # The float simulation rounds the requantization differently: one code away near ties.
        assert m.mismatched < 0.05 * m.total and set(m.lsb_histogram) <= {1}, (name, m)
    with torch.no_grad():
        agree = (model(digits.x_test).argmax(1) == converted(digits.x_test).argmax(1)).float().mean()
    assert agree > 0.97


@pytest.mark.parametrize("estimator", ["lsq+", "pact", "qil", "dsq"])
def test_estimators_off_the_affine_grid_are_named(estimator):
    spec = dict(estimator=estimator) if estimator != "lsq+" else dict(estimator=estimator, symmetric=False)
    model = lowbit.prepare_qat(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)),
                               weight=QuantSpec(Int(4), granularity="per_channel", estimator=estimator),
                               activation=QuantSpec(Int(4, signed=False), **spec))
    model(torch.randn(4, 8))
    with pytest.raises(ConversionError, match=rf"layer '0': its input quantizer is \w+ \(estimator='{re.escape(estimator)}'\)"
                                              r".*not on an affine integer grid.*'ste', 'lsq', 'learnable'"):
        lowbit.convert(model)


def test_integer_simulation_needs_the_ste_estimator():
    with pytest.raises(ValueError, match="simulation='integer' runs the observer-driven 'ste' estimator.*"
                                         "activation estimator='lsq'"):
        lowbit.prepare_qat(nn.Sequential(nn.Linear(4, 4)), weight=W8,
                           activation=QuantSpec(Int(8, signed=False), estimator="lsq"), simulation="integer")


def test_uninitialised_learnable_model_is_not_converted():
    model = lowbit.prepare_qat(nn.Sequential(nn.Linear(8, 2)),
                               weight=QuantSpec(Int(8), granularity="per_channel", estimator="lsq"),
                               activation=QuantSpec(Int(8, signed=False), estimator="lsq"))
    with pytest.raises(ConversionError, match="never initialised"):
        lowbit.convert(model)


def test_compare_simulation_counts_and_histogram():
    torch.manual_seed(12)
    model = lowbit.prepare_qat(nn.Sequential(nn.Linear(8, 4)), weight=W8, activation=A8, simulation="integer")
    calibrate(model, randn_batches((16, 8)))
    converted = lowbit.convert(model, use_kernels=False)
    x = torch.randn(10, 8)
    assert lowbit.compare_simulation(model, converted, x).exact
    # Shift channel 1's int32 bias by 1000 accumulator units: 10 outputs off by exactly 1000 LSB.
    converted.get_submodule("0").bias[1] += 1000
    report = lowbit.compare_simulation(model, converted, x)
    assert report.output.mismatched == 10 and report.output.total == 40
    assert report.output.lsb_histogram == {1000: 10}
    assert not report.exact
    # An explicit LSB.
    report = lowbit.compare_simulation(model, converted, x, lsb=torch.tensor(float("inf")))
    assert report.output.lsb_histogram == {0: 10}


def test_mismatch_histogram():
    m = _mismatch(torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]), torch.tensor([0.0, 1.5, 2.0, 5.0, 4.25]),
                  torch.tensor(0.5, dtype=torch.float64), "half units")
    assert isinstance(m, Mismatch)
    assert (m.total, m.mismatched, m.max_abs_diff) == (5, 3, 2.0)
    assert m.lsb_histogram == {0: 1, 1: 1, 4: 1}  # 0.25/0.5 rounds to 0 (half to even)
    assert "3 of 5 differ" in str(m) and "0: 1, 1: 1, 4: 1" in str(m)
    assert m.median_lsb == 1


# ---- errors ----------------------------------------------------------------------------------------------


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: not capturable
            return self.fc(x)
        return x


def test_untraceable_model_errors_name_the_model():
    with pytest.raises(ConversionError, match="torch.fx cannot capture the graph of Branchy.forward"):
        lowbit.prepare_qat(Branchy(), weight=W8, activation=A8, simulation="integer")
    model = calibrate(lowbit.prepare_qat(Branchy(), weight=W8, activation=A8), [torch.ones(2, 4)])
    with pytest.raises(ConversionError, match="Branchy.forward"):
        lowbit.convert(model)


@pytest.mark.parametrize("kwargs,match", [
    (dict(weight=W8), r"layer '0' does not quantize its input \(activation=None\).* 4-bit weight-only model "
                      r"deploys with lowbit.quantize_int4_weight_only"),
    (dict(activation=A8), r"layer '0' does not quantize its weight"),
    (dict(weight=W8, activation=QuantSpec(Int(8), granularity="per_channel")),
     r"layer '0': activation granularity 'per_channel'"),
    (dict(weight=QuantSpec(Int(4), granularity="per_group", group_size=4), activation=A8),
     r"layer '0': weight quantization 'int4 per_group"),
])
def test_unconvertible_layers_are_named(kwargs, match):
    model = lowbit.prepare_qat(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)), **kwargs)
    calibrate(model, randn_batches((4, 8)))
    with pytest.raises(ConversionError, match=match):
        lowbit.convert(model)


def test_prepare_integer_simulation_argument_errors():
    net = lambda: nn.Sequential(nn.Linear(4, 4))  # noqa: E731
    with pytest.raises(ValueError, match="simulation must be one of 'float', 'integer'; got simulation='int'|"
                                         "simulation must be one of 'float', 'integer', got simulation='int'"):
        lowbit.prepare_qat(net(), weight=W8, activation=A8, simulation="int")
    with pytest.raises(ValueError, match="needs both weight= and activation=.*activation=None"):
        lowbit.prepare_qat(net(), weight=W8, simulation="integer")
    with pytest.raises(ValueError, match="per-tensor activations.*'per_channel'"):
        lowbit.prepare_qat(net(), weight=W8, activation=QuantSpec(Int(8), granularity="per_channel"),
                           simulation="integer")
    with pytest.raises(ValueError, match="requant_rounding must be one of 'double', 'single', got "
                                         "requant_rounding='up'"):
        lowbit.prepare_qat(net(), weight=W8, activation=A8, simulation="integer", requant_rounding="up")
    with pytest.raises(ValueError, match="per-output-channel"):
        lowbit.prepare_qat(net(), weight=QuantSpec(Int(8), granularity="per_channel", axis=1), activation=A8,
                           simulation="integer")


def test_layer_called_twice_is_an_error():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.fc(x))

    with pytest.raises(ConversionError, match=r"module 'fc' is called at 2 places \(nodes fc, fc_1\)"):
        lowbit.prepare_qat(Twice(), weight=W8, activation=A8, simulation="integer")


def test_uncalibrated_disabled_and_reconverted_models_are_errors():
    model = lowbit.prepare_qat(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), weight=W8,
                               activation=A8, simulation="integer")
    with pytest.raises(ConversionError, match="never observed data"):
        lowbit.convert(model)
    calibrate(model, randn_batches((4, 4)))
    first = model.get_submodule("0")
    first.weight_quantizer.disable_fake_quant()
    with pytest.raises(ConversionError, match=r"'0.weight_quantizer': fake quantization is switched off"):
        lowbit.convert(model)
    first.weight_quantizer.enable_fake_quant()
    converted = lowbit.convert(model)
    with pytest.raises(ConversionError, match="already converted"):
        lowbit.convert(converted)
    with pytest.raises(ConversionError, match="has no quantized layers"):
        lowbit.convert(nn.Sequential(nn.Linear(4, 4)))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        lowbit.convert("model")


def test_accumulator_overflow_is_caught_when_preparing():
    wide = QuantSpec(Int(16), symmetric=False)
    with pytest.raises(ValueError, match=r"layer '0': the int32 accumulator can overflow: 64 terms"):
        lowbit.prepare_qat(nn.Sequential(nn.Linear(64, 4)), weight=wide, activation=wide, simulation="integer")


def test_float_simulation_with_conflicting_grids_is_an_error():
    class Fork(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            h = self.a(x)
            return self.b(h) + self.c(F.relu(h))  # b sees h, c sees relu(h): two different ranges

    model = calibrate(lowbit.prepare_qat(Fork(), weight=W8, activation=A8), randn_batches((16, 4)))
    with pytest.raises(ConversionError, match="value 'a' feeds layers 'b' and 'c' whose input quantizers "
                                              "observed different ranges"):
        lowbit.convert(model)
    # The same model in integer simulation has one grid for h and converts exactly.
    model = calibrate(lowbit.prepare_qat(Fork(), weight=W8, activation=A8, simulation="integer"),
                      randn_batches((16, 4)))
    assert_exact(model, lowbit.convert(model), torch.randn(8, 4))


class MaxPoolCNN(nn.Module):
    """Max pooling as a module and as functionals (padding, ceil_mode, dilation), on codes."""

    def __init__(self):
        super().__init__()
        self.c0, self.c1 = nn.Conv2d(2, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8 * 3 * 3, 4)

    def forward(self, x):
        h = self.pool(F.relu(self.c0(x)))                                       # 11x11 -> 5x5
        h = F.max_pool2d(self.c1(h), 3, stride=1, padding=1, dilation=1)       # 5x5 -> 5x5
        h = F.max_pool2d(h, kernel_size=2, stride=2, ceil_mode=True)           # 5x5 -> 3x3
        return self.head(torch.flatten(h, 1))


@pytest.mark.parametrize("simulation", ["integer", "float"])
def test_max_pooling_of_codes_runs_int8_max_pool2d(simulation):
    from lowbit.nn.integer import IntMaxPool2d

    torch.manual_seed(21)
    model = lowbit.prepare_qat(MaxPoolCNN(), weight=W8, activation=A8, simulation=simulation)
    calibrate(model, randn_batches((4, 2, 11, 11)))
    converted = lowbit.convert(model)
    pools = [m for m in converted.modules() if isinstance(m, IntMaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding, p.ceil_mode) for p in pools] == \
        [(2, 2, 0, False), (3, 1, 1, False), (2, 2, 0, True)]
    assert converted.float_nodes == []
    assert "op=int8_max_pool2d" in repr(converted)
    # The previous conversion ran torch's max pooling on the codes: the same result.
    previous = copy.deepcopy(converted)
    for p in previous.modules():
        if isinstance(p, IntMaxPool2d):
            p.forward = lambda codes, p=p: F.max_pool2d(codes, p.kernel_size, p.stride, p.padding, p.dilation,
                                                        p.ceil_mode)
    for x in randn_batches((4, 2, 11, 11), seed=5):
        assert torch.equal(converted(x), previous(x))
        if simulation == "integer":
            assert_exact(model, converted, x)


def test_digits_cnn_conversion_uses_int8_max_pool2d():
    from lowbit.nn.integer import IntMaxPool2d

    torch.manual_seed(0)
    model = lowbit.prepare_qat(digits_cnn(), weight=W8, activation=A8, simulation="integer")
    calibrate(model, [torch.rand(16, 1, 8, 8) for _ in range(3)])
    converted = lowbit.convert(model)
    assert sum(isinstance(m, IntMaxPool2d) for m in converted.modules()) == 1
    assert_exact(model, converted, torch.rand(32, 1, 8, 8))
