"""Bare Flask apps, the baselines every workload is measured against in the same run.

They do the least a hand-written app would do for the same job, with nothing of Magnet's
(no plugins, no ORM, no cache), so a ratio shows what the engine costs or saves:
- `string_app`: returns a short string — the WSGI ceiling of this machine and server;
- `page_app()`: one query on a SQLite file, then a landing-page template like the engine's;
- `insert_app()`: a form post stored with one INSERT, then a redirect, as a form would answer;
- `pipeline_floor_app()`: the least any implementation of the form pipeline must do (signed
  token, honeypot, WTForms, email check, two rate limits in Redis, one transaction
  for contact, tag, list, submission, activity, visitor link and outbox row, a wake-up for the
  worker), written by hand on sqlite3 with nothing of Magnet; no follow-up work is done, so
  it shows an upper bound for the form pipeline on this machine, not a competitor;
- `noop_wsgi`: a WSGI callable that answers 204 to anything, without Flask or any work — the
  most gunicorn itself serves on this machine, the ceiling of every endpoint;
- `beacon_app`: accepts a small JSON beacon (`{"t": type, "u": url, "k": token, ...}`, as
  the tracking script sends) after checking it, and stores nothing;
- `events_app()`: an event from an integration (`POST /api/v1/events`, JSON, a bearer key),
  stored with one INSERT and answered 201 with its id, as a hand-written endpoint would.

The SQLite file comes from `BENCH_SQLITE` (a temporary file when unset); each app creates
its tables on start, so a benchmark only has to point gunicorn at it.
"""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, abort, redirect, render_template, request

TEMPLATES = Path(__file__).resolve().parent / "templates"
BEACON_TYPES = {"page_view", "click", "download", "form_view"}

NAVIGATION = [{"label": label, "url": url} for label, url in (
    ("Home", "/"), ("Webinar", "/webinar"), ("Pricing", "/pricing"), ("Blog", "/blog"),
    ("About", "/about"))]
BENEFITS = [{"title": f"Lesson {i}: {title}", "text": text} for i, (title, text) in enumerate((
    ("Know your visitor", "Which questions bring people to your site, and what they expect."),
    ("Write the offer", "One page, one promise, one form: how to keep the visitor's attention."),
    ("Ask less", "Every field you drop adds sign-ups; progressive profiling asks the rest."),
    ("Follow up", "A welcome sequence that teaches instead of selling, timed to their reading."),
    ("Measure", "Sources, campaigns and conversions, without drowning in dashboards."),
    ("Improve", "Small weekly experiments that compound into a better funnel."),
), start=1)]
TESTIMONIALS = [
    {"text": "We doubled our newsletter sign-ups in a month by removing three form fields.",
     "name": "Ana Ruiz", "role": "Founder, Ruiz Ceramics"},
    {"text": "The checklist in chapter four is now taped to every desk in the office.",
     "name": "Tom Becker", "role": "Marketing lead, Becker & Sons"},
    {"text": "Clear, practical, and short enough to read on a train ride.",
     "name": "Priya Nair", "role": "Consultant"},
]
COMPANY_SIZES = ["1-10", "11-50", "51-200", "201-1000", "1000+"]
ROLES = [("marketing", "Marketing"), ("sales", "Sales"), ("founder", "Founder or executive"),
         ("other", "Something else")]
BODY_HTML = "".join(
    f"<h2>{heading}</h2><p>{text}</p>" for heading, text in (
        ("A guide for small teams", "Marketing a small business is mostly about consistency: "
         "a clear offer, a page that explains it, and a way to stay in touch with the people "
         "who showed interest. This e-book walks you through each step with examples."),
        ("Who it is for", "Owners and one-person marketing departments who want more "
         "enquiries without hiring an agency or learning a dozen tools."),
        ("What is inside", "Forty pages, six lessons, a checklist for every lesson and "
         "templates you can copy: landing page outline, welcome emails and a simple "
         "reporting sheet."),
    )) + "<h2>Questions people ask</h2>" + "".join(
    f"<h3>{question}</h3><p>{answer}</p>" for question, answer in (
        ("Is it really free?", "Yes. You give us your email address and we send you the PDF. "
         "You can unsubscribe from our tips with one click, at any time, and keep the book."),
        ("How long does it take to read?", "About an hour from cover to cover. Each lesson "
         "stands on its own, so most readers take one lesson a week and try it out."),
        ("Do I need special software?", "No. Every exercise works with a spreadsheet, your "
         "website and the email tool you already have. Where a tool helps, we name free ones."),
        ("Is this for online shops only?", "No. The examples come from a ceramics studio, a "
         "bookkeeping firm, a bakery and a software company: the ideas carry over."),
        ("Who wrote it?", "Our team of three, who have spent twelve years helping small "
         "businesses get found and remembered, and who answer every reply themselves."),
        ("What do you do with my address?", "We send you the book and, if you agree, one "
         "email a fortnight. We never sell or share it; our privacy page explains the rest."),
    ))


