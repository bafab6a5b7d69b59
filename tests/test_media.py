"""The media library: what is accepted (by content), what is stored (re-encoded, no metadata,
generated names), how files are served, and who may do what."""
from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from tests.admin_helpers import signed_in, token_for
from tests.content_helpers import post
from tests.media_helpers import GPS_IFD, jpeg, pdf, pdf_with_streams, png, png_bomb, upload


def _items(app):
    from engine.db import db
    from engine.media.models import MediaItem
    with app.app_context():
        return list(db.session.scalars(select(MediaItem).order_by(MediaItem.id)))


def _stored(app) -> dict[str, bytes]:
    folder = Path(app.instance_path) / "media"
    return {p.name: p.read_bytes() for p in folder.glob("*")} if folder.exists() else {}


def _audit(app, prefix):
    from engine.audit import AuditEntry
    from engine.db import db
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry).where(
            AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id)))


@pytest.fixture
def editor(app):
    return signed_in(app, "editor")


def test_jpeg_png_and_pdf_are_stored_under_new_names_and_served(app, editor):
    response = upload(editor, ("../../holiday photo.jpg", jpeg(1800, 1200, orientation=6)),
                      ("logo.png", png()), ("brochure.pdf", pdf()))
    assert response.status_code == 302, response.get_data(as_text=True)
    photo, logo, brochure = _items(app)
    assert (photo.kind, photo.ext, photo.original_name) == ("image", "jpg", "holiday photo.jpg")
    assert re.fullmatch(r"[0-9a-f]{32}", photo.name) and "holiday" not in photo.url
    # Auto-oriented (EXIF orientation 6: turned a quarter), then widths up to the largest.
    assert (photo.width, photo.height) == (1200, 1800)
    assert photo.widths == [320, 640, 1024, 1200]
    assert logo.widths == [320, 500] and (logo.ext, logo.width) == ("png", 500)
    assert (brochure.kind, brochure.widths) == ("pdf", [])

    served = editor.get(photo.url)
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in served.headers["Cache-Control"]
    stripped = Image.open(io.BytesIO(served.data))
    assert GPS_IFD not in stripped.getexif() and not stripped.getexif().get(0x010F)
    variant = editor.get(f"/media/{photo.name}-640.webp")
    assert variant.mimetype == "image/webp" and Image.open(io.BytesIO(variant.data)).width == 640
    document = editor.get(brochure.url)
    assert document.mimetype == "application/pdf" and document.data == pdf()
    assert document.headers["Content-Disposition"].startswith("inline")
    assert "brochure.pdf" in document.headers["Content-Disposition"]

    page = editor.get("/admin/media").get_data(as_text=True)
    assert "holiday photo.jpg" in page and page.count("No alt text") == 2
    assert [e.action for e in _audit(app, "media.")] == ["media.upload"] * 3


@pytest.mark.parametrize("name, body, reason", [
    ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "SVG files are not accepted"),
    ("shell.jpg", b"<?php system($_GET['c']); ?>", "not a JPEG, PNG, GIF, WebP image or PDF"),
    ("page.jpg", b"<!doctype html><html><script>alert(1)</script></html>", "not a JPEG"),
    ("program.jpg", b"MZ\x90\x00\x03" + b"\x00" * 200, "not a JPEG"),
    ("huge.png", png_bomb(), "at most 40 megapixels"),
    ("script.pdf", pdf(b"/OpenAction << /S /JavaScript /JS (app.alert(1)) >> "),
     "found /JS, /JavaScript"),
    ("hidden.pdf", pdf(b"/OpenAction << /S /J#61vaScript /J#53 (x) >> "), "/JavaScript"),
    ("cut.pdf", pdf()[:-20], "no %%EOF"),
], ids=["svg", "php", "html", "exe", "bomb", "pdf-js", "pdf-js-escaped", "pdf-cut"])
def test_refused_uploads_say_why_and_store_nothing(app, editor, name, body, reason):
    response = upload(editor, (name, body))
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)
    assert _items(app) == [] and _stored(app) == {}


def test_a_file_over_the_size_limit_is_refused(make_app):
    app = make_app(MEDIA_MAX_BYTES=20_000, MEDIA_UPLOAD_MAX_BYTES=200_000)
    editor = signed_in(app, "editor")
    response = upload(editor, ("big.jpg", jpeg(1600, 1600, gps=False) + b"\x00" * 30_000))
    assert response.status_code == 400 and "larger than" in response.get_data(as_text=True)
    response = upload(editor, *[(f"{n}.jpg", b"\xff" * 19_000) for n in range(12)])
    assert response.status_code == 413 and "too large" in response.get_data(as_text=True)
    assert _items(app) == [] and _stored(app) == {}


