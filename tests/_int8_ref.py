"""Slow, readable references for the integer-inference ops, written from METHODS §9 with exact
Python integers (no int32 wrap-around, no float rounding). Shared by the requantize and int8
GEMM tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import lowbit

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
ALL_PATHS = ("scalar", "avx2", "avx512")


def sat32(v: int) -> int:
    return max(INT32_MIN, min(INT32_MAX, v))


def quantize_multiplier_ref(real: float, single: bool = False) -> tuple[int, int]:
    """TFLite QuantizeMultiplier (quantization_util.cc), TfLiteRound = half away from zero."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    scaled = q * 2.0**31  # exact: a power-of-two scaling
    q_fixed = int(math.floor(abs(scaled) + 0.5)) * (1 if scaled >= 0 else -1)
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if single and shift > 30:
        shift, q_fixed = 30, 2**31 - 1
    return q_fixed, shift


def srdhm_ref(a: int, b: int) -> int:
    if a == INT32_MIN and b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    num = ab + nudge
    q = abs(num) >> 31  # C++ '/' truncates toward zero
    return q if num >= 0 else -q


def rounding_divide_by_pot_ref(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def mbqm_ref(x: int, multiplier: int, shift: int, rounding: str = "double") -> int:
    if rounding == "double":
        left, right = max(shift, 0), max(-shift, 0)
        return rounding_divide_by_pot_ref(srdhm_ref(sat32(x * (1 << left)), multiplier), right)
    total = 31 - shift
    return sat32((x * multiplier + (1 << (total - 1))) >> total)


def requantize_ref(acc, multiplier, shift, zero_point, qmin, qmax, rounding="double") -> np.ndarray:
    """Elementwise over equally shaped int arrays (broadcast them first)."""
    acc, multiplier, shift, zero_point = (np.asarray(a, dtype=np.int64).ravel() for a in
                                          np.broadcast_arrays(acc, multiplier, shift, zero_point))
    out = [min(qmax, max(qmin, int(z) + mbqm_ref(int(a), int(m), int(s), rounding)))
           for a, m, s, z in zip(acc, multiplier, shift, zero_point)]
    return np.array(out, dtype=np.int64)


def path_or_skip(path: str) -> str:
    """Skip (with the reason printed under -ra) when this CPU cannot run kernel path `path`."""
    supported = lowbit.supported_kernel_paths()
    if path not in supported:
        features = {k: v for k, v in lowbit.build_info()["cpu_features"].items() if v}
        pytest.skip(f"kernel path '{path}' needs a CPU feature this machine lacks "
                    f"(supported paths: {supported}; CPU features: {sorted(features)}); "
                    "it runs on machines that have it")
    return path


def int32_edges() -> torch.Tensor:
    vals = [0, 1, -1, 2, -2, 3, -3, 5, -5, 127, -128, 255, 2**15, -(2**15), 2**30, -(2**30), 2**30 - 1,
            -(2**30) + 1, 2**31 - 2, INT32_MAX, INT32_MIN, INT32_MIN + 1, 12345678, -12345678]
    return torch.tensor(vals, dtype=torch.int32)
