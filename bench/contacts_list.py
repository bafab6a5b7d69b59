"""The admin contact list at 1,000,000 contacts on PostgreSQL, against hand-written SQL.

A database of its own is created on the server of `MAGNET_BENCH_DATABASE_URL` (default
`postgresql://postgres@127.0.0.1/postgres`), migrated by `magnet db upgrade`'s code, filled
with `--contacts` people through `COPY` (names drawn from lists, so a common name prefix
matches about 1% of them and a rare one 0.01%; 1% tagged `vip`; stages spread evenly but for a
rare one at 0.05%; one sign-up every 30 s going back about a year), analysed, measured, and
dropped again. Rare values are where a missing index shows: without one, the list walks the
whole table backwards looking for 50 matches.

Each admin page is requested in-process through the app's test client, signed in as a viewer,
so the figure is the server's whole work for the page (routing, session, role check, queries,
template) without network or browser. In the same run, the same queries as hand-written SQL
on a bare psycopg connection (rows fetched, plus the tags of the shown rows) give the floor:
the ratio says what the engine adds. The dashboard's "new this week" count is timed the same
way. The results name the indexes each hand-written query's plan reads. Target: every page
under 100 ms (median).

    python bench/contacts_list.py [--contacts N] [--repeat R] [--without-scale-indexes]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql

from bench.harness import RESULTS, machine

TARGET_MS = 100.0
DEFAULT_URL = "postgresql://postgres@127.0.0.1/postgres"
DATABASE = "magnet_bench_contacts"
PASSWORD = "bench viewer password"
FIRST = ["Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Inès", "Jonas",
         "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara"]
LAST = [f"{stem}{suffix}" for stem in ("Berg", "Moreau", "Raman", "Nakamura", "Silva",
                                       "Novak", "Kowalski", "Okafor", "Lindqvist", "Haddad")
        for suffix in ("", "son", "er", "ini", "ez", "ova", "ski", "ström", "elli", "ard")]
STAGES = ["subscriber", "lead", "marketing_qualified", "customer"]
RARE_NAME, RARE_STAGE = "Zubrowski", "evangelist"  # 0.01% and 0.05% of contacts

# What the admin list runs for each page (see engine/admin/views/contacts.py), by hand.
ROWS = "SELECT * FROM contacts WHERE status = 'active' {where} ORDER BY id DESC LIMIT 51"
TAGS = ("SELECT ct.contact_id, t.id, t.name FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id "
        "WHERE ct.contact_id = ANY(%s)")
PAGES: list[tuple[str, str, str, tuple[Any, ...]]] = [
    # (label, admin path, extra WHERE of the hand-written query, its parameters)
    ("first page", "/admin/contacts", "", ()),
    ("stage filter, 25%", "/admin/contacts?stage=lead", "AND lifecycle_stage = %s", ("lead",)),
    ("tag filter", "/admin/contacts?tag=vip",
     "AND id IN (SELECT contact_id FROM contact_tags WHERE tag_id = %s)", None),
    ("stage filter, rare", f"/admin/contacts?stage={RARE_STAGE}", "AND lifecycle_stage = %s",
     (RARE_STAGE,)),
    ("name search, rare", "/admin/contacts?q=zubrow",
     "AND (email >= %s AND email < %s OR lower(first_name) LIKE %s "
     "OR lower(last_name) LIKE %s)", ("zubrow", "zubrow\U0010ffff", "zubrow%", "zubrow%")),
    ("first and last name", "/admin/contacts?q=farid+zub",
     "AND lower(first_name) LIKE %s AND lower(last_name) LIKE %s", ("farid%", "zub%")),
    ("name search, 1%", "/admin/contacts?q=okaforelli",
     "AND (email >= %s AND email < %s OR lower(first_name) LIKE %s "
     "OR lower(last_name) LIKE %s)", ("okaforelli", "okaforelli\U0010ffff", "okaforelli%",
                                      "okaforelli%")),
    ("cursor page", "/admin/contacts?stage=lead&after={middle}",
     "AND lifecycle_stage = %s AND id < %s", None),
]
SCALE_INDEXES = ("ix_contacts_first_name_lower", "ix_contacts_last_name_lower",
                 "ix_contacts_created_at", "ix_contacts_stage_id")
NEW_THIS_WEEK = ("SELECT count(*) FROM contacts WHERE status NOT IN ('merged', 'erased') "
                 "AND created_at >= now() - interval '7 days'")


def psycopg_url(url: str, database: str | None = None) -> str:
    base = url.replace("postgresql+psycopg://", "postgresql://")
    return base.rsplit("/", 1)[0] + f"/{database}" if database else base


def recreate(server_url: str, drop_only: bool = False, database: str = DATABASE) -> None:
    """Drop the benchmark's own database (named `database`) and, unless `drop_only`, create
    it empty again: a run never touches another database on the server."""
    with psycopg.connect(psycopg_url(server_url), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(database)))
        if not drop_only:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def load(url: str, contacts: int) -> float:
    """Fill the migrated database through COPY; returns the seconds it took (with ANALYZE)."""
    start = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur, cur.copy(
                "COPY contacts (email, first_name, last_name, phone, job_title, country, "
                "lifecycle_stage, custom, consent, consent_proof, first_touch, last_touch, "
                "status, created_at, updated_at) FROM STDIN") as copy:
            for n in range(1, contacts + 1):
                first = FIRST[n % len(FIRST)]
                last = RARE_NAME if n % 10_000 == 5 else LAST[(n * 7) % len(LAST)]
                stage = RARE_STAGE if n % 2000 == 0 else STAGES[n % len(STAGES)]
                created = now - dt.timedelta(seconds=30 * (contacts - n))
                copy.write_row((f"{first.lower()}.{last.lower()}.{n}@example.com", first,
                                last, "", "", "", stage, "{}", "unknown",
                                "{}", "{}", "{}", "active", created, created))
        conn.execute("INSERT INTO tags (name) VALUES ('vip')")
        conn.execute("INSERT INTO contact_tags (contact_id, tag_id) SELECT c.id, t.id "
                     "FROM contacts c, tags t WHERE t.name = 'vip' AND c.id % 100 = 0")
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - start


def timed(action: Callable[[], Any], repeat: int) -> dict[str, float]:
    for _ in range(3):  # warm caches and connection pools
        action()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 2),
            "p90_ms": round(samples[int(0.9 * (len(samples) - 1))], 2),
            "max_ms": round(samples[-1], 2)}


def hand_written(conn: psycopg.Connection, where: str, params: tuple[Any, ...]) -> int:
    rows = conn.execute(ROWS.format(where=where), params).fetchall()
    conn.execute(TAGS, ([r[0] for r in rows],)).fetchall()
    conn.rollback()
    return len(rows)


def sign_in(client: Any, email: str) -> None:
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/auth/login", data={"email": email, "password": PASSWORD,
                                                "csrf_token": token})
    if response.status_code != 302:
        raise RuntimeError("the bench viewer could not sign in")


def measure(app: Any, url: str, contacts: int, repeat: int) -> list[dict[str, Any]]:
    from engine.admin import stats
    from engine.auth.accounts import create_user
    from engine.db import utcnow
    with app.app_context():
        create_user("viewer@bench.example", "viewer", password=PASSWORD)
    client = app.test_client()
    sign_in(client, "viewer@bench.example")
    middle = contacts // 2
    results = []
    with psycopg.connect(url) as conn:
        vip = conn.execute("SELECT id FROM tags WHERE name = 'vip'").fetchone()[0]
        for label, path, where, params in PAGES:
            path = path.format(middle=middle)
            if params is None:
                params = (vip,) if label == "tag filter" else ("lead", middle)

            def page(path: str = path) -> None:
                response = client.get(path)
                if response.status_code != 200 or b"No contacts match" in response.data:
                    raise RuntimeError(f"{path} answered {response.status_code} or nothing")

            shown = hand_written(conn, where, params)
            engine_figures = timed(page, repeat)
            sql_figures = timed(lambda w=where, p=params: hand_written(conn, w, p), repeat)
            results.append({"page": label, "path": path, "rows": min(shown, 50),
                            "indexes": indexes_used(conn, ROWS.format(where=where), params),
                            "magnet": engine_figures, "hand_sql": sql_figures,
                            "ratio": round(engine_figures["median_ms"]
                                           / max(sql_figures["median_ms"], 0.01), 1),
                            "under_target": engine_figures["median_ms"] < TARGET_MS})

        def figure() -> None:
            with app.app_context():
                stats.new_contacts_since(utcnow() - dt.timedelta(days=7))

        def by_hand() -> None:
            conn.execute(NEW_THIS_WEEK).fetchone()
            conn.rollback()

        engine_figures, sql_figures = timed(figure, repeat), timed(by_hand, repeat)
        results.append({"page": "dashboard: new this week",
                        "path": "engine.admin.stats.new_contacts_since(a week ago)",
                        "rows": 1, "magnet": engine_figures, "hand_sql": sql_figures,
                        "ratio": round(engine_figures["median_ms"]
                                       / max(sql_figures["median_ms"], 0.01), 1),
                        "under_target": engine_figures["median_ms"] < TARGET_MS,
                        "indexes": indexes_used(conn, NEW_THIS_WEEK, ())})
    return results


def indexes_used(conn: psycopg.Connection, query: str, params: tuple[Any, ...]) -> list[str]:
    """The indexes PostgreSQL's plan for the hand-written query reads: evidence, in the
    results, that each page is served by an index rather than a scan of a million rows."""
    plan = conn.execute(f"EXPLAIN (FORMAT JSON) {query}", params).fetchone()[0]
    conn.rollback()
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node and node["Index Name"] not in found:
            found.append(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)
    walk(plan[0]["Plan"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--without-scale-indexes", action="store_true",
                        help="drop the indexes of the contacts-at-scale migration after loading, "
                             "to see what they are worth")
    options = parser.parse_args()
    server = os.environ.get("MAGNET_BENCH_DATABASE_URL", DEFAULT_URL)
    url = psycopg_url(server, DATABASE)

    from engine import create_app, migrate
    from engine.db import db
    from engine.jobs.embedded import EmbeddedRedis

    recreate(server)
    instance = Path(tempfile.mkdtemp(prefix="magnet-bench-contacts-"))
    redis = EmbeddedRedis(instance)
    try:
        redis.start()
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis.url},
                         instance_path=instance)
        migrate.upgrade(app)
        load_seconds = load(url, options.contacts)
        if options.without_scale_indexes:
            with psycopg.connect(url, autocommit=True) as conn:
                for name in SCALE_INDEXES:
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        print(f"loaded {options.contacts:,} contacts in {load_seconds:.1f} s")
        results = measure(app, url, options.contacts, options.repeat)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        redis.stop()
        recreate(server, drop_only=True)
        shutil.rmtree(instance, ignore_errors=True)

    print(f"{'page':<26} {'magnet ms':>10} {'SQL ms':>8} {'ratio':>6}  target  indexes")
    for row in results:
        mark = "ok" if row["under_target"] else "SLOW"
        print(f"{row['page']:<26} {row['magnet']['median_ms']:>10.1f} "
              f"{row['hand_sql']['median_ms']:>8.2f} {row['ratio']:>5.1f}x  {mark:<6}  "
              f"{', '.join(row['indexes']) or 'none (sequential scan)'}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("contacts_list_without_scale_indexes.json"
                     if options.without_scale_indexes else "contacts_list.json")
    out.write_text(json.dumps({
        "workload": "contacts_list", "date": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine(), "database": "PostgreSQL (own database, dropped afterwards)",
        "settings": {"contacts": options.contacts, "repeat": options.repeat,
                     "scale_indexes": not options.without_scale_indexes,
                     "load_seconds": round(load_seconds, 1)},
        "target_ms": TARGET_MS, "results": results}, indent=2))
    print(f"written to {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
