"""Pure file-name parsing: names in, axes, indices and coordinates out.

Nothing here touches the disk. :func:`parse_names` takes the paths of the files relative
to the source (``/``-separated) and returns a :class:`Layout`: which axes
the names encode, the grid position of every file, the coordinates that ride along an
axis and the constants.

Two ways in:

* **inferred** (no pattern): each name is split into text and number runs; names that
  share the same text skeleton are aligned, and every run that varies becomes a *field*.
  A field is named from the label beside its number (``ch1`` -> ``C``, ``0003t`` -> ``T``,
  ``560nm`` -> ``wavelength``, unknown labels keep their own text).
* **pattern**: a template such as ``"{name}_ch{C:d}_{cam}_stack{T:d}_{wl}nm_*.tif"`` or a regular
  expression with named groups. A field named with one capital letter is an axis, others
  are coordinates or constants.

Then the same analysis applies to both: a field whose value is a function of the axes
already chosen is a *coordinate* on those axes, not another axis; a field that never
varies is a *constant*.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ._axes import NAME_AXES, OTHER_RANK, is_tiff_name, rank
from ._match import compile_pattern, is_regex, template_to_regex
from ._tokens import SEPARATORS, take_identifiers, take_time_stamps, without_uuid
from .errors import DuplicatePositionError, LayoutError, PatternError

__all__ = ["Axis", "Coord", "Layout", "natural_key", "parse_names", "template_to_regex"]

#: Labels (lower case) next to a number that name a standard axis.
AXIS_LABELS: dict[str, str] = {
    **dict.fromkeys(["ch", "c", "channel", "w", "wavelength"], "C"),
    **dict.fromkeys(["t", "tp", "time", "stack", "tl", "timepoint", "cycle"], "T"),
    **dict.fromkeys(["z", "zstep", "plane", "slice", "section"], "Z"),
    **dict.fromkeys(["s", "site", "f", "field", "pos", "position", "point"], "P"),
    "x": "tile_x",
    "y": "tile_y",
}
#: Unit suffixes that name a coordinate, with the unit recorded.
UNIT_LABELS: dict[str, tuple[str, str]] = {
    "nm": ("wavelength", "nm"),
    "msec": ("msec", "ms"),
    "ms": ("ms", "ms"),
    "msecabs": ("msecAbs", "ms"),
}
#: Rank of each axis in the output order (OME order, positions and others in front).
TILE_AXES = ("tile_y", "tile_x")

_NUM = re.compile(r"(\d+)")
_LEAD_LETTERS = re.compile(r"^[A-Za-z]+")
_TRAIL_LETTERS = re.compile(r"[A-Za-z]+$")
_WORD_BEFORE_SEP = re.compile(r"(?:^|[^A-Za-z])([A-Za-z]+)[_\- ]$")
_ALL_LETTERS = re.compile(r"[A-Za-z]+")


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that orders numbers by value: ``img_9`` before ``img_10``.

    >>> sorted(["img_10.tif", "img_9.tif", "img_1.tif"], key=natural_key)
    ['img_1.tif', 'img_9.tif', 'img_10.tif']
    """
    parts = _NUM.split(name)
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


@dataclass(frozen=True)
class Axis:
    """One axis of the file grid: its name, coordinate values and how it was found."""

    name: str
    values: tuple[object, ...]
    how: str


@dataclass(frozen=True)
class Coord:
    """A field that follows one or more axes (e.g. ``wavelength`` on ``C``)."""

    name: str
    dims: tuple[str, ...]
    values: np.ndarray  # shaped like the sizes of ``dims``
    how: str
    units: str | None = None


@dataclass(frozen=True)
class Layout:
    """What the names say: the grid of files and everything that rides along."""

    axes: tuple[Axis, ...]
    #: grid index of every matched file, shape (n_files, n_axes), in ``names`` order
    index: np.ndarray
    #: positions in the input of the files that took part (a pattern may skip some)
    used: np.ndarray
    coords: tuple[Coord, ...] = ()
    constants: dict[str, object] = field(default_factory=dict)
    #: names left out: those the pattern did not match, or (inferred) those of another
    #: structure than a clear majority (thumbnails beside the images)
    unmatched: tuple[str, ...] = ()
    mode: str = "inferred"
    #: why the unmatched names were left out
    skip_reason: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)


