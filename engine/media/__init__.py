"""The media library: images and PDFs uploaded in the admin, served at `/media/<name>`.

- `engine.media.service`: upload (checked by content, images re-encoded), edit, delete, search;
- `engine.media.storage`: a folder (`instance/media/`) or an S3-compatible bucket;
- `engine.media.html`: `media_img(url, sizes=...)` for themes and responsive Markdown images;
- `engine.media.views`: the public files, with long cache headers.
The admin's pages are in `engine.admin.views.media`; the picker in `admin/static/media.js`.
"""
from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "MEDIA_MAX_BYTES": 10 * 1024 * 1024,  # one file
    "MEDIA_UPLOAD_MAX_BYTES": 50 * 1024 * 1024,  # one upload request (several files)
    "MEDIA_MAX_PIXELS": 40_000_000,  # width × height (× frames): decompression bombs stop here
    "MEDIA_FOLDER": "",  # empty: instance/media/
    "MEDIA_PROSE_SIZES": "",  # `sizes` of images in Markdown (empty: the default theme's)
    "MEDIA_S3_BUCKET": "",  # set: files go to this bucket instead (needs `magnet[s3]`)
    "MEDIA_S3_PREFIX": "",
    "MEDIA_S3_ENDPOINT": "",  # e.g. a MinIO or R2 address; empty: AWS
    "MEDIA_S3_REGION": "",
    "MEDIA_S3_ACCESS_KEY": "",  # empty: boto3's own look-up (environment, instance role)
    "MEDIA_S3_SECRET_KEY": "",
}


def init_app(app: Flask) -> None:
    from engine.media import html, models, storage, views  # noqa: F401  (models: tables)
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    for key in ("MEDIA_MAX_BYTES", "MEDIA_UPLOAD_MAX_BYTES", "MEDIA_MAX_PIXELS"):
        app.config[key] = int(app.config[key])  # from the environment they come as text
    app.extensions["magnet.media_storage"] = storage.build(app)
    app.register_blueprint(views.blueprint)
    app.jinja_env.globals.update(html.template_globals())
