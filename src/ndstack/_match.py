"""Matching names against patterns in bounded time: templates and user regexes.

Python's ``re`` backtracks and has no timeout: a template such as ``*_*_*_*_*_*_*_*_{T}.tif``
turned into a regex tries every way of splitting a long name that does not match, and
runs for minutes. So:

* **templates** are matched by :class:`TemplateMatcher`. It captures exactly what the regex
  of :func:`template_to_regex` would (``{field}`` shortest first, ``*`` and ``{field:d}``
  longest first), but hands a name to ``re`` only when the places where the literals
  occur bound the regex's backtracking to a few thousand paths (every ordinary name:
  C speed). Other names go to a depth-first search over the same candidates, in the same
  order, that remembers each (token, position) that failed: at most tokens x positions
  states, each tried once.
* **user regexes** are checked before use by :func:`check_regex`: a repeat inside an
  unbounded repeat (``(a+)+``, ``(\\w+\\s?)*``) or more than :data:`MAX_FREE_REPEATS`
  unbounded repeats of broad classes (``.*``, ``.+``, ``[^_]+``, ``\\w+``; digit runs and
  single characters do not count) are refused with a :class:`PatternError` that suggests
  a template. The check reads ``re._parser`` (private, but stable over Python 3.11-3.13);
  if a later Python changes it, a plainer scan of the pattern's text takes over.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from math import prod
from typing import Any

from .errors import PatternError

__all__ = [
    "MAX_FREE_REPEATS",
    "TemplateMatcher",
    "check_regex",
    "compile_pattern",
    "is_regex",
    "template_to_regex",
]

#: Unbounded repeats of broad classes a user regex may hold (each multiplies the time a
#: failing match can take by about the number of places the next literal occurs).
MAX_FREE_REPEATS = 4

#: Fields and ``*`` a template may hold (the matcher recurses once per each).
MAX_TEMPLATE_VARIABLES = 100

_TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
#: Paths a regex match may try before names go to the bounded search instead.
_REGEX_PATHS = 2048
_DIGIT_RUN = re.compile(r"\d*")
_FIELD, _DIGITS, _STAR = 0, 1, 2
_SUGGEST = "write a template instead, e.g. 'img_{T}_ch{C}_*.tif' (matched in bounded time)"


def template_to_regex(template: str) -> str:
    r"""Turn a readable template into a regular expression with named groups.

    ``{name}`` matches any run of characters without ``/``; ``{name:d}`` matches digits;
    ``*`` matches anything without ``/``. Everything else is literal. (Names are matched
    by :class:`TemplateMatcher`, which captures what this regex would; the regex serves to
    validate the field names.)

    >>> template_to_regex("img_{T:d}_{C}.tif")
    'img_(?P<T>\\d+)_(?P<C>[^/]+?)\\.tif'
    """
    out: list[str] = []
    pos = 0
    for m in _TEMPLATE_FIELD.finditer(template):
        out.append(_escape_literal(template[pos : m.start()]))
        spec = m.group(2)
        body = r"\d+" if spec == "d" else r"[^/]+?"
        out.append(f"(?P<{m.group(1)}>{body})")
        pos = m.end()
    out.append(_escape_literal(template[pos:]))
    return "".join(out)


def _escape_literal(s: str) -> str:
    return "[^/]*".join(re.escape(part) for part in s.split("*"))


class TemplateMatcher:
    """Full matches of names against a template, in time polynomial in the name's length.

    >>> m = TemplateMatcher("{name}_t{T:d}_*.tif")
    >>> m.fullmatch("cell_a_t0012_x_y.tif")
    {'name': 'cell_a', 'T': '0012'}
    >>> m.fullmatch("cell_a_tx_y.tif") is None
    True
    """

    def __init__(self, template: str) -> None:
        #: literals around the variable tokens: lits[0] before the first, lits[j + 1] after
        #: variable j (empty between adjacent variables and at an open end)
        self.lits: list[str] = [""]
        self.kinds: list[int] = []
        self.names: list[str | None] = []  # field name of each variable (None for '*')
        pos = 0
        for m in _TEMPLATE_FIELD.finditer(template):
            self._literal(template[pos : m.start()])
            self._variable(_DIGITS if m.group(2) == "d" else _FIELD, m.group(1))
            pos = m.end()
        self._literal(template[pos:])
        self.groups = tuple(n for n in self.names if n is not None)
        self._regex = re.compile(template_to_regex(template))  # compile_pattern checks it
        #: the literal after each variable but the last (the last is checked as the end),
        #: and how many overlapping places one counted place may stand for ("aa" in "aaa")
        self._inner = self.lits[1:-1]
        self._overlap = [
            len(lit) if any(lit[:i] == lit[-i:] for i in range(1, len(lit))) else 1
            for lit in self._inner
        ]
        self._overlap_all = prod(self._overlap)

    def _literal(self, text: str) -> None:
        parts = text.split("*")
        self.lits[-1] += parts[0]
        for part in parts[1:]:
            self._variable(_STAR, None)
            self.lits[-1] += part

    def _variable(self, kind: int, name: str | None) -> None:
        self.kinds.append(kind)
        self.names.append(name)
        self.lits.append("")

    def fullmatch(self, name: str) -> dict[str, str] | None:
        """The captured fields (like ``re.fullmatch(...).groupdict()``), or None."""
        lits = self.lits
        head, tail = lits[0], lits[-1]
        if not self.kinds:
            return {} if name == head else None
        paths = prod(map(name.count, self._inner))  # "" counts every place, as it should
        if not paths:
            return None  # a literal that is not there: no match
        if paths * self._overlap_all > _REGEX_PATHS:  # a closer look
            if (
                not name.startswith(head)
                or not name.endswith(tail)
                or len(name) < len(head) + len(tail)
            ):
                return None
            paths = self._regex_paths(name)
            if paths == 0:
                return None
            if paths > _REGEX_PATHS:
                spans = self._first_try(name) or self._search(name)
                if spans is None:
                    return None
                return {g: name[a:b] for g, (a, b) in zip(self.names, spans) if g is not None}
        m = self._regex.fullmatch(name)  # few paths: C speed, the same result
        return None if m is None else m.groupdict()

    def _regex_paths(self, name: str) -> int:
        """A bound on the ways ``re`` can split ``name`` (0: it cannot match at all).

        The regex backtracks only over the places where the literal after each variable
        occurs, between the earliest and the latest place it can occur (a forward pass
        finding each literal as early as possible, a backward pass as late as possible):
        the product of those counts bounds the paths it tries, each of which costs at
        most the name's length. Ordinary names give a product of a few; a name built to
        hurt gives a huge one, and goes to the bounded search instead.
        """
        inner = self._inner
        earliest = []
        pos = len(self.lits[0])
        for lit in inner:
            pos = name.find(lit, pos)
            if pos < 0:
                return 0  # the literals do not occur in order
            earliest.append(pos)
            pos += len(lit)
        limit = len(name) - len(self.lits[-1])
        if pos > limit:
            return 0
        paths = 1
        for j in range(len(inner) - 1, -1, -1):
            lit = inner[j]
            latest = name.rfind(lit, 0, limit)
            occurrences = name.count(lit, earliest[j], latest + len(lit))
            if latest < 0 or not occurrences:
                return 0
            paths *= occurrences * self._overlap[j]
            if paths > _REGEX_PATHS:
                return paths
            limit = latest
        return paths

    def _bounds(self, j: int, name: str, pos: int) -> tuple[int, int]:
        """Shortest and longest end of variable j when it starts at ``pos``."""
        kind = self.kinds[j]
        if kind == _DIGITS:
            return pos + 1, _DIGIT_RUN.match(name, pos).end()  # type: ignore[union-attr]
        slash = name.find("/", pos)
        return pos + (kind == _FIELD), len(name) if slash < 0 else slash

    def _first_try(self, name: str) -> list[tuple[int, int]] | None:
        """The spans when every variable's first candidate works (most names): no search."""
        lits, kinds = self.lits, self.kinds
        last = len(kinds) - 1
        pos = len(lits[0])
        spans = []
        for j, kind in enumerate(kinds):
            lo, hi = self._bounds(j, name, pos)
            lit = lits[j + 1]
            if j == last:
                e = len(name) - len(lit)
            elif not lit:
                e = lo if kind == _FIELD else hi
            elif kind == _FIELD:
                e = name.find(lit, lo, hi + len(lit))
            else:
                e = name.rfind(lit, lo, hi + len(lit))
            if e < lo or e > hi:
                return None
            spans.append((pos, e))
            pos = e + len(lit)
        return spans

    def _search(self, name: str) -> list[tuple[int, int]] | None:
        """Depth-first over every candidate, in the regex's order, failures remembered."""
        lits, kinds = self.lits, self.kinds
        k, n = len(kinds), len(name)
        spans = [(0, 0)] * k
        failed: set[int] = set()

        def candidates(j: int, pos: int) -> Any:
            """Ends of variable j starting at pos, in the order the regex tries them."""
            lo, hi = self._bounds(j, name, pos)
            kind, lit = kinds[j], lits[j + 1]
            if lo > hi:
                return ()
            if j == k - 1:  # the last variable: its literal must end the name
                e = n - len(lit)
                return (e,) if lo <= e <= hi else ()
            if not lit:  # adjacent variables: every split
                return range(lo, hi + 1) if kind == _FIELD else range(hi, lo - 1, -1)
            if kind == _FIELD:  # shortest first
                return _find_all(name, lit, lo, hi)
            return _rfind_all(name, lit, lo, hi)  # longest first

        def step(j: int, pos: int) -> bool:
            if j == k:
                return pos == n
            key = pos * (k + 1) + j
            if key in failed:
                return False
            width = len(lits[j + 1])
            for e in candidates(j, pos):
                if step(j + 1, e + width):
                    spans[j] = (pos, e)
                    return True
            failed.add(key)
            return False

        return spans if step(0, len(lits[0])) else None


