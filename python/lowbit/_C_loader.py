"""Loads the compiled extension ``lowbit._C``.

An installed lowbit carries ``_C`` next to this file. A developer build can point
``LOWBIT_DEV_BUILD`` at a CMake build directory instead, so several build trees (say, one per
branch of work) can be tested against the same Python sources without reinstalling.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys


def load():
    dev_dir = os.environ.get("LOWBIT_DEV_BUILD")
    if not dev_dir:
        from . import _C

        return _C
    candidates = sorted(glob.glob(os.path.join(dev_dir, "_C*.so")))
    if not candidates:
        raise ImportError(f"LOWBIT_DEV_BUILD={dev_dir!r} holds no _C*.so; build it with cmake first")
    spec = importlib.util.spec_from_file_location("lowbit._C", candidates[0])
    module = importlib.util.module_from_spec(spec)
    sys.modules["lowbit._C"] = module
    spec.loader.exec_module(module)
    return module
