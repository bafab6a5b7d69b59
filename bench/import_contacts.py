"""Contact import: `magnet contacts import` of a 100,000-row CSV, against a raw-SQLite baseline.

The file is generated (names, companies, tags, a custom column, 2% duplicate rows in other
letter case, 0.5% invalid emails), imported into a fresh instance by the real command in its own
process, timed, and counted afterwards. The baseline, in the same run, reads the same file with
`csv` and inserts it with one `executemany` into a bare table with a unique email column: the
floor for "read a CSV into SQLite" on this machine. Target: the import under 30 s.

    python bench/import_contacts.py [--rows N]
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import RESULTS, machine

TARGET_SECONDS = 30.0
FIRST = ["Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Inès", "Jonas"]
LAST = ["Berg", "Moreau", "Raman", "O'Brien", "Nakamura", "Silva", "Novak", "Kowalski"]


def generate(path: Path, rows: int, seed: int = 7) -> dict[str, int]:
    """Write the CSV; returns how many distinct valid people and bad rows it holds."""
    rng = random.Random(seed)
    valid: list[int] = []
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Email", "First Name", "Last Name", "Company", "Phone", "Tags", "Plan"])
        for i in range(rows):
            roll = rng.random()
            if roll < 0.005:
                email = f"broken-{i}.example.com"
                bad += 1
            elif roll < 0.025 and valid:
                email = f"Person{rng.choice(valid)}@Example.COM"  # a duplicate, other case
            else:
                email = f"person{i}@example.com"
                valid.append(i)
            writer.writerow([email, rng.choice(FIRST), rng.choice(LAST), f"Company {i % 5000}",
                             f"+44 20 {rng.randrange(10**7, 10**8)}",
                             ";".join(rng.sample(["lead", "vip", "event", "ebook"],
                                                 k=rng.randrange(3))),
                             rng.choice(["free", "pro", "team"])])
    return {"distinct_people": len(valid), "bad_rows": bad}


def baseline(path: Path, folder: Path) -> float:
    start = time.perf_counter()
    db = sqlite3.connect(folder / "baseline.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT UNIQUE, first_name TEXT, "
               "last_name TEXT, company TEXT, phone TEXT, tags TEXT, plan TEXT)")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        db.executemany("INSERT OR IGNORE INTO contacts (email, first_name, last_name, company, "
                       "phone, tags, plan) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       ([r[0].lower(), *r[1:]] for r in reader))
    db.commit()
    db.close()
    return time.perf_counter() - start


def magnet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, text=True,
                          capture_output=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="magnet-import-bench-") as tmp:
        folder = Path(tmp)
        path = folder / "contacts.csv"
        expected = generate(path, options.rows)
        env = {**os.environ, "MAGNET_INSTANCE_PATH": str(folder / "instance"),
               "REDIS_URL": "", "MAGNET_REDIS_URL": ""}
        env.pop("DATABASE_URL", None)
        magnet("db", "upgrade", env=env)
        base_seconds = baseline(path, folder)
        start = time.perf_counter()
        done = magnet("contacts", "import", str(path), env=env)
        seconds = time.perf_counter() - start
        stored = sqlite3.connect(folder / "instance" / "magnet.db").execute(
            "SELECT count(*) FROM contacts").fetchone()[0]
    summary = done.stdout.strip().splitlines()[-1]
    result = {
        "workload": "contacts_import",
        "description": "magnet contacts import of a generated CSV (fresh SQLite instance)",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "rows": options.rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(options.rows / seconds),
        "baseline": {"label": "csv + sqlite3 executemany into a bare table",
                     "seconds": round(base_seconds, 2)},
        "ratio_to_baseline": round(seconds / base_seconds, 1),
        "target_seconds": TARGET_SECONDS,
        "met": seconds < TARGET_SECONDS and stored == expected["distinct_people"],
        "contacts_stored": stored,
        "expected": expected,
        "command_summary": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "import_contacts.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"import of {options.rows} rows: {seconds:.1f} s ({result['rows_per_second']}/s), "
          f"baseline {base_seconds:.2f} s; {stored} contacts stored "
          f"(expected {expected['distinct_people']}); target < {TARGET_SECONDS:.0f} s: "
          f"{'met' if result['met'] else 'NOT met'}\n{summary}\nwritten to {out}")
    if not result["met"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
