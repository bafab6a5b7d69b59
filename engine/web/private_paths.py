"""Public addresses whose path carries a secret: one place that says which, for whoever records
or shows addresses (analytics, logs, reports).

A double opt-in link (`/forms/confirm/<token>`) makes the browser that opens it trusted for
that contact; a thank-you page (`/forms/<slug>/thanks/<token>`) leads to the visitor's download;
an asset link (`/assets/<token>`) is the download itself; a draft preview link
(`/admin/preview/<token>`) shows an unpublished draft; `/auth/reset|invitation|welcome/<token>`
sign someone in; `/email/unsubscribe|preferences/<token>` change what a recipient gets, and
`/email/o|c/<token>` (open pixel, click) name the recipient.
Whoever reads such an address, in a report or a log, holds the secret. So they are never
stored or shown as they are: `redact()` keeps the part before the secret (what kind of page it
was) and replaces the rest with `TOKEN`.

Secrets in query strings (`?sig=`, `?token=`) are a matter of the recorder's own parameter list;
this module is about paths. Every route of the app with a `<token>` variable must be covered
here: a test walks the URL map and fails for one that is not.
"""
from __future__ import annotations

import re

# What stands for the cut-out secret in a stored or shown path.
TOKEN = "{token}"

# Prefixes of the core's routes after which the rest of the path is a secret, most specific
# first (a form named "confirm" must not turn a thank-you token into a kept segment).
SECRET_PREFIXES = (
    r"/forms/[^/?#]+/thanks/",
    r"/forms/confirm/",
    r"/assets/",
    r"/admin/preview/",
    r"/auth/(?:reset|invitation|welcome)/",
    r"/email/(?:unsubscribe|preferences|o|c)/",  # a recipient's own links (engine.mail.tokens)
)
_SECRET = re.compile(rf"(?P<keep>{'|'.join(SECRET_PREFIXES)})[^?#]+")


def is_private(path: str) -> bool:
    """Whether the path (starting with `/`, without scheme and host) carries a secret."""
    return _SECRET.match(path) is not None


def redact(path: str) -> str:
    """The path with its secret replaced by `TOKEN` (`/forms/confirm/{token}`); any other
    path unchanged. A query string or fragment after the secret is dropped with it."""
    found = _SECRET.match(path)
    return path if found is None else found.group("keep") + TOKEN
