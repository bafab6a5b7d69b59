"""The admin's areas; importing this package registers their routes on the blueprint."""
from engine.admin.views import (  # noqa: F401
    account,
    api_keys,
    audit_log,
    contacts,
    content,
    dashboard,
    event_types,
    forms,
    mail_settings,
    mail_suppressions,
    mail_templates,
    plugins,
    segment_builder,
    segments,
    themes,
    users,
)