def test_a_polyglot_keeps_its_pixels_and_loses_its_payload(app, editor):
    payload = b"<?php system($_GET['c']); ?><html><script>alert(1)</script>"
    body = jpeg(700, 500, comment=b"<!-- <script>alert(1)</script> -->") + payload
    assert upload(editor, ("innocent.jpg", body)).status_code == 302
    files = _stored(app)
    assert len(files) == 4  # the full size and three WebP widths (320, 640, 700)
    for data in files.values():
        assert b"<?php" not in data and b"<script" not in data and b"Camera maker" not in data


def test_viewer_may_not_see_or_upload(app):
    viewer = signed_in(app, "viewer")
    assert viewer.get("/admin/media").status_code == 403
    token = token_for(viewer, "/admin/")
    response = viewer.post("/admin/media/upload", data={
        "csrf_token": token, "files": [(io.BytesIO(png()), "a.png")]},
        content_type="multipart/form-data")
    assert response.status_code == 403 and _items(app) == []


@pytest.mark.parametrize("path", ["/media/../secret_key", "/media/..%2fsecret_key",
                                  "/media/%2e%2e/magnet.db", "/media/..%5cmagnet.db",
                                  "/media/" + "a" * 32 + ".jpg/../../secret_key",
                                  "/media/" + "0" * 32 + ".jpg"])