def database_path() -> str:
    return os.environ.get("BENCH_SQLITE") or str(Path(tempfile.gettempdir()) / "bench-baseline.db")


def _connect(path: str) -> sqlite3.Connection:
    """Configured as the engine configures SQLite, so neither side gets an unfair setting."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def prepare_database(path: str) -> None:
    """Create the tables and the landing page row (idempotent: every worker calls it)."""
    connection = _connect(path)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("CREATE TABLE IF NOT EXISTS pages (id INTEGER PRIMARY KEY, "
                           "slug TEXT UNIQUE, title TEXT, seo_title TEXT, summary TEXT, "
                           "body_html TEXT, published_at TEXT)")
        connection.execute("CREATE TABLE IF NOT EXISTS submissions (id INTEGER PRIMARY KEY, "
                           "form TEXT, email TEXT, first_name TEXT, data TEXT, ip TEXT, "
                           "created_at TEXT)")
        connection.execute(
            "INSERT OR IGNORE INTO pages (slug, title, seo_title, summary, body_html, "
            "published_at) VALUES (?, ?, ?, ?, ?, ?)",
            ("home", "Marketing that fits a small business", "",
             "A free e-book: six lessons to turn visitors into customers, in plain words.",
             BODY_HTML, datetime.now(UTC).isoformat()))
        connection.execute("COMMIT")
    finally:
        connection.close()


class _PerThreadConnection:
    """One connection per worker thread, opened on first use (after gunicorn forked)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()

    def get(self) -> sqlite3.Connection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = _connect(self.path)
        return connection


string_app = Flask("baseline_string")


@string_app.get("/")
def hello() -> str:
    return "Hello, world!"


def page_app() -> Flask:
    path = database_path()
    prepare_database(path)
    connections = _PerThreadConnection(path)
    app = Flask("baseline_page", template_folder=str(TEMPLATES))
    organization = {"@context": "https://schema.org", "@type": "Organization",
                    "name": "Northwind Studio", "url": "http://127.0.0.1/"}

    @app.get("/")
    def landing() -> str:
        row = connections.get().execute(
            "SELECT slug, title, seo_title, summary, body_html FROM pages WHERE slug = ?",
            ("home",)).fetchone()
        if row is None:
            abort(404)
        page = dict(zip(("slug", "title", "seo_title", "summary", "body_html"), row))
        return render_template("landing.html", page=page, site_name="Northwind Studio",
                               navigation=NAVIGATION, benefits=BENEFITS,
                               testimonials=TESTIMONIALS, organization=organization,
                               company_sizes=COMPANY_SIZES, roles=ROLES, token="t" * 64,
                               year=datetime.now(UTC).year)
    return app


def insert_app() -> Flask:
    path = database_path()
    prepare_database(path)
    connections = _PerThreadConnection(path)
    app = Flask("baseline_insert")

    @app.get("/")
    def ready() -> str:
        return "ready"

    @app.post("/forms/<slug>")
    def submit(slug: str) -> Any:
        email = request.form.get("email", "").strip().lower()
        if "@" not in email or len(email) > 254:
            return "A valid email address is required.", 400
        data = {key: value[:1000] for key, value in request.form.items()}
        connection = connections.get()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                "INSERT INTO submissions (form, email, first_name, data, ip, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (slug, email, data.get("first_name", ""), json.dumps(data),
                 request.remote_addr, datetime.now(UTC).isoformat()))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return redirect("/thank-you", code=303)
    return app


