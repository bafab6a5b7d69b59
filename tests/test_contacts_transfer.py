"""`magnet contacts import` and `export`: mapping, dedupe, errors, dry runs, a round trip."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from engine.contacts import service
from engine.contacts.models import Contact
from engine.db import db, write

pytestmark = pytest.mark.both_backends

CSV = """E-mail,First Name,Surname,Organisation,Tags,Plan,Notes
jane@example.com,Jane,Doe,Acme,vip;beta,pro,=HYPERLINK("http://evil.example")
JANE@example.com,,Doe-Smith,,newsletter,,
bob@example.com,Bob,,Initech,,free,
not-an-email,Nobody,,,,,
carol@example.com,Carol,,,,enterprise,
"""


def test_import_maps_dedupes_merges_and_reports_bad_rows(app, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    with app.app_context(), write():
        service.define_field("plan", "Plan", "choice", ["free", "pro"])
        service.upsert("bob@example.com", {"first_name": "Robert", "phone": "+1 555 0100"})
    result = app.test_cli_runner().invoke(args=["contacts", "import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "5 rows: 1 would be created, 1 would be updated" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 1

    result = app.test_cli_runner().invoke(args=["contacts", "import", str(path), "--map", "Notes=",
                                                "--errors", str(tmp_path / "errors.csv")])
    assert result.exit_code == 0, result.output
    assert ("5 rows: 1 created, 1 updated, 0 unchanged, 1 duplicate rows merged, 2 rejected"
            in result.output)
    assert "line 5: email: Enter a valid email address" in result.output
    again = app.test_cli_runner().invoke(args=["contacts", "import", str(path), "--map",
                                               "Notes=", "--dry-run"])  # says what a run does
    assert "0 would be created, 0 would be updated, 2 unchanged" in again.output
    assert "line 6: plan: Plan: choose one of the options offered." in result.output
    assert list(csv.reader((tmp_path / "errors.csv").open()))[1][0] == "5"
    with app.app_context():
        jane = service.find_by_email("jane@example.com")
        assert (jane.first_name, jane.last_name, jane.company.name) == ("Jane", "Doe-Smith", "Acme")
        assert sorted(t.name for t in jane.tags) == ["beta", "newsletter", "vip"]
        assert jane.custom == {"plan": "pro"}  # the skipped Notes column is not imported
        bob = service.find_by_email("bob@example.com")
        assert (bob.first_name, bob.phone, bob.company.name) == ("Bob", "+1 555 0100", "Initech")


def test_fill_only_keeps_known_values(app, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("email,first_name,last_name\nbob@example.com,Bobby,Tables\n")
    with app.app_context(), write():
        service.upsert("bob@example.com", {"first_name": "Robert"})
    result = app.test_cli_runner().invoke(args=["contacts", "import", str(path), "--fill-only"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        bob = service.find_by_email("bob@example.com")
        assert (bob.first_name, bob.last_name) == ("Robert", "Tables")


def test_a_file_without_an_email_column_is_refused_clearly(app, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("name,phone\nJane,123\n")
    result = app.test_cli_runner().invoke(args=["contacts", "import", str(path)])
    assert result.exit_code != 0 and "--map COLUMN=email" in result.output


def test_export_then_import_round_trips(make_app, tmp_path):
    source = make_app()
    with source.app_context(), write():
        jane, _, _ = service.upsert("jane@example.com", {"first_name": "Jane", "phone": "+44 1",
                                                          "company": "Acme", "country": "GB",
                                                          "plan": "=cmd|' /C calc'!A0"})
        service.add_tags(jane, ["vip", "beta"])
        service.upsert("bob@example.com", {"last_name": "O'Brien, Jr.", "seats": 3})
    out = tmp_path / "contacts.csv"
    result = source.test_cli_runner().invoke(args=["contacts", "export", str(out)])
    assert result.exit_code == 0 and "2 contacts written" in result.output
    text = out.read_text(encoding="utf-8-sig")
    assert "'=cmd" in text and "'+44 1" in text  # spreadsheet formulas neutralised
    stdout = source.test_cli_runner().invoke(args=["contacts", "export", "-"]).output
    assert stdout.splitlines()[0].startswith("\ufeffemail,first_name")

    target = make_app()
    result = target.test_cli_runner().invoke(args=["contacts", "import", str(out)])
    assert result.exit_code == 0 and "2 created" in result.output, result.output
    with target.app_context():
        jane = service.find_by_email("jane@example.com")
        assert ((jane.first_name, jane.phone, jane.company.name, jane.country)
                == ("Jane", "+44 1", "Acme", "GB"))
        assert jane.custom == {"plan": "=cmd|' /C calc'!A0"}
        assert sorted(t.name for t in jane.tags) == ["beta", "vip"]
        bob = service.find_by_email("bob@example.com")
        assert bob.last_name == "O'Brien, Jr." and bob.custom["seats"] == "3"
    again = (target.test_cli_runner().invoke(args=["contacts", "export", "-"]).output
             .lstrip("\ufeff"))
    assert list(csv.reader(io.StringIO(again)))[1:] and \
        [r[:11] for r in csv.reader(io.StringIO(again))] == \
        [r[:11] for r in csv.reader(io.StringIO(text))]


def test_formulas_are_neutralised_even_after_leading_blanks():
    from engine.contacts.transfer import spreadsheet_safe
    assert spreadsheet_safe('  =HYPERLINK("http://x")') == '\'  =HYPERLINK("http://x")'
    assert spreadsheet_safe("\t@SUM(A1)") == "'\t@SUM(A1)"
    assert spreadsheet_safe("Jane") == "Jane" and spreadsheet_safe("") == ""


@pytest.mark.both_backends
def test_exports_start_with_a_byte_order_mark_and_imports_take_either(make_app, tmp_path):
    """Excel reads a CSV without a byte-order mark in the computer's code page ("£" becomes
    "Â£"): every export starts with one, and imports accept files with or without it."""
    source = make_app()
    with source.app_context(), write():
        service.upsert("jurgen@example.com", {"first_name": "Jürgen", "budget": "£500"})
    out = tmp_path / "contacts.csv"
    assert source.test_cli_runner().invoke(args=["contacts", "export", str(out)]).exit_code == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfemail,") and "Jürgen" in raw.decode("utf-8")
    assert "£500" in raw.decode("utf-8")
    without = tmp_path / "plain.csv"
    without.write_bytes(raw[3:].replace(b"jurgen@", b"uwe@")
                        .replace("Jürgen".encode(), "Üwe".encode()))
    target = make_app()
    for path in (out, without):
        result = target.test_cli_runner().invoke(args=["contacts", "import", str(path)])
        assert result.exit_code == 0 and "1 created" in result.output, result.output
    with target.app_context():
        assert service.find_by_email("jurgen@example.com").first_name == "Jürgen"
        assert service.find_by_email("uwe@example.com").first_name == "Üwe"
        assert service.find_by_email("uwe@example.com").custom == {"budget": "£500"}
        # a stream decoded as plain UTF-8 keeps the mark in its first header: still read
        from engine.contacts.transfer import import_csv
        with out.open(encoding="utf-8", newline="") as stream:
            assert import_csv(stream, dry_run=True).rows == 1
