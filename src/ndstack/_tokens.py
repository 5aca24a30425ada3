"""Tokens of a name that are no plain numbers: identifiers and time stamps.

Pure functions over the stems of file names (no disk), run before the names are split
into text and numbers: a UUID (MetaXpress) or a hex fragment (BBBC006) is a value of one
file, and a date and time is one time stamp, not six numbers. Each returns the stems
without the token and the tokens, or the stems as they were when not every name holds
one.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

__all__ = ["SEPARATORS", "Stamps", "take_identifiers", "take_time_stamps", "without_uuid"]

#: what separates the segments of a name
SEPARATORS = "_-. /"
_NUM = re.compile(r"\d+")

#: a UUID (GUID) in a name: an identifier of one file (MetaXpress writes one per image)
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
#: the last segment of a name: a label and the hex digits glued to it (BBBC006's ``w1a57``)
_HEX_TAIL = re.compile(f"(?:^|[{re.escape(SEPARATORS)}])[A-Za-z]+([0-9A-Fa-f]{{4,}})$")


def take_identifiers(stems: list[str]) -> tuple[list[str], list[str] | None, str]:
    """Stems without the identifier that each of them holds, the identifiers (None when
    they do not all hold one) and what they are. Identifiers are values of a file, never
    axes or numbers: a UUID anywhere (MetaXpress), or a fixed-length hex fragment glued
    after the index that ends every name (BBBC006 ``_w1a57``, ``_w2283``: the fragment
    starts at the first place where some name has a hex letter)."""
    if _UUID.search(stems[0]):  # the first name tells, in one pass
        found = [_UUID.findall(s) for s in stems]
        if all(len(f) == 1 for f in found):
            return [without_uuid(s) for s in stems], [f[0] for f in found], "a UUID"
    if not _HEX_TAIL.search(stems[0]):
        return stems, None, ""
    tails = [_HEX_TAIL.search(s) for s in stems]
    if len(stems) < 2 or not all(tails) or len({len(m.group(1)) for m in tails if m}) != 1:
        return stems, None, ""
    runs = [m.group(1) for m in tails if m]
    # a place is hex when some name has a letter there and not all the same (the 'f' and
    # 'd' of Cellomics' A01f00d1 are labels)
    letters = [
        any(r[j] not in "0123456789" for r in runs) and len({r[j] for r in runs}) > 1
        for j in range(len(runs[0]))
    ]
    start = letters.index(True) if True in letters else 0
    if start < 1 or len(runs[0]) - start < 3 or len({r[start:] for r in runs}) < 2:
        return stems, None, ""
    cut = len(runs[0]) - start
    return [s[:-cut] for s in stems], [r[start:] for r in runs], "a hex fragment"


#: a date and time in a name (``2024-03-05_14-22-07.123``, ``20240305T142207``): the
#: same separators in the date and in the time, a fraction of a second optional; the time
#: has separators or follows a ``T`` (``run_20240305_000001`` is a date and a counter)
_STAMP = re.compile(
    r"(?<!\d)((?:19|20)\d\d)([-_.]?)([01]\d)\2([0-3]\d)(?:[_ -]?(?=\d\d[-_.:])|T)"
    r"([0-2]\d)([-_.:]?)([0-5]\d)\6([0-5]\d)(?:[.,]?(\d{1,6}))?(?!\d)"
)


class Stamps(NamedTuple):
    """The time stamps of the names, one per name, and where they stand."""

    times: list[np.datetime64]
    example: str  # as the first name writes it
    numbers_before: int  # digit runs before it in the first name


def without_uuid(stem: str) -> str:
    """A stem without its first UUID (to compare the structure of names)."""
    return _UUID.sub("", stem, count=1)


def take_time_stamps(stems: list[str]) -> tuple[list[str], Stamps | None]:
    """Stems without the date and time that each holds once, and the stamps (None when
    they do not all hold one, or all the same): frames named by acquisition time make one
    time axis in time order, not hours, minutes and seconds apart."""
    if not _STAMP.search(stems[0]):
        return stems, None
    found = [list(_STAMP.finditer(s)) for s in stems]
    if not all(len(f) == 1 for f in found):
        return stems, None
    times = []
    for f in found:
        y, _, mo, d, h, _, mi, sec, frac = f[0].groups()
        try:
            times.append(
                np.datetime64(f"{y}-{mo}-{d}T{h}:{mi}:{sec}.{(frac or '').ljust(6, '0')}", "us")
            )
        except ValueError:  # 2024-13-45: not a date
            return stems, None
    if len(set(times)) == 1:
        return stems, None
    first = found[0][0]
    stamps = Stamps(times, first.group(0), len(_NUM.findall(stems[0][: first.start()])))
    return [s[: f[0].start()] + s[f[0].end() :] for s, f in zip(stems, found)], stamps
