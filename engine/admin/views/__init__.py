"""The admin's areas; importing this package registers their routes on the blueprint."""
from engine.admin.views import (  # noqa: F401
    account, audit_log, contacts, content, dashboard, forms, plugins, segment_builder, segments,
    themes, users)
