"""The admin contact list sorted by score, fit and engagement at a million contacts, on PostgreSQL
and on SQLite, against the core's "newest" page and a hand-written ORDER BY.

Each backend gets a database of its own (PostgreSQL: created on the server of the URL given and
dropped afterwards; SQLite: a file in a temporary instance folder), migrated by the engine and
filled with `--contacts` people (the names, stages and `vip` tag of `bench/contacts_list.py`),
seven in ten of them, drawn at random, with a `scoring_scores` row: fit one of twelve values
from −30 to 50 (sums of rule points), 40 more for customers (a fit rule on the stage, so the
highest fit groups hold customers only), acc 0 for a third of them (fit only), negative for a
twentieth, otherwise exponential around 25; the epoch ten days ago, a half-life of 30 days.

Each page is requested through the app's test client signed in as a viewer (routing, session,
role check, the sort's queries, the template), like `contacts_list.py`: the first page, the
second, the page after the first `--deep` (200), the page where the list enters the zeros
(contacts without a scores row count as fit 0 and engagement 0), a page in the middle of the
zeros, the last page, and the first page of the leads (25%; sorted by fit, the customers' fit
groups all come before any lead, so the sort reads them before its first row) and of a rare
stage (0.05%). Each page's cursor is made from the row before it in the reference order.
Baseline in the same run: the core's "newest" pages. Reference: the same page as one
hand-written `ORDER BY` over every filtered contact (`LEFT JOIN`, the key computed in SQL), whose
50 contacts must be the page's, id for id; it reads every contact, so it is timed fewer times.
Target: every page under 100 ms (median).
"""
from __future__ import annotations

import datetime as dt
import math
import random
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from bench.contacts_list import (
    FIRST,
    LAST,
    PASSWORD,
    RARE_NAME,
    RARE_STAGE,
    STAGES,
    load,
    sign_in,
    timed,
)
from bench.fresh_app import postgresql_app
from engine import create_app, migrate
from engine.auth.accounts import create_user
from engine.db import clock, db
from engine.jobs.embedded import EmbeddedRedis
from plugins.scoring import decay, state
from plugins.scoring.sorts import Cursor

TARGET_MS = 100.0
DATABASE = "magnet_bench_scoring"
DEEP = 200
FITS = [-30, -20, -10, -5, 0, 5, 10, 15, 20, 25, 35, 50]
EPOCH_DAYS_AGO, HALF_LIFE = 10, 30.0
KINDS = ("score", "fit", "engagement")
CUSTOMER_BONUS = 40  # a fit rule "stage is customer": whole fit groups hold only customers
SCORES_SQL = """
INSERT INTO scoring_scores (contact_id, fit, acc, poor_fit, updated_at)
SELECT id, (%(fits)s::int[])[1 + floor(random() * 12)::int]
           + CASE WHEN lifecycle_stage = 'customer' THEN %(bonus)s ELSE 0 END,
       CASE WHEN r < 0.33 THEN 0.0 WHEN r < 0.38 THEN -random() * 20
            ELSE -ln(1.0 - random()) * 25 END,
       false, now()
FROM (SELECT id, lifecycle_stage, random() AS r, random() AS keep FROM contacts) AS s
WHERE keep < 0.7
"""


# --- loading -----------------------------------------------------------------------------------

def fill_postgresql(url: str, contacts: int) -> float:
    began = time.perf_counter()
    load(url, contacts)  # contacts through COPY, the vip tag, VACUUM ANALYZE
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.29)")
        conn.execute(SCORES_SQL, {"fits": FITS, "bonus": CUSTOMER_BONUS})
        conn.execute(
            "INSERT INTO scoring_state (id, epoch, epoch_seconds, half_life_days) "
            "SELECT 1, now() - %(days)s * interval '1 day', "
            "extract(epoch FROM now() - %(days)s * interval '1 day'), %(h)s",
            {"days": EPOCH_DAYS_AGO, "h": HALF_LIFE})
        conn.execute("VACUUM ANALYZE scoring_scores")
    return time.perf_counter() - began


