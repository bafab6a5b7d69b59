"""First-run set-up, run by `magnet serve` each start: each step does its work only once.

A step is `step(app, base_url) -> list[str]`; the lines it returns are printed for the person
starting the site (for example how the owner signs in). Concerns add their step to `STEPS`.
"""
from __future__ import annotations

import importlib

from flask import Flask

STEPS: tuple[str, ...] = (
    "engine.content.setup:load_demo",
    "engine.auth.setup:first_owner",
)


def first_run(app: Flask, base_url: str) -> list[str]:
    notes: list[str] = []
    for path in STEPS:
        module, name = path.rsplit(":", 1)
        notes += getattr(importlib.import_module(module), name)(app, base_url)
    return notes
