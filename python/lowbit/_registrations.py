"""Fake (meta) kernels and autograd formulas of every ``torch.ops.lowbit`` op, in one place.

``cpp/ops/schema.cpp`` names this module with ``set_python_module``, so torch imports it whenever
an op is used under FakeTensor/torch.compile. Fake kernels only describe outputs (shape, dtype,
device) and keep shapes symbolic; autograd formulas call the C++ ``*_backward`` ops.
"""

from __future__ import annotations

import torch

lib = torch.ops.lowbit


def code_dtype(qmin: int, qmax: int) -> torch.dtype:
    """The smallest integer dtype that holds [qmin, qmax] (same rule as the C++ kernel)."""
    if qmin >= 0 and qmax <= 255:
        return torch.uint8
    if qmin >= -128 and qmax <= 127:
        return torch.int8
    if qmin >= -32768 and qmax <= 32767:
        return torch.int16
    return torch.int32


def _check_same_device(op: str, **tensors) -> None:
    """The C++ kernels' device check, for the fake kernels: the dispatcher sends any call with a
    meta (or fake) tensor among its arguments here, so a mix of devices would otherwise pass
    silently (and, with one CPU input, even return uninitialised CPU memory)."""
    named = [(name, t) for name, t in tensors.items() if t is not None]
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.device != first.device:
            raise RuntimeError(f"lowbit.{op}: {first_name} is on {first.device} but {name} is on {t.device}; "
                               "all tensors must be on one device")


# ---- fake kernels ------------------------------------------------------------------------------


@torch.library.register_fake("lowbit::quantize_affine")
def _quantize_affine_fake(x, scale, zero_point, qmin, qmax, rounding="half_even", seed=None, offset=0):
    _check_same_device("quantize_affine", x=x, scale=scale, zero_point=zero_point)
    return torch.empty_like(x, dtype=code_dtype(qmin, qmax), memory_format=torch.contiguous_format)


@torch.library.register_fake("lowbit::dequantize_affine")
def _dequantize_affine_fake(q, scale, zero_point, dtype=None):
    _check_same_device("dequantize_affine", q=q, scale=scale, zero_point=zero_point)
    return torch.empty_like(q, dtype=dtype or torch.float32, memory_format=torch.contiguous_format)


@torch.library.register_fake("lowbit::fake_quantize_affine")
def _fake_quantize_affine_fake(x, scale, zero_point, qmin, qmax, rounding="half_even", ste="integer",
                               seed=None, offset=0, enabled=None):
    _check_same_device("fake_quantize_affine", x=x, scale=scale, zero_point=zero_point)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("lowbit::fake_quantize_affine_backward")
def _fake_quantize_affine_backward_fake(grad, x, scale, zero_point, qmin, qmax, rounding="half_even",
                                        ste="integer", seed=None, offset=0, enabled=None):
    _check_same_device("fake_quantize_affine_backward", x=x, grad=grad, scale=scale, zero_point=zero_point)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("lowbit::choose_qparams")
def _choose_qparams_fake(min_val, max_val, qmin, qmax, symmetric=False, method="observer", eps=2.0**-23):
    _check_same_device("choose_qparams", min_val=min_val, max_val=max_val)
    return (torch.empty_like(min_val, dtype=torch.float32, memory_format=torch.contiguous_format),
            torch.empty_like(min_val, dtype=torch.int32, memory_format=torch.contiguous_format))


@torch.library.register_fake("lowbit::observe_minmax_")
def _observe_minmax_fake(x, min_val, max_val, enabled=None):
    _check_same_device("observe_minmax_", x=x, min_val=min_val, max_val=max_val)
    return None


@torch.library.register_fake("lowbit::observe_moving_average_minmax_")
def _observe_moving_average_minmax_fake(x, min_val, max_val, averaging_constant=0.01, enabled=None):
    _check_same_device("observe_moving_average_minmax_", x=x, min_val=min_val, max_val=max_val)
    return None


