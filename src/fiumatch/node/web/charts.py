"""Bar-chart geometry for the auditor's activity charts, drawn as inline SVG by the templates.

Pure: numbers in, rectangles and lines out (no I/O, no clock). Charts are SVG elements with
presentation attributes, so they need neither JavaScript nor inline styles, and the content
security policy stays ``default-src 'self'``. Every chart is paired with a table of the same
numbers for screen readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bar", "BarChart", "bar_chart"]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    over_budget: bool


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    plot_left: int
    plot_bottom: int
    bars: tuple[Bar, ...]
    budget_y: float | None
    top_value: int
    ticks: tuple[tuple[float, int], ...]


def _nice_top(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    value = max(value, 1)
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def bar_chart(
    values: Sequence[tuple[str, int]],
    budget: int | None,
    *,
    width: int = 640,
    height: int = 200,
) -> BarChart:
    """Bars for ``values`` (label, value), scaled so the tallest bar and the budget line fit;
    a bar above the budget is flagged ``over_budget``."""
    left, right, top, bottom = 56, 8, 22, 28  # room for the axis values and the budget label
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_top(max([v for _, v in values] + [budget or 0]))
    n = max(len(values), 1)
    slot = plot_w / n
    bar_w = max(2.0, slot * 0.7)

    def y_of(v: int) -> float:
        return top + plot_h - plot_h * v / top_value

    bars = tuple(
        Bar(
            x=round(left + i * slot + (slot - bar_w) / 2, 1),
            y=round(y_of(v), 1),
            width=round(bar_w, 1),
            height=round(plot_h * v / top_value, 1),
            label=label,
            value=v,
            over_budget=budget is not None and v > budget,
        )
        for i, (label, v) in enumerate(values)
    )
    ticks = tuple((round(y_of(t), 1), t) for t in (0, top_value // 2, top_value))
    return BarChart(
        width=width,
        height=height,
        plot_left=left,
        plot_bottom=top + plot_h,
        bars=bars,
        budget_y=None if budget is None else round(y_of(budget), 1),
        top_value=top_value,
        ticks=ticks,
    )
