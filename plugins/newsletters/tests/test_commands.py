"""`magnet campaigns`: create from a Markdown file to a list and a segment, send at a time,
list, report; bad input refused with a reason and a non-zero exit, nothing written."""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from engine.contacts.timezones import FIELD
from engine.content.models import SiteSetting
from engine.db import db, write
from engine.mail.models import EmailTemplate
from engine.segments import service as segments
from plugins.newsletters.models import Campaign
from plugins.newsletters.tests.support import people, send_all, site


def _run(app, *args):
    return app.test_cli_runner().invoke(args=["campaigns", *args])


def _counts(app) -> tuple[int, int]:
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(Campaign)),
                db.session.scalar(select(func.count()).select_from(EmailTemplate)))


def test_create_send_list_report_and_refusals(make_app, smtp_server, work, tmp_path):
    app = site(make_app, smtp_server)
    people(app, 3, country="FR")
    people(app, 2, list_slug="other", prefix="q", country="GB")
    with app.app_context():
        segments.save("British", {"match": "all", "groups": [{"match": "all", "conditions": [
            {"kind": "field", "field": "country", "op": "equals", "value": "GB"}]}]})
        with write():
            db.session.add(SiteSetting(key=FIELD, value="Europe/Paris"))
    work(app)  # the segment's build
    good = tmp_path / "good.md"
    good.write_text("# Hello {{ contact.first_name | default('there') }}\n\nOur news.\n")
    bad = tmp_path / "bad.md"
    bad.write_text("Line one\n\nHello {{ contact.shoe_size }}\n")
    before = _counts(app)

    refused = _run(app, "create", "--name", "Bad", "--subject", "S", "--body", str(bad),
                   "--to", "news")
    assert refused.exit_code == 1
    assert "body line 3:" in refused.output and "shoe_size" in refused.output
    for to, said in (("nowhere", "No list or segment named 'nowhere'"),
                     ("segment:news", "No segment named 'news'"),
                     ("list:British", "No list named 'British'")):
        refused = _run(app, "create", "--name", "N", "--subject", "S", "--body", str(good),
                       "--to", "news", "--to", to)
        assert refused.exit_code == 1 and said in refused.output, refused.output
    assert _counts(app) == before

    made = _run(app, "create", "--name", "March news", "--subject", "Spring is here",
                "--body", str(good), "--to", "news", "--to", "british")
    assert made.exit_code == 0, made.output
    assert "Created campaign 1 “March news” to list news, segment “British”: 5 recipients" \
        in made.output
    again = _run(app, "create", "--name", "March news", "--subject", "S", "--body", str(good),
                 "--to", "news")
    assert again.exit_code == 1 and "exists already" in again.output
    with app.app_context():
        found = db.session.get(Campaign, 1)
        template = db.session.get(EmailTemplate, found.template_id)
        assert (found.status, found.subject, found.audience["lists"]) == (
            "draft", "Spring is here", ["news"])
        assert (template.name, template.kind, template.format) == (
            "March news", "marketing", "markdown")

    for at, said in (("tomorrow", "is not a time"), ("2030-13-01T09:00", "is not a time")):
        refused = _run(app, "send", "1", "--at", at)
        assert refused.exit_code == 2 and said in refused.output
    assert _run(app, "send", "42").exit_code == 1
    scheduled = _run(app, "send", "1", "--at", "2030-06-01 09:00")
    assert scheduled.exit_code == 0, scheduled.output
    assert "goes at 2030-06-01 09:00 Europe/Paris (2030-06-01 07:00 UTC) to 5 recipients" \
        in scheduled.output
    with app.app_context():
        assert db.session.get(Campaign, 1).send_at == datetime(2030, 6, 1, 7, tzinfo=UTC)
    listed = _run(app, "list")
    assert listed.exit_code == 0 and "scheduled" in listed.output and "March news" in listed.output

    with app.app_context():  # back to a draft, then sent now
        from plugins.newsletters import service
        service.unschedule(1)
    now = _run(app, "send", "1")
    assert now.exit_code == 0 and "goes now to 5 recipients" in now.output
    send_all(app)
    assert len(smtp_server.messages) == 5
    again = _run(app, "send", "1")
    assert again.exit_code == 1 and "“March news” is sent; it cannot be scheduled" in again.output
    report = _run(app, "report", "1")
    assert report.exit_code == 0, report.output
    assert "Recipients   5" in report.output and "Sent         5" in report.output
    assert "open rate 0.0%" in report.output
    assert _run(app, "report", "7").exit_code == 1
