import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lowbit
from lowbit import QuantSpec
from lowbit.formats import Int
from lowbit.quantizers import FakeQuantize, Quantizer, estimators, register_estimator


def test_defaults():
    s = QuantSpec(Int(8))
    assert (s.granularity, s.axis, s.group_size, s.symmetric) == ("per_tensor", None, None, True)
    assert (s.rounding, s.observer, s.estimator, s.ste, s.qparams) == ("half_even", "minmax", "ste", "integer",
                                                                        "observer")
    assert s.averaging_constant is None
    assert (s.qmin, s.qmax) == (-128, 127)
    assert QuantSpec(Int(8), observer="ema").averaging_constant == 0.01
    assert QuantSpec(Int(8), observer="ema", averaging_constant=0.1).averaging_constant == 0.1


def test_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        QuantSpec(Int(8), "per_channel")
    s = QuantSpec(Int(8))
    with pytest.raises(Exception):
        s.symmetric = False
    assert s == QuantSpec(Int(8)) and hash(s) == hash(QuantSpec(Int(8)))


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(format=8), TypeError, r"format must be a lowbit.formats.Int, got format=8"),
    (dict(granularity="per_row"), ValueError, r"granularity must be one of .*granularity='per_row'"),
    (dict(granularity="per_channel", axis="0"), TypeError, r"axis must be an int or None, got axis='0'"),
    (dict(axis=1), ValueError, r"axis=1 needs granularity='per_channel' or 'per_group'"),
    (dict(granularity="per_group"), ValueError, r"per_group' needs group_size, got group_size=None"),
    (dict(granularity="per_group", group_size=0), ValueError, r"group_size must be a positive int, got group_size=0"),
    (dict(granularity="per_group", group_size=2.5), ValueError, r"group_size=2.5"),
    (dict(group_size=32), ValueError, r"group_size=32 needs granularity='per_group'"),
    (dict(symmetric=1), TypeError, r"symmetric must be a bool, got symmetric=1"),
    (dict(rounding="nearest"), ValueError, r"rounding must be one of .*rounding='nearest'"),
    (dict(observer="histogram"), ValueError, r"observer must be one of 'minmax', 'ema'; got observer='histogram'"),
    (dict(averaging_constant=0.1), ValueError, r"averaging_constant=0.1 needs observer='ema'"),
    (dict(observer="ema", averaging_constant=0.0), ValueError, r"averaging_constant must be a number in \(0, 1\]"),
    (dict(observer="ema", averaging_constant=1.5), ValueError, r"averaging_constant=1.5"),
    (dict(estimator="lsq_typo"), ValueError, r"estimator must be one of .*'ste'.*estimator='lsq_typo'"),
    (dict(ste="clipped"), ValueError, r"ste must be one of 'integer', 'real', 'identity'; got ste='clipped'"),
    (dict(qparams="tflite"), ValueError, r"qparams must be one of 'observer', 'fbgemm'; got qparams='tflite'"),
])
def test_validation_errors_name_argument_and_value(kwargs, exc, pattern):
    kwargs = dict(kwargs)
    fmt = kwargs.pop("format", Int(8))
    with pytest.raises(exc, match=pattern):
        QuantSpec(fmt, **kwargs)


@pytest.mark.parametrize("spec, shape, expected", [
    (QuantSpec(Int(8)), (4, 3, 5, 5), (1,)),
    (QuantSpec(Int(8)), (), (1,)),
    (QuantSpec(Int(8), granularity="per_channel"), (16, 3, 3, 3), (16, 1, 1, 1)),
    (QuantSpec(Int(8), granularity="per_channel"), (10, 20), (10, 1)),
    (QuantSpec(Int(8), granularity="per_channel", axis=1), (2, 8, 5, 5), (8, 1, 1)),
    (QuantSpec(Int(8), granularity="per_channel", axis=-1), (2, 7, 20), (20,)),
    (QuantSpec(Int(8), granularity="per_channel", axis=-3), (2, 8, 5, 5), (8, 1, 1)),
    (QuantSpec(Int(4), granularity="per_group", group_size=4), (6, 16), (6, 4)),
    (QuantSpec(Int(4), granularity="per_group", group_size=4, axis=0), (8, 3), (2, 3)),
    (QuantSpec(Int(4), granularity="per_group", group_size=2, axis=1), (4, 6, 3, 3), (4, 3, 3, 3)),
    (QuantSpec(Int(4), granularity="per_group", group_size=16), (1, 32), (2,)),
])
def test_param_shape(spec, shape, expected):
    assert spec.param_shape(shape) == expected


