"""Apply any NumPy function over named core dims of a lazy DataArray."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _checks
from ._xp import array_module

__all__ = ["apply"]

#: Above this many bytes per block, core dims split over several chunks are not silently
#: merged: the caller is asked to rechunk.
MAX_AUTO_RECHUNK_BYTES = 512 << 20


def rechunked(arr: Any, chunks: Mapping[str, Any]) -> Any:
    """``arr`` with its data rechunked along the named dims; its coordinates stay as they
    are. (xarray's ``.chunk()`` turns every non-index coordinate into a Dask array chunked
    otherwise than the data, which the next operation refuses: "inconsistent chunks".)"""
    import dask.array as da

    data = arr.data if isinstance(arr.data, da.Array) else da.asarray(arr.data)
    return arr.copy(data=data.rechunk({arr.get_axis_num(d): c for d, c in chunks.items()}))


def _core_single_chunk(arr: Any, core_dims: Sequence[str]) -> Any:
    split = [d for d in core_dims if len(arr.chunksizes.get(d, (1,))) > 1]
    if not split:
        return arr
    block = arr.dtype.itemsize * int(np.prod([arr.sizes[d] for d in core_dims]))
    if block > MAX_AUTO_RECHUNK_BYTES:
        raise ValueError(
            f"core dims {tuple(split)} are split over several chunks and one block would "
            f"hold {block / 1e6:.0f} MB; rechunk them yourself (arr.chunk({{{split[0]!r}: -1}})) "
            "or apply over fewer core dims"
        )
    warnings.warn(
        f"core dims {tuple(split)} are split over several chunks: rechunking them to one",
        stacklevel=3,
    )
    return rechunked(arr, dict.fromkeys(split, -1))


def apply(
    func: Callable[..., Any],
    arr: Any,
    *args: Any,
    core_dims: Sequence[str] = ("Z", "Y", "X"),
    output_core_dims: Sequence[str] | None = None,
    output_sizes: dict[str, int] | None = None,
    dtype: Any = None,
    keep_attrs: bool = True,
    kwargs: Mapping[str, Any] | None = None,
    **func_kwargs: Any,
) -> Any:
    """Run ``func`` on blocks that hold exactly ``core_dims``, lazily, over all other dims.

    ``func`` sees a NumPy (or CuPy) array with the core dims in the order given, no
    singleton dims to strip or restore. DataArray arguments in ``args``/``kwargs`` are
    broadcast along their dims: a PSF with dim ``C`` gives each channel its own PSF.

    Parameters
    ----------
    func : callable
        ``func(block, *args, **kwargs) -> ndarray``; picklable (it may run in another
        process).
    arr : xarray.DataArray
        The input.
    *args
        More positional arguments of ``func``. A DataArray among them is cut per block
        along its loop dims (its core dims it keeps whole: a PSF's ``Z`` is not the
        image's); anything else passes as is.
    core_dims : sequence of str, keyword-only
        The dims ``func`` works on (default ``("Z", "Y", "X")``); they are made one chunk
        each (with a warning; an error when a block would exceed 512 MB).
    output_core_dims : sequence of str, optional, keyword-only
        The core dims of ``func``'s result, in its axis order; default ``core_dims``.
    output_sizes : dict of str to int, optional, keyword-only
        Their sizes; by default from one call of ``func`` on the first block.
    dtype : numpy dtype, optional, keyword-only
        The result's dtype; by default from that same call.
    keep_attrs : bool, keyword-only
        Keep the input's attrs (default).
    kwargs : mapping, optional, keyword-only
        Keyword arguments of ``func``, DataArrays broadcast as in ``args``, as
        ``xarray.apply_ufunc``'s ``kwargs=``: the way to pass a keyword named like one of
        apply's own (``kwargs={"dtype": ...}``).
    **func_kwargs
        Deprecated (a DeprecationWarning): ``func``'s keyword arguments given directly;
        use ``kwargs=`` instead.

    Returns
    -------
    xarray.DataArray
        Lazy: the dims of ``arr`` that remain, in their order, then output core dims
        that are new, in ``func``'s order; coords kept, but core dims the function
        resized lose their coordinates.

    Raises
    ------
    ParameterError
        A core dim that ``arr`` lacks.
    """
    import xarray as xr

    from .._cluster import require_picklable

    require_picklable(func, f"the function {getattr(func, '__qualname__', func)!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"apply: kwargs must be a mapping (a dict), not {type(kwargs).__name__}")
    if func_kwargs:
        twice = sorted(set(func_kwargs) & set(kwargs or {}))
        if twice:
            raise TypeError(f"apply: {twice[0]!r} given both in kwargs= and as a keyword")
        warnings.warn(
            f"apply: passing the function's keyword arguments ({', '.join(func_kwargs)}) "
            "directly is deprecated; use kwargs={...}",
            DeprecationWarning,
            stacklevel=2,
        )
    kwargs = {**(kwargs or {}), **func_kwargs}
    core = tuple(core_dims)
    _checks.dims(arr, core, "core_dims")
    arr = _core_single_chunk(arr, core)
    out_core = tuple(output_core_dims) if output_core_dims is not None else core

    # Arguments' core dims get private names, one suffix per argument (a PSF's Z is not
    # the image's Z: no alignment), and their loop dims the array's chunks (a PSF per
    # channel block).
    def prepare(tag: str, a: Any) -> tuple[Any, list[str]]:
        names = {d: f"{d}__{tag}" for d in core if d in a.dims}
        a = a.rename(names)
        loop = {d: arr.chunksizes[d] for d in a.dims if d in arr.chunksizes and d not in core}
        return (rechunked(a, loop) if loop else a), [names[d] for d in core if d in names]

    prepared = [prepare(f"arg{i}", a) for i, a in enumerate(args) if isinstance(a, xr.DataArray)]
    kw_prepared = {k: prepare(f"kwarg{i}", v) for i, (k, v) in enumerate(kwargs.items())
                   if isinstance(v, xr.DataArray)}  # fmt: skip
    arr_args = [a for a, _ in prepared]
    kw_arrays = {k: a for k, (a, _) in kw_prepared.items()}
    arg_cores = [c for _, c in prepared] + [c for _, c in kw_prepared.values()]
    plain_kwargs = {k: v for k, v in kwargs.items() if k not in kw_arrays}
    if output_sizes is None or dtype is None:
        sample = _first_call(func, arr, core, args, kwargs)
        dtype = sample.dtype if dtype is None else dtype
        sizes = dict(zip(out_core, sample.shape))
        output_sizes = {**sizes, **(output_sizes or {})}
    new_dims = {d: n for d, n in output_sizes.items() if d not in arr.dims or arr.sizes[d] != n}
    renamed = {d: f"{d}__out" for d in out_core if d in new_dims and d in core}
    out_core_names = tuple(renamed.get(d, d) for d in out_core)

    kw_names = list(kw_arrays)
    n_core_in = [len(core)] + [len(c) for c in arg_cores]
    out_core_shape = tuple(output_sizes[d] for d in out_core)

    def call(block: Any, *rest: Any) -> Any:
        n_pos = len(rest) - len(kw_names)
        extra = dict(zip(kw_names, rest[n_pos:]))
        pos = iter(rest[:n_pos])
        full_args = [next(pos) if isinstance(a, xr.DataArray) else a for a in args]
        return func(block, *full_args, **plain_kwargs, **extra)

    result = xr.apply_ufunc(
        _looped(call, n_core_in, out_core_shape, np.dtype(dtype)),
        arr,
        *arr_args,
        *kw_arrays.values(),
        input_core_dims=[list(core), *arg_cores],
        output_core_dims=[list(out_core_names)],
        dask="parallelized",
        output_dtypes=[np.dtype(dtype)],
        dask_gufunc_kwargs={
            "output_sizes": {renamed.get(d, d): n for d, n in output_sizes.items()},
            "allow_rechunk": False,
        },
        keep_attrs=keep_attrs,
    )
    result = result.rename({v: k for k, v in renamed.items()})
    order = [d for d in arr.dims if d in result.dims] + [
        d for d in result.dims if d not in arr.dims
    ]
    return result.transpose(*order)


def _looped(
    func: Callable[..., Any], n_core: Sequence[int], out_core_shape: tuple[int, ...], dtype: Any
) -> Callable[..., Any]:
    """``func`` over the leading (loop) axes of its arrays, as ``numpy.vectorize`` would.

    Each array ends with its ``n_core`` core axes; loop axes broadcast (right-aligned,
    size 1 repeats). Unlike ``numpy.vectorize``, the output is of the kind ``func``
    returns: CuPy blocks give a CuPy block, not an attempt to convert it to NumPy.
    """

    def run(*arrays: Any) -> Any:
        loops = [tuple(a.shape[: a.ndim - k]) for a, k in zip(arrays, n_core)]
        shape = np.broadcast_shapes(*loops)
        if not shape:  # the block holds the core dims alone: no copy
            r = func(*arrays)
            return r if r.dtype == dtype else r.astype(dtype)
        out = None
        for idx in np.ndindex(*shape):
            parts = [
                a[tuple(i if n > 1 else 0 for i, n in zip(idx[len(idx) - len(lp) :], lp))]
                for a, lp in zip(arrays, loops)
            ]
            r = func(*parts)
            if out is None:
                out = array_module(r).empty(shape + tuple(r.shape), dtype=dtype)
            out[idx] = r
        if out is None:  # no loop index at all: a zero-length loop dim
            out = array_module(arrays[0]).empty(shape + out_core_shape, dtype=dtype)
        return out

    return run


def _first_call(
    func: Callable[..., Any], arr: Any, core: tuple[str, ...], args: Any, kwargs: Any
) -> Any:
    import xarray as xr

    first = {d: 0 for d in arr.dims if d not in core}
    block = np.asarray(arr.isel(first).transpose(*core).values)

    def pick(a: Any) -> Any:
        if not isinstance(a, xr.DataArray):
            return a
        sel = {d: 0 for d in a.dims if d not in core}
        return np.asarray(a.isel(sel).transpose(*[d for d in core if d in a.dims]).values)

    return np.asarray(
        func(block, *[pick(a) for a in args], **{k: pick(v) for k, v in kwargs.items()})
    )
