"""Late values: the few parts of a shared, cached page that must be made for each response.

A cached page is one body served to every anonymous visitor, for as long as its content does not
change (days on a quiet site). A value that must be fresh per response, such as a form's
signed token (dated when it is handed out, so the minimum fill time holds, and expiring), cannot
be stored in it. While a page is rendered for the cache, `late(kind, arg)` writes a marker
instead; the cache cuts the stored body at its markers once (`split`) and `join` puts in
`resolver(arg)` for each response, which costs little more than the resolver's own work. Outside a
cached render `late()` returns the value at once.

Concerns register resolvers with `register(app, kind, resolver)` at start-up (forms: the form
token). A marker holds only a kind and a short argument of safe characters, so nothing a visitor
or an editor typed is ever evaluated; at worst an editor who types a marker gets a fresh token.
"""
from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask, current_app, g, has_request_context

MARK = "\x1bmagnet-late"
_MARKER = re.compile(rb"\x1bmagnet-late:([a-z-]{1,30}):([A-Za-z0-9_.,-]{0,400})\x1b")
_ARG = re.compile(r"[A-Za-z0-9_.,-]{0,400}")
EXTENSION = "magnet.late_values"
COLLECTING = "magnet_late_collecting"  # `g` flag: this render is being kept in the page cache
USED = "magnet_late_used"  # `g` flag: the render wrote at least one marker

Resolver = Callable[[str], str]


def register(app: Flask, kind: str, resolver: Resolver) -> None:
    app.extensions.setdefault(EXTENSION, {})[kind] = resolver


def late(kind: str, arg: str) -> str:
    """`resolver(arg)` now, or a marker filled for each response when the page is cached."""
    resolver = current_app.extensions[EXTENSION][kind]
    if not (has_request_context() and g.get(COLLECTING)):
        return resolver(arg)
    if not _ARG.fullmatch(arg):
        raise ValueError(f"late value argument {arg!r} has characters a marker cannot hold")
    g.setdefault(USED, True)
    return f"{MARK}:{kind}:{arg}\x1b"


Segments = tuple[bytes | tuple[str, str], ...]


def split(body: bytes) -> Segments:
    """The body cut at its markers, once, when a page is stored: `(kind, arg)` between the
    literal parts, so serving it costs a join rather than a scan of the whole page."""
    parts: list[bytes | tuple[str, str]] = []
    last = 0
    for match in _MARKER.finditer(body):
        parts += [body[last:match.start()], (match.group(1).decode(), match.group(2).decode())]
        last = match.end()
    parts.append(body[last:])
    return tuple(parts)


def join(segments: Segments) -> bytes:
    """The page with each late value made now."""
    resolvers = current_app.extensions.get(EXTENSION, {})
    return b"".join(part if isinstance(part, bytes)
                    else resolvers[part[0]](part[1]).encode() if part[0] in resolvers else b""
                    for part in segments)


def fill(body: bytes) -> bytes:
    """The body with every marker replaced by its value, made now."""
    return join(split(body))