def fill_sqlite(path: Path, contacts: int) -> float:
    """The same people and scores (not the same random draws) in the SQLite file."""
    began = time.perf_counter()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    draw = random.Random(29)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        for low in range(1, contacts + 1, 100_000):
            numbers = range(low, min(contacts, low + 99_999) + 1)
            conn.executemany(
                "INSERT INTO contacts (id, email, first_name, last_name, phone, job_title, "
                "country, lifecycle_stage, custom, consent, consent_proof, first_touch, "
                "last_touch, status, created_at, updated_at) VALUES "
                "(?, ?, ?, ?, '', '', '', ?, '{}', 'unknown', '{}', '{}', '{}', 'active', ?, ?)",
                (_contact(n, contacts, now) for n in numbers))
            conn.executemany(
                "INSERT INTO scoring_scores (contact_id, fit, acc, poor_fit, updated_at) "
                "VALUES (?, ?, ?, 0, ?)",
                ((n, _fit(n, draw), _acc(draw), now.isoformat(" "))
                 for n in numbers if draw.random() < 0.7))
            conn.commit()
        conn.execute("INSERT INTO tags (name) VALUES ('vip')")
        conn.execute("INSERT INTO contact_tags (contact_id, tag_id) SELECT c.id, t.id FROM "
                     "contacts c, tags t WHERE t.name = 'vip' AND c.id % 100 = 0")
        epoch = now - dt.timedelta(days=EPOCH_DAYS_AGO)
        conn.execute("INSERT INTO scoring_state (id, epoch, epoch_seconds, half_life_days) "
                     "VALUES (1, ?, ?, ?)", (epoch.isoformat(" "),
                                             epoch.replace(tzinfo=dt.UTC).timestamp(),
                                             HALF_LIFE))
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()
    return time.perf_counter() - began


def _contact(n: int, contacts: int, now: dt.datetime) -> tuple[Any, ...]:
    first = FIRST[n % len(FIRST)]
    last = RARE_NAME if n % 10_000 == 5 else LAST[(n * 7) % len(LAST)]
    stage = _stage(n)
    created = (now - dt.timedelta(seconds=30 * (contacts - n))).isoformat(" ")
    return (n, f"{first.lower()}.{last.lower()}.{n}@example.com", first, last, stage,
            created, created)


def _stage(n: int) -> str:
    return RARE_STAGE if n % 2000 == 0 else STAGES[n % len(STAGES)]


def _fit(n: int, draw: random.Random) -> int:
    return draw.choice(FITS) + (CUSTOMER_BONUS if _stage(n) == "customer" else 0)


def _acc(draw: random.Random) -> float:
    r = draw.random()
    if r < 0.33:
        return 0.0
    if r < 0.38:
        return -draw.random() * 20
    return -math.log(1.0 - draw.random()) * 25


# --- the hand-written reference ----------------------------------------------------------------

KEYS = {  # the sort key's terms in SQL, largest first; the contact id always last
    "score": ["coalesce(s.fit, 0) + coalesce(s.acc, 0.0) * {f}", "coalesce(s.acc, 0.0)", "c.id"],
    "fit": ["coalesce(s.fit, 0)", "coalesce(s.acc, 0.0)", "c.id"],
    "engagement": ["coalesce(s.acc, 0.0)", "c.id"],
    "newest": ["c.id"],
}


