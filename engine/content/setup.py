"""First-run step: a new site starts with the bundled demo, so there is something to see."""
from __future__ import annotations

from pathlib import Path

from flask import Flask


def load_demo(app: Flask, base_url: str) -> list[str]:
    """Import `CONTENT_PATH` when the database holds no content yet (never afterwards)."""
    from engine.content import sync
    if sync.has_content():
        return []
    folder = Path(app.config["CONTENT_PATH"])
    report = sync.sync(folder)
    pages = sum(name.startswith("page ") for name in report.created)
    posts = sum(name.startswith("post ") for name in report.created)
    notes = [f"Loaded the demo site from {folder}: {pages} pages and {posts} posts "
             f"(edit the files and run `magnet content sync`, or use the admin)."]
    notes += [f"  {line}" for line in report.errors + report.notes]
    return notes
