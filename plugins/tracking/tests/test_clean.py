"""Cleaning at the edge: page addresses are cleaned the same way whichever path takes them
(the pattern for plain addresses, `clean._plain`, must give exactly what parsing and rebuilding
gives, `clean._parsed`, and leave to it every address it cannot vouch for), and event ids stay
unique across the web server's forked processes."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.tracking import clean

# Pieces that make addresses plain and not quite plain: upper case, escapes, user info, ports
# out of range or default, private parameters, secret paths, blank and repeated pairs. The
# plain ones come more often, so that most addresses drawn take the plain path.
SCHEMES = st.sampled_from(["http", "https"] * 4 + ["HTTP", "ftp", "javascript"])
HOSTS = st.sampled_from(["example.com", "www.example.com", "127.0.0.1", "a..b", "-"] * 3
                        + ["Example.com", "user@h.io", "[::1]", "h_o.st"])
PORTS = st.sampled_from([""] * 10 + [":80", ":443", ":8000", ":080", ":0", ":65535", ":65536",
                                     ":", ":99999"])
SEGMENTS = st.sampled_from(["", "blog", "x;y", "~me", "a@b", "(1)", "forms", "confirm", "tok123",
                            "assets", "thanks", "+", "'"] * 2 + ["café", "caf%C3%A9", "a b", "%2F"])
PAIRS = st.sampled_from(["visit=1", "utm_source=news", "email=a", "Token=z", "gclid=Cj0KCQ_x-1.~",
                         "a=", "name=Ann"] * 3
                        + ["q=a+b", "q=a%20b", "a", "=v", "", "a=b=c", "k=v#frag", "x=%00"])


@st.composite
def addresses(draw: st.DrawFn) -> str:
    path = "/".join(draw(st.lists(SEGMENTS, max_size=4)))
    query = "&".join(draw(st.lists(PAIRS, max_size=4)))
    return (f"{draw(SCHEMES)}://{draw(HOSTS)}{draw(PORTS)}"
            f"{'/' + path if path or draw(st.booleans()) else ''}"
            f"{'?' + query if query or draw(st.booleans()) else ''}")


def parsed(raw: str, keep_query: bool) -> str | Exception:
    try:
        return clean._parsed(raw, keep_query)
    except clean.BadEvent as exc:
        return exc


@settings(max_examples=600, deadline=None)
@given(addresses(), st.booleans())
def test_plain_addresses_are_cleaned_as_parsing_cleans_them(raw, keep_query):
    plain = clean._plain(raw, keep_query)
    if plain is not None:
        assert plain == parsed(raw, keep_query)


@pytest.mark.parametrize("raw, keep_query, expected", [
    ("https://www.example.com/pricing?utm_source=news&email=a&gclid=Cj0-x", True,
     "https://www.example.com/pricing?utm_source=news&gclid=Cj0-x"),
    ("https://www.example.com:443/?visit=1", False, "https://www.example.com/"),
    ("http://example.com:8000", True, "http://example.com:8000/"),
    ("https://example.com/forms/confirm/abc.def?utm_source=x", True,
     "https://example.com/forms/confirm/{token}"),
])
def test_the_plain_path_takes_the_usual_addresses(raw, keep_query, expected):
    assert clean._plain(raw, keep_query) == expected == clean._parsed(raw, keep_query)


@pytest.mark.parametrize("raw", ["HTTPS://example.com/", "https://Example.com/",
                                 "https://example.com/caf%C3%A9", "https://example.com/?q=a+b",
                                 "https://example.com/?a", "https://example.com/#top",
                                 "https://u@example.com/", "https://example.com:99999/"])
def test_anything_else_is_left_to_parsing(raw):
    assert clean._plain(raw, True) is None


def test_event_ids_are_unique_in_forked_processes():
    """Web workers are forked from one process: each must draw ids of its own."""
    clean.event_id(0.0)  # the parent's generator is in use before the fork, as a server's is
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, "".join(clean.event_id(1.0) for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = pipe.read()
    os.waitpid(child, 0)
    theirs_ids = {theirs[i:i + 32] for i in range(0, len(theirs), 32)}
    ours = {clean.event_id(1.0) for _ in range(100)}
    assert len(theirs_ids) == len(ours) == 100
    assert not theirs_ids & ours
