"""The benchmark harness still works end to end (a short run, not a timed test)."""
from __future__ import annotations

import argparse
import json
import os

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
