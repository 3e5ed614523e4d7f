"""Number formats a quantizer maps real values onto.

A format resolves to what the ops take: for uniform integer formats, the integer range
``(qmin, qmax)``. Only :class:`Int` exists so far; float and block formats (FP8, MX, ...) will
join it here.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

__all__ = ["Int", "MIN_BITS", "MAX_BITS"]

# lowbit's kernels hold codes in at most 16 bits (int16 / uint16 ranges, see ops.py).
MIN_BITS = 2
MAX_BITS = 16


@dataclass(frozen=True)
class Int:
    """A uniform ``bits``-bit integer grid.

    Ranges (``b = bits``):

    ========================  ==============================
    ``signed``                ``[-2^(b-1), 2^(b-1) - 1]``       (int8: [-128, 127])
    ``signed, narrow_range``  ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` (int8: [-127, 127])
    unsigned                  ``[0, 2^b - 1]``                  (uint8: [0, 255])
    unsigned, narrow_range    ``[1, 2^b - 1]``                  (TensorFlow's narrow_range)
    ========================  ==============================

    A narrow signed range makes the grid symmetric around 0, so symmetric quantization
    uses ``scale = amax / qmax`` exactly (TensorRT, TFLite weights). PyTorch's
    ``reduce_range=True`` for quint8 is ``Int(7, signed=False)``.

    Args:
        bits: 2 to 16.
        signed: two's-complement range (default) or unsigned.
        narrow_range: drop the most negative code (signed) or code 0 (unsigned).
    """

    bits: int
    signed: bool = True
    narrow_range: bool = False

    def __post_init__(self):
        bits = self.bits
        if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
            raise TypeError(f"Int: bits must be an integer, got {bits!r} ({type(bits).__name__})")
        if not MIN_BITS <= int(bits) <= MAX_BITS:
            raise ValueError(f"Int: bits must be in [{MIN_BITS}, {MAX_BITS}], got bits={bits}")
        object.__setattr__(self, "bits", int(bits))
        for name in ("signed", "narrow_range"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"Int: {name} must be a bool, got {value!r} ({type(value).__name__})")

    @property
    def qmin(self) -> int:
        """The smallest integer code."""
        if self.signed:
            low = -(1 << (self.bits - 1))
            return low + 1 if self.narrow_range else low
        return 1 if self.narrow_range else 0

    @property
    def qmax(self) -> int:
        """The largest integer code."""
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def name(self) -> str:
        """Short name: ``int8``, ``uint4``, ``int8_narrow``, ..."""
        base = f"{'' if self.signed else 'u'}int{self.bits}"
        return base + "_narrow" if self.narrow_range else base

    def __str__(self) -> str:
        return self.name