@dataclass
class _Field:
    """A varying (or constant) part of the names, before it is classified."""

    name: str
    values: list[object]  # one per file
    how: str
    position: float
    units: str | None = None
    #: "number", "word", "well", "stamp" (a date and time), "id", "order" or "pattern"
    kind: str = "number"
    #: the label beside a number, as written (``ch``, ``W``)
    label: str = ""
    #: a word right after a number, with no separator between (``w1sdcGFP``)
    glued: bool = False


# --------------------------------------------------------------------------- inference
def _strip_ext(path: str) -> str:
    """Drop the file ending (``.tif``, ``.ome.tif``) of the base name."""
    dot = path.rfind(".")
    if dot <= path.rfind("/") + 1:
        return path
    if is_tiff_name(path) and path[dot - 4 : dot].lower() == ".ome":
        dot -= 4
    return path[:dot]


def _common_affixes(values: Sequence[str]) -> tuple[str, str]:
    first = min(values, key=len)
    pre = 0
    while pre < len(first) and all(v[pre] == first[pre] for v in values):
        pre += 1
    suf = 0
    while suf < len(first) - pre and all(v[len(v) - 1 - suf] == first[-1 - suf] for v in values):
        suf += 1
    return first[:pre], first[len(first) - suf :] if suf else ""


def _labels(prev: str, nxt: str, *, first: bool, last: bool) -> tuple[str, str, str]:
    """Labels around one number: (adjacent before, adjacent after, known word before ``_``).

    ``prev``/``nxt`` are the constant text runs before and after the number. Letters glued
    to the end of a number (``560nm``) belong to it; a run of letters alone between two
    numbers (``s1t2``) belongs to the number after it.
    """
    before = after = word = ""
    prev_is_bridge = not first and _ALL_LETTERS.fullmatch(prev) is not None
    if prev_is_bridge:
        before = prev
    else:
        if not first:  # letters glued after the previous number are its own
            prev = _LEAD_LETTERS.sub("", prev)
        m = _TRAIL_LETTERS.search(prev)
        if m:
            before = m.group(0)
        else:
            m2 = _WORD_BEFORE_SEP.search(prev)
            if m2 and m2.group(1).lower() in AXIS_LABELS:
                word = m2.group(1)
    nxt_is_bridge = not last and _ALL_LETTERS.fullmatch(nxt) is not None
    if not nxt_is_bridge:
        m = _LEAD_LETTERS.search(nxt)
        if m:
            after = m.group(0)
    return before, after, word


def _name_number(before: str, after: str, word: str, k: int) -> tuple[str, str, str | None]:
    """(field name, explanation, units) for a number with the labels around it."""
    for label, where in ((before, "before"), (after, "after"), (word, "before")):
        if label and label.lower() in AXIS_LABELS:
            return AXIS_LABELS[label.lower()], f"label '{label}' {where} the number", None
    if after and after.lower() in UNIT_LABELS:
        name, units = UNIT_LABELS[after.lower()]
        return name, f"number in {units} (label '{after}' after it)", units
    if before:
        return before, f"number after unknown label '{before}'", None
    if after:
        return after, f"number before unknown label '{after}'", None
    return f"field{k}", f"unlabelled number #{k}", None


def _stems(names: Sequence[str]) -> list[str]:
    """Names without their file ending; one shared ending is cut in one pass."""
    first = names[0]
    ext = first[len(_strip_ext(first)) :]
    if ext and all(n.endswith(ext) for n in names):
        return [n[: -len(ext)] for n in names]
    return [_strip_ext(n) for n in names]


#: what separates the segments of a name (aligned one by one across names)
_SEP = re.compile(f"([{re.escape(SEPARATORS)}]+)")


def _aligned(stems: Sequence[str]) -> list[list[str]] | None:
    """Names split into text and number runs segment by segment: a segment whose digit
    runs do not line up across the names (``DAPI``, ``Alexa488``, ``Cy5``) is one word,
    not text and numbers. None when the names do not have the same segments."""
    parts = [_SEP.split(s) for s in stems]
    if len({len(p) for p in parts}) != 1:
        return None
    out: list[list[str]] = [[""] for _ in stems]
    for j, col in enumerate(zip(*parts)):
        if j % 2:  # a separator: the same in every name, or no structure
            if len(set(col)) != 1:
                return None
            for o in out:
                o[-1] += col[0]
            continue
        runs = [_NUM.split(v) for v in col]
        if len({len(r) for r in runs}) == 1:
            for o, r in zip(out, runs):
                o[-1] += r[0]
                o.extend(r[1:])
        else:
            for o, v in zip(out, col):
                o[-1] += v
    return out


#: the share of the names that one structure must have for the others to be left out
MAJORITY = 0.75


