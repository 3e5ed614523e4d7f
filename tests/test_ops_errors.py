"""Bad input gets a clear error that names the op, the argument and the bad value; never a crash.

Each case asserts on the message content, not just on the exception type. Device mismatches use
the meta device (a CPU-only machine has no second real device): a call mixing meta and CPU tensors
dispatches to the fake kernel, which must reject it like the CPU kernel does.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

import lowbit

L = torch.ops.lowbit
X = torch.randn(3, 4)
S = torch.tensor([0.1])
Z = torch.tensor([0], dtype=torch.int32)
SEED = torch.tensor([7])
Q8 = torch.zeros(3, 4, dtype=torch.int8)
INF, NAN = math.inf, math.nan


def _fq(x=X, scale=S, zp=Z, qmin=-8, qmax=7, rounding="half_even", ste="integer", seed=None, offset=0,
        enabled=None):
    return L.fake_quantize_affine(x, scale, zp, qmin, qmax, rounding, ste, seed, offset, enabled)


def _fqb(grad=None, x=X, scale=S, zp=Z, qmin=-8, qmax=7, rounding="half_even", ste="integer", seed=None):
    return L.fake_quantize_affine_backward(X if grad is None else grad, x, scale, zp, qmin, qmax, rounding, ste,
                                           seed)


def _q(x=X, scale=S, zp=Z, qmin=-8, qmax=7, rounding="half_even", seed=None):
    return L.quantize_affine(x, scale, zp, qmin, qmax, rounding, seed)


def _dq(q=Q8, scale=S, zp=Z, dtype=None):
    return L.dequantize_affine(q, scale, zp, dtype)


def _cq(lo=(-1.0,), hi=(1.0,), qmin=0, qmax=255, symmetric=False, method="observer", eps=2.0**-23):
    lo = lo if isinstance(lo, torch.Tensor) else torch.tensor(lo)
    hi = hi if isinstance(hi, torch.Tensor) else torch.tensor(hi)
    return L.choose_qparams(lo, hi, qmin, qmax, symmetric, method, eps)


def _fresh(shape=(1,), dtype=torch.float32):
    return torch.full(shape, INF, dtype=dtype), torch.full(shape, -INF, dtype=dtype)


def _obs(x=X, bufs=None, enabled=None):
    lo, hi = bufs if bufs is not None else _fresh()
    return L.observe_minmax_(x, lo, hi, enabled)


def _ema(x=X, bufs=None, c=0.01, enabled=None):
    lo, hi = bufs if bufs is not None else _fresh()
    return L.observe_moving_average_minmax_(x, lo, hi, c, enabled)


AFFINE_OPS = {"fake_quantize_affine": _fq, "fake_quantize_affine_backward": _fqb, "quantize_affine": _q}

# (id, call, expected substrings: op name, argument name, value)
CASES = []
for name, fn in AFFINE_OPS.items():
    CASES += [
        (f"{name}-scale-zero", lambda fn=fn: fn(scale=torch.tensor([0.0])), [name, "scale[0] = 0"]),
        (f"{name}-scale-negative", lambda fn=fn: fn(scale=torch.tensor([[0.1], [-2.0], [0.3]]),
                                                    zp=torch.zeros(3, 1, dtype=torch.int32)), [name, "scale[1] = -2"]),
        (f"{name}-scale-nan", lambda fn=fn: fn(scale=torch.tensor([NAN])), [name, "scale[0] = nan"]),
        (f"{name}-scale-inf", lambda fn=fn: fn(scale=torch.tensor([INF])), [name, "scale[0] = inf"]),
        (f"{name}-scale-reciprocal-inf", lambda fn=fn: fn(scale=torch.tensor([1e-40])),
         [name, "scale", "finite reciprocal", "scale[0] = 9.99995e-41"]),
        (f"{name}-scale-int-dtype", lambda fn=fn: fn(scale=torch.tensor([1], dtype=torch.int32)),
         [name, "scale must be a floating-point tensor", "Int"]),
        (f"{name}-qmin-eq-qmax", lambda fn=fn: fn(qmin=7, qmax=7), [name, "qmin must be < qmax", "qmin=7, qmax=7"]),
        (f"{name}-qmin-gt-qmax", lambda fn=fn: fn(qmin=8, qmax=-8, zp=torch.tensor([0], dtype=torch.int32)),
         [name, "qmin=8, qmax=-8"]),
        (f"{name}-range-too-wide", lambda fn=fn: fn(qmin=-40000, qmax=0), [name, "(qmin, qmax)=(-40000, 0)"]),
        (f"{name}-range-above-16-bit", lambda fn=fn: fn(qmin=0, qmax=70000), [name, "(qmin, qmax)=(0, 70000)"]),
        (f"{name}-zero-point-above", lambda fn=fn: fn(zp=torch.tensor([9], dtype=torch.int32)),
         [name, "zero_point[0] = 9", "[qmin, qmax] = [-8, 7]"]),
        (f"{name}-zero-point-below", lambda fn=fn: fn(qmin=0, qmax=15, zp=torch.tensor([[0], [-1], [3]], dtype=torch.int32),
                                                      scale=torch.ones(3, 1)), [name, "zero_point[1] = -1", "[0, 15]"]),
        (f"{name}-zero-point-float", lambda fn=fn: fn(zp=torch.tensor([0.0])),
         [name, "zero_point must be an integer tensor", "Float"]),
        (f"{name}-zero-point-bool", lambda fn=fn: fn(zp=torch.tensor([True])), [name, "zero_point", "Bool"]),
        (f"{name}-scale-does-not-tile", lambda fn=fn: fn(scale=torch.ones(3, 3), zp=torch.zeros(3, 3, dtype=torch.int32)),
         [name, "scale of shape [3, 3] does not tile", "dimension 1", "input shape [3, 4]"]),
        (f"{name}-scale-too-many-dims", lambda fn=fn: fn(scale=torch.ones(2, 1, 1), zp=torch.zeros(2, 1, 1, dtype=torch.int32)),
         [name, "scale of shape [2, 1, 1] has 3 dimensions", "input shape [3, 4]"]),
        (f"{name}-scale-zero-point-shapes", lambda fn=fn: fn(scale=torch.ones(3, 1), zp=torch.zeros(1, 4, dtype=torch.int32)),
         [name, "scale and zero_point must have the same shape", "[3, 1] and [1, 4]"]),
        (f"{name}-x-int64", lambda fn=fn: fn(x=X.long()), [name, "x must be float32, float16 or bfloat16", "Long"]),
        (f"{name}-x-int8", lambda fn=fn: fn(x=Q8), [name, "x must be", "Char"]),
        (f"{name}-x-complex", lambda fn=fn: fn(x=X.to(torch.complex64)), [name, "x must be", "ComplexFloat"]),
        (f"{name}-x-float64", lambda fn=fn: fn(x=X.double()), [name, "x must be", "Double"]),
        (f"{name}-x-bool", lambda fn=fn: fn(x=X > 0), [name, "x must be", "Bool"]),
        (f"{name}-x-meta", lambda fn=fn: fn(x=X.to("meta")), [name, "x is on meta but", "is on cpu"]),
        (f"{name}-scale-meta", lambda fn=fn: fn(scale=S.to("meta")), [name, "x is on cpu", "scale is on meta"]),
        (f"{name}-zero-point-meta", lambda fn=fn: fn(zp=Z.to("meta")), [name, "zero_point is on meta"]),
        (f"{name}-unknown-rounding", lambda fn=fn: fn(rounding="nearest"), [name, "rounding must be one of", "'nearest'"]),
        (f"{name}-stochastic-without-seed", lambda fn=fn: fn(rounding="stochastic"),
         [name, "rounding='stochastic' needs a seed"]),
        (f"{name}-float-seed", lambda fn=fn: fn(rounding="stochastic", seed=torch.tensor([1.5])),
         [name, "seed must be an integer tensor with one element", "Float", "[1]"]),
        (f"{name}-two-seeds", lambda fn=fn: fn(rounding="stochastic", seed=torch.tensor([1, 2])),
         [name, "seed must be", "shape [2]"]),
    ]
CASES += [
    ("fake_quantize_affine-unknown-ste", lambda: _fq(ste="clipped"), ["fake_quantize_affine", "ste must be one of",
                                                                      "'clipped'"]),
    ("fake_quantize_affine_backward-unknown-ste", lambda: _fqb(ste="bogus"), ["_backward", "ste", "'bogus'"]),
    ("fake_quantize_affine-enabled-two-elements", lambda: _fq(enabled=torch.tensor([True, False])),
     ["fake_quantize_affine", "enabled must hold one element", "[2]"]),
    ("fake_quantize_affine_backward-grad-shape", lambda: _fqb(grad=torch.randn(3, 5)),
     ["_backward", "grad must match x", "[3, 5]", "[3, 4]"]),
    ("fake_quantize_affine_backward-grad-dtype", lambda: _fqb(grad=X.half()), ["_backward", "grad", "Half", "Float"]),
    ("fake_quantize_affine_backward-grad-meta", lambda: _fqb(grad=X.to("meta")), ["_backward", "grad is on meta"]),
    # dequantize
    ("dequantize_affine-q-float", lambda: _dq(q=X), ["dequantize_affine", "q must be uint8, int8, int16 or int32", "Float"]),
    ("dequantize_affine-q-int64", lambda: _dq(q=Q8.long()), ["dequantize_affine", "q must be", "Long"]),
    ("dequantize_affine-dtype-int", lambda: _dq(dtype=torch.int32), ["dequantize_affine", "dtype must be", "Int"]),
    ("dequantize_affine-dtype-double", lambda: _dq(dtype=torch.float64), ["dequantize_affine", "dtype", "Double"]),
    ("dequantize_affine-scale-zero", lambda: _dq(scale=torch.tensor([0.0])), ["dequantize_affine", "scale[0] = 0"]),
    ("dequantize_affine-scale-nan", lambda: _dq(scale=torch.tensor([NAN])), ["dequantize_affine", "scale[0] = nan"]),
    ("dequantize_affine-zero-point-float", lambda: _dq(zp=torch.tensor([0.0])),
     ["dequantize_affine", "zero_point must be an integer tensor", "Float"]),
    ("dequantize_affine-does-not-tile", lambda: _dq(scale=torch.ones(2, 1), zp=torch.zeros(2, 1, dtype=torch.int32)),
     ["dequantize_affine", "scale of shape [2, 1] does not tile", "input shape [3, 4]"]),
    ("dequantize_affine-scale-zero-point-shapes", lambda: _dq(scale=torch.ones(3, 1)),
     ["dequantize_affine", "same shape", "[3, 1] and [1]"]),
    ("dequantize_affine-q-meta", lambda: _dq(q=Q8.to("meta")), ["dequantize_affine", "q is on meta", "scale is on cpu"]),
    ("dequantize_affine-scale-meta", lambda: _dq(scale=S.to("meta")), ["dequantize_affine", "scale is on meta"]),
    # choose_qparams
    ("choose_qparams-min-gt-max", lambda: _cq(lo=(1.0,), hi=(0.0,)),
     ["choose_qparams", "(min_val[0], max_val[0]) = (1, 0)", "min_val > max_val"]),
    ("choose_qparams-nan", lambda: _cq(lo=(0.0, NAN), hi=(1.0, 1.0)), ["choose_qparams", "min_val[1]", "nan", "is NaN"]),
    ("choose_qparams-inf", lambda: _cq(hi=(INF,)), ["choose_qparams", "(-1, inf)", "is infinite"]),
    ("choose_qparams-neg-inf-fbgemm", lambda: _cq(lo=(-INF,), method="fbgemm"), ["choose_qparams", "(-inf, 1)", "infinite"]),
    ("choose_qparams-shapes", lambda: _cq(lo=(0.0,), hi=(1.0, 2.0)), ["choose_qparams", "same shape", "[1] and [2]"]),
    ("choose_qparams-int-inputs", lambda: _cq(lo=torch.tensor([0]), hi=torch.tensor([1])),
     ["choose_qparams", "must be floating point", "Long"]),
    ("choose_qparams-method", lambda: _cq(method="minmax"), ["choose_qparams", "method must be", "'minmax'"]),
    ("choose_qparams-eps-zero", lambda: _cq(eps=0.0), ["choose_qparams", "eps must be positive and finite", "got 0"]),
    ("choose_qparams-eps-nan", lambda: _cq(eps=NAN), ["choose_qparams", "eps", "nan"]),
    ("choose_qparams-qmin-eq-qmax", lambda: _cq(qmin=5, qmax=5), ["choose_qparams", "qmin=5, qmax=5"]),
    ("choose_qparams-fbgemm-32-bit", lambda: _cq(qmin=-(2**31), qmax=2**31 - 1, method="fbgemm"),
     ["choose_qparams", "(qmin, qmax)=(-2147483648, 2147483647)"]),
    ("choose_qparams-observer-beyond-int32", lambda: _cq(qmin=0, qmax=2**32 - 1),
     ["choose_qparams", "(qmin, qmax)=(0, 4294967295)", "int32"]),
    ("choose_qparams-meta", lambda: _cq(lo=torch.tensor([0.0], device="meta")),
     ["choose_qparams", "min_val is on meta", "max_val is on cpu"]),
    # observers
    ("observe_minmax_-float64-buffers", lambda: _obs(bufs=_fresh(dtype=torch.float64)),
     ["observe_minmax_", "min_val and max_val must be float32", "Double"]),
    ("observe_minmax_-buffer-shapes", lambda: _obs(bufs=(torch.zeros(3, 1), torch.zeros(1, 4))),
     ["observe_minmax_", "same shape", "[3, 1] and [1, 4]"]),
    ("observe_minmax_-non-contiguous", lambda: _obs(bufs=(torch.zeros(4, 3).t(), torch.zeros(4, 3).t())),
     ["observe_minmax_", "min_val and max_val must be contiguous"]),
    ("observe_minmax_-does-not-tile", lambda: _obs(bufs=_fresh((3,))),
     ["observe_minmax_", "min_val of shape [3] does not tile", "input shape [3, 4]"]),
    ("observe_minmax_-x-int", lambda: _obs(x=X.long()), ["observe_minmax_", "x must be", "Long"]),
    ("observe_minmax_-x-complex", lambda: _obs(x=X.to(torch.complex64)), ["observe_minmax_", "x must be", "ComplexFloat"]),
    ("observe_minmax_-enabled-two", lambda: _obs(enabled=torch.tensor([1, 1])), ["observe_minmax_", "enabled", "[2]"]),
    ("observe_minmax_-buffer-meta", lambda: _obs(bufs=(torch.zeros(1), torch.zeros(1, device="meta"))),
     ["observe_minmax_", "x is on cpu", "max_val is on meta"]),
    ("observe_minmax_-x-meta", lambda: _obs(x=X.to("meta")), ["observe_minmax_", "x is on meta", "min_val is on cpu"]),
    ("observe_moving_average_minmax_-c-zero", lambda: _ema(c=0.0),
     ["observe_moving_average_minmax_", "averaging_constant must be in (0, 1]", "got 0"]),
    ("observe_moving_average_minmax_-c-above-one", lambda: _ema(c=1.5), ["averaging_constant", "1.5"]),
    ("observe_moving_average_minmax_-c-nan", lambda: _ema(c=NAN), ["averaging_constant", "nan"]),
    ("observe_moving_average_minmax_-does-not-tile", lambda: _ema(bufs=_fresh((2, 1))),
     ["observe_moving_average_minmax_", "min_val of shape [2, 1] does not tile"]),
    ("observe_moving_average_minmax_-x-int", lambda: _ema(x=Q8), ["observe_moving_average_minmax_", "x must be", "Char"]),
    ("observe_moving_average_minmax_-meta", lambda: _ema(x=X.to("meta")),
     ["observe_moving_average_minmax_", "x is on meta"]),
]


@pytest.mark.parametrize("call,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, expected):
    with pytest.raises(RuntimeError) as info:
        call()
    message = str(info.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert "lowbit." in message


def test_bad_buffers_are_left_untouched():
    """A rejected observer call does not half-update its buffers."""
    lo, hi = torch.tensor([[-1.0], [0.0], [2.0]]), torch.tensor([[1.0], [3.0], [4.0]])
    x = torch.randn(3, 4) * 100
    with pytest.raises(RuntimeError):
        L.observe_moving_average_minmax_(x, lo, hi, 2.0)
    assert lo.reshape(-1).tolist() == [-1.0, 0.0, 2.0] and hi.reshape(-1).tolist() == [1.0, 3.0, 4.0]


def test_python_wrapper_type_errors():
    with pytest.raises(TypeError, match=re.escape("zero_point must be a tensor (or a Python number), got str")):
        lowbit.ops.quantize_affine(X, 0.1, "0", -8, 7)
    with pytest.raises(TypeError, match=re.escape("scale must be a tensor (or a Python number), got list")):
        lowbit.ops.dequantize_affine(Q8, [0.1], 0)
    with pytest.raises(TypeError, match="seed must be an int, an int64 tensor or None, got float"):
        lowbit.ops.quantize_affine(X, 0.1, 0, -8, 7, rounding="stochastic", seed=0.5)


def test_kernel_path_errors():
    with pytest.raises(ValueError, match="unknown kernel path 'sse9'"):
        lowbit.set_kernel_path("sse9")
    for name in ("scalar", "avx2", "avx512"):
        if name not in lowbit.supported_kernel_paths():
            with pytest.raises(ValueError, match=name):
                lowbit.set_kernel_path(name)
    assert lowbit.kernel_path() in lowbit.supported_kernel_paths()
