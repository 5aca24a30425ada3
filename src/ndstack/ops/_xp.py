"""NumPy or CuPy: the array module of a block, so kernels run on either."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["array_module"]


def array_module(a: Any) -> Any:
    """``cupy`` for CuPy arrays (when CuPy is installed), else ``numpy``."""
    try:
        import cupy
    except ImportError:
        return np
    return cupy.get_array_module(a)
