"""Every hook is documented in docs/hooks.md and has a test of its own (`test_hook_<name>`)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from engine.plugins import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.split("_")[0] in {"register", "on", "filter", "tpl"})


def test_hooks_are_named_by_role():
    assert HOOKS, "no hook specs found"
    stray = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
             if hasattr(fn, "magnet_spec") and name not in HOOKS]
    assert stray == []


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook):
    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert re.search(rf"^### `{hook}\(", docs, re.M), f"docs/hooks.md has no section for {hook}"
    assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_tests(hook):
    sources = [p.read_text() for p in [*ROOT.glob("tests/**/test_*.py"),
                                       *ROOT.glob("plugins/*/tests/**/test_*.py")]]
    assert any(re.search(rf"^def test_hook_{hook}\(", s, re.M) for s in sources), \
        f"no test named test_hook_{hook}"
