"""The admin's areas; importing this package registers their routes on the blueprint."""
from engine.admin.views import audit_log, dashboard, plugins, themes, users  # noqa: F401
