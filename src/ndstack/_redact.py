"""Every string that leaves the process goes through here: credentials out, one line.

:func:`redact` is the one place that removes credentials: ``user:password@`` in URLs
(passwords holding ``/`` or ``@``, as AWS secret keys do, included), secret query
parameters (``token``, ``access_token``, ``api_key``, ``sig``, ``X-Amz-Signature``,
``X-Goog-Credential``, Azure SAS ``sv``/``se``/``sp``/``sig`` ...), ``"secret": "..."``
entries of printed options and ``Bearer`` tokens. It is applied to the message of every
:class:`~ndstack.errors.NdstackError`, to what the command line prints, to
:func:`ndstack.info` and to the metadata and records written beside a store.

It errs on the side of hiding: a path holding ``@`` after a ``scheme://`` loses the
part before the last ``@``. :func:`one_line` escapes control characters (a file name
holding a newline must not split an error message, nor a terminal escape reach the
terminal).
"""

from __future__ import annotations

import re

__all__ = ["for_output", "one_line", "reason", "redact"]

#: ``scheme://`` up to the last ``@`` before white space: the user info, whatever it holds
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s]*@")
#: ``key=value``, in a query string (after ``?``, ``&`` or ``;``) or anywhere in text
#: (not inside a path: ``/data/monkey=3/x.tif`` names a folder, it is no parameter)
_PARAM = re.compile(
    r"(?:(?P<sep>[?&;])|(?<![\w.\-/\\]))(?P<key>[\w.-]+)=(?P<value>[^&#;\s'\"<>,)]*)"
)
#: ``"key": "value"`` or ``'key': 'value'`` (printed options, JSON)
_ENTRY = re.compile(
    r"(?P<head>(?P<q>['\"])(?P<key>[\w.-]+)(?P=q)\s*:\s*(?P<q2>['\"]))(?P<value>(?:(?!(?P=q2)).)*)"
)
_BEARER = re.compile(r"(?i)\b(?P<head>bearer\s+)[\w.~+/=-]+")

#: Parts of parameter names that mark a secret (case-insensitive).
_SECRET_PARTS = (
    "token", "secret", "passw", "pwd", "signature", "credential", "auth", "session", "private",
)  # fmt: skip
#: Short parameter names that are secret, or part of a signed URL (Azure SAS: sv, se, sp,
#: sig ...), in a query string; in free text (``expected key=value``) they stay.
_QUERY_SECRETS = frozenset(
    "key sig sv se sp st sr spr sip ss srt skoid sktid skt ske sks skv".split()
)


def _is_secret(key: str, in_query: bool) -> bool:
    """``token``, ``access_token``, ``api_key``, ``X-Goog-Signature``, ``sig`` (not ``sigma``)."""
    low = key.lower()
    if low in _QUERY_SECRETS:
        return in_query
    return low.endswith("key") or any(p in low for p in _SECRET_PARTS)


def redact(text: str) -> str:
    """Remove credentials: ``user:pass@`` in URLs and the values of secret parameters.

    >>> redact("s3://key:se/cr@t@bucket/data?token=abc&x=1")
    's3://***@bucket/data?token=***&x=1'
    >>> redact("https://host/a.tif?sv=2022-11-02&sp=r&sig=abc%3D")
    'https://host/a.tif?sv=***&sp=***&sig=***'
    >>> redact("/data/run_1/img_t0.tif")
    '/data/run_1/img_t0.tif'
    >>> redact("/data/monkey=3/token=x.tif")
    '/data/monkey=3/token=x.tif'
    """
    if "://" in text and "@" in text:
        text = _USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
    if "=" in text:
        text = _PARAM.sub(_param, text)
    if ":" in text:
        text = _ENTRY.sub(_entry, text)
    return _BEARER.sub(lambda m: m.group("head") + "***", text)


def _param(m: re.Match[str]) -> str:
    sep = m.group("sep") or ""
    return f"{sep}{m.group('key')}=***" if _is_secret(m.group("key"), bool(sep)) else m.group(0)


def _entry(m: re.Match[str]) -> str:
    return m.group("head") + "***" if _is_secret(m.group("key"), True) else m.group(0)


def one_line(text: str) -> str:
    r"""Control characters (newlines, escapes, ...) written as escapes, as ``repr`` does.

    >>> one_line("img\n1.tif\x1b[2J")
    'img\\n1.tif\\x1b[2J'
    """
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


def reason(exc: BaseException, limit: int = 200) -> str:
    """An exception in a few words for a one-line message: its first line, at most
    ``limit`` characters, or its type's name when it says nothing.

    >>> reason(ValueError("bad value\\nmore detail"))
    'bad value'
    >>> reason(KeyError())
    'KeyError'
    """
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]


def for_output(text: str) -> str:
    """What a message goes through before it leaves: :func:`redact`, then :func:`one_line`."""
    return one_line(redact(text))
