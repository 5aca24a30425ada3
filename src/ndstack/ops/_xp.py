"""NumPy or CuPy: where a block is computed, and the modules that compute it.

One dispatch for every operation, as dask-image does per block:

- :func:`array_module`, :func:`ndimage_module`: ``numpy`` / ``scipy.ndimage`` for NumPy
  blocks, ``cupy`` / ``cupyx.scipy.ndimage`` for CuPy blocks, so a kernel written once
  runs on either;
- :func:`use_gpu`: the ``device="cpu" | "gpu" | "auto"`` argument of the operations,
  checked once, before anything is computed;
- :func:`on_device`: wraps a kernel so that, on the GPU, each NumPy block moves to the
  GPU, is computed there and comes back as NumPy inside the task: Dask, Zarr and
  everything downstream still see NumPy. Blocks that already are CuPy arrays are computed
  where they are and stay CuPy, whatever the device.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = [
    "DEVICES",
    "array_module",
    "assign",
    "contiguous",
    "cupy_module",
    "cupyx_module",
    "gpu_available",
    "gpu_free_bytes",
    "is_cupy",
    "ndimage_module",
    "on_device",
    "use_gpu",
]

#: The values of every operation's ``device=`` argument.
DEVICES = ("auto", "cpu", "gpu")


def cupy_module() -> Any:
    """The ``cupy`` module, imported on first use: every use of CuPy goes through here.

    (So that tests can stand NumPy in for it without touching ``sys.modules``.)
    """
    import cupy

    return cupy


def cupyx_module(name: str) -> Any:
    """``cupyx.scipy.<name>``: ``"ndimage"`` or ``"fft"``, imported on first use."""
    return importlib.import_module(f"cupyx.scipy.{name}")


def array_module(a: Any) -> Any:
    """``cupy`` for CuPy arrays, else ``numpy`` (CuPy is not imported for other arrays)."""
    return cupy_module() if is_cupy(a) else np


def is_cupy(a: Any) -> bool:
    """Whether ``a`` is a CuPy array (without importing CuPy when it is not loaded)."""
    return type(a).__module__.split(".")[0] == "cupy"


def ndimage_module(a: Any) -> Any:
    """``cupyx.scipy.ndimage`` for CuPy arrays, else ``scipy.ndimage``."""
    if is_cupy(a):
        return cupyx_module("ndimage")
    from scipy import ndimage

    return ndimage


def gpu_available() -> bool:
    """Whether CuPy is installed and sees at least one CUDA GPU."""
    try:
        return bool(cupy_module().cuda.runtime.getDeviceCount() > 0)
    except Exception:
        return False


def gpu_free_bytes() -> int:
    """GPU memory a computation can still take: free on the card plus CuPy's pooled blocks."""
    cupy = cupy_module()
    free, _ = cupy.cuda.runtime.memGetInfo()
    return int(free) + int(cupy.get_default_memory_pool().free_bytes())


def use_gpu(device: str) -> bool:
    """Check a ``device=`` argument; whether NumPy blocks are to be computed on the GPU.

    ``"cpu"``: never; ``"gpu"``: always (an error without CuPy and a CUDA GPU);
    ``"auto"``: when CuPy sees a GPU.
    """
    if device not in DEVICES:
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', not {device!r}")
    if device == "cpu":
        return False
    available = gpu_available()
    if device == "gpu" and not available:
        raise ValueError("device='gpu' needs CuPy and a CUDA GPU; none was found")
    return available


def on_device(kernel: Callable[..., Any], gpu: bool, *, back: bool = True) -> Callable[..., Any]:
    """``kernel`` itself on the CPU; on the GPU, a kernel that takes and returns NumPy.

    The wrapper moves the block (the first argument) to the GPU, calls ``kernel`` there,
    and moves its result back (``back=False``: leaves it there, a CuPy array); other
    arguments pass unchanged, and a CuPy block is not moved back. ``kernel`` must work on
    NumPy and CuPy blocks alike (see :func:`array_module`).
    """
    if not gpu:
        return kernel

    @functools.wraps(kernel)
    def run(block: Any, *args: Any, **kwargs: Any) -> Any:
        cupy = cupy_module()
        if is_cupy(block):
            return kernel(block, *args, **kwargs)
        result = kernel(cupy.asarray(contiguous(block)), *args, **kwargs)
        return cupy.asnumpy(result) if back else result

    return run


#: NumPy copies larger than this are split over threads (memory bandwidth, not one core).
PARALLEL_COPY_BYTES = 256 << 20


def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def contiguous(a: Any) -> Any:
    """``numpy.ascontiguousarray(a)``, a large copy made by several threads."""
    a = np.asarray(a)
    if a.flags.c_contiguous or a.nbytes < PARALLEL_COPY_BYTES or a.ndim == 0:
        return np.ascontiguousarray(a)
    out = np.empty(a.shape, dtype=a.dtype)
    assign(out, (), a)
    return out


def assign(out: np.ndarray, index: tuple[slice, ...], values: np.ndarray) -> None:
    """``out[index] = values`` (NumPy), a large copy made by several threads along axis 0."""
    target = out[index]
    n = target.shape[0] if target.ndim else 0
    if values.nbytes < PARALLEL_COPY_BYTES or n < 2:
        target[...] = values
        return
    step = -(-n // _threads())

    def part(start: int) -> None:
        target[start : start + step] = values[start : start + step]

    with ThreadPoolExecutor(_threads()) as pool:
        list(pool.map(part, range(0, n, step)))
