"""The media library's one table: an uploaded image or PDF and what is known about it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import UTCDateTime, db, utcnow

KINDS = ("image", "pdf")


class MediaItem(db.Model):
    """One upload. `name` is generated (random hex): every stored file is named from it
    (`<name>.<ext>` at full size, `<name>-<width>.webp` for each width in `widths`), so nothing
    a person typed ever becomes part of a path. `original_name` is only text to show."""

    __tablename__ = "media_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    ext: Mapped[str] = mapped_column(String(5))  # of the full-size file: jpg, png, gif, webp, pdf
    content_type: Mapped[str] = mapped_column(String(50))
    original_name: Mapped[str] = mapped_column(String(255), default="")
    title: Mapped[str] = mapped_column(String(300), default="")
    alt_text: Mapped[str] = mapped_column(String(500), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)  # bytes of the full-size file
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    widths: Mapped[list[int]] = mapped_column(JSON, default=list)  # of the WebP variants
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.ext}"

    @property
    def url(self) -> str:
        """The stable public address of the full-size file (what pickers put in fields)."""
        return f"/media/{self.filename}"

    def variant_url(self, width: int) -> str:
        return f"/media/{self.name}-{width}.webp"

    @property
    def files(self) -> list[str]:
        """Every stored file of this item."""
        return [self.filename, *(f"{self.name}-{w}.webp" for w in self.widths or [])]

    @property
    def thumbnail_url(self) -> str:
        return self.variant_url(self.widths[0]) if self.widths else self.url

    @property
    def srcset(self) -> str:
        return ", ".join(f"{self.variant_url(w)} {w}w" for w in self.widths or [])
