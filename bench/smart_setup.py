"""Set up the smart content runs of `bench/pages.py` on a bench site (run in the site's
environment): a copy of the home page that places a smart block, a segment with contacts on
trusted browsers, and their cookies. Prints JSON: {"path": ..., "known_cookies": [...]}.

Membership rows are written directly: the run measures pages, not segment builds."""
from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import create_app
from engine.contacts import identity, visitors
from engine.contacts import service as contacts
from engine.content import service as content
from engine.db import db, write
from engine.segments.models import Segment, SegmentMember
from plugins.smart_content import service as smart
from plugins.smart_content import visit

PATH = "/smart-offer"
KNOWN = 200


def main() -> None:
    app = create_app()
    with app.app_context():
        with write():
            segment = Segment(name="Bench: customers", definition={}, status="ready",
                              built_version=1)
            db.session.add(segment)
            db.session.flush()
            segment_id = segment.id
        smart.save("bench", None, {
            "slug": "bench-cta", "name": "Bench call to action",
            "default": "**Get the guide** - free, no spam.",
            "variants": [
                {"name": "LinkedIn", "content": "**Welcome, LinkedIn reader**: the guide is yours.",
                 "rules": {"conditions": [{"kind": "utm_source", "op": "is",
                                           "value": "linkedin"}]}},
                {"name": "Customers", "content": "**Thanks for being a customer**: book a call.",
                 "rules": {"conditions": [{"kind": "segment", "op": "is",
                                           "value": str(segment_id)}]}}]})
        home = content.visible_item("page", "home")
        body = (home.body if home else "# Welcome") + "\n\n[smart bench-cta]\n"
        content.create_item("page", "Smart offer", slug=PATH[1:], status="published", body=body,
                            template=home.template if home else "",
                            fields=dict(home.fields or {}) if home else {})
        cookies = []
        with write(), app.test_request_context():
            for n in range(KNOWN):
                contact, _, _ = contacts.upsert(f"bench-known-{n}@example.com", {})
                vid = secrets.token_hex(16)
                identity.identify(vid, contact.id, new=True, trust=identity.FIRST_CLAIM)
                db.session.add(SegmentMember(segment_id=segment_id, contact_id=contact.id))
                state, _ = visit.advance(None, {}, "", "bench")
                state["p"] = visit.MAX_PAGES  # a reader some pages into the site
                cookies.append(f"{visitors.COOKIE}={visitors.cookie_value(vid)}; "
                               f"{visit.COOKIE}={visit.encode(state)}")
    print(json.dumps({"path": PATH, "known_cookies": cookies}))


if __name__ == "__main__":
    main()