def test_nothing_outside_the_library_is_served(app, client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert (Path(app.instance_path) / "secret_key").read_bytes()[:8] not in response.data


def test_alt_text_edit_and_delete_are_audited_and_delete_warns_when_used(app, editor):
    upload(editor, ("cat.jpg", jpeg(900, 600)))
    (item,) = _items(app)
    token = token_for(editor, "/admin/media")
    editor.post(f"/admin/media/{item.id}", data={"csrf_token": token, "alt": "A grey cat",
                                                 "title": "Cat"})
    (edit,) = _audit(app, "media.edit")
    assert edit.details == {"old": {"alt_text": "", "title": "cat"},
                            "new": {"alt_text": "A grey cat", "title": "Cat"}}
    editor.post(f"/admin/media/{item.id}", data={"csrf_token": token, "alt": "A grey cat",
                                                 "title": "Cat"})  # saved unchanged
    assert len(_audit(app, "media.edit")) == 1
    page = editor.get("/admin/media?q=grey").get_data(as_text=True)
    assert "No alt text" not in page and 'value="A grey cat"' in page
    assert "Nothing matches" in editor.get("/admin/media?q=dog").get_data(as_text=True)

    post(app, "Cats", slug="cats", feature_image=item.url)
    visitor = app.test_client()
    assert 'alt="A grey cat"' in visitor.get("/blog/cats").get_data(as_text=True)
    editor.post(f"/admin/media/{item.id}", data={"csrf_token": token, "alt": "A sleepy cat",
                                                 "title": "Cat"})
    assert 'alt="A sleepy cat"' in visitor.get("/blog/cats").get_data(as_text=True)
    refused = editor.post(f"/admin/media/{item.id}/delete", data={"csrf_token": token})
    assert refused.status_code == 409 and "post “Cats”" in refused.get_data(as_text=True)
    assert len(_items(app)) == 1
    editor.post(f"/admin/media/{item.id}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert _items(app) == [] and _stored(app) == {}
    (deleted,) = _audit(app, "media.delete")
    assert deleted.details["alt"] == "A sleepy cat" and deleted.details["used_by"]


def test_posts_show_library_images_with_srcset_and_alt(app, editor):
    upload(editor, ("cat.jpg", jpeg(1200, 800)), alt='A "grey" cat <3')
    (item,) = _items(app)
    post(app, "Cats", slug="cats", feature_image=item.url,
         body=f"Look:\n\n![Cat on a mat]({item.url})\n\n![elsewhere](https://example.com/a.png)")
    html = editor.get("/blog/cats").get_data(as_text=True)
    srcset = f"/media/{item.name}-320.webp 320w, /media/{item.name}-640.webp 640w"
    assert html.count(f'<source type="image/webp" srcset="{srcset}') == 2  # feature + text
    assert 'alt="A &#34;grey&#34; cat &lt;3"' in html and 'alt="Cat on a mat"' in html
    assert '<img alt="elsewhere" src="https://example.com/a.png">' in html
    assert f'<meta property="og:image" content="http://localhost{item.url}">' in html
    assert "srcset" in editor.get("/blog").get_data(as_text=True)  # the post's card


def test_a_list_of_post_cards_looks_up_its_feature_images_in_one_query(app, editor):
    from sqlalchemy import event

    from engine.db import db
    upload(editor, ("a.jpg", jpeg(400, 300, gps=False)), ("b.png", png(400, 300)),
           ("c.png", png(300, 200)))
    for number, item in enumerate(_items(app)):
        post(app, f"Post {number}", slug=f"post-{number}", feature_image=item.url)
    statements = []

    def seen(*args):
        if "FROM media_item" in args[2]:
            statements.append(args[2])
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        html = editor.get("/blog").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert html.count('<div class="card-image"><picture>') == 3
    assert len(statements) == 1


def test_the_s3_backend_stores_and_serves_files(make_app):
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        import boto3
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="site-media")
        app = make_app(MEDIA_S3_BUCKET="site-media", MEDIA_S3_REGION="us-east-1",
                       MEDIA_S3_ACCESS_KEY="test", MEDIA_S3_SECRET_KEY="test",
                       MEDIA_S3_PREFIX="media/")
        editor = signed_in(app, "editor")
        assert upload(editor, ("a.png", png())).status_code == 302
        (item,) = _items(app)
        keys = [o["Key"] for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(
            Bucket="site-media")["Contents"]]
        assert sorted(keys) == sorted(f"media/{name}" for name in item.files)
        served = editor.get(item.url)
        assert served.status_code == 200 and served.mimetype == "image/png"
        assert Image.open(io.BytesIO(served.data)).size == (500, 400)
        assert editor.get("/media/" + "1" * 32 + ".png").status_code == 404
        assert _stored(app) == {}


def test_the_picker_uploads_and_lists_as_json(app, editor):
    headers = {"X-Requested-With": "fetch"}
    token = token_for(editor, "/admin/media")
    answer = editor.post("/admin/media/upload", headers=headers, data={
        "csrf_token": token, "alt": "Blue square",
        "files": [(io.BytesIO(png()), "square.png"), (io.BytesIO(b"<svg/>"), "x.svg")]},
        content_type="multipart/form-data").get_json()
    assert [i["title"] for i in answer["uploaded"]] == ["square"]
    assert answer["uploaded"][0]["alt"] == ""  # alt text from the form is for one file only
    assert answer["errors"][0]["name"] == "x.svg"
    upload(editor, ("brochure.pdf", pdf()))
    images = editor.get("/admin/media/library.json", headers=headers).get_json()["items"]
    everything = editor.get("/admin/media/library.json?kind=any&q=r").get_json()["items"]
    assert [i["kind"] for i in images] == ["image"]
    assert [i["title"] for i in everything] == ["brochure", "square"]


def _zlib_with_stored_block(stored: bytes, compressed: bytes) -> bytes:
    """A zlib stream of a stored block (its bytes as they are) then a compressed one."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = (b"\x00" + struct.pack("<HH", len(stored), len(stored) ^ 0xFFFF) + stored
           + deflate.compress(compressed) + deflate.flush())
    return b"\x78\x9c" + raw + struct.pack(">I", zlib.adler32(stored + compressed))


def test_a_pdf_cannot_hide_a_script_behind_an_endstream_or_a_bomb(monkeypatch):
    from engine.media import checks
    action = b"<< /S /JavaScript /JS (app.alert(1)) >>"
    planted = _zlib_with_stored_block(b"\nendstream\n", action)
    assert b"JavaScript" not in planted and b"/JS" not in planted
    with pytest.raises(checks.RefusedUpload, match="/JS, /JavaScript"):
        checks.check_pdf(pdf_with_streams(planted))

    monkeypatch.setattr(checks, "PDF_INFLATE_LIMIT", 1024 * 1024)
    bomb = zlib.compress(b"\0" * (2 * 1024 * 1024), 9)
    with pytest.raises(checks.RefusedUpload, match="too large to be checked"):
        checks.check_pdf(pdf_with_streams(bomb, zlib.compress(action)))
    checks.check_pdf(pdf_with_streams(zlib.compress(b"BT /F1 12 Tf (Hello) Tj ET" * 100)))