def test_param_shape_errors():
    spec = QuantSpec(Int(4), granularity="per_group", group_size=5)
    with pytest.raises(ValueError, match=r"group_size=5 does not divide dimension 1 \(size 16\) of shape \(6, 16\)"):
        spec.param_shape((6, 16))
    with pytest.raises(ValueError, match=r"axis=2 is out of range for a tensor with 2 dimensions"):
        QuantSpec(Int(8), granularity="per_channel", axis=2).param_shape((3, 4))
    with pytest.raises(ValueError, match=r"needs a tensor with at least one dimension, got shape=\(\)"):
        QuantSpec(Int(8), granularity="per_channel").param_shape(())
    with pytest.raises(TypeError, match=r"shape must be a sequence of ints, got shape=3"):
        QuantSpec(Int(8)).param_shape(3)


def test_replace_drops_fields_the_change_makes_meaningless():
    ema = QuantSpec(Int(8), observer="ema", averaging_constant=0.2)
    assert ema.replace(observer="minmax").averaging_constant is None
    assert ema.replace(symmetric=False).averaging_constant == 0.2
    grouped = QuantSpec(Int(4), granularity="per_group", group_size=8, axis=1)
    per_tensor = grouped.replace(granularity="per_tensor")
    assert (per_tensor.group_size, per_tensor.axis) == (None, None)
    with pytest.raises(ValueError, match="group_size=0"):
        grouped.replace(group_size=0)


def test_describe():
    assert QuantSpec(Int(8), granularity="per_channel").describe() == "int8 per_channel(axis=0) symmetric minmax ste"
    s = QuantSpec(Int(8, signed=False), symmetric=False, observer="ema", ste="real", rounding="stochastic")
    assert s.describe() == "uint8 per_tensor affine ema(0.01) ste(real) rounding=stochastic"


def test_estimator_registry():
    assert estimators()["ste"] is FakeQuantize
    with pytest.raises(TypeError, match="subclass of lowbit.quantizers.Quantizer"):
        register_estimator("not_a_quantizer")(int)
    with pytest.raises(ValueError, match="already registered"):
        register_estimator("ste")(type("Other", (Quantizer,), {}))

    # A new estimator only registers its class; QuantSpec then accepts the name.
    @register_estimator("test_only_estimator")
    class _TestQuantizer(Quantizer):
        def __init__(self, spec, shape=None, device=None):
            super().__init__(spec, device=device)

        def forward(self, x):
            return x

    try:
        spec = QuantSpec(Int(8), estimator="test_only_estimator")
        assert isinstance(lowbit.quantizers.make_quantizer(spec), _TestQuantizer)
    finally:
        lowbit.quantizers._ESTIMATORS.pop("test_only_estimator")
    with pytest.raises(ValueError, match="estimator="):
        QuantSpec(Int(8), estimator="test_only_estimator")
    with pytest.raises(ValueError, match=r"FakeQuantize implements estimator='ste'"):
        FakeQuantize(spec)


@st.composite
def _spec_and_shape(draw):
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    granularity = draw(st.sampled_from(["per_tensor", "per_channel", "per_group"]))
    kwargs = {}
    if granularity != "per_tensor":
        axis = draw(st.sampled_from([None] + list(range(-len(shape), len(shape)))))
        kwargs["axis"] = axis
        if granularity == "per_group":
            size = shape[(len(shape) - 1 if axis is None else axis) % len(shape)]
            kwargs["group_size"] = draw(st.sampled_from([g for g in range(1, size + 1) if size % g == 0]))
    return QuantSpec(Int(draw(st.integers(2, 16))), granularity=granularity, **kwargs), shape


@settings(max_examples=40, deadline=None)
@given(_spec_and_shape())
def test_param_shape_tiles_the_tensor_for_the_ops(case):
    spec, shape = case
    pshape = spec.param_shape(shape)
    padded = (1,) * (len(shape) - len(pshape)) + pshape
    assert len(padded) == len(shape) and all(s % p == 0 for s, p in zip(shape, padded))
    assert pshape == (1,) or pshape[0] != 1  # leading ones dropped
    fq = FakeQuantize(spec, shape=shape).train()
    x = torch.randn(shape)
    y = fq(x)  # the observer and fake-quant ops accept the shape
    assert y.shape == x.shape
    blocks = x.reshape(*[d for p, s in zip(padded, shape) for d in (p, s // p)])
    expected_max = blocks.amax(dim=tuple(range(1, 2 * len(shape), 2))).reshape(pshape)
    assert torch.equal(fq.max_val, expected_max)
