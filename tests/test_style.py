"""The code's style is checked with the tests: `ruff check` (its rules are in pyproject.toml)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    ruff = shutil.which("ruff") or [sys.executable, "-m", "ruff"]
    command = [ruff] if isinstance(ruff, str) else ruff
    done = subprocess.run([*command, "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