def _find_all(text: str, lit: str, lo: int, hi: int) -> Any:
    """Starts of ``lit`` in ``text`` between lo and hi (inclusive), ascending."""
    i = text.find(lit, lo)
    while 0 <= i <= hi:
        yield i
        i = text.find(lit, i + 1)


def _rfind_all(text: str, lit: str, lo: int, hi: int) -> Any:
    """The same, descending."""
    end = hi + len(lit)
    i = text.rfind(lit, lo, end)
    while i >= 0:
        yield i
        end = i + len(lit) - 1
        i = text.rfind(lit, lo, end)


# --------------------------------------------------------------------------- user regexes
def check_regex(pattern: str) -> None:
    """Refuse a regex that can backtrack for a very long time (see the module's notes)."""
    try:
        from re import _constants as c
        from re import _parser

        tree = _parser.parse(pattern)
        nested, free = _scan_tree(tree, c, inside_unbounded=False)
    except re.error:
        raise  # the caller reports invalid expressions
    except Exception:  # pragma: no cover - a later Python changed the private parser
        nested, free = _scan_text(pattern)
    if nested:
        raise PatternError(
            f"pattern {pattern!r} repeats a group that itself holds an unbounded repeat "
            f"(like '(a+)+' or '(\\w+\\s?)*'), which can take exponential time; {_SUGGEST}"
        )
    if free > MAX_FREE_REPEATS:
        raise PatternError(
            f"pattern {pattern!r} has {free} unbounded repeats such as '.*' or '.+' (at most "
            f"{MAX_FREE_REPEATS}), which can take a very long time on names that do not "
            f"match; {_SUGGEST}"
        )