@dataclass
class Reference:
    """The page as one hand-written ORDER BY, on a bare connection (psycopg or sqlite3)."""

    conn: Any
    postgresql: bool

    def page(self, kind: str, f: float, after: tuple[Any, ...] | None = None,
             where: str = "", ascending: bool = False, limit: int = 51) -> list[tuple[Any, ...]]:
        """The rows' keys (the contact id last), after the row whose key is `after`."""
        mark = "%s" if self.postgresql else "?"
        terms = KEYS[kind]
        key = ", ".join(terms).format(f=f"{mark}::float8" if self.postgresql else mark)
        with_f = [f] if kind == "score" else []  # the key's one parameter
        sql = (f"SELECT {key} FROM contacts c LEFT JOIN scoring_scores s ON s.contact_id = c.id "
               f"WHERE c.status = 'active' {where}")
        params = list(with_f)
        if after is not None:
            sql += f" AND ({key}) {'>' if ascending else '<'} ({', '.join([mark] * len(after))})"
            params += with_f + list(after)
        order = "ASC" if ascending else "DESC"
        sql += " ORDER BY " + ", ".join(f"{n} {order}" for n in range(1, len(terms) + 1))
        rows = self.conn.execute(sql + f" LIMIT {limit}", params).fetchall()
        self.conn.rollback()
        return [tuple(row) for row in rows]

    def fit_acc(self, contact_id: int) -> tuple[int, float]:
        """A contact's stored fit and acc (0, 0.0 without a row): what a cursor holds."""
        mark = "%s" if self.postgresql else "?"
        found = self.conn.execute(
            f"SELECT fit, acc FROM scoring_scores WHERE contact_id = {mark}",
            (contact_id,)).fetchone()
        self.conn.rollback()
        return (int(found[0]), float(found[1])) if found else (0, 0.0)


# --- measuring ---------------------------------------------------------------------------------

IDS = re.compile(r'href="/admin/contacts/(\d+)"')


def shown_ids(html: str) -> list[int]:
    return [int(found) for found in IDS.findall(html)]


@contextmanager
def frozen_clock(moment: dt.datetime) -> Iterator[None]:
    """The engine's clock held at `moment`, so a first page and its reference share one f."""
    clock.now = lambda: moment  # type: ignore[method-assign]
    try:
        yield
    finally:
        del clock.now


@dataclass
class Page:
    label: str
    path: str
    after: tuple[Any, ...] | None = None  # the reference row the page follows
    where: str = ""  # the reference's filter


