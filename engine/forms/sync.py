"""Forms as files: `content/forms/<slug>.yaml` synced into the database and exported back.

Files are the demo site's source and what a site keeps in git; the database is what the engine
reads at request time (and what the admin edits). `magnet content sync` and `magnet forms sync`
call `sync_forms`; a file that does not parse is reported by name and changes nothing.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy import select

from engine.db import db
from engine.forms import service
from engine.forms.definitions import DefinitionError, parse
from engine.forms.models import Form


def _load(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path.name}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path.name}: a form file holds a mapping")
    raw.setdefault("slug", path.stem)
    try:
        parse(raw)
    except (DefinitionError, KeyError, TypeError, ValueError) as exc:
        raise DefinitionError(f"{path.name}: {exc}") from None
    return raw


def sync_forms(folder: str | Path, dry_run: bool = False) -> list[str]:
    """Create or update a form per YAML file; returns a line per change (what would change)."""
    folder = Path(folder)
    definitions = [_load(p) for p in sorted(folder.glob("*.y*ml"))] if folder.is_dir() else []
    lines = []
    for raw in definitions:
        row = db.session.scalar(select(Form).where(Form.slug == raw["slug"]))
        if row is not None and row.definition == raw:
            continue
        lines.append(f"{'created' if row is None else 'updated'} form {raw['slug']}")
        if not dry_run:
            service.save(raw, source="file")
    return lines


def export_forms(folder: str | Path) -> list[str]:
    """Write every form as `<slug>.yaml` (for sites that edit in the admin and keep files)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row in service.all_forms():
        path = folder / f"{row.slug}.yaml"
        path.write_text(yaml.safe_dump(row.definition, sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
        written.append(str(path))
    return written
