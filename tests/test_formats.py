import pytest

from lowbit.formats import Int


@pytest.mark.parametrize("fmt, qmin, qmax", [
    (Int(8), -128, 127),
    (Int(8, narrow_range=True), -127, 127),
    (Int(8, signed=False), 0, 255),
    (Int(8, signed=False, narrow_range=True), 1, 255),
    (Int(7, signed=False), 0, 127),  # torch.ao quint8 with reduce_range
    (Int(4), -8, 7),
    (Int(4, narrow_range=True), -7, 7),
    (Int(2), -2, 1),
    (Int(2, narrow_range=True), -1, 1),
    (Int(16), -32768, 32767),
    (Int(16, signed=False), 0, 65535),
])
def test_ranges(fmt, qmin, qmax):
    assert (fmt.qmin, fmt.qmax) == (qmin, qmax)


def test_names_and_value_semantics():
    assert Int(8).name == "int8"
    assert str(Int(4, signed=False)) == "uint4"
    assert Int(8, narrow_range=True).name == "int8_narrow"
    assert Int(8) == Int(8, signed=True, narrow_range=False)
    assert hash(Int(8)) == hash(Int(8))
    assert Int(8) != Int(8, signed=False)
    with pytest.raises(Exception):
        Int(8).bits = 4  # frozen


@pytest.mark.parametrize("bits", [0, 1, 17, 32, -8])
def test_bits_out_of_range_names_argument_and_value(bits):
    with pytest.raises(ValueError, match=rf"bits.*\[2, 16\].*bits={bits}"):
        Int(bits)


@pytest.mark.parametrize("bits", [8.0, "8", True, None])
def test_bits_wrong_type(bits):
    with pytest.raises(TypeError, match=r"bits must be an integer.*" + repr(bits).replace("(", r"\(")):
        Int(bits)


@pytest.mark.parametrize("name", ["signed", "narrow_range"])
def test_flags_must_be_bool(name):
    with pytest.raises(TypeError, match=rf"{name} must be a bool, got 1"):
        Int(8, **{name: 1})
