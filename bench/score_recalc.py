"""A scoring rule's recalculation over a million contacts on PostgreSQL, against hand-written SQL.

A database of its own (`magnet_bench_scoring`) is created on the server given, migrated by the
engine and filled server-side with `generate_series` (no row crosses the wire): `--contacts`
people and `--activities` page views spread over the last 90 days (20 paths, five of them under
`/blog`; one in twenty anonymous). The rule is the one in `RULE`: points for a page view whose
path starts with `/blog`, at most twice a day per contact.

Magnet's figure is `recalc.recalculate(rule_id, version)`, the job the rule's save queues, run in
this process as a worker runs it, right after the rule's points changed (`service.save_rule`,
untimed). The reference, in the same run on the same database and indexes: the same result by
hand in one transaction: DELETE the rule's awards, INSERT … SELECT the new ones (the filter, the
cap with `row_number()` per contact and day, the weight for the stored epoch and half-life),
make the missing score rows and UPDATE the touched contacts' acc to the sum of their weights.
Every pass changes the points (5, then 6, then 5…), so each side replaces every award. After
one unmeasured pass, the two alternate `--repeat` times; the ratio is the median of the
per-pass ratios. The awards (contact, event, day) and every contact's acc after Magnet's pass
and after the hand-written one with the same points must be equal. Target: ≤ 1.5× the
hand-written SQL.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

import psycopg

from bench.fresh_app import postgresql_app
from bench.segment_build import CONTACTS_SQL, PATHS, activities_indexes_dropped
from engine.db import write
from plugins.scoring import recalc, service, state

DATABASE = "magnet_bench_scoring"
TARGET_RATIO = 1.5
RULE = {"kind": "engagement", "name": "Read the blog", "points": 5, "event": "page_view",
        "filters": [{"prop": "path", "op": "starts_with", "value": "/blog"}],
        "cap_count": 2, "cap_period": "day"}
ACTIVITIES_SQL = """
INSERT INTO activities (contact_id, visitor_id, type, url, properties, occurred_at)
SELECT CASE WHEN r.anonymous THEN NULL ELSE r.contact END, 'v' || r.contact, 'page_view',
       'https://www.example.com' || r.path,
       json_build_object('path', r.path, 'title', 'Page', 'referrer', ''), r.at
FROM (SELECT g, 1 + floor(random() * %(contacts)s)::int AS contact,
             random() < 0.05 AS anonymous,
             (%(paths)s::text[])[1 + floor(random() * %(npaths)s)::int] AS path,
             now() - random() * interval '90 days' AS at
      FROM generate_series(%(low)s, %(high)s) AS g) AS r
"""
LOAD_STEP = 1_000_000
# The recalculation by hand: the rule's filter and cap, the weight of `decay.weight`.
HAND_SQL = [
    "CREATE TEMP TABLE touched (contact_id int PRIMARY KEY) ON COMMIT DROP",
    """WITH gone AS (DELETE FROM scoring_awards WHERE rule_id = %(rule)s RETURNING contact_id)
       INSERT INTO touched SELECT DISTINCT contact_id FROM gone""",
    """INSERT INTO scoring_awards (contact_id, rule_id, points, occurred_at, event_id, bucket,
                                  weight)
       SELECT contact_id, %(rule)s, %(points)s, occurred_at, id, bucket,
              %(points)s * power(2.0::float8, (EXTRACT(EPOCH FROM occurred_at)::float8
                                                - %(epoch)s) / %(seconds)s)
       FROM (SELECT a.id, a.contact_id, a.occurred_at,
                    to_char(a.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS bucket,
                    row_number() OVER (
                        PARTITION BY a.contact_id,
                                     to_char(a.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
                        ORDER BY a.occurred_at, a.id) AS n
             FROM activities a
             WHERE a.type = 'page_view' AND a.contact_id IS NOT NULL
               AND lower(coalesce(a.properties ->> 'path', '')) LIKE '/blog%%') AS ranked
       WHERE n <= %(cap)s""",
    """INSERT INTO touched SELECT DISTINCT contact_id FROM scoring_awards
       WHERE rule_id = %(rule)s ON CONFLICT DO NOTHING""",
    """INSERT INTO scoring_scores (contact_id, fit, acc, poor_fit, updated_at)
       SELECT contact_id, 0, 0.0, false, now() FROM touched ON CONFLICT DO NOTHING""",
    """UPDATE scoring_scores s SET updated_at = now(),
              acc = coalesce((SELECT sum(weight) FROM scoring_awards w
                              WHERE w.contact_id = s.contact_id), 0.0)
       FROM touched t WHERE s.contact_id = t.contact_id""",
]
AWARDS_DIGEST = """SELECT count(*), count(DISTINCT contact_id), coalesce(sum(weight), 0),
                          md5(string_agg(contact_id || ':' || event_id || ':' || bucket, ','
                                         ORDER BY event_id))
                   FROM scoring_awards WHERE rule_id = %s"""


def fill(url: str, contacts: int, activities: int) -> float:
    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SELECT setseed(0.41)")
        conn.execute(CONTACTS_SQL, {"n": contacts})
        with activities_indexes_dropped(conn):
            for low in range(1, activities + 1, LOAD_STEP):
                high = min(activities, low + LOAD_STEP - 1)
                conn.execute(ACTIVITIES_SQL, {"contacts": contacts, "paths": PATHS,
                                              "npaths": len(PATHS), "low": low, "high": high})
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - began


def magnet_pass(app: Any, rule_id: int, points: int) -> float:
    """Change the rule's points (untimed), then time its recalculation job."""
    with app.app_context():
        rule = service.save_rule({**RULE, "points": points}, rule_id)
        version = rule.version
        began = time.perf_counter()
        recalc.recalculate(rule_id, version)
        return time.perf_counter() - began


def hand_pass(url: str, rule_id: int, points: int) -> float:
    """The same by hand, with the epoch and half-life the engine stored."""
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE scoring_rules SET points = %s, version = version + 1 WHERE id = %s",
                     (points, rule_id))
        epoch, half_life = conn.execute(
            "SELECT epoch_seconds, half_life_days FROM scoring_state WHERE id = 1").fetchone()
        conn.commit()
        values = {"rule": rule_id, "points": float(points), "epoch": epoch,
                  "seconds": half_life * 86_400.0, "cap": RULE["cap_count"]}
        began = time.perf_counter()
        for statement in HAND_SQL:
            conn.execute(statement, values)
        conn.commit()
        return time.perf_counter() - began


def snapshot(url: str, rule_id: int, name: str) -> dict[str, Any]:
    """The rule's awards as a digest, and every contact's acc kept in a table `name`."""
    with psycopg.connect(url, autocommit=True) as conn:
        awards, holders, weight, digest = conn.execute(AWARDS_DIGEST, (rule_id,)).fetchone()
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"CREATE TABLE {name} AS SELECT contact_id, acc FROM scoring_scores "
                     "WHERE acc <> 0")
    return {"awards": awards, "contacts_scored": holders, "weight": float(weight),
            "digest": digest, "table": name}


def same(url: str, first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Whether two snapshots agree: the same awards, and each contact's acc within 1e-9 of
    its size (sums may add in another order)."""
    with psycopg.connect(url) as conn:
        worst, differ = conn.execute(
            f"SELECT coalesce(max(abs(coalesce(a.acc, 0) - coalesce(b.acc, 0)) "
            f"/ greatest(abs(a.acc), abs(b.acc), 1)), 0), "
            f"count(*) FILTER (WHERE a.contact_id IS NULL OR b.contact_id IS NULL) "
            f"FROM {first['table']} a FULL JOIN {second['table']} b USING (contact_id)"
        ).fetchone()
    equal = (first["digest"] == second["digest"] and first["awards"] == second["awards"]
             and differ == 0 and worst < 1e-9)
    return {"equal": equal, "same_awards": first["digest"] == second["digest"],
            "contacts_with_acc_on_one_side_only": differ, "largest_relative_acc_gap": worst}


def run(server: str, contacts: int, activities: int, repeat: int) -> dict[str, Any]:

    with postgresql_app(server, DATABASE, "magnet-bench-scoring-") as (app, url):
        load_seconds = fill(url, contacts, activities)
        print(f"  {contacts:,} contacts and {activities:,} page views loaded in "
              f"{load_seconds:.0f} s", flush=True)
        with app.app_context():
            app.extensions["magnet.plugins"].refresh(force=True)
            rule_id = service.save_rule(RULE).id
            with write():
                state.held()  # the epoch both sides count weights from
        warm = magnet_pass(app, rule_id, 6)  # unmeasured: caches, the state row
        print(f"  warm-up pass: {warm:.2f} s", flush=True)
        seconds: dict[str, list[float]] = {"magnet": [], "hand": []}
        kept: dict[tuple[str, int], dict[str, Any]] = {}
        for number in range(repeat):
            order = ("magnet", "hand") if number % 2 == 0 else ("hand", "magnet")
            for side in order:
                for points in (5, 6):
                    took = (magnet_pass(app, rule_id, points) if side == "magnet"
                            else hand_pass(url, rule_id, points))
                    seconds[side].append(took)
                    print(f"  pass {number + 1}, {side}, {points} points: {took:.2f} s",
                          flush=True)
                    if (side, points) not in kept:
                        kept[side, points] = snapshot(url, rule_id, f"bench_{side}_{points}")
        checks = {points: same(url, kept["magnet", points], kept["hand", points])
                  for points in (5, 6)}
    ratios = [round(m / h, 3) for m, h in zip(seconds["magnet"], seconds["hand"], strict=True)
              if h > 0]
    result = kept["hand", 5]
    return {"load_seconds": round(load_seconds, 1), "warm_up_seconds": round(warm, 3),
            "median_seconds": {"recalc.recalculate()": round(statistics.median(
                seconds["magnet"]), 3), "hand-written SQL": round(statistics.median(
                    seconds["hand"]), 3)},
            "seconds": {side: [round(s, 3) for s in values] for side, values in seconds.items()},
            "pass_ratios": ratios, "ratio": round(statistics.median(ratios), 3),
            "awards": result["awards"], "contacts_scored": result["contacts_scored"],
            "magnet_awards": kept["magnet", 5]["awards"],
            "same_result": all(check["equal"] for check in checks.values()),
            "checks": {str(points): check for points, check in checks.items()}}
