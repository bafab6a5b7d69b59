"""Where media files live: a folder (`instance/media/` by default) or an S3-compatible bucket.

Both are behind the same small interface, and both are only ever given names the library made
(`NAME` below): a request for any other name is refused before it reaches a folder or a bucket,
so no path a visitor writes (`../`, an absolute path, a backslash, an encoded one) can name a
file outside the library.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from flask import Flask, current_app

NAME = re.compile(r"[0-9a-f]{32}(?:-[1-9][0-9]{0,4})?\.(?:jpg|png|gif|webp|pdf)")


class Storage(Protocol):
    def put(self, name: str, data: bytes, content_type: str) -> None: ...
    def get(self, name: str) -> bytes | None: ...
    def delete(self, name: str) -> None: ...


def is_media_name(name: str) -> bool:
    return bool(NAME.fullmatch(name))


def _checked(name: str) -> str:
    if not is_media_name(name):
        raise ValueError(f"not a media file name: {name!r}")
    return name


class LocalStorage:
    """Files in one folder. Written to a temporary file first and renamed, so a reader never
    sees half a file."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / _checked(name)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(name)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


class S3Storage:
    """Objects in an S3-compatible bucket (AWS, MinIO, R2...), under `prefix`. Needs `boto3`
    (`pip install magnet[s3]`). Keys left empty fall back to boto3's own look-up (environment,
    instance role)."""

    def __init__(self, bucket: str, prefix: str = "", **client: Any) -> None:
        import boto3
        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.client("s3", **{k: v for k, v in client.items() if v})

    def put(self, name: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + _checked(name), Body=data,
                               ContentType=content_type)

    def get(self, name: str) -> bytes | None:
        if not is_media_name(name):
            return None
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except self.client.exceptions.NoSuchKey:
            return None
        return answer["Body"].read()

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + _checked(name))


def build(app: Flask) -> Storage:
    config = app.config
    if config.get("MEDIA_S3_BUCKET"):
        return S3Storage(config["MEDIA_S3_BUCKET"], config.get("MEDIA_S3_PREFIX") or "",
                         endpoint_url=config.get("MEDIA_S3_ENDPOINT") or None,
                         region_name=config.get("MEDIA_S3_REGION") or None,
                         aws_access_key_id=config.get("MEDIA_S3_ACCESS_KEY") or None,
                         aws_secret_access_key=config.get("MEDIA_S3_SECRET_KEY") or None)
    return LocalStorage(config.get("MEDIA_FOLDER") or Path(app.instance_path) / "media")


def current() -> Storage:
    return current_app.extensions["magnet.media_storage"]
