"""The visitor cookie read from a raw `Cookie` header (what the beacon does on every hit) is the
value werkzeug's full parse gives, and the `Set-Cookie` header made for it says when it expires."""
from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.http import parse_cookie

from engine.contacts import visitors

NAMES = st.sampled_from([visitors.COOKIE, f"x{visitors.COOKIE}", "session", "a",
                         f"{visitors.COOKIE}x"])
VALUES = st.sampled_from(["abc.def", "", '"q\\"x"', '"plain"', "1", "a b", "=", "v=w"])
SPACES = st.sampled_from(["", " ", "\t", "  "])


@st.composite
def headers(draw: st.DrawFn) -> str:
    cookies = draw(st.lists(st.tuples(SPACES, NAMES, SPACES, SPACES, VALUES, SPACES), max_size=4))
    return ";".join(f"{a}{name}{b}={c}{value}{d}" for a, name, b, c, value, d in cookies)


@settings(max_examples=400, deadline=None)
@given(headers())
def test_the_visitor_cookie_is_read_as_werkzeug_reads_it(header):
    assert visitors.cookie_in(header) == parse_cookie(header).get(visitors.COOKIE)


def test_the_set_cookie_header_expires_in_two_years(app):
    with app.app_context():
        header = visitors.cookie_header("0" * 32, https=True)
        value = visitors.cookie_value("0" * 32)
    parts = dict(part.partition("=")[::2] for part in header.split("; "))
    assert parts[visitors.COOKIE] == value
    expires = parsedate_to_datetime(parts["Expires"]).timestamp()
    assert abs(expires - (time.time() + visitors.MAX_AGE)) <= 2
    assert parts["Max-Age"] == str(visitors.MAX_AGE)
    assert {"Secure", "HttpOnly"} <= set(parts) and parts["SameSite"] == "Lax"
