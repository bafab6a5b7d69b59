"""Small charts drawn on the server as inline SVG: no JavaScript, no CDN, readable by screen
readers (each chart has a title and a data table alternative in the page)."""
from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape


def bar_chart(points: Sequence[tuple[str, float]], title: str, width: int = 900,
              height: int = 160) -> Markup:
    """Vertical bars with their labels under them (labels thinned out when crowded)."""
    if not points:
        return Markup("")
    top = max(value for _, value in points) or 1
    pad_bottom, pad_top = 22, 16
    slot = width / len(points)
    bar = max(2.0, slot * 0.7)
    every = max(1, len(points) // 8)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for index, (label, value) in enumerate(points):
        h = (height - pad_bottom - pad_top) * (value / top)
        x = index * slot + (slot - bar) / 2
        y = height - pad_bottom - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" rx="2">'
                     f'<title>{escape(label)}: {value:g}</title></rect>')
        if index % every == 0:
            middle = min(max(x + bar / 2, 18.0), width - 18.0)  # whole labels at both ends
            parts.append(f'<text x="{middle:.1f}" y="{height - 6}" text-anchor="middle">'
                         f'{escape(label)}</text>')
    parts.append(f'<text x="2" y="11" class="max">{top:g}</text></svg>')
    return Markup("".join(parts))
