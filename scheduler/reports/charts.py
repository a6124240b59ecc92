"""Inline SVG bar charts for the HTML report: no scripts, no fonts or files fetched.

Every label and tooltip goes through ``html.escape``. Values may be negative (a job that the
shift made worse); bars then grow down from the zero line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

_WIDTH = 720
_HEIGHT = 300
_LEFT = 72
_RIGHT = 16
_TOP = 52
_BOTTOM = 84  # room for slanted labels
_FLAT_BOTTOM = 36  # level labels need one line
_LABEL_CHARS = 16
_ROTATED_LABEL_CHARS = 12
_MAX_BAR_W = 56.0
# A chart is as wide as its categories need (a group of bars per 150 units), between these:
# one bar does not sit alone in a 720-wide frame.
_MIN_WIDTH = 380
_GROUP_W = 150
_ROTATE_OVER = 8


@dataclass(frozen=True, slots=True)
class BarSeries:
    """One series of bars: one value per category, drawn in ``fill`` (``negative_fill`` < 0)."""

    label: str
    values: tuple[float, ...]
    fill: str
    negative_fill: str | None = None


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]`` with about ``count`` steps of 1, 2, 2.5 or 5 x 10^k.

    ``lo < hi`` is required (raises ValueError otherwise).
    """
    if not lo < hi:
        raise ValueError(f"need lo < hi, got {lo}, {hi}")
    raw = (hi - lo) / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw)
    first = math.floor(lo / step)
    last = math.ceil(hi / step)
    return [k * step for k in range(first, last + 1)]


def compact(value: float) -> str:
    """A short axis label: ``1.5k``, ``2M``, ``0.25``."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def _short(label: str, chars: int) -> str:
    if len(label) <= chars:
        return label
    return label[: chars - 1] + "\N{HORIZONTAL ELLIPSIS}"


def chart_width(categories: int) -> int:
    """The viewBox width for ``categories`` groups of bars."""
    return min(_WIDTH, max(_MIN_WIDTH, _LEFT + _RIGHT + categories * _GROUP_W))


def _axis(ticks: Sequence[float], y_of: _Scale, width: int) -> list[str]:
    parts = []
    for tick in ticks:
        y = y_of(tick)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{width - _RIGHT}" y2="{y:.1f}" '
            f'class="{"zero" if tick == 0 else "grid"}"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(compact(tick))}</text>"
        )
    return parts


def _legend(series: Sequence[BarSeries]) -> list[str]:
    parts = []
    x = _LEFT
    for s in series:
        parts.append(
            f'<rect x="{x}" y="{_TOP - 22}" width="12" height="12" fill="{escape(s.fill)}"/>'
            f'<text x="{x + 16}" y="{_TOP - 12}">{escape(s.label)}</text>'
        )
        x += 30 + 8 * len(s.label)
    return parts


class _Scale:
    """Maps a value onto the plot's y pixel coordinate."""

    def __init__(self, lo: float, hi: float, bottom: int) -> None:
        self.lo, self.hi = lo, hi
        self.plot_h = _HEIGHT - _TOP - bottom

    def __call__(self, value: float) -> float:
        return _TOP + (self.hi - value) / (self.hi - self.lo) * self.plot_h


def _category_labels(categories: Sequence[str], group_w: float, bottom: int) -> list[str]:
    # Many categories: labels slant so they need not overlap, and are cut shorter to fit.
    rotate = len(categories) > _ROTATE_OVER
    chars = _ROTATED_LABEL_CHARS if rotate else _LABEL_CHARS
    base_y = _HEIGHT - bottom + (14 if rotate else 20)
    parts = []
    for i, category in enumerate(categories):
        x = _LEFT + (i + 0.5) * group_w
        attrs = (
            f'text-anchor="end" transform="rotate(-35 {x:.1f} {base_y})"'
            if rotate
            else 'text-anchor="middle"'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{base_y}" {attrs}><title>{escape(category)}</title>'
            f"{escape(_short(category, chars))}</text>"
        )
    return parts


def _bars(
    categories: Sequence[str], series: Sequence[BarSeries], y_of: _Scale, unit: str, width: int
) -> list[str]:
    group_w = (width - _LEFT - _RIGHT) / len(categories)
    bar_w = min(group_w * 0.8 / len(series), _MAX_BAR_W)
    pad_w = (group_w - bar_w * len(series)) / 2
    zero_y = y_of(0.0)
    parts = []
    for i, category in enumerate(categories):
        for j, s in enumerate(series):
            value = s.values[i]
            fill = s.negative_fill if value < 0 and s.negative_fill else s.fill
            x = _LEFT + i * group_w + pad_w + j * bar_w
            top = min(y_of(value), zero_y)
            tip = f"{category} \N{EM DASH} {s.label}: {value:,.3f} {unit}"
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar_w:.1f}" '
                f'height="{abs(y_of(value) - zero_y):.1f}" fill="{escape(fill)}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    return parts


def bar_chart_svg(
    *, title: str, categories: Sequence[str], series: Sequence[BarSeries], unit: str
) -> str:
    """A grouped bar chart as one ``<svg>`` element, with a legend, a y axis in ``unit`` and a
    tooltip (``<title>``) holding each bar's exact value.

    Every series must have one value per category (raises ValueError otherwise).
    """
    if any(len(s.values) != len(categories) for s in series):
        raise ValueError("every series needs one value per category")
    width = chart_width(len(categories))
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {_HEIGHT}" '
        f'width="{width}" height="{_HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" class="chart">'
        f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" class="title">'
        f"{escape(title)}</text>"
    )
    values = [v for s in series for v in s.values]
    if not categories or not series:
        return head + (
            f'<text x="{width / 2:.0f}" y="{_HEIGHT / 2:.0f}" text-anchor="middle">'
            "no data</text></svg>"
        )
    lo, hi = min(0.0, *values), max(0.0, *values)
    ticks = nice_ticks(lo, hi) if hi > lo else [0.0, 1.0]
    bottom = _BOTTOM if len(categories) > _ROTATE_OVER else _FLAT_BOTTOM
    y_of = _Scale(ticks[0], ticks[-1], bottom)
    group_w = (width - _LEFT - _RIGHT) / len(categories)
    body = [
        *_axis(ticks, y_of, width),
        *_bars(categories, series, y_of, unit, width),
        *_category_labels(categories, group_w, bottom),
        *_legend(series),
        f'<text x="16" y="{_TOP + y_of.plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_TOP + y_of.plot_h / 2:.0f})">{escape(unit)}</text>',
    ]
    return head + "".join(body) + "</svg>"
