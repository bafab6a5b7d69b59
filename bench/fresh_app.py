"""A migrated app on a PostgreSQL database of its own, for the benchmarks that fill a million
rows: the database is created afresh on the server and dropped afterwards, with an embedded
Redis in a temporary instance folder, so a run never touches another database."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask

from bench.contacts_list import psycopg_url, recreate
from engine import create_app, migrate
from engine.db import db
from engine.jobs.embedded import EmbeddedRedis


@contextmanager
def postgresql_app(server: str, database: str, prefix: str) -> Iterator[tuple[Flask, str]]:
    """`(app, psycopg url of its database)`; everything made is gone when the block ends."""
    url = psycopg_url(server, database)
    recreate(server, database=database)
    instance = Path(tempfile.mkdtemp(prefix=prefix))
    redis = EmbeddedRedis(instance)
    try:
        redis.start()
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis.url},
                         instance_path=instance)
        migrate.upgrade(app)
        yield app, url
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        redis.stop()
        recreate(server, drop_only=True, database=database)
        shutil.rmtree(instance, ignore_errors=True)