def _infer_majority(
    names: Sequence[str],
) -> tuple[list[_Field], dict[str, object], list[int], list[str]]:
    """Fields of all names; or, when they share no structure but at least
    :data:`MAJORITY` of them share one, of those, the others left out (returned)."""
    try:
        fields, constants = _infer_fields(names)
        return fields, constants, list(range(len(names))), []
    except LayoutError as exc:
        if "share one structure" not in str(exc):
            raise
        error = exc
    groups: dict[tuple[int, int], list[int]] = {}
    for i, stem in enumerate(without_uuid(s) for s in _stems(names)):
        groups.setdefault((len(_NUM.split(stem)), len(_SEP.split(stem))), []).append(i)
    biggest = max(groups.values(), key=len)
    if len(biggest) < MAJORITY * len(names) or len(biggest) < 2:
        raise error
    fields, constants = _infer_fields([names[i] for i in biggest])
    kept = set(biggest)
    return fields, constants, biggest, [n for i, n in enumerate(names) if i not in kept]


def _time_field(stems: list[str]) -> tuple[list[str], _Field | None]:
    """Stems without their time stamps, and the stamps as one field ``time`` (see
    :func:`._tokens.take_time_stamps`), classified with the numbers, in name order."""
    stems, stamps = take_time_stamps(stems)
    if stamps is None:
        return stems, None
    how = f"date and time in every name (e.g. '{stamps.example}')"
    position = 2 * stamps.numbers_before + 0.5  # between the number columns around it
    return stems, _Field("time", stamps.times, how, position, kind="stamp")


_NO_STRUCTURE = (
    "cannot infer axes: the file names do not share one structure; pass pattern= (e.g. "
    "'img_{T}_{C}_{Z}.tif') to say which files belong and what their fields mean"
)


