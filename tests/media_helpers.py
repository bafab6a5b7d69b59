"""Files for the media tests, made with Pillow at run time (no binaries in the repository)."""
from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image

from tests.admin_helpers import token_for

GPS_IFD = 0x8825


def jpeg(width: int = 1800, height: int = 1200, *, gps: bool = True, comment: bytes = b"",
         orientation: int = 1) -> bytes:
    """A JPEG with EXIF (a GPS position and an orientation) and, optionally, a COM comment."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Camera maker"
    if gps:
        exif[GPS_IFD] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    out = io.BytesIO()
    options: dict[str, Any] = {"exif": exif.tobytes(), "quality": 80}
    if comment:
        options["comment"] = comment
    image.save(out, "JPEG", **options)
    return out.getvalue()


def png(width: int = 500, height: int = 400) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (20, 120, 200, 128)).save(out, "PNG")
    return out.getvalue()


def pdf(extra: bytes = b"") -> bytes:
    """A small, well-formed PDF; `extra` goes into its catalogue (e.g. an action)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R " + extra + b">>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    body, offsets = b"%PDF-1.7\n", []
    for number, content in enumerate(objects, 1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, content)
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return body


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A tiny PNG whose header claims a huge image (what a decompression bomb looks like)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1) * 8)) + chunk(b"IEND", b""))


def upload(client: Any, *files: tuple[str, bytes], **form: str) -> Any:
    data: dict[str, Any] = {"csrf_token": token_for(client, "/admin/media"), **form,
                            "files": [(io.BytesIO(body), name) for name, body in files]}
    return client.post("/admin/media/upload", data=data, content_type="multipart/form-data")


def pdf_with_streams(*streams: bytes) -> bytes:
    """A PDF holding these Flate-compressed stream bodies as they are (objects 4, 5...)."""
    body = pdf()
    header, rest = body.split(b"\n", 1)
    objects = b"".join(b"%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n%s\n"
                       b"endstream\nendobj\n" % (number, len(data), data)
                       for number, data in enumerate(streams, 4))
    return header + b"\n" + objects + rest
