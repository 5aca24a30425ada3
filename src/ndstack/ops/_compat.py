"""Deprecations of the public operations: old calls keep working, with a warning."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["keyword_only"]

F = TypeVar("F", bound=Callable[..., Any])


def keyword_only(*names: str) -> Callable[[F], F]:
    """Accept the keyword-only parameters ``names`` positionally, with a DeprecationWarning.

    For options that were positional and became keyword-only: ``names`` are the ones that
    followed the positional parameters, in their old order. A call that passes them
    positionally still works, warns once per call (pointing at the caller), and says how
    to write it; more positional arguments than there used to be are a ``TypeError``, as
    is a value given both ways. The signature shown (``help``, ``inspect``) is the new one.
    """

    def decorate(func: F) -> F:
        params = inspect.signature(func).parameters.values()
        n_pos = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        kw_only = {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        missing = [n for n in names if n not in kw_only]
        if missing:
            raise TypeError(f"{func.__name__} has no keyword-only parameters {missing}")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            extra = args[n_pos:]
            if extra:
                if len(extra) > len(names):
                    raise TypeError(
                        f"{func.__name__}() takes {n_pos} positional arguments "
                        f"(and {len(names)} deprecated ones) but {len(args)} were given"
                    )
                given = dict(zip(names, extra))
                twice = [n for n in given if n in kwargs]
                if twice:
                    raise TypeError(f"{func.__name__}() got multiple values for {twice[0]!r}")
                shown = ", ".join(f"{n}=..." for n in given)
                warnings.warn(
                    f"{func.__name__}: passing {', '.join(given)} positionally is deprecated; "
                    f"write {shown}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                args, kwargs = args[:n_pos], {**kwargs, **given}
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
