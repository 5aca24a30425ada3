"""Argument checks shared by the operations: one line that says what was expected.

Each check raises :class:`~ndstack.errors.ParameterError` (a ``ValueError``) before any
work, naming the parameter, the range it takes and the value it got.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

from ..errors import ParameterError

__all__ = ["ParameterError", "choice", "dims", "number", "whole"]


def number(
    value: Any,
    name: str,
    *,
    above: float | None = None,
    below: float | None = None,
    at_least: float | None = None,
    at_most: float | None = None,
) -> float:
    """A finite real number within the bounds given.

    >>> number(1.5, "sigma", above=0)
    1.5
    >>> number(0, "sigma", above=0)
    Traceback (most recent call last):
    ...
    ndstack.errors.ParameterError: sigma: expected a number above 0, got 0
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan
    ok = ok and math.isfinite(x)
    ok = ok and (above is None or x > above) and (below is None or x < below)
    ok = ok and (at_least is None or x >= at_least) and (at_most is None or x <= at_most)
    if not ok:
        raise ParameterError(f"{name}: expected {_range(above, below, at_least, at_most)}, "
                             f"got {value!r}")  # fmt: skip
    return x


def _range(above: Any, below: Any, at_least: Any, at_most: Any) -> str:
    if above is not None and below is not None:
        return f"a number strictly between {above:g} and {below:g}"
    if at_least is not None and at_most is not None:
        return f"a number from {at_least:g} to {at_most:g}"
    if above is not None:
        return f"a number above {above:g}"
    if at_least is not None:
        return f"a number from {at_least:g}"
    return "a finite number"


def whole(value: Any, name: str, *, at_least: int = 1) -> int:
    """A whole number from ``at_least``.

    >>> whole(3, "iterations")
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < at_least:
        raise ParameterError(f"{name}: expected a whole number from {at_least}, got {value!r}")
    return int(value)


def choice(value: Any, name: str, options: Iterable[Any]) -> Any:
    """One of ``options``."""
    options = tuple(options)
    if value not in options:
        shown = ", ".join(repr(o) for o in options)
        raise ParameterError(f"{name}: expected one of {shown}, got {value!r}")
    return value


def dims(arr: Any, names: Iterable[str], name: str) -> None:
    """Every name is a dim of ``arr``, and none is given twice.

    The message names the dims that are not there and the array's dims: not a
    ``tuple.index(x): x not in tuple`` from deep inside an operation.
    """
    names = list(names)
    unknown = [d for d in names if d not in arr.dims]
    if unknown:
        raise ParameterError(
            f"{name}: no dim {', '.join(map(repr, unknown))} in the array; its dims are "
            f"{', '.join(map(str, arr.dims))}"
        )
    twice = sorted({str(d) for d in names if names.count(d) > 1})
    if twice:
        raise ParameterError(f"{name}: dim {', '.join(map(repr, twice))} given twice")
