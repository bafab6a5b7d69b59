"""The admin's areas; importing this package registers their routes on the blueprint."""
from engine.admin.views import (audit_log, contacts, content, dashboard, forms,  # noqa: F401
                                plugins, themes, users)
