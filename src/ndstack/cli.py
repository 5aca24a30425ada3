"""The ``ndstack`` command line: a thin layer over the public API.

Errors on bad input are one line on stderr and exit code 2; warnings are one line each.
Every option is checked before any work: its own value when the command line is read
(sizes from 1, levels from 1 or 'auto', a memory limit Dask reads), the options
together before the source is opened (``--clevel`` in the codec's range, no ``--shards``
with OME-Zarr 0.4, where the preview goes), and the dims named in ``--chunks`` and
``--shards`` once the source is open, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn, get_args

from ._open import OnError, Tiles
from ._redact import for_output, reason, redact
from ._zarr.plan import CODECS, FORMATS, check_codec
from .errors import NdstackError, ParameterError

EXIT_BAD_INPUT = 2
EXIT_DIFFERENT = 1
EXIT_INTERNAL = 3  # not the input: an error ndstack did not expect (a bug to report)


class _UsageError(Exception):
    """argparse's complaint about the command line (printed as one line by :func:`main`)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _add_open_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="folder, glob, file list (comma-free) or fsspec URL")
    p.add_argument("--pattern", help="name template, e.g. '{name}_ch{C:d}_{cam}_stack{T:d}_*.tif'")
    p.add_argument(
        "--on-error",
        choices=get_args(OnError),
        default="raise",
        help="unreadable or mismatched files: stop (default) or fill and record",
    )
    p.add_argument(
        "--tiles",
        choices=get_args(Tiles),
        default="stitch",
        help="x/y tile indices: stitch into one plane (default) or keep as dims",
    )
    _add_pixel_size(p)
    _add_storage_options(p)


#: option names whose values stay text as typed (a numeric password is no number)
_TEXT_OPTIONS = ("key", "secret", "token", "password", "passwd", "credential", "session")


def _add_pixel_size(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pixel-size",
        type=_pixel_sizes,
        metavar="DIM=SIZE,...",
        help="pixel sizes to give or correct, e.g. Z=0.3,Y=0.104,X=0.104 (micrometers "
        "unless the files say otherwise)",
    )


def _storage_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``: the value as JSON where it reads as such (``true``, ``3``), else text;
    credentials (``key``, ``secret``, ``token`` ...) always as text."""
    key, eq, value = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, e.g. endpoint_url=http://...")
    if any(part in key.lower() for part in _TEXT_OPTIONS):
        return key, value
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key, parsed


def _add_storage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage-option",
        type=_storage_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an fsspec storage option for the URLs named (endpoint_url=..., profile=..., "
        "anon=true); repeatable. Credentials are best kept in the environment or a profile",
    )


def _dim_sizes(text: str, size: Any, expected: str, *, empty_ok: bool) -> dict[str, Any]:
    """``DIM=SIZE[,DIM=SIZE]``, each dim once; ``size`` turns a value into a size, or
    None where it is not one (``expected`` then says what is)."""
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        dim, eq, value = (x.strip() for x in part.partition("="))
        n = size(value)
        if not eq or not dim or n is None:
            raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
        if dim in out:
            raise argparse.ArgumentTypeError(f"{dim} given twice in {text!r}")
        out[dim] = n
    if not out and not empty_ok:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
    return out


def _positive(value: str) -> float | None:
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) and x > 0 else None


def _from_one(value: str) -> int | None:
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 1 else None


def _pixel_sizes(text: str) -> dict[str, float]:
    """``Z=0.3,Y=0.104``: each dim once, each size a positive number."""
    return _dim_sizes(text, _positive, "expected DIM=SIZE[,DIM=SIZE] with positive sizes",
                      empty_ok=True)  # fmt: skip


def _chunks(text: str) -> dict[str, int]:
    """``Z=16,Y=256``: each dim once, each size a whole number from 1."""
    return _dim_sizes(text, _from_one, "expected DIM=SIZE[,DIM=SIZE] with sizes from 1",
                      empty_ok=False)  # fmt: skip


def _shards(text: str) -> dict[str, int]:
    """``T=8`` as for ``--chunks``, or ``none``: no shards (not even the default ones)."""
    return {} if text.strip().lower() == "none" else _chunks(text)


def _levels(text: str) -> int | str:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if text != "auto" and n < 1:
        raise argparse.ArgumentTypeError(f"expected a number from 1 or 'auto', got {text!r}")
    return "auto" if text == "auto" else n


def _whole(text: str) -> int:
    """A whole number from 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1, got {text!r}")
    return n