# ---- autograd ----------------------------------------------------------------------------------
# The autograd of fake_quantize_affine (STE) and of every gradient estimator is registered in C++,
# cpp/ops/autograd_fake_quantize.cpp (one node for all of them; why C++ is said there). Their
# backward math is the *_backward ops whose fake kernels are in this file.


# ---- integer inference (issue 5): requantization, int8 GEMM -------------------------------------
# Integer ops: no autograd (their outputs are integer codes).


@torch.library.register_fake("lowbit::quantize_multiplier")
def _quantize_multiplier_fake(real_multiplier, rounding="double"):
    return (torch.empty_like(real_multiplier, dtype=torch.int32, memory_format=torch.contiguous_format),
            torch.empty_like(real_multiplier, dtype=torch.int32, memory_format=torch.contiguous_format))


def requant_dtype(qmin: int, qmax: int) -> torch.dtype:
    """Output dtype of ``requantize`` (the ``code_dtype`` rule, extended to int32 ranges)."""
    return code_dtype(qmin, qmax)


@torch.library.register_fake("lowbit::requantize")
def _requantize_fake(acc, multiplier, shift, zero_point, qmin, qmax, rounding="double"):
    return torch.empty_like(acc, dtype=requant_dtype(qmin, qmax), memory_format=torch.contiguous_format)


def _int8_out_sizes(a, weight_col_sums):
    return (*a.shape[:-1], weight_col_sums.shape[0])