def _infer_fields(names: Sequence[str]) -> tuple[list[_Field], dict[str, object]]:
    stems, ids, id_kind = take_identifiers(_stems(names))
    stems, stamps = _time_field(stems)
    split = [_NUM.split(n) for n in stems]
    lengths = {len(p) for p in split}
    if len(lengths) > 1:  # words holding digits (Alexa488, Cy5) beside others (DAPI)?
        aligned = _aligned(stems)
        if aligned is not None:
            split, lengths = aligned, {len(p) for p in aligned}
    if len(lengths) > 1:
        examples: dict[int, str] = {}
        for n, p in zip(names, split):
            examples.setdefault(len(p) // 2, n)
        shown = "; ".join(f"{k} numbers: '{v}'" for k, v in sorted(examples.items()))
        raise LayoutError(_NO_STRUCTURE + f" ({shown})")
    columns = list(zip(*split))
    fields, constants = _column_fields(columns)
    _name_in_context(fields)
    if ids is not None and len(set(ids)) > 1:  # a value per file: classified last, so
        # that it follows the axes (a coordinate of them) rather than making one
        fields.append(
            _Field("id", list(ids), f"identifier in every name ({id_kind})", 10**9, kind="id")
        )
    if stamps is not None:
        fields.append(stamps)
    _dedupe_names(fields)
    return fields, constants


#: a letter that names a plate row (384 wells: A-P; 1536: also AA-AF), glued to its
#: column number (``B02``, ``a01``, ``A1``)
_ROW = re.compile(r"[A-P]|A[A-F]|[a-p]")
_TOKEN_START = re.compile(f"(?:^|[{re.escape(SEPARATORS)}])$")


def _column_fields(columns: list[tuple[str, ...]]) -> tuple[list[_Field], dict[str, object]]:
    """Fields of names split into aligned text (even) and number (odd) columns: text that
    varies is a word, a number that varies is named by its labels; a plate well (a row
    letter glued to its column number) is one field ``well``."""
    n_parts = len(columns)
    fields: list[_Field] = []
    constants: dict[str, object] = {}
    text: list[str] = []  # the constant view of each text run, for labels
    wells: dict[int, list[str]] = {}  # number column -> its wells' row letters
    for i in range(0, n_parts, 2):
        col = columns[i]
        if len(set(col)) == 1:
            text.append(col[0])
            continue
        pre, suf = _common_affixes(col)
        if (
            i + 1 < n_parts
            and not suf
            and _TOKEN_START.search(pre)
            and all(_ROW.fullmatch(v[len(pre) :]) for v in col)
            and _is_column(columns[i + 1], upper=col[0][len(pre) :].isupper())
        ):
            text.append(pre)
            wells[i + 1] = [v[len(pre) :] for v in col]  # B02, C07: a varying row letter
            continue  # glued to its column
        # a word is whole between separators: sdcGFP and sdcRFP, not G and R
        pre = pre[: max(pre.rfind(c) for c in SEPARATORS) + 1]
        suf = suf[min((suf.find(c) for c in SEPARATORS if c in suf), default=len(suf)) :]
        text.append(pre + suf)
        vals = [v[len(pre) : len(v) - len(suf)] for v in col]
        if any(v == "" for v in vals):  # text some names have and others lack (_thumb)
            extra = next(v for v in vals if v)
            raise LayoutError(
                _NO_STRUCTURE + f" (some have '{extra}' after '{pre}', others nothing)"
            )
        fields.append(
            _Field("", vals, "word that varies between the names", i, kind="word",
                   glued=bool(i) and not pre)
        )  # fmt: skip
    for i in range(1, n_parts, 2):
        col = columns[i]
        before, after, word = _labels(
            text[i // 2], text[i // 2 + 1], first=i == 1, last=i == n_parts - 2
        )
        row = wells.get(i)
        if row is None and _is_row_letter(before, text[i // 2], col, first=i == 1):
            row = [before] * len(col)  # all in one row: B02, B03
        if row is not None:  # varies: the letters, or the numbers of one row
            vals_w = [r + c for r, c in zip(row, col)]
            fields.append(_Field("well", vals_w, "plate well (row letter and column)", i,
                                 kind="well"))  # fmt: skip
            continue
        k = i // 2 + 1
        name, how, units = _name_number(before, after, word, k)
        if len(set(col)) == 1:
            key = before or after or word or f"field{k}"
            constants[key] = int(col[0])
            continue
        vals = np.asarray(col).astype(np.int64).tolist()
        label = before or after or word
        fields.append(_Field(name, vals, how, i, units, label=label))
    return fields, constants


def _is_column(col: tuple[str, ...], *, upper: bool) -> bool:
    """Whether numbers after row letters are plate columns: at most two digits (48
    columns), two in every name where the rows are lower case (BBBC006's ``a01``; ``a1``,
    ``b2`` are no wells)."""
    return all(len(c) == 2 or (upper and len(c) == 1) for c in col)


def _is_row_letter(label: str, text: str, col: tuple[str, ...], *, first: bool) -> bool:
    """Whether a capital letter that names no axis, at the start of a token (``_B02``,
    not ``F001L01``), is the row of a plate well and its number the column: two digits
    in every name (``B02``, ``B03``: the wells of one row; ``E1``, ``P3`` are no wells)."""
    head = text[: -len(label)] if label else text
    return (
        len(label) == 1
        and label.isupper()
        and label.lower() not in AXIS_LABELS
        and label not in NAME_AXES
        and _ROW.fullmatch(label) is not None
        and (first or head != "")
        and _TOKEN_START.search(head) is not None
        and all(len(c) == 2 for c in col)
        and len(set(col)) > 1
    )


def _name_in_context(fields: list[_Field]) -> None:
    """Names that depend on the other fields of the names (plates, then channels)."""
    _plate_names(fields)
    _channel_names(fields)


def _plate_names(fields: list[_Field]) -> None:
    """Plate conventions.

    * ``r02c02`` (Opera Phenix / Operetta): ``r`` and the ``c`` glued after it are the
      plate's ``row`` and ``col``, not a channel; ``p`` is then the plane ``Z`` and ``sk``
      the timepoint ``T`` (Harmony's ``r01c01f01p01-ch1sk1fk1fl1``).
    * ``d`` glued after a field ``f`` is the dye, the channel ``C`` (Cellomics'
      ``A01f00d1``).
    * an unlabelled number right after a well (``A1-1``) is the site ``P``.
    """
    by_label = {f.label.lower(): f for f in fields if f.label}
    row, col = by_label.get("r"), by_label.get("c")
    if row is not None and col is not None and col.position == row.position + 2:
        row.name, col.name = "row", "col"
        row.how = col.how = "plate row and column (r..c..)"
        for label, axis in (("p", "Z"), ("sk", "T")):
            f = by_label.get(label)
            if f is not None and f.name == label:
                f.name, f.how = axis, f"label '{label}' after r..c..f.. (Opera/Operetta)"
    site, dye = by_label.get("f"), by_label.get("d")
    if site is not None and dye is not None and dye.position == site.position + 2:
        if dye.name == "d" and all(f.name != "C" for f in fields):
            dye.name, dye.how = "C", "label 'd' (dye) after the field f..: the channel"
    has_p = any(f.name == "P" for f in fields)
    for f in fields:
        if f.kind == "well" and not has_p:
            nxt = next((g for g in fields if g.position == f.position + 2), None)
            if nxt is not None and nxt.kind == "number" and nxt.name.startswith("field"):
                nxt.name, nxt.how = "P", "unlabelled number after the well: the site"


def _channel_names(fields: list[_Field]) -> None:
    """Which field names the channel.

    * ``W`` is a wavelength (channel) only when nothing else names the channel: beside a
      channel number (``--W0001--...--C01``) or channel names in a segment of their own
      (ScanR's ``--W00002--...--nucleus-dapi``) it is the plate ``well``.
    * a word glued after the channel number (MetaMorph's ``w1sdcGFP``) is its name, the
      coordinate ``channel``.
    * other unlabelled words are channel names (Micro-Manager's ``img_..._DAPI_...``)
      when nothing else names the channel.
    """
    numbers = [f for f in fields if f.name == "C" and f.kind == "number"]
    words = [f for f in fields if f.kind == "word" and not f.name and not f.glued]
    by_w = [f for f in numbers if f.label in ("W", "w")]
    if by_w and (len(by_w) < len(numbers) or words) and all(g.name != "well" for g in fields):
        for f in by_w:
            f.name, f.how = "well", f"label '{f.label}' beside another channel field: the well"
    for f in fields:
        if f.kind == "word" and f.glued and not f.name:
            num = next((g for g in fields if g.position == f.position - 1), None)
            if num is not None and num.name == "C":
                f.name, f.how = "channel", "name glued after the channel number"
    taken = {f.name for f in fields}
    for f in fields:
        if not f.name:
            f.name = "C" if "C" not in taken else f"word{int(f.position) // 2}"
            f.how = "word that varies between the names" + (
                " (unlabelled words are taken as channel names)" if f.name == "C" else ""
            )
            taken.add(f.name)


def _dedupe_names(fields: list[_Field]) -> None:
    seen: set[str] = set()
    for f in fields:
        name, n = f.name, 2
        while name in seen:
            name = f"{f.name}{n}"
            n += 1
        if name != f.name:
            f.how += f" (renamed from '{f.name}', which another field took)"
            f.name = name
        seen.add(name)


# --------------------------------------------------------------------------- patterns
def _convert(value: str) -> object:
    if value.isdigit():
        return int(value)
    try:
        return float(value)
    except ValueError:
        return value


def _pattern_fields(
    names: Sequence[str], pattern: str
) -> tuple[list[_Field], dict[str, object], list[int], list[str]]:
    group_names, match = compile_pattern(pattern)
    # a template is matched whole against base names (paths when it holds a '/'); a
    # regex is searched for in the path relative to the source (re.search semantics)
    use_path = "/" in pattern or is_regex(pattern)
    groups: dict[str, list[object]] = {g: [] for g in group_names}
    used: list[int] = []
    unmatched: list[str] = []
    for i, n in enumerate(names):
        m = match(n if use_path else n.rpartition("/")[2])
        if m is None:
            unmatched.append(n)
            continue
        used.append(i)
        for g, v in m.items():
            groups[g].append(_convert(v) if v is not None else None)
    if not used:
        target = "paths" if use_path else "file names"
        raise PatternError(
            f"pattern {pattern!r} matches none of the {len(names)} {target} (first: {names[0]!r})"
        )
    fields: list[_Field] = []
    constants: dict[str, object] = {}
    for pos, (g, vals) in enumerate(groups.items()):
        if len(set(map(repr, vals))) == 1:
            constants[g] = vals[0]
            continue
        name = g
        if len(g) == 1 and g.isupper():
            name = {"X": "tile_x", "Y": "tile_y"}.get(g, g)
        if any(isinstance(v, str) for v in vals) and any(not isinstance(v, str) for v in vals):
            vals = [str(v) for v in vals]
        fields.append(_Field(name, vals, f"pattern field '{{{g}}}'", pos, kind="pattern"))
    return fields, constants, used, unmatched


def _name_rank(name: str) -> float:
    """Order of axes found in names: the known ones in OME order, any other first (as
    before _axes existed: Y, X, Q, S from names are no in-file axes)."""
    return rank(name) if name in NAME_AXES else OTHER_RANK


def _is_axis_name(name: str, mode: str) -> bool:
    if name in NAME_AXES:
        return True
    return mode == "pattern" and len(name) == 1 and name.isupper()


# --------------------------------------------------------------------------- analysis
def _codes(values: list[object]) -> tuple[np.ndarray, list[object]]:
    """Integer code of each value, and the distinct values in order (numbers first)."""
    if values and type(values[0]) is int and all(type(v) is int for v in values):
        uniq_arr, inverse = np.unique(np.asarray(values, dtype=np.int64), return_inverse=True)
        return inverse.ravel().astype(np.int64), uniq_arr.tolist()
    uniq = sorted(set(values), key=_value_key)
    lookup = {v: i for i, v in enumerate(uniq)}
    return np.fromiter((lookup[v] for v in values), np.int64, len(values)), uniq


def _value_key(v: object) -> tuple[object, ...]:
    if isinstance(v, str):
        return (1, natural_key(v))
    return (0, v)


def _is_function_of(target: np.ndarray, keys: list[np.ndarray], sizes: list[int]) -> bool:
    if not keys:
        return False
    key = np.zeros_like(target)
    for k, s in zip(keys, sizes):
        key = key * s + k
    pairs = np.unique(key * (int(target.max()) + 1) + target)
    return len(pairs) == len(np.unique(key))


def _axis_values(uniq: list[object]) -> tuple[list[object], bool]:
    """Values along an axis: integer sequences with a regular step get their gaps back."""
    if len(uniq) > 2 and all(isinstance(v, int) for v in uniq):
        ints = np.asarray(uniq, dtype=np.int64)
        step = int(np.gcd.reduce(np.diff(ints)))
        n = (int(ints[-1]) - int(ints[0])) // step + 1
        if step > 0 and len(uniq) < n <= 2 * len(uniq):
            return list(range(int(ints[0]), int(ints[-1]) + 1, step)), True
    return uniq, False


def parse_names(names: Sequence[str], pattern: str | None = None) -> Layout:
    """Find the axes, grid positions and coordinates that file names encode.

    Parameters
    ----------
    names
        Paths relative to the source, ``/``-separated, in any order: positions along
        each axis come from the parsed values (numbers in numeric order).
    pattern
        ``None`` to infer; else a template (``"img_{T}_ch{C}.tif"``), matched whole
        against the base name (the relative path when it holds ``/``), or a regular
        expression with named groups, searched for (``re.search``) in the relative path.

    Returns
    -------
    Layout

    Examples
    --------
    >>> names = [f"run_ch{c}_stack{t:04d}_{w}nm.tif" for c, w in [(0, 488), (1, 560)]
    ...          for t in range(3)]
    >>> lay = parse_names(names)
    >>> lay.dims, lay.shape
    (('T', 'C'), (3, 2))
    >>> [(c.name, c.dims, c.values.tolist()) for c in lay.coords]
    [('wavelength', ('C',), [488, 560])]
    """
    if not names:
        raise LayoutError("no file names to parse")
    reason = ""
    if pattern is None:
        fields, constants, used, unmatched = _infer_majority(names)
        mode = "inferred"
        if unmatched:
            reason = (
                f"of another structure than the {len(used)} others (thumbnails, previews, a "
                "stray export?)"
            )
    else:
        fields, constants, used, unmatched = _pattern_fields(names, pattern)
        mode = "pattern"
    axes, dependents = _classify(fields, mode, len(used))
    if mode == "inferred":
        axes, dependents = _order_fallback(axes, dependents, len(used))
    out_axes, index = _grid_index(axes, len(used))
    _refuse_duplicates(index, out_axes, [names[i] for i in used], mode)
    return Layout(
        axes=out_axes,
        index=index,
        used=np.asarray(used, dtype=np.int64),
        coords=tuple(_coord(d, index, out_axes) for d in dependents),
        constants=constants,
        unmatched=tuple(unmatched),
        mode=mode,
        skip_reason=reason or ("the pattern does not match them" if unmatched else ""),
    )


class _Coded(NamedTuple):
    """A field's values as integer codes per file, and the distinct values they index."""

    field: _Field
    codes: np.ndarray
    uniq: list[object]


class _Dependent(NamedTuple):
    """A field that is a function of some axes (``owners``): a coordinate, not an axis."""

    coded: _Coded
    owners: list[int]


def _classify(fields: list[_Field], mode: str, n: int) -> tuple[list[_Coded], list[_Dependent]]:
    """Split fields into axes (in output order) and coordinates that follow them.

    Known axis names are tried first (in name order), then the rest: a field that is a
    function of the axes found so far is a coordinate of them, one that varies on its own
    is an axis of its own name (inferred or from a pattern alike). The axes then sort
    P, other axes, tiles, T, C, Z (ties in name order).
    """
    ranked = sorted(fields, key=lambda f: (not _is_axis_name(f.name, mode), f.position))
    axes: list[_Coded] = []
    dependents: list[_Dependent] = []
    for f in ranked:
        coded = _Coded(f, *_codes(f.values))
        owner = _owner_axes(coded.codes, [(a.codes, len(a.uniq)) for a in axes])
        if owner is not None:
            dependents.append(_Dependent(coded, owner))
            continue
        # a field that varies on its own is an axis of its own name, in both modes
        # (r{row}c{col}: the wells' rows and columns)
        axes.append(coded)
    if n > 1 and not axes:
        raise LayoutError(
            f"{n} files but no field of their names varies; pass pattern= to say how "
            "they are arranged"
        )
    order = _axis_order(axes)
    remap = {old: new for new, old in enumerate(order)}
    return [axes[i] for i in order], [
        _Dependent(d.coded, sorted(remap[o] for o in d.owners)) for d in dependents
    ]


def _axis_order(axes: list[_Coded]) -> list[int]:
    """Positions of ``axes`` in output order: P, other axes, tiles, T, C, Z (ties in name
    order)."""
    return sorted(
        range(len(axes)), key=lambda i: (_name_rank(axes[i].field.name), axes[i].field.position)
    )


#: a grid less full than this, of numbers that order the files totally, is one axis
SPARSE = 0.5


def _fill(n: int, sizes: Sequence[int]) -> float:
    return n / float(np.prod(sizes, dtype=float)) if sizes else 1.0


def _order_fallback(
    axes: list[_Coded], dependents: list[_Dependent], n: int
) -> tuple[list[_Coded], list[_Dependent]]:
    """One axis in file order instead of a sparse grid, when the numbers allow it.

    Numbers without a known axis label (``field3``, an unknown ``run``) that would make a
    grid less than :data:`SPARSE` full, or a date and time in every name, order the files
    totally (a counter split over fields, hours/minutes/seconds): they make one axis,
    ``T`` (``frame`` if the names have a ``T``), the rank of the files in that order —
    over all files, or within each combination of the other axes (two cameras with their
    own time stamps) when every combination holds as many files (ranks then line up) —
    and stay as coordinates. Numbers with a label of their own (``mouse3``) stay axes.
    """
    cands = [  # labelled numbers (mouse3, cam1, run2) are axes of their own
        a
        for a in axes
        if a.field.kind == "stamp" or (a.field.kind == "number" and not a.field.label)
    ]
    fill = _fill(n, [len(a.uniq) for a in axes])
    if fill < SPARSE and len(cands) >= 2:
        members, why = cands, f"as axes they would make a grid {fill:.2%} full"
    elif any(a.field.kind == "stamp" for a in cands):
        members, why = [a for a in cands if a.field.kind == "stamp"], "a time stamp"
    else:
        return axes, dependents
    members.sort(key=lambda a: a.field.position)
    others = [a for a in axes if all(a is not m for m in members)]
    rows = np.unique(np.stack([a.codes for a in members], 1), axis=0, return_inverse=True)[1]
    rows = rows.ravel()
    other_sizes = [len(a.uniq) for a in others]
    ordinal, per = rows, ""
    if others:
        groups = np.unique(np.stack([a.codes for a in others], 1), axis=0, return_inverse=True)[1]
        key = groups.ravel().astype(np.int64) * (int(rows.max()) + 1) + rows
        uniq, inverse = np.unique(key, return_inverse=True)
        group_of = uniq // (int(rows.max()) + 1)
        first = np.searchsorted(group_of, group_of)  # first key of each key's group
        per_group = (np.arange(len(uniq)) - first)[inverse.ravel()]
        counts = np.bincount(groups.ravel())
        # ranks line up across groups only when no group lacks a file (a camera that
        # dropped a frame would shift all its later ones): then all groups hold as many
        if len(set(counts.tolist())) == 1 and len(counts) == int(np.prod(other_sizes)):
            ordinal, per = per_group, " within each " + ", ".join(a.field.name for a in others)
    size = int(ordinal.max()) + 1
    if _fill(n, [*other_sizes, size]) <= fill and why != "a time stamp":
        return axes, dependents
    taken = {a.field.name for a in others} | {d.coded.field.name for d in dependents}
    name = "T" if "T" not in taken else "frame"
    fields = ", ".join(f"'{a.field.name}'" for a in members)
    how = f"order of the files by {fields}{per} ({why}); kept as coordinates"
    new = _Coded(
        _Field(name, ordinal.tolist(), how, members[0].field.position, kind="order"),
        ordinal.astype(np.int64),
        list(range(size)),
    )
    out = [*others, new]
    out = [out[i] for i in _axis_order(out)]
    deps = []
    for coded in [*(d.coded for d in dependents), *members]:
        owners = _owner_axes(coded.codes, [(a.codes, len(a.uniq)) for a in out])
        deps.append(_Dependent(coded, owners if owners is not None else list(range(len(out)))))
    return out, deps


def _grid_index(axes: list[_Coded], n: int) -> tuple[tuple[Axis, ...], np.ndarray]:
    """The axes with their values, and each of ``n`` files' position on the grid."""
    out_axes: list[Axis] = []
    index = np.zeros((n, len(axes)), dtype=np.int64)
    for j, (f, codes, uniq) in enumerate(axes):
        values, filled = _axis_values(uniq)
        how = f.how + (" (gaps in the regular sequence kept as missing)" if filled else "")
        out_axes.append(Axis(f.name, tuple(values), how))
        if filled:
            pos = {v: i for i, v in enumerate(values)}
            index[:, j] = np.asarray([pos[v] for v in uniq])[codes]
        else:
            index[:, j] = codes
    return tuple(out_axes), index


def _refuse_duplicates(
    index: np.ndarray, axes: tuple[Axis, ...], used_names: list[str], mode: str
) -> None:
    """Two files at one grid position: name both, and where."""
    if not axes:
        return
    shape = tuple(len(a.values) for a in axes)
    flat = np.ravel_multi_index(index.T, shape)
    uniq_flat, counts = np.unique(flat, return_counts=True)
    if not (counts > 1).any():
        return
    dup = uniq_flat[counts > 1][0]
    a, b = (used_names[i] for i in np.flatnonzero(flat == dup)[:2])
    where = ", ".join(
        f"{ax.name}={ax.values[i]}" for ax, i in zip(axes, np.unravel_index(dup, shape))
    )
    hint = (
        "name the part that differs in the pattern"
        if mode == "pattern"
        else "pass pattern= to say how they differ"
    )
    raise DuplicatePositionError(
        f"files '{a}' and '{b}' map to the same position ({where}); {hint}"
    )


def _coord(dep: _Dependent, index: np.ndarray, axes: tuple[Axis, ...]) -> Coord:
    """A coordinate over its owner axes; cells without a file are NaN or ``""``."""
    (f, codes, uniq), own = dep
    dims = tuple(axes[o].name for o in own)
    sub_shape = tuple(len(axes[o].values) for o in own)
    per_file = np.asarray(uniq, dtype=object)[codes]
    grid: np.ndarray
    if uniq and all(isinstance(v, np.datetime64) for v in uniq):
        grid = np.full(sub_shape, np.datetime64("NaT", "us"))  # cells without a file: NaT
    elif all(isinstance(v, int) for v in uniq) and _complete(index, own, sub_shape):
        grid = np.zeros(sub_shape, dtype=np.int64)
    elif all(isinstance(v, (int, float)) for v in uniq):
        grid = np.full(sub_shape, np.nan)  # cells without a file stay NaN
    else:
        grid = np.full(sub_shape, "", dtype=object)
    grid[tuple(index[:, o] for o in own)] = per_file
    if grid.dtype == object:
        grid = grid.astype(str)
    return Coord(f.name, dims, grid, f"{f.how}; follows {', '.join(dims)}", f.units)


def _complete(index: np.ndarray, own: list[int], sub_shape: tuple[int, ...]) -> bool:
    """Whether every cell of the sub-grid ``own`` has at least one file."""
    flat = np.ravel_multi_index(tuple(index[:, o] for o in own), sub_shape)
    return len(np.unique(flat)) == int(np.prod(sub_shape))


def _owner_axes(codes: np.ndarray, axes: list[tuple[np.ndarray, int]]) -> list[int] | None:
    """Smallest set of axes of which ``codes`` is a function, or None."""
    if not axes or not _is_function_of(codes, [c for c, _ in axes], [s for _, s in axes]):
        return None
    for r in range(1, len(axes) + 1):
        for combo in itertools.combinations(range(len(axes)), r):
            if _is_function_of(codes, [axes[i][0] for i in combo], [axes[i][1] for i in combo]):
                return list(combo)
    return None  # pragma: no cover - the full set always works
