"""Charts as inline SVG: no script, no font file, readable offline and printable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["COLOURS", "stacked_bars"]

# one colour per action, light to dark with severity (readable in grey when printed)
COLOURS: Mapping[str, str] = {
    "allow": "#b9d7a8",
    "review": "#f2c14e",
    "hold": "#e07a3f",
    "interrupt": "#b22b2b",
}
_WIDTH, _HEIGHT, _LEFT, _BOTTOM, _TOP = 860, 260, 64, 48, 16


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top``."""
    if top <= 0:
        return 1.0
    step = 10.0 ** (len(str(int(top))) - 1)
    for factor in (1.0, 2.0, 2.5, 5.0):
        if factor * step >= top:
            return factor * step
    return 10.0 * step


def _label(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def stacked_bars(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], *, unit: str = ""
) -> str:
    """One stacked bar per label (a day), one segment per series (an action), with axes and a legend."""
    plot_w, plot_h = _WIDTH - _LEFT - 16, _HEIGHT - _TOP - _BOTTOM
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = _nice(max(totals, default=0))
    slot = plot_w / max(len(labels), 1)
    bar = min(max(slot * 0.7, 1.0), 48.0)
    parts = [
        (
            f'<svg class="chart" role="img" aria-label="{escape(title)}" '
            f'viewBox="0 0 {_WIDTH} {_HEIGHT + 24}" width="{_WIDTH}" height="{_HEIGHT + 24}" '
            'xmlns="http://www.w3.org/2000/svg">'
        ),
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(5):
        value = top * tick / 4
        y = _TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_label(value)}</text>'
        )
    every = max(1, len(labels) // 12)  # at most a dozen day labels under the axis
    for i, name in enumerate(labels):
        x = _LEFT + slot * i + (slot - bar) / 2
        y = _TOP + plot_h
        for action, values in series.items():
            value = values[i]
            if value <= 0:
                continue
            height = plot_h * value / top
            y -= height
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{max(height, 0.5):.1f}" fill="{COLOURS.get(action, "#888")}">'
                f"<title>{escape(name)} {escape(action)}: {value:,.2f}{escape(unit)}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{_TOP + plot_h + 16}" class="axis" text-anchor="middle">'
                f"{escape(name[5:] if len(name) == 10 else name)}</text>"
            )
    legend_x = _LEFT
    for action in series:
        colour = COLOURS.get(action, "#888")
        parts.append(
            f'<rect x="{legend_x}" y="{_HEIGHT + 4}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{legend_x + 16}" y="{_HEIGHT + 14}" class="axis">{escape(action)}</text>'
        )
        legend_x += 100
    parts.append("</svg>")
    return "".join(parts)