FLOOR_SECRET = "bench-floor-secret"
FLOOR_TABLES = (
    "CREATE TABLE IF NOT EXISTS contacts (id INTEGER PRIMARY KEY, email TEXT UNIQUE NOT NULL, "
    "first_name TEXT, company_size TEXT, role TEXT, consent_at TEXT, consent_proof TEXT, "
    "source TEXT, created_at TEXT, updated_at TEXT)",
    "CREATE TABLE IF NOT EXISTS contact_tags (contact_id INTEGER, tag TEXT, "
    "PRIMARY KEY (contact_id, tag))",
    "CREATE TABLE IF NOT EXISTS subscriptions (contact_id INTEGER, list TEXT, status TEXT, "
    "created_at TEXT, PRIMARY KEY (contact_id, list))",
    "CREATE TABLE IF NOT EXISTS floor_submissions (id INTEGER PRIMARY KEY, form TEXT, "
    "contact_id INTEGER, visitor_id TEXT, raw TEXT, data TEXT, ip TEXT, user_agent TEXT, "
    "created_at TEXT)",
    "CREATE TABLE IF NOT EXISTS activities (id INTEGER PRIMARY KEY, type TEXT, "
    "contact_id INTEGER, visitor_id TEXT, properties TEXT, created_at TEXT)",
    "CREATE TABLE IF NOT EXISTS visitor_links (visitor_id TEXT PRIMARY KEY, contact_id INTEGER, "
    "created_at TEXT)",
    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT, "
    "status TEXT, created_at TEXT)",
)


def floor_token() -> str:
    """A form token as the floor app checks it (the fields shown, signed and timed)."""
    from itsdangerous import URLSafeTimedSerializer
    return URLSafeTimedSerializer(FLOOR_SECRET, salt="floor").dumps(["email", "first_name"])


def pipeline_floor_app() -> Flask:
    import email_validator
    import redis
    import wtforms
    from itsdangerous import BadSignature, Signer, URLSafeTimedSerializer
    from wtforms import validators as v

    path = database_path()
    connection = _connect(path)
    try:
        for statement in FLOOR_TABLES:
            connection.execute(statement)
    finally:
        connection.close()
    connections = _PerThreadConnection(path)
    limiter = redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    tokens = URLSafeTimedSerializer(FLOOR_SECRET, salt="floor")
    cookies = Signer(FLOOR_SECRET, salt="visitor")
    app = Flask("baseline_pipeline_floor")

    class Form(wtforms.Form):
        email = wtforms.EmailField(validators=[v.InputRequired(), v.Length(max=254)])
        first_name = wtforms.StringField(validators=[v.InputRequired(), v.Length(max=200)])
        company_size = wtforms.SelectField(choices=["Just me", "2-10", "11-50", "51-200", "200+"],
                                           validate_choice=True)
        role = wtforms.RadioField(choices=["owner", "marketing", "sales", "other"])
        consent = wtforms.BooleanField(validators=[v.InputRequired()])

    @app.get("/")
    def floor_ready() -> str:
        return "ready"

    @app.post("/forms/<slug>")
    def floor_submit(slug: str) -> Any:
        try:
            tokens.loads(request.form.get("_token", ""), max_age=86400)
        except BadSignature:
            return "The form's token is invalid.", 400
        if request.form.get("website"):
            return redirect("/thank-you", code=303)
        form = Form(request.form)
        if not form.validate():
            return json.dumps(form.errors), 400
        try:
            checked = email_validator.validate_email(form.email.data.strip(),
                                                     check_deliverability=False)
        except email_validator.EmailNotValidError as exc:
            return str(exc), 400
        email = f"{checked.local_part}@{checked.ascii_domain}".lower()
        ip = request.remote_addr or ""
        window = 3600
        pipe = limiter.pipeline(transaction=False)
        for key in (f"floor:ip:{ip}", f"floor:email:{slug}:{email}"):
            pipe.set(key, 0, nx=True, ex=window)  # the window starts with the first hit
            pipe.incr(key)
        pipe.execute()
        visitor = os.urandom(16).hex()
        now = datetime.now(UTC).isoformat()
        data = {name: field.data for name, field in form._fields.items()}
        raw = {key: value[:1000] for key, value in request.form.items() if key != "_token"}
        db = connections.get()
        db.execute("BEGIN IMMEDIATE")
        try:
            contact_id = db.execute(
                "INSERT INTO contacts (email, first_name, company_size, role, consent_at, "
                "consent_proof, source, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (email) DO UPDATE SET first_name = excluded.first_name, "
                "updated_at = excluded.updated_at RETURNING id",
                (email, data["first_name"], data["company_size"], data["role"], now,
                 json.dumps({"form": slug, "ip": ip}), json.dumps({"page": ""}), now,
                 now)).fetchone()[0]
            db.execute("INSERT OR IGNORE INTO contact_tags VALUES (?, ?)", (contact_id, "ebook"))
            db.execute("INSERT OR IGNORE INTO subscriptions VALUES (?, ?, ?, ?)",
                       (contact_id, "ebook-readers", "subscribed", now))
            submission_id = db.execute(
                "INSERT INTO floor_submissions (form, contact_id, visitor_id, raw, data, ip, "
                "user_agent, created_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                (slug, contact_id, visitor, json.dumps(raw), json.dumps(data), ip,
                 request.user_agent.string[:400], now)).fetchone()[0]
            db.execute("INSERT INTO activities (type, contact_id, visitor_id, properties, "
                       "created_at) VALUES (?,?,?,?,?)",
                       ("form_submitted", contact_id, visitor,
                        json.dumps({"form": slug, "submission_id": submission_id}), now))
            db.execute("INSERT OR IGNORE INTO visitor_links VALUES (?, ?, ?)",
                       (visitor, contact_id, now))
            db.execute("INSERT INTO outbox (kind, payload, status, created_at) "
                       "VALUES (?,?,?,?)", ("forms.submitted",
                                            json.dumps({"submission_id": submission_id}),
                                            "pending", now))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        limiter.set("floor:wake", "1", nx=True, ex=5)  # the worker's wake-up, one round trip
        response = redirect("/thank-you", code=303)
        response.set_cookie("vid", cookies.sign(visitor).decode(), httponly=True,
                            samesite="Lax", max_age=3600 * 24 * 365)
        return response
    return app