def _memory_limit(text: str) -> str:
    from ._cluster import check_cluster_options

    try:
        check_cluster_options(memory_limit=text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where to compute (default: threads in this process)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler")
    g.add_argument(
        "--workers", type=_whole, metavar="N", help="start a local cluster of N worker processes"
    )
    g.add_argument("--threads-per-worker", type=_whole, default=None, metavar="K")
    g.add_argument(
        "--memory-limit",
        type=_memory_limit,
        default="auto",
        metavar="M",
        help="per worker: 4GB, 500MiB, bytes, a fraction of the memory (0.5) or auto (default)",
    )


def _cluster(args: argparse.Namespace) -> Any:
    """The cluster context of the command: options checked now, started when entered."""
    from ._cluster import cluster

    return cluster(
        args.scheduler,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        memory_limit=args.memory_limit,
    )


def _add_step_options(p: argparse.ArgumentParser) -> None:
    """The processing steps (``--deskew angle=31.5 --deconvolve psf=psf.tif ...``) and
    ``--device``: one definition for ``process`` and ``view``."""
    from ._steps import STEPS

    p.add_argument(
        "--device",
        choices=["auto", "cpu", "gpu"],
        default="auto",
        help="where the steps that can run on a GPU (CuPy) compute: auto (default: the GPU "
        "when CuPy sees one), cpu or gpu",
    )
    for name in STEPS:
        p.add_argument(
            f"--{name.replace('_', '-')}",
            nargs="?",
            const="",
            metavar="K=V,...",
            action=_StepAction,
            dest="steps",
            help=STEPS[name].help,
        )


def _add_write_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="ome-zarr",
        help="OME-Zarr 0.5 on Zarr v3 (default); 0.4 on Zarr v2 for older viewers; plain Zarr",
    )
    p.add_argument(
        "--codec",
        choices=CODECS,
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
        type=_shards,
        default=None,
        help="group chunks into shards (one per task), e.g. T=8, or 'none'; default: none, "
        "or ~64 MiB shards past 10,000 chunks",
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

    p = _Parser(
        prog="ndstack",
        description="Many image files as one lazy, labelled N-D array.",
    )
    p.add_argument("--version", action="version", version=f"ndstack {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser(
        "info",
        help="show what ndstack.open would build (reads headers only); of a store: the "
        "store, and what it was written from",
    )
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
    _add_pixel_size(pp)
    _add_storage_options(pp)
    pp.add_argument("--pattern", help="name template, e.g. '{name}_ch{C:d}_{cam}_stack{T:d}_*.tif'")
    _add_step_options(pp)
    _add_write_options(pp)
    _add_cluster_options(pp)
    pw = sub.add_parser("preview", help="a PNG montage of per-channel maximum projections")
    _add_open_options(pw)
    pw.add_argument(
        "-o", "--output", default="preview.png", help="the PNG to write (outside the source)"
    )
    pw.add_argument("--dim", default=None, help="the dim along the columns (default: T)")
    pw.add_argument("--every", type=_whole, default=1, help="every k-th index of --dim")
    pw.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _add_cluster_options(pw)
    pn = sub.add_parser("view", help="open SOURCE in napari (pip install 'ndstack[viewer]')")
    pn.add_argument("source", help="folder, glob, file, URL or store")
    _add_pixel_size(pn)
    _add_storage_options(pn)
    _add_step_options(pn)
    pn.add_argument("--pattern", help="name template, e.g. '{name}_ch{C:d}_{cam}_stack{T:d}_*.tif'")
    pd = sub.add_parser("demo", help="write a small lattice light-sheet-like dataset and open it")
    pd.add_argument("--out", default="ndstack-demo", help="folder to write (default: %(default)s)")
    pd.add_argument("--timepoints", type=_whole, default=6, help="stacks per channel (default: 6)")
    return p


def _use_storage_options(args: argparse.Namespace) -> None:
    """``--storage-option``s for the URLs the command names (source and destination)."""
    from ._zarr.paths import use_options

    options = dict(getattr(args, "storage_option", None) or [])
    for url in (getattr(args, "source", None), getattr(args, "dest", None)):
        if isinstance(url, str) and options:
            use_options(url, options)


def _check_args(args: argparse.Namespace) -> None:
    """The options together, before anything is opened, started or written."""
    _use_storage_options(args)
    if getattr(args, "scheduler", None) and getattr(args, "workers", None) is not None:
        raise ParameterError("give --scheduler or --workers, not both")
    if hasattr(args, "codec"):  # the commands that write: the library's own check
        check_codec(args.format, args.codec, args.clevel, bool(args.shards), flag="--")
    if args.command == "preview":
        from ._preview import check_output

        check_output(args.output, [args.source], overwrite=args.overwrite)


def _check_dims(args: argparse.Namespace, arr: Any) -> None:
    """The dims named in --chunks and --shards exist (known once the source is open)."""
    for option, sizes in (("--chunks", args.chunks), ("--shards", args.shards)):
        unknown = [d for d in sizes or {} if d not in arr.dims]
        if unknown:
            raise ParameterError(
                f"{option}: no dim {', '.join(map(repr, unknown))} in the array; its dims are "
                f"{', '.join(map(str, arr.dims))}"
            )


def _open_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"pattern": args.pattern, "on_error": args.on_error, "tiles": args.tiles,
            "pixel_size": args.pixel_size,
            "progress": False if getattr(args, "quiet", False) else None}  # fmt: skip