def measure(app: Any, reference: Reference, contacts: int, repeat: int,
            deep: int) -> list[dict[str, Any]]:
    """Every page of every sort: Magnet's time, the reference's, the same 50 contacts."""

    with app.app_context():
        create_user("viewer@bench.example", "viewer", password=PASSWORD)
        held = state.read()
    client = app.test_client()
    sign_in(client, "viewer@bench.example")
    moment = dt.datetime.now(dt.UTC)
    f = decay.factor(moment, held.epoch, held.half_life_days)
    results = []
    for kind in ("newest", *KINDS):
        for page in pages(reference, kind, f, decay.seconds(moment), contacts, deep):
            def fetch(path: str = page.path) -> list[int]:
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code}")
                return shown_ids(response.get_data(as_text=True))

            with frozen_clock(moment):
                ids = fetch()
                figures = timed(fetch, repeat)
            expected = [row[-1] for row in reference.page(kind, f, page.after, page.where)][:50]
            hand = timed(lambda k=kind, p=page: reference.page(k, f, p.after, p.where),
                         max(1, repeat // 5))
            same = ids == expected
            results.append({"sort": kind, "page": page.label, "path": page.path,
                            "rows": len(ids), "same_as_reference": same, "magnet": figures,
                            "hand_order_by": hand,
                            "under_target": figures["median_ms"] < TARGET_MS})
            mark = "ok" if figures["median_ms"] < TARGET_MS else "SLOW"
            print(f"  {kind:<10} {page.label:<22} {figures['median_ms']:>7.1f} ms (max "
                  f"{figures['max_ms']:>6.1f}) {mark}"
                  f"  {'same rows' if same else 'DIFFERENT ROWS'} as the ORDER BY "
                  f"({hand['median_ms']:.0f} ms)", flush=True)
    return results


def pages(reference: Reference, kind: str, f: float, seconds: float, contacts: int,
          deep: int) -> list[Page]:
    """The pages measured for one sort, each with the reference row it follows."""
    base = f"/admin/contacts?sort={kind}"

    def after(row: tuple[Any, ...], fit_acc: tuple[int, float] | None = None) -> str:
        """The admin path of the page after the reference row `row` (a contact's key)."""
        contact_id = row[-1]
        if kind == "newest":
            return f"{base}&after={contact_id}"
        fit, acc = fit_acc or reference.fit_acc(contact_id)
        return f"{base}&after={quote(Cursor(fit, acc, contact_id, seconds).text(), safe='')}"

    first = reference.page(kind, f)
    deep_row = reference.page(kind, f, limit=deep * 50)[-1]
    last_row = reference.page(kind, f, ascending=True, limit=30)[-1]
    found = [Page("first page", base), Page("second page", after(first[49]), first[49]),
             Page(f"after {deep} pages", after(deep_row), deep_row)]
    if kind != "newest":
        zero = {"score": (0.0, 0.0, 10**12), "fit": (0, 0.0, 10**12),
                "engagement": (0.0, 10**12)}[kind]
        entering = reference.page(kind, f, after=zero, ascending=True, limit=25)[-1]
        middle = (*zero[:-1], contacts // 2)
        found += [Page("entering the zeros", after(entering), entering),
                  Page("middle of the zeros", after(middle, (0, 0.0)), middle)]
    found.append(Page("last page", after(last_row), last_row))
    if kind != "newest":
        found += [Page("stage filter, 25%", f"{base}&stage=lead", None,
                       "AND c.lifecycle_stage = 'lead'"),
                  Page("stage filter, 0.05%", f"{base}&stage={RARE_STAGE}", None,
                       f"AND c.lifecycle_stage = '{RARE_STAGE}'")]
    return found


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    slowest = max(results, key=lambda r: r["magnet"]["median_ms"])
    return {"pages": len(results), "slowest_page": f"{slowest['sort']}: {slowest['page']}",
            "slowest_median_ms": slowest["magnet"]["median_ms"],
            "all_under_target": all(r["under_target"] for r in results),
            "all_same_as_reference": all(r["same_as_reference"] for r in results)}


# --- a backend ---------------------------------------------------------------------------------

def run_postgresql(server: str, contacts: int, repeat: int, deep: int) -> dict[str, Any]:
    """A database of its own on `server`, filled, measured and dropped."""

    with postgresql_app(server, DATABASE, "magnet-bench-scoring-") as (app, url):
        seconds = fill_postgresql(url, contacts)
        print(f"  PostgreSQL: {contacts:,} contacts loaded in {seconds:.0f} s", flush=True)
        with psycopg.connect(url) as conn:
            results = measure(app, Reference(conn, True), contacts, repeat, deep)
    return {"backend": "PostgreSQL", "load_seconds": round(seconds, 1), "results": results,
            **summary(results)}


def run_sqlite(contacts: int, repeat: int, deep: int) -> dict[str, Any]:
    """A fresh instance folder with its SQLite file, filled, measured and removed."""

    instance = Path(tempfile.mkdtemp(prefix="magnet-bench-scoring-"))
    redis = EmbeddedRedis(instance)
    try:
        redis.start()
        app = create_app({"REDIS_URL": redis.url}, instance_path=instance)
        migrate.upgrade(app)
        with app.app_context():
            db.engine.dispose()  # the file is filled by another connection
        seconds = fill_sqlite(instance / "magnet.db", contacts)
        print(f"  SQLite: {contacts:,} contacts loaded in {seconds:.0f} s", flush=True)
        conn = sqlite3.connect(instance / "magnet.db")
        try:
            results = measure(app, Reference(conn, False), contacts, repeat, deep)
        finally:
            conn.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        redis.stop()
        shutil.rmtree(instance, ignore_errors=True)
    return {"backend": "SQLite", "load_seconds": round(seconds, 1), "results": results,
            **summary(results)}
