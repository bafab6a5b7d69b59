"""The WSGI entry point for gunicorn: `gunicorn wsgi:app`."""
import gc

from engine import create_app

app = create_app()
# What the app built at start-up (routes, templates, models, plugins: some 170,000 objects)
# lives as long as the process. Moved out of the collector's sight, a full collection no
# longer walks it: that walk took over 100 ms, a pause every request in flight waited for.
gc.collect()
gc.freeze()
