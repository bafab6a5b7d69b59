"""The admin contact list at 1,000,000 contacts on PostgreSQL, against hand-written SQL.

A database of its own is created on the server of `MAGNET_BENCH_DATABASE_URL` (default
`postgresql://postgres@127.0.0.1/postgres`), migrated by `magnet db upgrade`'s code, filled
with `--contacts` people through `COPY` (names drawn from lists, so a common name prefix
matches about 1% of them and a rare one 0.01%; 1% tagged `vip`; stages spread evenly but for a
rare one at 0.05%; one sign-up every 30 s going back about a year; a third of them at one of
10,000 companies), analysed, measured, and dropped again. Rare values are where a missing
index shows: without one, the list walks the whole table backwards looking for 50 matches.

Each admin page is requested in-process through the app's test client, signed in as a viewer,
so the figure is the server's whole work for the page (routing, session, role check, queries,
template) without network or browser. In the same run, the same queries as hand-written SQL
on a bare psycopg connection (rows fetched, plus the tags of the shown rows) give the floor:
the ratio says what the engine adds. The dashboard's "new this week" count is timed the same
way. The results name the indexes each hand-written query's plan reads. Target: every page
under 100 ms (median).

Search finds a piece of a name, an email or a company name anywhere in it (the trigram
indexes of the search migration, e4b7c2a9f813): common and rare infixes are timed against the
same search written by hand, and a one-letter query (answered by prefix ranges).

    python bench/contacts_list.py [--contacts N] [--repeat R] [--database NAME]
                                  [--without-scale-indexes]
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
COMPANIES = 10_000
COMPANY_STEMS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Wonka", "Stark", "Wayne"]
RARE_COMPANY = "Northwind Traders"  # one company: about 33 contacts per million

# By hand as a person who knows PostgreSQL would write it: the matching companies first (a
# short list of ids lets the plan combine the trigram and company_id indexes), then the page.
SEARCH = ("AND (lower(first_name || ' ' || last_name || ' ' || email) LIKE %s "
          "OR company_id = ANY(%s))")
COMPANIES_LIKE = "SELECT id FROM companies WHERE lower(name) LIKE %s LIMIT 1001"


def _anywhere(piece: str) -> tuple[str, str]:
    return (f"%{piece}%", f"%{piece}%")  # the second becomes the companies' ids


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
    # Search anywhere: the same LIKE '%piece%' on name, email and company, by hand.
    ("search, rare infix (name)", "/admin/contacts?q=ubrowsk", SEARCH, _anywhere("ubrowsk")),
    ("search, 1% infix (name)", "/admin/contacts?q=kaforelli", SEARCH, _anywhere("kaforelli")),
    ("search, 10% infix (name)", "/admin/contacts?q=owalsk", SEARCH, _anywhere("owalsk")),
    ("search, rare infix (email)", "/admin/contacts?q=.12347@", SEARCH, _anywhere(".12347@")),
    ("search, rare infix (company)", "/admin/contacts?q=thwind", SEARCH, _anywhere("thwind")),
    ("search, 4% infix (company)", "/admin/contacts?q=lobex", SEARCH, _anywhere("lobex")),
    ("search, first and last", "/admin/contacts?q=farid+zub", SEARCH, _anywhere("farid zub")),
    ("search, one letter", "/admin/contacts?q=z",
     "AND (email >= %s AND email < %s OR lower(first_name) LIKE %s OR lower(last_name) LIKE %s "
     "OR company_id = ANY(%s))", ("z", "z\U0010ffff", "z%", "z%", "z%")),
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
        with conn.cursor() as cur, cur.copy("COPY companies (id, name, domain, custom, "
                                            "created_at) FROM STDIN") as copy:
            for k in range(1, COMPANIES + 1):
                name = RARE_COMPANY if k == 2 else f"{COMPANY_STEMS[k % 8]} {k}"
                copy.write_row((k, name, "", "{}", now))
        with conn.cursor() as cur, cur.copy(
                "COPY contacts (company_id, email, first_name, last_name, phone, job_title, "
                "country, lifecycle_stage, custom, consent, consent_proof, first_touch, "
                "last_touch, status, created_at, updated_at) FROM STDIN") as copy:
            for n in range(1, contacts + 1):
                first = FIRST[n % len(FIRST)]
                last = RARE_NAME if n % 10_000 == 5 else LAST[(n * 7) % len(LAST)]
                stage = RARE_STAGE if n % 2000 == 0 else STAGES[n % len(STAGES)]
                created = now - dt.timedelta(seconds=30 * (contacts - n))
                company = (n // 3) % COMPANIES + 1 if n % 3 == 0 else None
                copy.write_row((company, f"{first.lower()}.{last.lower()}.{n}@example.com", first,
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
    rows = conn.execute(ROWS.format(where=where), with_companies(conn, where, params)).fetchall()
    conn.execute(TAGS, ([r[0] for r in rows],)).fetchall()
    conn.rollback()
    return len(rows)


def with_companies(conn: psycopg.Connection, where: str, params: tuple[Any, ...]
                   ) -> tuple[Any, ...]:
    """A search's parameters with its last one (a pattern) replaced by the ids of the
    companies whose name matches it."""
    if "company_id = ANY" not in where:
        return params
    ids = [row[0] for row in conn.execute(COMPANIES_LIKE, (params[-1],))]
    return (*params[:-1], ids)


def engine_plan(app: Any, path: str, conn: psycopg.Connection) -> list[str]:
    """The indexes PostgreSQL's plan reads for the query the engine itself makes for `path`."""
    from urllib.parse import parse_qsl, urlsplit

    from engine.contacts import query
    from engine.db import db
    with app.test_request_context(path), app.app_context():
        asked = query.ContactQuery.from_args(dict(parse_qsl(urlsplit(path).query)))
        statement = query.filtered(asked).order_by(db.text("id DESC")).limit(51)
        compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
        text = str(compiled)
    return indexes_used(conn, text.replace("%", "%%"), ())


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
                            "indexes": indexes_used(conn, ROWS.format(where=where),
                                                    with_companies(conn, where, params)),
                            "engine_indexes": engine_plan(app, path, conn) if "q=" in path
                            else None,
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
    parser.add_argument("--keep-database", action="store_true",
                        help="leave the database on the server afterwards, to look at plans")
    parser.add_argument("--database", default=DATABASE,
                        help="the benchmark's own database on that server (dropped after)")
    parser.add_argument("--without-scale-indexes", action="store_true",
                        help="drop the indexes of the contacts-at-scale migration after loading, "
                             "to see what they are worth")
    options = parser.parse_args()
    server = os.environ.get("MAGNET_BENCH_DATABASE_URL", DEFAULT_URL)
    url = psycopg_url(server, options.database)

    from engine import create_app, migrate
    from engine.db import db
    from engine.jobs.embedded import EmbeddedRedis

    recreate(server, database=options.database)
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
        if not options.keep_database:
            recreate(server, drop_only=True, database=options.database)
        shutil.rmtree(instance, ignore_errors=True)

    print(f"{'page':<30} {'magnet ms':>10} {'SQL ms':>8} {'ratio':>6}  target  indexes")
    for row in results:
        mark = "ok" if row["under_target"] else "SLOW"
        print(f"{row['page']:<30} {row['magnet']['median_ms']:>10.1f} "
              f"{row['hand_sql']['median_ms']:>8.2f} {row['ratio']:>5.1f}x  {mark:<6}  "
              f"{', '.join(row['indexes']) or 'none (sequential scan)'}"
              + (f" | engine: {', '.join(row['engine_indexes'])}" if row.get("engine_indexes")
                 else ""))
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
