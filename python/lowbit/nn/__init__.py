"""lowbit's ``nn`` modules: quantization-aware layers and the quantizers they use."""

from ..quantizers import FakeQuantize, Quantizer
from .modules import QuantConv2d, QuantLinear

__all__ = ["FakeQuantize", "Quantizer", "QuantLinear", "QuantConv2d"]
