"""lowbit: quantization for PyTorch with a fused C++ core.

Importing lowbit loads ``lowbit._C``, which registers every ``torch.ops.lowbit`` op once.
"""

from __future__ import annotations

import contextlib

import torch

from . import _C_loader

_C = _C_loader.load()

from . import _registrations  # noqa: E402  (fake kernels and autograd; needs the ops registered)
from . import ops  # noqa: E402
from . import formats  # noqa: E402
from .spec import QuantSpec  # noqa: E402
from . import quantizers, nn  # noqa: E402
from .workflow import (  # noqa: E402
    disable_fake_quant,
    disable_observer,
    enable_fake_quant,
    enable_observer,
    named_quantizers,
    prepare_qat,
)
from .convert import ConversionError, SimulationReport, compare_simulation, convert  # noqa: E402
from .batchnorm import fold_batchnorm  # noqa: E402
from .nn.weight_only import quantize_int4_weight_only  # noqa: E402
# ---- estimators (issue 4): registers "lsq", "lsq+", "learnable", "pact", "qil", "dsq", "sigmoid" ----
from . import learnable_quantizers  # noqa: E402
from .learnable_quantizers import set_sigmoid_temperature  # noqa: E402
# ---- end estimators ----

__version__ = "0.1.0"


def build_info() -> dict:
    """What this lowbit was built with and what it runs on.

    Keys: ``version``, ``torch_version`` (built against), ``torch_runtime``, ``compiler``,
    ``cpu_features`` (dict), ``supported_kernel_paths``, ``kernel_path`` (the active one).
    """
    return {
        "version": __version__,
        "torch_version": _C.torch_version,
        "torch_runtime": torch.__version__,
        "compiler": _C.compiler,
        "cpu_features": dict(_C.cpu_features()),
        "supported_kernel_paths": list(_C.supported_isas()),
        "kernel_path": _C.active_isa(),
    }


def kernel_path() -> str:
    """The active kernel path: ``"scalar"``, ``"avx2"`` or ``"avx512"``."""
    return _C.active_isa()


def supported_kernel_paths() -> list[str]:
    """Kernel paths this CPU can run, the scalar reference first."""
    return list(_C.supported_isas())


def set_kernel_path(name: str) -> None:
    """Force a kernel path for this process (``LOWBIT_ISA`` does the same at import).

    Raises ValueError for an unknown name or a path this CPU lacks.
    """
    _C.set_active_isa(name)


@contextlib.contextmanager
def use_kernel_path(name: str):
    """Context manager: run the enclosed ops on kernel path ``name``, then restore."""
    previous = _C.active_isa()
    _C.set_active_isa(name)
    try:
        yield
    finally:
        _C.set_active_isa(previous)
