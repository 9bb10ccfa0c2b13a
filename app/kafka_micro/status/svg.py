"""Line charts as inline SVG, drawn on the server: the page needs no JavaScript."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from html import escape
from typing import Final

from kafka_micro.status.prometheus import Graph

COLOURS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_WIDTH: Final = 560
_HEIGHT: Final = 220
_LEFT: Final = 64
_RIGHT: Final = 12
_TOP: Final = 12
_BOTTOM: Final = 28
_TIME_TICKS: Final = 6
_VALUE_TICKS: Final = 4


def nice_ticks(top: float, count: int = _VALUE_TICKS) -> list[float]:
    """Round tick values from 0 to at least ``top`` (1, 2 or 5 times a power of ten apart)."""
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def format_value(value: float) -> str:
    """Short axis and table labels: 950, 1.5k, 12M."""
    size = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if size < 10 else f"{value:.0f}"


def line_chart(graph: Graph, gap_s: float) -> str:
    """``graph`` as an SVG element; a series is broken where points are ``gap_s`` apart."""
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM
    span = max(graph.end - graph.start, 1.0)
    values = [v for s in graph.series for _t, v in s.points]
    ticks = nice_ticks(max(values, default=0.0))
    top = ticks[-1]

    def x(t: float) -> float:
        return _LEFT + (t - graph.start) / span * plot_w

    def y(v: float) -> float:
        return _TOP + plot_h - v / top * plot_h

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" '
        f'height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        f'aria-label="{escape(graph.title)} in {escape(graph.unit)}">',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for tick in ticks:
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="#e3e3e3"/>'
            f'<text x="{_LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'font-size="11">{format_value(tick)}</text>'
        )
    for index in range(_TIME_TICKS + 1):
        moment = graph.start + span * index / _TIME_TICKS
        label = time.strftime("%H:%M", time.gmtime(moment))
        # The last label ends at the plot's edge instead of running off the picture.
        anchor = "end" if index == _TIME_TICKS else "middle"
        parts.append(
            f'<text x="{x(moment):.1f}" y="{_HEIGHT - 10}" text-anchor="{anchor}" '
            f'font-size="11">{label}</text>'
        )
    for index, series in enumerate(graph.series):
        colour = COLOURS[index % len(COLOURS)]
        for run in _runs(series.points, gap_s):
            if len(run) == 1:
                t, v = run[0]
                parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2" fill="{colour}"/>')
                continue
            coordinates = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
                f'points="{coordinates}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _runs(points: Sequence[tuple[float, float]], gap_s: float) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = []
    for point in points:
        if runs and point[0] - runs[-1][-1][0] <= gap_s:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs
