"""The benchmark harness still works end to end (a short run, not a timed test)."""
from __future__ import annotations

import argparse
import json
import os
import sqlite3

import pytest

from bench import harness
from bench.harness import Gunicorn, Report, Request, Subject


@pytest.mark.slow
@pytest.mark.parametrize("client", ["auto", "python"])
def test_harness_measures_the_wsgi_ceiling_and_writes_json(client, tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    options = argparse.Namespace(duration=1.0, rounds=2, warmup=0.0, connections=4,
                                 client=client)
    report = Report("harness-check", "harness self-check", harness.settings(options),
                    baselines=["ceiling"])
    with Gunicorn("bench.baselines:string_app") as server:
        pids = [server.process.pid]
        harness.compare(report, [Subject("ceiling", server, Request("/"))], options)
    path = report.finish()

    result = json.loads(path.read_text())
    run = result["runs"][0]
    assert path == tmp_path / "harness-check.json"
    assert run["label"] == "ceiling" and run["rps"] > 0 and run["requests"] > 0
    assert sum(run["errors"].values()) == 0
    assert 0 < run["p50_ms"] <= run["p99_ms"]
    assert result["ratios"]["ceiling"]["ceiling"] == 1.0
    with pytest.raises(ProcessLookupError):  # the server's process group is gone
        os.killpg(pids[0], 0)


def test_wrk_script_makes_bodies_unique_and_escapes_them():
    script = harness.wrk_script(Request("/t", "POST", {"Content-Type": 'a"b'},
                                        '{"email": "x{n}@example.com"}'), "abc")
    assert "function request()" in script and "string.gsub" in script
    assert '"' + "a\\034b" + '"' in script  # a quote inside a header value is escaped
    assert "BENCH_JSON" in script


def test_the_pipeline_floor_stores_a_submission_in_one_transaction(tmp_path, redis_url,
                                                                   monkeypatch):
    """The floor must do the whole pipeline, or its ratio would flatter it (or fail silently)."""
    from bench.baselines import count_submissions, floor_token, pipeline_floor_app
    database = str(tmp_path / "floor.db")
    monkeypatch.setenv("BENCH_SQLITE", database)
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)
    client = pipeline_floor_app().test_client()
    form = {"_token": floor_token(), "email": "Ana@Example.COM", "first_name": "Ana",
            "company_size": "2-10", "role": "owner", "consent": "y"}
    assert client.post("/forms/ebook", data=form).status_code == 303
    assert client.post("/forms/ebook", data={**form, "_token": "forged"}).status_code == 400
    assert client.post("/forms/ebook", data={**form, "email": "nope"}).status_code == 400
    assert count_submissions(database, "floor_submissions") == 1
    with sqlite3.connect(database) as connection:
        counts = [connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in ("contacts", "contact_tags", "subscriptions", "activities",
                                "visitor_links", "outbox")]
        email = connection.execute("SELECT email FROM contacts").fetchone()[0]
    assert counts == [1, 1, 1, 1, 1, 1] and email == "ana@example.com"


def test_the_server_ceiling_answers_204_after_reading_the_body():
    from io import BytesIO

    from bench.baselines import noop_wsgi
    body, answers = BytesIO(b"x" * 10), []
    assert noop_wsgi({"wsgi.input": body, "CONTENT_LENGTH": "10"},
                     lambda status, headers: answers.append(status)) == []
    assert answers == ["204 No Content"] and body.read() == b""


def test_the_events_baseline_stores_each_event_once_and_checks_its_key(tmp_path, monkeypatch):
    """The bare endpoint `bench/events_api.py` compares with must really store, or its ratio
    would flatter it."""
    from bench.baselines import EVENTS_KEY, count_submissions, events_app
    database = str(tmp_path / "events.db")
    monkeypatch.setenv("BENCH_SQLITE", database)
    client = events_app().test_client()
    event = {"email": "Buyer@Example.com", "type": "purchase", "properties": {"amount": 3}}
    signed = {"Authorization": f"Bearer {EVENTS_KEY}"}
    assert client.post("/api/v1/events", json=event, headers=signed).status_code == 201
    assert client.post("/api/v1/events", json=event).status_code == 401
    assert client.post("/api/v1/events", json=["x"], headers=signed).status_code == 400
    assert count_submissions(database, "events") == 1


def test_the_timed_worker_logs_each_delivery_that_delivered(tmp_path):
    """`bench/segments.py incremental` reads its figures from this log."""
    from bench.segment_events import Deliveries
    from bench.timed_worker import timed
    log = tmp_path / "deliveries.log"
    results = iter([(3, 5), (0, 5)])
    deliver = timed(lambda start: next(results), str(log))
    assert deliver(0) == (3, 5) and deliver(5) == (0, 5)
    figures = Deliveries(log).read().figures()
    assert figures["delivered"] == 3 and figures["deliveries"] == 1