def _cmd_info(args: argparse.Namespace) -> int:
    from ._info import format_info, info

    d = info(args.source, **_open_kwargs(args))
    print(json.dumps(d, default=str) if args.json else format_info(d))
    return 0


def _summary_line(s: Any) -> str:
    if s.get("complete_before"):
        return f"{s['dest']} is complete already (same source, same settings): nothing to do"
    resumed = f", {s['skipped']} done before" if s["skipped"] else ""
    return (
        f"wrote {redact(str(s['dest']))}: {s['bytes_in'] / 1e9:.3f} GB in, "
        f"{s['bytes_out'] / 1e9:.3f} GB out "
        f"(ratio {s['ratio']:.2f}), {s['gb_per_s']:.2f} GB/s, {s['seconds']:.1f} s "
        f"({s['tasks']} tasks{resumed})"
    )


def _cmd_convert(args: argparse.Namespace) -> int:
    from ._open import open as _open
    from ._zarr.write import to_zarr

    context = _cluster(args)
    arr = _open(args.source, **_open_kwargs(args))
    _check_dims(args, arr)
    with context:
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
    from ._zarr.verify import verify
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

    context = _cluster(args)
    arr = _open(args.source, **_open_kwargs(args))
    with context:
        return _verify_and_report(arr, args.dest, "all" if args.all else "auto")


def _cmd_process(args: argparse.Namespace) -> int:
    from ._open import open as _open
    from ._steps import describe, run_steps
    from ._zarr.write import to_zarr

    if args.list:
        print(describe())
        return 0
    if not args.source or not args.dest:
        raise ParameterError("process needs SOURCE and DEST (or --list)")
    if not args.steps:
        raise ParameterError("no step given; see 'ndstack process --list'")
    steps = _parsed_steps(args)  # all checked first
    context = _cluster(args)
    opened = _open(args.source, pattern=args.pattern, pixel_size=args.pixel_size,
                   progress=False if getattr(args, "quiet", False) else None)  # fmt: skip
    result = run_steps(opened, steps, device=args.device)
    _check_dims(args, result)
    with context:
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

    context = _cluster(args)
    arr = _open(args.source, **_open_kwargs(args))
    if args.dim is not None and args.dim not in arr.dims:
        raise ParameterError(
            f"--dim {args.dim}: no such dim in the array; its dims are {', '.join(arr.dims)}"
        )
    with context:
        done = preview(
            arr, args.output, dim=args.dim or "T", every=args.every, overwrite=args.overwrite
        )
    print(f"wrote {done['path']}: {done['rows']} channel(s) x {done['columns']} column(s)")
    return 0