def noop_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Reads the body (a server must) and answers 204: no framework, no work."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("204 No Content", [])
    return []


beacon_app = Flask("baseline_beacon")


@beacon_app.get("/")
def beacon_ready() -> str:
    return "ready"


@beacon_app.post("/t")
def beacon() -> Any:
    if request.content_length is None or request.content_length > 4096:
        return "", 413
    try:
        event = json.loads(request.get_data())
    except ValueError:
        return "", 400
    if not isinstance(event, dict) or event.get("t") not in BEACON_TYPES \
            or not isinstance(event.get("u"), str) or not isinstance(event.get("k"), str):
        return "", 400
    return "", 204


EVENTS_KEY = "bench-events-key"  # the bare endpoint's one accepted key, as configured by hand
EVENTS_TABLE = ("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, email TEXT, "
                "type TEXT, properties TEXT, occurred_at TEXT, idempotency_key TEXT, "
                "created_at TEXT)")


def events_app() -> Flask:
    path = database_path()
    connection = _connect(path)
    try:
        connection.execute(EVENTS_TABLE)
    finally:
        connection.close()
    connections = _PerThreadConnection(path)
    app = Flask("baseline_events")

    @app.get("/")
    def events_ready() -> str:
        return "ready"

    @app.post("/api/v1/events")
    def event() -> Any:
        if request.headers.get("Authorization") != f"Bearer {EVENTS_KEY}":
            return {"error": "An API key is required."}, 401
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict) or not isinstance(payload.get("email"), str) \
                or not isinstance(payload.get("type"), str):
            return {"error": "Send an object with email and type."}, 400
        now = datetime.now(UTC).isoformat()
        connection = connections.get()
        connection.execute("BEGIN IMMEDIATE")
        try:
            event_id = connection.execute(
                "INSERT INTO events (email, type, properties, occurred_at, idempotency_key, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (payload["email"].strip().lower(), payload["type"],
                 json.dumps(payload.get("properties") or {}), payload.get("occurred_at") or now,
                 payload.get("idempotency_key"), now)).fetchone()[0]
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return {"id": event_id}, 201
    return app


def count_submissions(path: str | None = None, table: str = "submissions") -> int:
    """Rows stored by `insert_app` (or, with `table="floor_submissions"`, the floor)."""
    connection = _connect(path or database_path())
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()
