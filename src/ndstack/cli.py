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

from ._redact import for_output, redact
from .errors import NdstackError

EXIT_BAD_INPUT = 2
EXIT_DIFFERENT = 1


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


def _chunks(text: str) -> dict[str, int]:
    try:
        return {k.strip(): int(v) for k, v in (p.split("=") for p in text.split(",") if p)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DIM=SIZE[,DIM=SIZE], got {text!r}") from None


def _levels(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}") from None


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where to compute (default: threads in this process)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler")
    g.add_argument("--workers", type=int, help="start a local cluster of N worker processes")
    g.add_argument("--threads-per-worker", type=int, default=None, metavar="K")
    g.add_argument(
        "--memory-limit", default="auto", metavar="M", help="per worker, e.g. 4GB (default: auto)"
    )


def _cluster(args: argparse.Namespace) -> Any:
    from ._cluster import cluster

    if args.scheduler and args.workers:
        raise NdstackError("give --scheduler or --workers, not both")
    return cluster(
        args.scheduler,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        memory_limit=args.memory_limit,
    )


def _add_write_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=["ome-zarr", "ome-zarr-0.4", "zarr"],
        default="ome-zarr",
        help="OME-Zarr 0.5 on Zarr v3 (default); 0.4 on Zarr v2 for older viewers; plain Zarr",
    )
    p.add_argument(
        "--codec",
        choices=["zstd", "lz4", "lz4hc", "zlib", "blosclz", "none"],
        default="zstd",
        help="Blosc compressor with bit-shuffle (default: zstd)",
    )
    p.add_argument("--clevel", type=int, default=3, help="compression level (default: 3)")
    p.add_argument(
        "--levels",
        type=_levels,
        default="auto",
        help="pyramid levels, or 'auto' (halve Y/X until a plane fits 512 px)",
    )
    p.add_argument("--chunks", type=_chunks, default=None, help="zarr chunks, e.g. Z=16,Y=256")
    p.add_argument(
        "--shards",
        type=_chunks,
        default=None,
        help="group chunks into shards (one per task), e.g. T=8",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a store ndstack wrote (never a folder it did not write)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


class _StepAction(argparse.Action):
    """Collect ``--step k=v,...`` options in the order they are given."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        steps = list(getattr(namespace, self.dest, None) or [])
        steps.append((option_string.lstrip("-").replace("-", "_"), values or ""))
        setattr(namespace, self.dest, steps)


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
    pc = sub.add_parser("convert", help="write SOURCE to a Zarr / OME-Zarr store, resumably")
    _add_open_options(pc)
    pc.add_argument("dest", help="the store to write (a folder); an unfinished one resumes")
    _add_write_options(pc)
    pc.add_argument(
        "--verify",
        nargs="?",
        const="auto",
        choices=["auto", "all"],
        help="afterwards, compare a sample of blocks (or all) with the source",
    )
    _add_cluster_options(pc)
    pv = sub.add_parser("verify", help="compare a store with its source, block by block")
    _add_open_options(pv)
    pv.add_argument("dest", help="the store written by 'ndstack convert'")
    pv.add_argument("--all", action="store_true", help="every block, not a sample")
    _add_cluster_options(pv)
    pp = sub.add_parser(
        "process",
        help="chain processing steps and write the result with the writer",
        description="Steps run in the order given, e.g. --deskew angle=31.5 "
        "--deconvolve psf=psf.tif,iterations=10 --project dim=Z. --list shows them all.",
    )
    pp.add_argument("source", nargs="?", help="folder, glob, file or URL")
    pp.add_argument("dest", nargs="?", help="the store to write")
    pp.add_argument("--list", action="store_true", help="list the steps and their parameters")
    pp.add_argument("--pattern", help="name template, e.g. '{name}_ch{C}_stack{T}_*.tif'")
    from .ops._steps import STEPS

    for name in STEPS:
        pp.add_argument(
            f"--{name.replace('_', '-')}",
            nargs="?",
            const="",
            metavar="K=V,...",
            action=_StepAction,
            dest="steps",
            help=STEPS[name].help,
        )
    _add_write_options(pp)
    _add_cluster_options(pp)
    pw = sub.add_parser("preview", help="a PNG montage of per-channel maximum projections")
    _add_open_options(pw)
    pw.add_argument("-o", "--output", default="preview.png", help="the PNG to write")
    pw.add_argument("--dim", default="T", help="the dim along the columns (default: T)")
    pw.add_argument("--every", type=int, default=1, help="every k-th index of --dim")
    _add_cluster_options(pw)
    pn = sub.add_parser("view", help="open SOURCE in napari (pip install 'ndstack[viewer]')")
    pn.add_argument("source", help="folder, glob, file, URL or store")
    pn.add_argument("--pattern", help="name template, e.g. '{name}_ch{C}_stack{T}_*.tif'")
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


def _summary_line(s: dict[str, Any]) -> str:
    resumed = f", {s['skipped']} done before" if s["skipped"] else ""
    return (
        f"wrote {redact(str(s['dest']))}: {s['bytes_in'] / 1e9:.3f} GB in, "
        f"{s['bytes_out'] / 1e9:.3f} GB out "
        f"(ratio {s['ratio']:.2f}), {s['gb_per_s']:.2f} GB/s, {s['seconds']:.1f} s "
        f"({s['tasks']} tasks{resumed})"
    )


def _cmd_convert(args: argparse.Namespace) -> int:
    from ._open import open as _open
    from ._write import to_zarr

    arr = _open(args.source, **_open_kwargs(args))
    with _cluster(args):
        summary = to_zarr(
            arr, args.dest, format=args.format, codec=args.codec, clevel=args.clevel,
            levels=args.levels, chunks=args.chunks, shards=args.shards, overwrite=args.overwrite,
            progress=False if args.quiet else None,
        )  # fmt: skip
        print(_summary_line(summary))
        if args.verify:
            return _verify_and_report(arr, args.dest, args.verify)
    return 0


def _verify_and_report(arr: Any, dest: str, sample: str) -> int:
    from ._verify import verify
    from .errors import VerifyError

    try:
        report = verify(arr, dest, sample=sample)
    except VerifyError as exc:
        print(f"ndstack: verify: {for_output(str(exc))}", file=sys.stderr)
        return EXIT_DIFFERENT
    print(f"verified {report['checked']} of {report['blocks']} blocks: identical, no chunk missing")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ._open import open as _open

    arr = _open(args.source, **_open_kwargs(args))
    with _cluster(args):
        return _verify_and_report(arr, args.dest, "all" if args.all else "auto")


def _cmd_process(args: argparse.Namespace) -> int:
    from ._open import open as _open
    from ._write import to_zarr
    from .ops._steps import describe, parse_params, run_steps

    if args.list:
        print(describe())
        return 0
    if not args.source or not args.dest:
        raise NdstackError("process needs SOURCE and DEST (or --list)")
    if not args.steps:
        raise NdstackError("no step given; see 'ndstack process --list'")
    steps = [(name, parse_params(name, text)) for name, text in args.steps]  # all checked first
    result = run_steps(_open(args.source, pattern=args.pattern), steps)
    with _cluster(args):
        summary = to_zarr(
            result, args.dest, format=args.format, codec=args.codec, clevel=args.clevel,
            levels=args.levels, chunks=args.chunks, shards=args.shards,
            overwrite=args.overwrite, progress=False if args.quiet else None,
        )  # fmt: skip
    print(_summary_line(summary))
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from ._open import open as _open
    from ._preview import preview

    arr = _open(args.source, **_open_kwargs(args))
    with _cluster(args):
        done = preview(arr, args.output, dim=args.dim, every=args.every)
    print(f"wrote {done['path']}: {done['rows']} channel(s) x {done['columns']} column(s)")
    return 0


def _cmd_view(args: argparse.Namespace) -> int:  # pragma: no cover - needs a display
    from ._napari import view

    view(args.source, args.pattern)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import os

    from ._demo import write_demo
    from ._info import format_info, info
    from ._open import open as _open
    from ._write import to_zarr

    paths = write_demo(os.path.join(args.out, "tiffs"), timepoints=args.timepoints)
    print(f"wrote {len(paths)} TIFF files to {os.path.abspath(os.path.join(args.out, 'tiffs'))}")
    arr = _open(os.path.join(args.out, "tiffs"))
    print(format_info(info(arr)))
    store = os.path.join(args.out, "demo.ome.zarr")
    print(_summary_line(to_zarr(arr, store, overwrite=True, progress=False)))
    print(f"open it again with: ndstack.open({store!r})")
    try:
        from ._preview import preview

        png = preview(arr, os.path.join(args.out, "preview.png"))["path"]
        print(f"preview: {png}")
    except ImportError:
        print("preview: skipped (pip install 'ndstack[preview]' for matplotlib)")
    return 0


_COMMANDS = {
    "info": _cmd_info,
    "convert": _cmd_convert,
    "verify": _cmd_verify,
    "process": _cmd_process,
    "preview": _cmd_preview,
    "view": _cmd_view,
    "demo": _cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def one_line(message: Any, category: Any, *_: Any, **__: Any) -> None:
        print(f"ndstack: warning: {for_output(str(message))}", file=sys.stderr)

    try:
        with warnings.catch_warnings():  # restores the caller's filters afterwards
            warnings.simplefilter("default")
            warnings.showwarning = one_line  # type: ignore[assignment]
            return _COMMANDS[args.command](args)
    except (NdstackError, OSError) as exc:  # OSError: permissions, disk; never a traceback
        print(f"ndstack: error: {for_output(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("ndstack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
