"""Charts drawn on the server as SVG geometry: no script, so they work under the strict CSP.

Each function turns labelled numbers into shapes in a fixed viewBox (the page scales it to
its width, 360 px included); `templates/backoffice/dashboard/_charts.html` draws them. The
numbers themselves are always in a table next to the chart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH = 420
HEIGHT = 220
LEFT = 70
"""Room for the amounts on the axis."""
RIGHT = 10
TOP = 12
BOTTOM = 44
"""Room for the labels under the bars."""


@dataclass
class Shape:
    x: float
    y: float
    w: float = 0
    h: float = 0
    css: str = ""
    title: str = ""


@dataclass
class Chart:
    kind: str
    """bars, lines or hbars."""
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[Shape] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)
    """(css class, 'x,y x,y ...')."""
    dots: list[Shape] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    """(y, label) on the value axis."""
    labels: list[Shape] = field(default_factory=list)
    """Category labels (x, y, text in title)."""
    legend: list[tuple[str, str]] = field(default_factory=list)
    """(css class, name)."""

    @property
    def axis_left(self) -> int:
        return LEFT

    @property
    def axis_right(self) -> int:
        return self.width - RIGHT

    @property
    def empty(self) -> bool:
        return not (self.bars or self.lines)


def nice_ceiling(value: float) -> float:
    """A round axis top (1, 2, 4, 6 or 8 times a power of ten: its quarters are round too),
    at least `value` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 4, 6, 8, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _ticks(top: float, plot_h: float, fmt: Callable[[float], str]) -> list[tuple[float, str]]:
    return [(TOP + plot_h - plot_h * k / 4, fmt(top * k / 4)) for k in range(5)]


def bars(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    fmt: Callable[[float], str],
    titles: Callable[[int, int, float], str] | None = None,
    width: int = WIDTH,
) -> Chart:
    """Grouped vertical bars: `series` is (css class, name, one value per label; None: no
    bar). `titles(series, label, value)` gives each bar's hover text."""
    chart = Chart(
        kind="bars", title=title, width=width, legend=[(css, name) for css, name, _ in series]
    )
    values = [v for _, _, vs in series for v in vs if v is not None]
    top = nice_ceiling(max(values, default=0))
    plot_w = width - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    chart.ticks = _ticks(top, plot_h, fmt)
    n = max(len(labels), 1)
    slot = plot_w / n
    group = slot * 0.78
    each = group / max(len(series), 1)
    every = max(1, math.ceil(n / (8 * width / WIDTH)))
    for i, label in enumerate(labels):
        x0 = LEFT + slot * i + (slot - group) / 2
        for s, (css, name, vs) in enumerate(series):
            v = vs[i]
            if v is None:
                continue
            h = plot_h * max(v, 0) / top
            text = titles(s, i, v) if titles else f"{label} · {name}: {fmt(v)}"
            chart.bars.append(
                Shape(x0 + each * s, TOP + plot_h - h, max(each - 1, 1), h, css, text)
            )
        if i % every == 0:
            chart.labels.append(
                Shape(LEFT + slot * i + slot / 2, HEIGHT - BOTTOM + 16, title=label)
            )
    return chart


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    fmt: Callable[[float], str],
) -> Chart:
    """Lines through the points of each series (None: a gap)."""
    chart = Chart(kind="lines", title=title, legend=[(css, name) for css, name, _ in series])
    values = [v for _, _, vs in series for v in vs if v is not None]
    top = nice_ceiling(max(values, default=0))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    chart.ticks = _ticks(top, plot_h, fmt)
    n = max(len(labels), 1)
    step = plot_w / n
    every = max(1, math.ceil(n / 6))
    for css, name, vs in series:
        points = []
        for i, v in enumerate(vs):
            if v is None:
                continue
            x = LEFT + step * i + step / 2
            y = TOP + plot_h - plot_h * max(v, 0) / top
            points.append(f"{x:.1f},{y:.1f}")
            chart.dots.append(Shape(x, y, css=css, title=f"{labels[i]} · {name}: {fmt(v)}"))
        if points:
            chart.lines.append((css, " ".join(points)))
    for i, label in enumerate(labels):
        if (n - 1 - i) % every == 0:  # the latest is always named
            chart.labels.append(
                Shape(LEFT + step * i + step / 2, HEIGHT - BOTTOM + 16, title=label)
            )
    return chart


def hbars(
    title: str, labels: Sequence[str], values: Sequence[float], fmt: Callable[[float], str]
) -> Chart:
    """Horizontal bars, one per label (the label written above its bar)."""
    row = 34
    height = max(1, len(labels)) * row + 8
    chart = Chart(kind="hbars", title=title, height=height)
    top = nice_ceiling(max(values, default=0))
    plot_w = WIDTH - 20 - 100
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = 4 + row * i
        w = plot_w * max(v, 0) / top
        chart.labels.append(Shape(10, y + 11, title=label))
        chart.bars.append(Shape(10, y + 15, max(w, 1), 14, "bar-a", f"{label}: {fmt(v)}"))
        chart.dots.append(Shape(10 + w + 6, y + 26, title=fmt(v)))  # the value, after the bar
    return chart