def _parsed_steps(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """Every step's parameters checked, before anything is opened or a window shown."""
    from ._steps import parse_params

    return [(name, parse_params(name, text)) for name, text in args.steps or []]


def _cmd_view(args: argparse.Namespace) -> int:  # pragma: no cover - needs a display
    from ._napari import view

    steps = _parsed_steps(args)
    if not steps and not args.pixel_size:  # as the reader sees it: stores with pyramids
        view(args.source, pattern=args.pattern)
        return 0
    from ._open import open as _open
    from ._steps import run_steps

    opened = _open(args.source, pattern=args.pattern, pixel_size=args.pixel_size,
                   progress=False if getattr(args, "quiet", False) else None)  # fmt: skip
    view(run_steps(opened, steps, device=args.device))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import os

    from ._demo import write_demo
    from ._info import format_info, info
    from ._open import open as _open
    from ._zarr.write import to_zarr

    _claim_demo_folder(args.out)
    paths = write_demo(os.path.join(args.out, "tiffs"), timepoints=args.timepoints)
    print(f"wrote {len(paths)} TIFF files to {os.path.abspath(os.path.join(args.out, 'tiffs'))}")
    arr = _open(os.path.join(args.out, "tiffs"))
    print(format_info(info(arr)))
    store = os.path.join(args.out, "demo.ome.zarr")
    print(_summary_line(to_zarr(arr, store, overwrite=True, progress=False)))
    print(f"open it again with: ndstack.open({store!r})")
    try:
        from ._preview import preview

        png = preview(arr, os.path.join(args.out, "preview.png"), overwrite=True)["path"]
        print(f"preview: {png}")
    except ImportError:
        print("preview: skipped (pip install 'ndstack[preview]' for matplotlib)")
    return 0


#: the file that marks a folder as one ``ndstack demo`` made (and may write again)
DEMO_MARK = ".ndstack-demo"


def _claim_demo_folder(out: str) -> None:
    """The demo writes only into a new or empty folder, or one an earlier demo made;
    there it replaces its own files: the stacks of an earlier run (by the demo's names),
    its store and preview."""
    import os

    from .errors import DestinationError

    mark = os.path.join(out, DEMO_MARK)
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(mark):
        raise DestinationError(
            f"--out {out} exists, is not empty and was not made by 'ndstack demo'; "
            "choose another folder (nothing was changed)"
        )
    if os.path.lexists(out) and not os.path.isdir(out):
        raise DestinationError(f"--out {out} exists and is not a folder")
    os.makedirs(out, exist_ok=True)
    with open(mark, "w") as f:
        f.write("made by ndstack demo\n")
    tiffs = os.path.join(out, "tiffs")
    if os.path.isdir(tiffs):  # stacks of an earlier demo run (more timepoints, perhaps)
        for name in os.listdir(tiffs):
            if name.startswith("ex6-2_CamA_ch") and name.endswith("_0000t.tif"):
                os.remove(os.path.join(tiffs, name))


_COMMANDS = {
    "info": _cmd_info,
    "convert": _cmd_convert,
    "verify": _cmd_verify,
    "process": _cmd_process,
    "preview": _cmd_preview,
    "view": _cmd_view,
    "demo": _cmd_demo,
}


#: warnings that tell the developers who call a library about changes to come: the
#: command line shows none of the libraries' (ndstack's own warnings, MissingFilesWarning
#: and ReadFailedWarning, are UserWarnings and are shown)
LIBRARY_NOTICES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _library_notice(category: Any) -> bool:
    """Whether a warning of ``category`` is another library's deprecation notice."""
    return (
        isinstance(category, type)
        and issubclass(category, LIBRARY_NOTICES)
        and category.__module__.partition(".")[0] != "ndstack"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"ndstack: error: {for_output(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT

    def one_line(message: Any, category: Any, *_: Any, **__: Any) -> None:
        if _library_notice(category):
            return  # also when a library turned its warnings back on for a while
        print(f"ndstack: warning: {for_output(str(message))}", file=sys.stderr)

    try:
        with warnings.catch_warnings():  # restores the caller's filters afterwards
            warnings.simplefilter("default")
            # deprecations are messages for developers of the libraries ndstack uses
            # (napari's pydantic printed 21 of them on `ndstack view`), not for its users
            for notice in LIBRARY_NOTICES:
                warnings.simplefilter("ignore", notice)
            warnings.showwarning = one_line  # type: ignore[assignment]
            _check_args(args)
            return _COMMANDS[args.command](args)
    except (NdstackError, OSError) as exc:  # OSError: permissions, disk; never a traceback
        print(f"ndstack: error: {for_output(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("ndstack: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a dependency's own error, or a bug: still one line
        if os.environ.get("NDSTACK_DEBUG"):
            raise
        print(
            f"ndstack: error: {type(exc).__name__}: {for_output(reason(exc, 300))} "
            "(unexpected; NDSTACK_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
