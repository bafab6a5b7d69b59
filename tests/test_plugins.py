"""The plugin system: discovery, live enable/disable, safe mode, isolation of broken plugins."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.plugins import PluginError
from engine.plugins.models import PluginErrorLog

GREETER = '''
"""Greets every visitor at the end of the page."""
from flask import Blueprint
from engine.plugins import hookimpl
import wtforms

__version__ = "1.2.0"
TITLE = "Greeter"

blueprint = Blueprint("greeter", __name__)

@blueprint.get("/greeter/")
def index():
    return "hello from greeter"

class Settings(wtforms.Form):
    greeting = wtforms.StringField(default="Hello", validators=[wtforms.validators.Length(max=20)])
    times = wtforms.IntegerField(default=1, validators=[wtforms.validators.NumberRange(1, 5)])

@hookimpl
def register_blueprints():
    return [blueprint]

@hookimpl
def register_settings():
    return Settings

@hookimpl
def tpl_body_end(request):
    from engine.plugins import current
    settings = current().settings("greeter")
    return "<p>" + settings["greeting"] * settings["times"] + "</p>"
'''

BROKEN = '''
"""Fails in every hook it implements."""
from engine.plugins import hookimpl

DEFAULT_ENABLED = True

@hookimpl
def tpl_body_end(request):
    raise RuntimeError("broken on purpose")

@hookimpl
def filter_page_variant(variant, request):
    raise ValueError("no variant for you")
'''

RECORDER = '''
"""Records the activation hooks it hears."""
from engine.plugins import hookimpl

HEARD = []

@hookimpl
def on_plugin_enabled(slug):
    HEARD.append(("enabled", slug))

@hookimpl
def on_plugin_disabled(slug):
    HEARD.append(("disabled", slug))
'''


def render_slot(app, name="tpl_body_end"):
    with app.test_request_context("/"):
        return str(app.jinja_env.from_string(f"{{{{ hook('{name}', request=request) }}}}").render())


def test_plugin_metadata_comes_from_its_module(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(greeter=GREETER)))
    info = app.extensions["magnet.plugins"].infos["greeter"]
    assert (info.name, info.version, info.description) == (
        "Greeter", "1.2.0", "Greets every visitor at the end of the page.")
    assert not info.default_enabled


def test_disabled_plugin_blueprint_answers_404_until_enabled(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(greeter=GREETER)))
    client = app.test_client()
    assert client.get("/greeter/").status_code == 404
    assert render_slot(app) == ""
    app.extensions["magnet.plugins"].set_enabled("greeter", True)
    assert client.get("/greeter/").get_data(as_text=True) == "hello from greeter"
    assert render_slot(app) == "<p>Hello</p>"
    app.extensions["magnet.plugins"].set_enabled("greeter", False)
    assert client.get("/greeter/").status_code == 404


def test_hook_register_blueprints(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(greeter=GREETER)))
    assert "greeter" in app.blueprints


PINGER = '''
"""Answers a ping at the edge, and fails on purpose at another address."""
from engine.plugins import hookimpl
from engine.web.edge import EdgeRoute

def pong(environ):
    return 200, [("Content-Type", "text/plain")], b"pong " + environ["HTTP_X_NAME"].encode()

def fail(environ):
    raise RuntimeError("edge failure on purpose")

@hookimpl
def register_edge_routes():
    return [EdgeRoute("POST", "/pinger/ping", pong), EdgeRoute("GET", "/pinger/fail", fail)]
'''


def test_hook_register_edge_routes(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(pinger=PINGER)))
    plugins = app.extensions["magnet.plugins"]
    client = app.test_client()
    assert client.post("/pinger/ping").status_code == 404  # disabled: Flask's 404
    plugins.set_enabled("pinger", True)
    answer = client.post("/pinger/ping", headers={"X-Name": "edge"})
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "pong edge")
    assert client.get("/pinger/ping").status_code == 404  # other methods go on to Flask
    failed = client.get("/pinger/fail")
    assert failed.status_code == 500 and failed.get_json() == {"error": "internal error"}
    with app.app_context():
        errors = plugins.recent_errors("pinger")
        assert [e.hook for e in errors] == ["edge GET /pinger/fail"]
        assert "edge failure on purpose" in errors[0].message
    plugins.set_enabled("pinger", False)
    assert client.post("/pinger/ping").status_code == 404


def test_edge_routes_of_two_plugins_cannot_share_an_address(make_app, make_plugins):
    with pytest.raises(PluginError, match="registered by both"):
        make_app(PLUGINS_PATH=str(make_plugins(pinger=PINGER, pinger2=PINGER)))


def test_hook_tpl_body_end(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(greeter=GREETER)))
    app.extensions["magnet.plugins"].set_enabled("greeter", True)
    assert "<p>Hello</p>" in render_slot(app)


def test_hook_register_settings(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(greeter=GREETER)))
    plugins = app.extensions["magnet.plugins"]
    plugins.set_enabled("greeter", True)
    from werkzeug.datastructures import MultiDict
    with app.app_context():
        form, _ = plugins.save_settings("greeter", MultiDict({"greeting": "Hi!", "times": "9"}))
        assert "times" in form.errors  # out of range: nothing stored
        assert plugins.settings("greeter") == {"greeting": "Hello", "times": 1}
        form, changes = plugins.save_settings("greeter",
                                              MultiDict({"greeting": "Hi!", "times": "2"}))
        assert not form.errors and changes == {"greeting": ("Hello", "Hi!"), "times": (1, 2)}
        assert plugins.settings("greeter") == {"greeting": "Hi!", "times": 2}
    assert "<p>Hi!Hi!</p>" in render_slot(app)


def test_enabled_state_reaches_another_process_and_survives_restart(make_app, make_plugins):
    folder = make_plugins(greeter=GREETER)
    app = make_app(PLUGINS_PATH=str(folder), PLUGIN_STATE_REFRESH_SECONDS=0.2)
    client = app.test_client()
    assert client.get("/greeter/").status_code == 404
    env = {**os.environ, "MAGNET_INSTANCE_PATH": app.instance_path,
           "MAGNET_PLUGINS_PATH": str(folder), "REDIS_URL": app.config["REDIS_URL"]}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "plugins", "enable", "greeter"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    time.sleep(0.3)
    assert client.get("/greeter/").status_code == 200  # this app was not restarted
    restarted = make_app(instance=Path(app.instance_path), PLUGINS_PATH=str(folder))
    assert restarted.test_client().get("/greeter/").status_code == 200


def test_safe_mode_starts_with_every_plugin_off(make_app, make_plugins):
    folder = make_plugins(greeter=GREETER)
    app = make_app(PLUGINS_PATH=str(folder))
    app.extensions["magnet.plugins"].set_enabled("greeter", True)
    safe = make_app(instance=Path(app.instance_path), PLUGINS_PATH=str(folder), SAFE_MODE=True)
    plugins = safe.extensions["magnet.plugins"]
    assert "greeter" not in plugins.enabled
    assert "core" in plugins.enabled  # built-ins stay on
    assert safe.test_client().get("/greeter/").status_code == 404


def test_broken_plugin_is_isolated_logged_and_kept_for_the_owner(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(broken=BROKEN, greeter=GREETER)))
    plugins = app.extensions["magnet.plugins"]
    plugins.set_enabled("greeter", True)
    assert "broken" in plugins.enabled  # DEFAULT_ENABLED
    assert render_slot(app) == "<p>Hello</p>"  # the page still renders, minus the broken part
    with app.test_request_context("/"):
        assert plugins.filter("filter_page_variant", "base", request=None) == "base"
    with app.app_context():
        errors = plugins.recent_errors("broken")
        assert {e.hook for e in errors} == {"tpl_body_end", "filter_page_variant"}
        assert any("broken on purpose" in e.message for e in errors)
        assert all(e.slug == "broken" for e in errors)


def test_hook_filter_page_variant(make_app, make_plugins):
    source = '''
from engine.plugins import hookimpl
DEFAULT_ENABLED = True

@hookimpl
def filter_page_variant(variant, request):
    return variant + "|utm=" + request.args.get("utm_source", "")
'''
    app = make_app(PLUGINS_PATH=str(make_plugins(variants=source)))
    plugins = app.extensions["magnet.plugins"]
    with app.test_request_context("/?utm_source=news"):
        from flask import request
        assert plugins.filter("filter_page_variant", "", request=request) == "|utm=news"


def test_duplicate_registrations_refuse_to_start(make_app, make_plugins):
    twin = '''
from flask import Blueprint
from engine.plugins import hookimpl
from engine.jobs import job

@job("twin.tick")
def tick():
    pass

@hookimpl
def register_jobs():
    return [tick]
'''
    with pytest.raises(PluginError, match="twin.tick"):
        make_app(PLUGINS_PATH=str(make_plugins(one=twin, two=twin)))


def test_hook_on_plugin_enabled(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(recorder=RECORDER)))
    app.extensions["magnet.plugins"].set_enabled("recorder", True)
    module = app.extensions["magnet.plugins"].infos["recorder"].module
    assert module.HEARD == [("enabled", "recorder")]


def test_hook_on_plugin_disabled(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(recorder=RECORDER)))
    plugins = app.extensions["magnet.plugins"]
    plugins.set_enabled("recorder", True)
    plugins.set_enabled("recorder", False)
    assert plugins.infos["recorder"].module.HEARD[-1] == ("disabled", "recorder")


def test_hook_register_commands(make_app, make_plugins):
    source = '''
import click
from engine.plugins import hookimpl

@click.command("say-hi")
def say_hi():
    click.echo("hi there")

@hookimpl
def register_commands():
    return [say_hi]
'''
    app = make_app(PLUGINS_PATH=str(make_plugins(sayer=source)))
    result = app.test_cli_runner().invoke(args=["say-hi"])
    assert result.output.strip() == "hi there"


def test_builtin_plugins_cannot_be_disabled(app):
    with pytest.raises(PluginError, match="part of the engine"):
        app.extensions["magnet.plugins"].set_enabled("core", False)


def test_unknown_plugin_is_a_clear_error(app):
    from engine.cli import main
    result = app.test_cli_runner().invoke(main, args=["plugins", "enable", "nope"])
    assert result.exit_code != 0
    assert "no plugin named 'nope'" in result.output


def test_plugin_errors_are_stored_rows(make_app, make_plugins):
    app = make_app(PLUGINS_PATH=str(make_plugins(broken=BROKEN)))
    app.test_client().get("/healthz")
    render_slot(app)
    with app.app_context():
        from engine.db import db
        rows = db.session.scalars(select(PluginErrorLog)).all()
    assert [r.slug for r in rows] == ["broken"]
    assert "RuntimeError" in rows[0].traceback


def test_installed_distributions_are_discovered_by_entry_point(make_app, tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "magnet_extra").mkdir(parents=True)
    (site / "magnet_extra" / "__init__.py").write_text(
        '"""An installed plugin."""\n__version__ = "3.0"\n')
    dist = site / "magnet_extra-3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: magnet-extra\nVersion: 3.0\n")
    (dist / "entry_points.txt").write_text("[magnet.plugins]\nextra = magnet_extra\n")
    monkeypatch.syspath_prepend(str(site))
    app = make_app()
    info = app.extensions["magnet.plugins"].infos["extra"]
    assert (info.source, info.version, info.description) == ("entry point", "3.0",
                                                             "An installed plugin.")


LATE = '''
"""Created while the site runs."""
from pathlib import Path
from flask import Blueprint, render_template
from engine.jobs import job
from engine.plugins import hookimpl

blueprint = Blueprint("late", __name__, url_prefix="/late")

@blueprint.get("/")
def index():
    return "the late plugin's page"

@job("late.note")
def note(path):
    Path(path).write_text("ran")

@hookimpl
def register_jobs():
    return [note]

@hookimpl
def register_blueprints():
    return [blueprint]

@hookimpl
def tpl_body_end(request):
    return render_template("late/note.html")
'''


def test_a_plugin_created_while_the_site_runs_works_in_that_process(make_app, make_plugins,
                                                                     work, tmp_path):
    folder = make_plugins(greeter=GREETER)
    app = make_app(PLUGINS_PATH=str(folder), PLUGIN_STATE_REFRESH_SECONDS=0)
    client = app.test_client()
    assert "a note" not in client.get("/").text  # the process serves, then the plugin comes
    (folder / "late" / "templates" / "late").mkdir(parents=True)
    (folder / "late" / "templates" / "late" / "note.html").write_text(
        '<p class="late">{{ "a note from its template" }}</p>')
    (folder / "late" / "__init__.py").write_text(LATE)
    # `magnet plugins enable late`, in another process with an app of its own
    make_app(instance=Path(app.instance_path), PLUGINS_PATH=str(folder)) \
        .extensions["magnet.plugins"].set_enabled("late", True)

    assert '<p class="late">a note from its template</p>' in client.get("/").text  # its hook
    with app.app_context():
        from engine.jobs import enqueue
        enqueue("late.note", path=str(tmp_path / "note"))
    work(app)
    assert (tmp_path / "note").read_text() == "ran"  # its job, known to this process's worker
    # Flask takes no new routes after a first request: a fresh web process serves its page
    fresh = make_app(instance=Path(app.instance_path), PLUGINS_PATH=str(folder))
    assert fresh.test_client().get("/late/").text == "the late plugin's page"


def test_a_plugin_added_before_a_process_serves_gets_its_routes_there(make_app, make_plugins):
    folder = make_plugins(greeter=GREETER)
    app = make_app(PLUGINS_PATH=str(folder), PLUGIN_STATE_REFRESH_SECONDS=0)
    (folder / "late").mkdir()
    (folder / "late" / "__init__.py").write_text(LATE)
    app.extensions["magnet.plugins"].set_enabled("late", True)
    assert app.test_client().get("/late/").text == "the late plugin's page"


def test_a_plugin_added_that_cannot_load_is_refused_and_the_others_keep_working(
        make_app, make_plugins, caplog, monkeypatch):
    import logging
    monkeypatch.setattr(logging.getLogger("magnet"), "handlers", [caplog.handler])
    folder = make_plugins(greeter=GREETER)
    app = make_app(PLUGINS_PATH=str(folder), PLUGIN_STATE_REFRESH_SECONDS=0)
    (folder / "halfway").mkdir()
    (folder / "halfway" / "__init__.py").write_text("def broken(:\n")
    manager = app.extensions["magnet.plugins"]
    assert manager.discover_added() == []
    assert "halfway" not in manager.infos
    assert "plugin 'halfway' was added but cannot be loaded" in caplog.text
    assert app.test_client().get("/").status_code == 200
    (folder / "halfway" / "__init__.py").write_text('"""Fixed now."""\n')
    os.utime(folder / "halfway" / "__init__.py", (time.time() + 5, time.time() + 5))
    assert [info.slug for info in manager.discover_added()] == ["halfway"]


def test_hook_on_shutdown(make_app, make_plugins, tmp_path):
    """Called for each app when the process stops gracefully (here: when the test is done with
    the app, as the fixtures do), in an app context."""
    from engine.app import shut_down
    marker = tmp_path / "stopped"
    folder = make_plugins(buffered=f'''
        """Holds something in memory until the process stops."""
        from flask import current_app
        from engine.plugins import hookimpl
        DEFAULT_ENABLED = True

        @hookimpl
        def on_shutdown():
            with open({str(marker)!r}, "a") as out:
                out.write(current_app.instance_path + "\\n")
    ''')
    app = make_app(PLUGINS_PATH=str(folder))
    shut_down(app)
    assert marker.read_text() == app.instance_path + "\n"
