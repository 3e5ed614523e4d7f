"""lowbit's ``nn`` modules: quantization-aware layers and the quantizers they use."""

from ..quantizers import FakeQuantize, Quantizer
from .modules import QuantConv2d, QuantLinear
from .weight_only import Int4WeightOnlyLinear, quantize_int4_weight_only

__all__ = ["FakeQuantize", "Quantizer", "QuantLinear", "QuantConv2d", "Int4WeightOnlyLinear",
           "quantize_int4_weight_only"]