def _scan_tree(items: Any, c: Any, *, inside_unbounded: bool) -> tuple[bool, int]:
    """(a nested unbounded repeat was found, number of broad unbounded repeats)."""
    nested, free = False, 0
    repeats = (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None))
    for op, av in items:
        subs: list[Any] = []
        inner = inside_unbounded
        if op in repeats:
            _, hi, body = av
            if hi == c.MAXREPEAT:
                if inside_unbounded:
                    return True, free
                if not _narrow(body, c):
                    free += 1
                inner = True
            subs = [body]
        elif op == c.SUBPATTERN:
            subs = [av[-1]]
        elif op == c.BRANCH:
            subs = list(av[1])
        elif op == getattr(c, "ATOMIC_GROUP", None):
            subs = [av]
        elif op in (c.ASSERT, c.ASSERT_NOT):
            subs = [av[1]]
        elif op == c.GROUPREF_EXISTS:
            subs = [s for s in av[1:] if s is not None]
        for sub in subs:
            sub_nested, sub_free = _scan_tree(sub, c, inside_unbounded=inner)
            nested, free = nested or sub_nested, free + sub_free
            if nested:
                return nested, free
    return nested, free


def _narrow(body: Any, c: Any) -> bool:
    """Whether a repeated item is one character or a digit class (``a+``, ``\\d+``)."""
    items = list(body)
    if len(items) != 1:
        return False
    op, av = items[0]
    if op == c.LITERAL:
        return True
    if op != c.IN:
        return False
    return all(
        (o == c.CATEGORY and a == c.CATEGORY_DIGIT)
        or (o == c.RANGE and 48 <= a[0] <= a[1] <= 57)
        or (o == c.LITERAL and 48 <= a <= 57)
        for o, a in av
    )


