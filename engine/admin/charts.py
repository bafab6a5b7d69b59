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


def _tick(value: float) -> str:
    """An axis value, short: whole numbers from 10 up, one decimal below."""
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


LINE_COLOURS = ("#2451c7", "#1e6b3a", "#8a5a00")  # the admin's accent, "ok" and "warn" inks


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
               title: str, width: int = 600, height: int = 180) -> Markup:
    """Lines over shared x labels (days, say), one per `(name, values)` series, with a legend,
    on one scale that always includes 0 (values may be negative). Series differ in colour
    and, every other one, in dashes, so they can be told apart without colour; the page gives
    the numbers as a table too."""
    if not labels or not series:
        return Markup("")
    values = [v for _, line in series for v in line]
    low, high = min(0.0, *values), max(0.0, *values)
    high = high if high > low else low + 1
    left, right, top, bottom = 34, 10, 24, 22
    step = (width - left - right) / max(1, len(labels) - 1)

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - value) / (high - low)

    parts = [f'<svg class="chart line-chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for value in [0.0, *(v for v in (low, high) if abs(y(v) - y(0.0)) >= 12)]:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" '
                     f'y2="{y(value):.1f}" stroke="#d9dee5"/>'
                     f'<text x="{left - 4}" y="{y(value) + 3:.1f}" text-anchor="end">'
                     f'{_tick(value)}</text>')
    last = len(labels) - 1
    every = max(1, -(-last // max(1, width // 80 - 1)))  # a label about every 80 units
    for index in [*(i for i in range(0, last, every) if last - i >= every * 0.6), last]:
        anchor = "start" if index == 0 else "end" if index == last else "middle"
        parts.append(f'<text x="{left + index * step:.1f}" y="{height - 6}" '
                     f'text-anchor="{anchor}">{escape(labels[index])}</text>')
    for number, (name, line) in enumerate(series):
        stroke = f'stroke="{LINE_COLOURS[number % len(LINE_COLOURS)]}" stroke-width="2"' + \
            (' stroke-dasharray="6 3"' if number % 2 else "")
        points = " ".join(f"{left + i * step:.1f},{y(v):.1f}" for i, v in enumerate(line))
        parts.append(f'<polyline class="series-{number}" points="{points}" fill="none" '
                     f'{stroke}><title>{escape(name)}</title></polyline>')
        key = left + number * 160
        parts.append(f'<line x1="{key}" x2="{key + 20}" y1="9" y2="9" {stroke}/>'
                     f'<text x="{key + 25}" y="12">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
