"""Country from the IP address, offline: `geoip2fast` ships its own data file, so no look-up
ever leaves the machine and nothing needs downloading. The data loads once per process (a fifth
of a second, on the first rule that asks for a country) and answers are cached."""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

_lock = threading.Lock()
_reader: list[Any] = []


def _geo() -> Any:
    if not _reader:
        with _lock:
            if not _reader:
                from geoip2fast import GeoIP2Fast
                _reader.append(GeoIP2Fast(verbose=False))
    return _reader[0]


@lru_cache(maxsize=16384)
def country(address: str) -> str:
    """ISO 3166-1 alpha-2 code, or "" for private, unknown or malformed addresses."""
    if not address:
        return ""
    try:
        code = str(_geo().lookup(address).country_code or "")
    except Exception:  # a malformed address must never cost the page
        return ""
    return code.upper() if len(code) == 2 and code.isalpha() else ""
