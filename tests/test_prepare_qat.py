"""prepare_qat: swapping, include/skip patterns, switches, state dicts."""

import copy
import io
import warnings

import pytest
import torch
from torch import nn

import lowbit
from lowbit import QuantSpec
from lowbit.formats import Int
from lowbit.nn import FakeQuantize, QuantConv2d, QuantLinear

WEIGHT = QuantSpec(Int(8, narrow_range=True), granularity="per_channel")
ACT = QuantSpec(Int(8, signed=False), symmetric=False, observer="ema")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.features = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):
        return self.head(self.pool(self.features(torch.relu(self.stem(x)))))


def _quantized_names(model):
    return sorted(name for name, m in model.named_modules() if isinstance(m, (QuantLinear, QuantConv2d)))


ALL = ["features.0", "features.2", "head.1", "head.3", "stem"]


def test_swaps_all_linear_and_conv_in_place_keeping_parameters():
    model = Net()
    params_before = dict(model.named_parameters())
    out = lowbit.prepare_qat(model, weight=WEIGHT, activation=ACT)
    assert out is model
    assert _quantized_names(model) == ALL
    params_after = dict(model.named_parameters())
    assert params_after.keys() == params_before.keys()
    assert all(params_after[k] is params_before[k] for k in params_before)
    assert isinstance(model.head[1].weight_quantizer, FakeQuantize)
    assert model.head[1].input_quantizer.spec == ACT
    assert len(dict(lowbit.named_quantizers(model))) == 10


@pytest.mark.parametrize("include, skip, expected", [
    ("features.*", None, ["features.0", "features.2"]),
    (["stem", "head.3"], None, ["head.3", "stem"]),
    (None, ["stem", "head.3"], ["features.0", "features.2", "head.1"]),
    ("*", "head.*", ["features.0", "features.2", "stem"]),
    ("features.[02]", "features.2", ["features.0"]),
])
def test_include_and_skip_patterns(include, skip, expected):
    model = Net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lowbit.prepare_qat(model, weight=WEIGHT, activation=ACT, include=include, skip=skip)
    assert _quantized_names(model) == expected


def test_pattern_that_matches_nothing_warns():
    with pytest.warns(UserWarning, match=r"include pattern 'classifier' matches no nn.Linear/nn.Conv2d module name "
                                         r"\(candidates: 'stem', 'features.0'"):
        lowbit.prepare_qat(Net(), weight=WEIGHT, include=["classifier", "stem"])
    with pytest.warns(UserWarning, match=r"skip pattern 'pool' matches no"):  # pool is not a Linear/Conv2d
        lowbit.prepare_qat(Net(), weight=WEIGHT, skip="pool")


def test_bad_arguments():
    with pytest.raises(ValueError, match="nothing to quantize"):
        lowbit.prepare_qat(Net())
    with pytest.raises(TypeError, match=r"weight must be a lowbit.QuantSpec or None, got weight=8"):
        lowbit.prepare_qat(Net(), weight=8)
    with pytest.raises(TypeError, match=r"include must hold pattern strings, got 3"):
        lowbit.prepare_qat(Net(), weight=WEIGHT, include=["stem", 3])
    with pytest.raises(TypeError, match=r"skip must be a pattern string or a list of them, got skip=5"):
        lowbit.prepare_qat(Net(), weight=WEIGHT, skip=5)
    with pytest.raises(TypeError, match=r"model must be an nn.Module, got model=dict"):
        lowbit.prepare_qat({}, weight=WEIGHT)


def test_second_prepare_changes_nothing_and_subclasses_are_left_alone():
    model = Net()
    lowbit.prepare_qat(model, weight=WEIGHT, activation=ACT)
    quantizers = dict(lowbit.named_quantizers(model))
    with pytest.warns(UserWarning):  # nothing left to match "stem"
        lowbit.prepare_qat(model, weight=WEIGHT, include="stem")
    assert dict(lowbit.named_quantizers(model)).keys() == quantizers.keys()
    mha = nn.MultiheadAttention(8, 2)
    lowbit.prepare_qat(nn.Sequential(mha), weight=WEIGHT)
    assert type(mha.out_proj) is not QuantLinear  # NonDynamicallyQuantizableLinear: MHA never calls its forward


def test_root_layer_and_shared_modules():
    q = lowbit.prepare_qat(nn.Linear(4, 3), weight=WEIGHT)
    assert isinstance(q, QuantLinear)
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    lowbit.prepare_qat(model, weight=WEIGHT, include="2")
    assert isinstance(model[0], QuantLinear) and model[0] is model[2]


def test_model_level_switches():
    model = lowbit.prepare_qat(Net(), weight=WEIGHT, activation=ACT)
    assert lowbit.disable_observer(model) == 10
    assert not any(q.observer_enabled.item() for _, q in lowbit.named_quantizers(model))
    lowbit.enable_observer(model)
    assert all(q.observer_enabled.item() for _, q in lowbit.named_quantizers(model))
    lowbit.disable_fake_quant(model)
    x = torch.randn(2, 1, 8, 8)
    float_model = Net()
    float_model.load_state_dict({k: v for k, v in model.state_dict().items() if "quantizer" not in k})
    assert torch.equal(model(x), float_model(x))
    lowbit.enable_fake_quant(model, True)
    assert not torch.equal(model(x), float_model(x))
    with pytest.raises(TypeError, match="enabled must be a bool, got enabled='yes'"):
        lowbit.enable_observer(model, "yes")
    with pytest.warns(UserWarning, match="has no lowbit quantizers"):
        assert lowbit.disable_observer(Net()) == 0


def test_state_dict_round_trip_restores_quantizer_state_exactly():
    torch.manual_seed(0)
    model = lowbit.prepare_qat(Net(), weight=WEIGHT, activation=ACT).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        loss = model(torch.randn(8, 1, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.head[3].input_quantizer.disable_observer()
    model.stem.weight_quantizer.disable_fake_quant()

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = lowbit.prepare_qat(Net(), weight=WEIGHT, activation=ACT)
    fresh.load_state_dict(torch.load(buffer))  # strict: every quantizer key present and matching

    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name
    assert not fresh.head[3].input_quantizer.observer_enabled.item()
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(model.eval()(x), fresh.eval()(x))
    # And in training mode (observers update identically from the same state).
    model.train()
    fresh.train()
    assert torch.equal(model(x), fresh(x))
    assert torch.equal(model.features[0].input_quantizer.min_val, fresh.features[0].input_quantizer.min_val)


def test_deepcopy_and_dtype_cast():
    model = lowbit.prepare_qat(Net(), weight=WEIGHT, activation=ACT).train()
    model(torch.randn(2, 1, 8, 8))
    clone = copy.deepcopy(model)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(clone.eval()(x), model.eval()(x))
    model.to(torch.bfloat16)
    assert model.stem.weight.dtype == torch.bfloat16
    assert model.stem.input_quantizer.min_val.dtype == torch.float32
    assert model(x.to(torch.bfloat16)).dtype == torch.bfloat16
