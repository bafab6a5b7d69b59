"""Segments: the list with each one's state, a segment's page (its conditions in words, its
members a keyset page at a time), CSV export, rebuild and delete. The builder is in
`segment_builder.py`.

A segment is usable while its membership is being built: its pages say "building NN%" and
poll its progress (htmx), then show the finished count.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from engine import audit
from engine.admin.blueprint import bp, row_id
from engine.auth import require_role
from engine.contacts.transfer import BOM, export_rows
from engine.db import db, write
from engine.segments import describe, service
from engine.segments.models import Segment, SegmentMember

PER_PAGE = 50


@bp.get("/segments")
@require_role("viewer")
def segments_list() -> Any:
    segments = service.all_segments()
    counts = {s.id: service.member_count(s.id) for s in segments}
    return render_template("admin/segments_list.html", segments=segments, counts=counts)


@bp.get("/segments/<int:segment_id>")
@require_role("viewer")
def segments_show(segment_id: int) -> Any:
    segment = db.get_or_404(Segment, segment_id)
    after = request.args.get("after", 0, type=row_id)
    members = service.members(segment.id, after, PER_PAGE + 1)
    more = len(members) > PER_PAGE
    members = members[:PER_PAGE]
    match, groups = describe.describe_groups(segment.definition)
    return render_template("admin/segment.html", segment=segment, match=match, groups=groups,
                           members=members, count=service.member_count(segment.id),
                           next_after=members[-1][0].id if more else None, paged=bool(after),
                           per_page=PER_PAGE)


@bp.get("/segments/<int:segment_id>/status")
@require_role("viewer")
def segments_status(segment_id: int) -> Any:
    """The state polled while a build runs; once it is done, the page reloads to show the
    finished members."""
    segment = db.get_or_404(Segment, segment_id)
    headers = {"HX-Refresh": "true"} if segment.status == "ready" else {}
    return render_template("admin/_segment_status.html", segment=segment), 200, headers


@bp.post("/segments/<int:segment_id>/rebuild")
@require_role("editor")
def segments_rebuild(segment_id: int) -> Any:
    segment = db.get_or_404(Segment, segment_id)
    with write():
        service.rebuild(segment.id)
        audit.record(current_user, "segment.rebuild", segment.name)
    flash(f"“{segment.name}” is being built again from its conditions.")
    return redirect(url_for("admin.segments_show", segment_id=segment.id))


@bp.post("/segments/<int:segment_id>/delete")
@require_role("editor")
def segments_delete(segment_id: int) -> Any:
    segment = db.get_or_404(Segment, segment_id)
    users = service.used_by(segment.id)
    if users:
        names = ", ".join(f"“{s.name}”" for s in users)
        flash(f"Not deleted: {names} use{'s' if len(users) == 1 else ''} this segment in "
              "a condition. Change them first.", "error")
        return redirect(url_for("admin.segments_show", segment_id=segment.id))
    name, words = segment.name, describe.describe_definition(segment.definition)
    with write():
        service.delete_segment(segment.id)
        audit.record(current_user, "segment.delete", name, {"conditions": words})
    flash(f"Segment “{name}” deleted.")
    return redirect(url_for("admin.segments_list"))


@bp.post("/segments/<int:segment_id>/members.csv")  # a POST: it writes to the audit log
@require_role("editor")
def segments_export(segment_id: int) -> Any:
    """The members as CSV, the columns of the contact export (`engine.contacts.transfer`)."""
    segment = db.get_or_404(Segment, segment_id)
    audit.record(current_user, "segment.export", segment.name)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    members = select(SegmentMember.contact_id).where(SegmentMember.segment_id == segment.id)

    def lines() -> Iterator[str]:
        with app.app_context():  # its own session, alive while the file streams
            buffer = io.StringIO()
            buffer.write(BOM)
            writer = csv.writer(buffer)
            for count, row in enumerate(export_rows(among=members), start=1):
                writer.writerow(row)
                if count % 1000 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

    slug = re.sub(r"[^a-z0-9]+", "-", segment.name.lower()).strip("-")[:60] or "segment"
    filename = f"{slug}-members.csv"  # named after the segment, in safe characters
    return Response(lines(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
