"""The ``ndstack`` command line: a thin layer over the public API.

Errors on bad input are one line on stderr and exit code 2; warnings are one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from .errors import NdstackError

EXIT_BAD_INPUT = 2


def _add_open_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="folder, glob, file list (comma-free) or fsspec URL")
    p.add_argument("--pattern", help="name template, e.g. '{name}_ch{C}_stack{T}_*.tif'")
    p.add_argument(
        "--on-error",
        choices=["raise", "fill"],
        default="raise",
        help="unreadable or mismatched files: stop (default) or fill and record",
    )
    p.add_argument(
        "--tiles",
        choices=["stitch", "axes"],
        default="stitch",
        help="x/y tile indices: stitch into one plane (default) or keep as dims",
    )


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(
        prog="ndstack",
        description="Many image files as one lazy, labelled N-D array.",
    )
    p.add_argument("--version", action="version", version=f"ndstack {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("info", help="show what ndstack.open would build (reads headers only)")
    _add_open_options(pi)
    pi.add_argument("--json", action="store_true", help="print one JSON object")
    pd = sub.add_parser("demo", help="write a small lattice light-sheet-like dataset and open it")
    pd.add_argument("--out", default="ndstack-demo", help="folder to write (default: %(default)s)")
    pd.add_argument("--timepoints", type=int, default=6, help="stacks per channel (default: 6)")
    return p


def _open_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"pattern": args.pattern, "on_error": args.on_error, "tiles": args.tiles}


def _cmd_info(args: argparse.Namespace) -> int:
    from ._info import format_info, info

    d = info(args.source, **_open_kwargs(args))
    print(json.dumps(d, default=str) if args.json else format_info(d))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import os

    from ._demo import write_demo
    from ._info import format_info, info

    paths = write_demo(args.out, timepoints=args.timepoints)
    print(f"wrote {len(paths)} files to {os.path.abspath(args.out)}")
    print(format_info(info(args.out)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def one_line(message: Any, category: Any, *_: Any, **__: Any) -> None:
        print(f"ndstack: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():  # restores the caller's filters afterwards
            warnings.simplefilter("default")
            warnings.showwarning = one_line  # type: ignore[assignment]
            return {"info": _cmd_info, "demo": _cmd_demo}[args.command](args)
    except NdstackError as exc:
        print(f"ndstack: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # permissions, disk: still one line, never a traceback
        print(f"ndstack: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("ndstack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