def _scan_text(pattern: str) -> tuple[bool, int]:
    """A plainer, more cautious scan: every unbounded quantifier counts as broad."""
    nested = False
    free = 0
    depth_has: list[bool] = []  # per open group: holds an unbounded quantifier
    last_group_had = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":  # skip a class
            j = i + 1 + (pattern[i + 1 : i + 2] == "^")
            j += pattern[j : j + 1] == "]"
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i, last_group_had = j + 1, False
            continue
        unbounded = ch in "*+" or re.match(r"\{\d*,\}", pattern[i:]) is not None
        if ch == "(":
            depth_has.append(False)
        elif ch == ")":
            last_group_had = depth_has.pop() if depth_has else False
            if depth_has:
                depth_has[-1] = depth_has[-1] or last_group_had
            i += 1
            continue
        elif unbounded:
            free += 1
            nested = nested or (pattern[i - 1 : i] == ")" and last_group_had)
            if depth_has:
                depth_has[-1] = True
        last_group_had = False
        i += 1
    return nested, free


def is_regex(pattern: str) -> bool:
    """Whether a pattern is a regular expression (it names a group) rather than a template."""
    return "(?P<" in pattern


def compile_pattern(pattern: str) -> tuple[tuple[str, ...], Callable[[str], dict[str, Any] | None]]:
    """The field names of a template or regex, and a function name -> fields or None.

    A pattern holding ``(?P<`` is a regular expression, checked by :func:`check_regex`
    and matched with ``re.search`` semantics (anywhere in the name: anchor it with ``^``
    and ``$`` to match whole names); anything else is a template, matched whole.
    """
    regex_given = is_regex(pattern)
    regex = pattern if regex_given else template_to_regex(pattern)
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        raise PatternError(f"pattern {pattern!r} is not a valid expression: {exc}") from None
    if not compiled.groupindex:
        raise PatternError(f"pattern {pattern!r} names no field: use {{T}}, {{C}}, (?P<T>...)")
    if not regex_given:
        matcher = TemplateMatcher(pattern)
        if len(matcher.kinds) > MAX_TEMPLATE_VARIABLES:
            raise PatternError(
                f"pattern {pattern!r} has {len(matcher.kinds)} fields and '*' (at most "
                f"{MAX_TEMPLATE_VARIABLES})"
            )
        return matcher.groups, matcher.fullmatch
    check_regex(pattern)

    def search(name: str) -> dict[str, Any] | None:
        m = compiled.search(name)
        return None if m is None else m.groupdict()

    return tuple(compiled.groupindex), search
