"""Images as stored: re-encoded from their pixels, never the uploaded bytes.

Re-encoding is what makes an image safe to serve: whatever rode along in the file (an appended
PHP or HTML payload, a ZIP, an HTML comment in a JPEG COM segment, EXIF with GPS coordinates,
XMP, text chunks) is not pixels and is not written back. The image is turned upright first
(EXIF orientation), its colours converted to sRGB when it carried an ICC profile, and a fresh
image is built from the pixels alone, so no `info` of the upload can reach an encoder.

Each image is kept at full size in its own format (JPEG stays JPEG; PNG and still GIF become
PNG; WebP stays WebP), the stable URL and the fallback for browsers without WebP, and as WebP
at each of `WIDTHS` smaller than itself, plus its own width when that is below the largest
(never upscaled), for `srcset`. The full-size file is scaled down to `MAX_WIDTH` at most.
Animated GIF and WebP keep their frames, at full size only.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image, ImageCms, ImageOps, ImageSequence

WIDTHS = (320, 640, 1024, 1600)
MAX_WIDTH = 2560  # the full-size file is at most this wide (a 24 MP photo is not for a web page)
FULL_SIZE_FORMAT = {"JPEG": ("JPEG", "jpg", "image/jpeg"), "PNG": ("PNG", "png", "image/png"),
                    "GIF": ("PNG", "png", "image/png"), "WEBP": ("WEBP", "webp", "image/webp")}
ANIMATED_FORMAT = {"GIF": ("GIF", "gif", "image/gif"), "WEBP": ("WEBP", "webp", "image/webp")}
WEBP_QUALITY = 80
JPEG_QUALITY = 85


@dataclass
class Processed:
    """The files to store for one image: the full-size one, then the WebP widths."""
    ext: str
    content_type: str
    width: int
    height: int
    full: bytes
    variants: dict[int, bytes] = field(default_factory=dict)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        options = {"quality": JPEG_QUALITY, **options}  # optimize=True costs 8× the time
    elif fmt == "WEBP":
        options = {"quality": WEBP_QUALITY, "method": 3, **options}
    elif fmt == "PNG":
        options = {"compress_level": 6, **options}
    image.save(out, fmt, **options)
    return out.getvalue()


def _pixels_only(image: Image.Image) -> Image.Image:
    """Upright, sRGB, RGB or RGBA, and a new image holding nothing but the pixels."""
    icc = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image) or image
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info)
    image = image.convert("RGBA" if has_alpha else "RGB")
    if icc:
        try:
            image = ImageCms.profileToProfile(
                image, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
                outputMode=image.mode) or image
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: keep the colours as they are
    clean = Image.new(image.mode, image.size)
    clean.paste(image)
    return clean


def process(image: Image.Image) -> Processed:
    """The files for a decoded (and checked) upload."""
    if getattr(image, "n_frames", 1) > 1 and image.format in ANIMATED_FORMAT:
        return _animated(image)
    fmt, ext, content_type = FULL_SIZE_FORMAT[image.format or "PNG"]
    clean = _pixels_only(image)
    if fmt == "JPEG" and clean.mode == "RGBA":
        clean = clean.convert("RGB")
    if clean.width > MAX_WIDTH:
        clean = _scaled(clean, MAX_WIDTH)
    width, height = clean.size
    result = Processed(ext, content_type, width, height, _encode(clean, fmt))
    targets = [w for w in WIDTHS if w < width] + ([width] if width < WIDTHS[-1] else [])
    source = clean
    for target in sorted(targets or [width], reverse=True):  # each from the next larger one
        source = source if target == source.width else _scaled(source, target)
        result.variants[target] = _encode(source, "WEBP")
    return result


def _scaled(image: Image.Image, width: int) -> Image.Image:
    """`reducing_gap` shrinks by a whole factor first (fast), then resamples with Lanczos."""
    size = (width, max(1, round(image.height * width / image.width)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _animated(image: Image.Image) -> Processed:
    fmt, ext, content_type = ANIMATED_FORMAT[image.format or "GIF"]
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        frames.append(_pixels_only(frame))
        durations.append(int(frame.info.get("duration") or 100))
    first, rest = frames[0], frames[1:]
    data = _encode(first, fmt, save_all=True, append_images=rest, duration=durations,
                   loop=int(image.info.get("loop", 0) or 0), disposal=2) if fmt == "GIF" \
        else _encode(first, fmt, save_all=True, append_images=rest, duration=durations,
                     loop=int(image.info.get("loop", 0) or 0))
    return Processed(ext, content_type, first.width, first.height, data)
