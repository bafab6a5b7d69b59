"""What an upload is, judged by its content, never by its name or the browser's type.

Images (JPEG, PNG, GIF, WebP) are decoded by Pillow, which must recognise the format from the
bytes and decode every pixel; the pixel count is checked from the header *before* decoding, so
a decompression bomb (a small file of a huge, uniform image) is refused without being expanded.
Anything else that Pillow can open (BMP, TIFF, ICO...) is refused: the list is an allow-list.

PDFs are checked by structure: `%PDF-1.x`/`%PDF-2.0` at the very first byte (a PDF reader
accepts a header anywhere in the first kilobyte, which is how PDF polyglots hide behind another
format: we do not), `%%EOF` in the last kilobyte, a `startxref` and at least one object. Then
the names that make a PDF act rather than show (`/JavaScript`, `/JS`, `/Launch`,
`/EmbeddedFile`, `/RichMedia`, `/XFA`, `/SubmitForm`, `/ImportData`) are looked for, with `#xx`
escapes in names decoded, in the raw bytes and inside every Flate-compressed stream, since
object streams can hide dictionaries. A stream is inflated from its `stream` keyword for as long
as zlib reads it, never cut at the first `endstream` in its bytes (a reader goes by `/Length`, so
an `endstream` planted in a stored block would otherwise hide the rest of the stream). What is
inflated is bounded in all; a PDF that needs more than that to be read through is refused
rather than passed half-read. A PDF that names one is refused. (`/OpenAction`
and `/AA` alone are allowed: office suites use them to open at a page; what they could run is
one of the names above.)

SVG is refused whatever it contains: it is XML that can carry `<script>`, event handlers and
`<foreignObject>` HTML, which a browser runs when the file is opened on its own at our origin.
"""
from __future__ import annotations

import io
import re
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image

IMAGE_FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"),
                 "GIF": ("gif", "image/gif"), "WEBP": ("webp", "image/webp")}
PDF_HEADER = re.compile(rb"\A%PDF-(1\.[0-7]|2\.0)")
PDF_ACTIVE_NAMES = {b"JavaScript", b"JS", b"Launch", b"EmbeddedFile", b"EmbeddedFiles",
                    b"RichMedia", b"XFA", b"SubmitForm", b"ImportData"}
PDF_NAME = re.compile(rb"/([A-Za-z0-9#]+)")
PDF_STREAM_START = re.compile(rb"stream\r?\n")
PDF_INFLATE_LIMIT = 256 * 1024 * 1024  # bytes inflated in all, at most, while looking
PDF_READ_CHUNK = 64 * 1024
PDF_OUTPUT_STEP = 1024 * 1024
PDF_NAME_MAX = 512  # longer than any name a reader takes (127 bytes, or #xx-escaped thrice that)


class RefusedUpload(ValueError):
    """An upload that is not stored; the message says why, for the person who sent it."""


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "image" or "pdf"
    format: str  # Pillow's format name, or "PDF"
    ext: str
    content_type: str


def sniff(data: bytes, max_pixels: int) -> tuple[Sniffed, Image.Image | None]:
    """What `data` is, with the decoded image for images; `RefusedUpload` for anything else."""
    if not data:
        raise RefusedUpload("the file is empty")
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        raise RefusedUpload("SVG files are not accepted: an SVG can carry scripts that would run "
                            "on this site. Export it as PNG or WebP")
    if data.startswith(b"%PDF-"):
        check_pdf(data)
        return Sniffed("pdf", "PDF", "pdf", "application/pdf"), None
    return _image(data, max_pixels)


def _image(data: bytes, max_pixels: int) -> tuple[Sniffed, Image.Image]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
            frames = getattr(image, "n_frames", 1)
            if image.width * image.height * frames > max_pixels:
                raise RefusedUpload(
                    f"the image is {image.width}×{image.height} pixels"
                    f"{f' × {frames} frames' if frames > 1 else ''}; at most "
                    f"{max_pixels / 1e6:g} megapixels are accepted")
            image.load()
    except RefusedUpload:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RefusedUpload(f"the image has too many pixels; at most {max_pixels / 1e6:g} "
                            "megapixels are accepted") from None
    except Exception:  # Pillow raises many kinds for bytes that are not an image it knows
        raise RefusedUpload("the file is not a JPEG, PNG, GIF, WebP image or PDF (judged by its "
                            "content, not its name)") from None
    if image.format not in IMAGE_FORMATS:
        raise RefusedUpload(f"{image.format} images are not accepted")
    ext, content_type = IMAGE_FORMATS[image.format]
    return Sniffed("image", image.format, ext, content_type), image


def _names(data: bytes) -> set[bytes]:
    """PDF names in `data`, `#xx` escapes decoded (`/J#61vaScript` is `/JavaScript`)."""
    found = set()
    for match in PDF_NAME.finditer(data):
        raw = match.group(1)
        if b"#" in raw:
            raw = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)
        found.add(raw)
    return found


def check_pdf(data: bytes) -> None:
    if not PDF_HEADER.match(data):
        raise RefusedUpload("the PDF's header is not one of PDF 1.0-2.0")
    if b"%%EOF" not in data[-1024:]:
        raise RefusedUpload("the PDF is incomplete (no %%EOF at its end)")
    if b"startxref" not in data or not re.search(rb"\d+\s+\d+\s+obj\b", data):
        raise RefusedUpload("the file does not have a PDF's structure")
    names = _names(data)
    budget = PDF_INFLATE_LIMIT
    view = memoryview(data)
    for match in PDF_STREAM_START.finditer(data):
        inside, budget = _inflated_names(view[match.end():], budget)
        if budget < 0:
            raise RefusedUpload("the PDF's compressed streams are too large to be checked")
        names |= inside
    active = sorted(name.decode("latin-1") for name in names & PDF_ACTIVE_NAMES)
    if active:
        raise RefusedUpload("PDFs with scripts, actions or embedded files are not accepted "
                            f"(found /{', /'.join(active)})")


def _inflated_names(data: memoryview, budget: int) -> tuple[set[bytes], int]:
    """The names inside the Flate stream at the start of `data` (none when it is not one),
    read a chunk at a time until zlib reaches its end, and the budget left (negative: the
    stream goes on past it). Only a name's worth of output is kept between chunks."""
    inflater, found, carry = zlib.decompressobj(), set(), b""
    for start in range(0, len(data), PDF_READ_CHUNK):
        pending: bytes | memoryview = data[start:start + PDF_READ_CHUNK]
        while pending:  # a chunk may inflate a thousandfold: a megabyte of output at a time
            try:
                piece = inflater.decompress(pending, min(budget + 1, PDF_OUTPUT_STEP))
            except zlib.error:
                return found, budget
            budget -= len(piece)
            found |= _names(carry + piece)
            carry = piece[-PDF_NAME_MAX:]
            if budget < 0 or inflater.eof:
                return found, budget
            pending = inflater.unconsumed_tail
    return found, budget
