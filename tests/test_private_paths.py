"""The registry of public paths that carry a secret covers every route with a token in its path."""
from __future__ import annotations

import re

import pytest

from engine.web import private_paths


def test_every_route_with_a_token_in_its_path_is_declared(app):
    routes = [rule.rule for rule in app.url_map.iter_rules() if "token" in rule.arguments]
    assert len(routes) >= 7, routes  # confirm, thanks, assets, preview, reset, invitation, welcome
    for route in routes:
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>",
                      lambda m: "s3cret" if m.group(1) == "token" else "name", route)
        assert private_paths.is_private(path), f"{route} carries a token: declare it"
        assert "s3cret" not in private_paths.redact(path), route


@pytest.mark.parametrize("path, shown", [
    ("/forms/confirm/abc.def", "/forms/confirm/{token}"),
    ("/forms/ebook/thanks/abc?x=1", "/forms/ebook/thanks/{token}"),
    ("/forms/confirm/thanks/abc", "/forms/confirm/thanks/{token}"),
    ("/assets/abc/more", "/assets/{token}"),
    ("/admin/preview/abc", "/admin/preview/{token}"),
    ("/auth/invitation/abc", "/auth/invitation/{token}"),
    ("/forms/ebook/thanks", "/forms/ebook/thanks"),
    ("/assets/", "/assets/"),
    ("/pricing?token=x", "/pricing?token=x"),
])
def test_redact_keeps_the_kind_of_page_and_drops_the_secret(path, shown):
    assert private_paths.redact(path) == shown
    assert private_paths.is_private(path) == (shown != path)