@torch.library.register_fake("lowbit::int8_pack_weight")
def _int8_pack_weight_fake(weight):
    n, k = weight.shape
    packed = weight.new_empty(((n + 15) // 16, k, 16), dtype=torch.int8)
    return packed, weight.new_empty((n,), dtype=torch.int32)


@torch.library.register_fake("lowbit::int8_unpack_weight")
def _int8_unpack_weight_fake(packed_weight, n, k):
    return packed_weight.new_empty((n, k), dtype=torch.int8)


@torch.library.register_fake("lowbit::int8_gemm")
def _int8_gemm_fake(a, packed_weight, weight_col_sums):
    return a.new_empty(_int8_out_sizes(a, weight_col_sums), dtype=torch.int32)


@torch.library.register_fake("lowbit::int8_linear")
def _int8_linear_fake(x, packed_weight, weight_col_sums, bias, x_zero_point, weight_zero_point, multiplier, shift,
                      out_zero_point, qmin, qmax, rounding="double"):
    dtype = torch.uint8 if qmin >= 0 and qmax <= 255 else torch.int8
    return x.new_empty(_int8_out_sizes(x, weight_col_sums), dtype=dtype)


@torch.library.register_fake("lowbit::int4_pack_weight")
def _int4_pack_weight_fake(codes):
    n, k = codes.shape
    return codes.new_empty(((n + 7) // 8, k // 8, 8), dtype=torch.int32)


@torch.library.register_fake("lowbit::int4_unpack_weight")
def _int4_unpack_weight_fake(packed_weight, n):
    return packed_weight.new_empty((n, packed_weight.shape[1] * 8), dtype=torch.uint8)


@torch.library.register_fake("lowbit::int4_pack_params")
def _int4_pack_params_fake(scale, zero_point):
    n, groups = scale.shape
    return scale.new_empty(((n + 7) // 8, groups, 2, 8), dtype=torch.float32)


@torch.library.register_fake("lowbit::int4_weight_linear")
def _int4_weight_linear_fake(x, packed_weight, scale, zero_point, bias=None):
    return x.new_empty((*x.shape[:-1], scale.shape[0]))


@torch.library.register_fake("lowbit::int4_weight_linear_packed")
def _int4_weight_linear_packed_fake(x, packed_weight, packed_params, n, bias=None):
    return x.new_empty((*x.shape[:-1], n))


@torch.library.register_fake("lowbit::int8_pack_conv_weight")
def _int8_pack_conv_weight_fake(weight, groups=1):
    oc, cg, kh, kw = weight.shape
    ocg = oc // groups
    packed = weight.new_empty((groups, (ocg + 15) // 16, cg * kh * kw, 16), dtype=torch.int8)
    return packed, weight.new_empty((oc,), dtype=torch.int32)


@torch.library.register_fake("lowbit::int8_conv2d")
def _int8_conv2d_fake(x, packed_weight, weight_col_sums, bias, x_zero_point, weight_zero_point, multiplier, shift,
                      out_zero_point, qmin, qmax, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                      groups=1, rounding="double"):
    n, _, h, w = x.shape
    oh = (h + 2 * padding[0] - dilation[0] * (kernel_size[0] - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (kernel_size[1] - 1) - 1) // stride[1] + 1
    dtype = torch.uint8 if qmin >= 0 and qmax <= 255 else torch.int8
    return x.new_empty((n, weight_col_sums.shape[0], oh, ow), dtype=dtype)


def _pool_out_size(size, kernel, stride, pad, dilation, ceil_mode):
    # torch's pooling_output_shape (the C++ kernel's pool_out_size)
    span = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out = out - 1
    return out


@torch.library.register_fake("lowbit::int8_max_pool2d")
def _int8_max_pool2d_fake(x, kernel_size, stride=(), padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    stride = stride if len(stride) else kernel_size
    oh = _pool_out_size(x.shape[-2], kernel_size[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = _pool_out_size(x.shape[-1], kernel_size[1], stride[1], padding[1], dilation[1], ceil_mode)
    return x.new_empty((*x.shape[:-2], oh, ow))


@torch.library.register_fake("lowbit::int8_add")
def _int8_add_fake(a, b, zero_points, multipliers, shifts, qmin, qmax, left_shift=20, rounding="double"):
    dtype = torch.uint8 if qmin >= 0 and qmax <= 255 else torch.int8
    return a.new_empty(torch.broadcast_shapes(a.shape, b.shape), dtype=dtype)
# ==== estimators: learnable and soft gradient estimators (issue 4) ==============================
# Fake kernels describe outputs only; parameter gradients come back shaped like their parameter
# (contiguous, its dtype), absent optional ones as empty tensors. Every autograd formula saves
# only the input and the (tiny) parameters: the backward ops recompute masks, codes and
# transcendental terms from x, so a quantizer keeps no full-size tensor of its own alive
# (lowbit.ops.estimator_saved_bytes_per_element reports it; tests check it).


def _param_grad_fake(p):
    return torch.empty_like(p, memory_format=torch.contiguous_format)


def _absent_grad_fake(like):
    return like.new_empty((0,))


def _x_like(x):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("lowbit::fake_quantize_lsq")
def _fake_quantize_lsq_fake(x, scale, offset, qmin, qmax, grad_scale=1.0, rounding="half_even", seed=None,
                            seed_offset=0, enabled=None):
    _check_same_device("fake_quantize_lsq", x=x, scale=scale, offset=offset)
    return _x_like(x)


@torch.library.register_fake("lowbit::fake_quantize_lsq_backward")
def _fake_quantize_lsq_backward_fake(grad, x, scale, offset, qmin, qmax, grad_scale=1.0, rounding="half_even",
                                     seed=None, seed_offset=0, enabled=None):
    _check_same_device("fake_quantize_lsq_backward", x=x, grad=grad, scale=scale, offset=offset)
    return (_x_like(x), _param_grad_fake(scale),
            _param_grad_fake(offset) if offset is not None else _absent_grad_fake(scale))


@torch.library.register_fake("lowbit::fake_quantize_learnable")
def _fake_quantize_learnable_fake(x, scale, zero_point, qmin, qmax, grad_factor=1.0, enabled=None):
    _check_same_device("fake_quantize_learnable", x=x, scale=scale, zero_point=zero_point)
    return _x_like(x)


@torch.library.register_fake("lowbit::fake_quantize_learnable_backward")
def _fake_quantize_learnable_backward_fake(grad, x, scale, zero_point, qmin, qmax, grad_factor=1.0, enabled=None):
    _check_same_device("fake_quantize_learnable_backward", x=x, grad=grad, scale=scale, zero_point=zero_point)
    return _x_like(x), _param_grad_fake(scale), _param_grad_fake(zero_point)


@torch.library.register_fake("lowbit::fake_quantize_pact")
def _fake_quantize_pact_fake(x, alpha, bits, signed=False, rounding="half_even", seed=None, seed_offset=0,
                             enabled=None):
    _check_same_device("fake_quantize_pact", x=x, alpha=alpha)
    return _x_like(x)


@torch.library.register_fake("lowbit::fake_quantize_pact_backward")
def _fake_quantize_pact_backward_fake(grad, x, alpha, bits, signed=False, rounding="half_even", seed=None,
                                      seed_offset=0, enabled=None):
    _check_same_device("fake_quantize_pact_backward", x=x, grad=grad, alpha=alpha)
    return _x_like(x), _param_grad_fake(alpha)


@torch.library.register_fake("lowbit::fake_quantize_qil")
def _fake_quantize_qil_fake(x, c, d, gamma, bits, weight=True, rounding="half_even", seed=None, seed_offset=0,
                            enabled=None):
    _check_same_device("fake_quantize_qil", x=x, c=c, d=d, gamma=gamma)
    return _x_like(x)


@torch.library.register_fake("lowbit::fake_quantize_qil_backward")
def _fake_quantize_qil_backward_fake(grad, x, c, d, gamma, bits, weight=True, rounding="half_even", seed=None,
                                     seed_offset=0, enabled=None):
    _check_same_device("fake_quantize_qil_backward", x=x, grad=grad, c=c, d=d, gamma=gamma)
    return (_x_like(x), _param_grad_fake(c), _param_grad_fake(d),
            _param_grad_fake(gamma) if gamma is not None else _absent_grad_fake(c))


@torch.library.register_fake("lowbit::fake_quantize_dsq")
def _fake_quantize_dsq_fake(x, lower, upper, alpha, bits, mode="hard", rounding="half_even", seed=None,
                            seed_offset=0, enabled=None):
    _check_same_device("fake_quantize_dsq", x=x, lower=lower, upper=upper, alpha=alpha)
    return _x_like(x)


@torch.library.register_fake("lowbit::fake_quantize_dsq_backward")
def _fake_quantize_dsq_backward_fake(grad, x, lower, upper, alpha, bits, mode="hard", rounding="half_even",
                                     seed=None, seed_offset=0, enabled=None):
    _check_same_device("fake_quantize_dsq_backward", x=x, grad=grad, lower=lower, upper=upper, alpha=alpha)
    return _x_like(x), _param_grad_fake(lower), _param_grad_fake(upper), _param_grad_fake(alpha)


@torch.library.register_fake("lowbit::fake_quantize_sigmoid")
def _fake_quantize_sigmoid_fake(x, levels, thresholds, alpha, beta, temperature, hard=False, enabled=None):
    _check_same_device("fake_quantize_sigmoid", x=x, levels=levels, thresholds=thresholds, alpha=alpha, beta=beta,
                       temperature=temperature)
    return _x_like(x)


@torch.library.register_fake("lowbit::fake_quantize_sigmoid_backward")
def _fake_quantize_sigmoid_backward_fake(grad, x, levels, thresholds, alpha, beta, temperature, hard=False,
                                         enabled=None):
    _check_same_device("fake_quantize_sigmoid_backward", x=x, grad=grad, levels=levels, thresholds=thresholds,
                       alpha=alpha, beta=beta, temperature=temperature)
    return _x_like(x), _param_grad_fake(alpha), _param_grad_fake(beta)


# ==== end estimators ============================================================================
