"""Plots as inline SVG strings: no plotting library, no JavaScript, no CDN, so a report works offline."""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
CHAR_W, LABEL_H = 6.2, 12  # approximate size of an 11 px label character / line, to keep labels apart
INFEASIBLE = "#d62728"
ORDER_COLOURS = ("#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c")  # light to dark: earlier to later


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    group: str
    highlight: bool = False  # on the Pareto frontier
    pick: bool = False  # the recommended candidate: drawn as a star and always labelled


def _ticks(low: float, high: float, count: int = 5, log: bool = False) -> list[float]:
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        return [10.0 ** e for e in range(first, last + 1)]
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    start = math.floor(low / step) * step
    return [round(start + i * step, 10) for i in range(int((high - start) / step) + 2)]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def colours_for(groups: list[str]) -> dict[str, str]:
    """One colour per group, the same in every plot of a report."""
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(sorted(set(groups)))}


def _place_labels(points: list[tuple[float, float, str, bool]], box: tuple[float, float, float, float]) -> list[str]:
    """Text elements for point labels, each put right, left, above or below its point where it overlaps
    neither another label nor a point; a label that fits nowhere is left to the point's tooltip."""
    left, top, right, bottom = box
    taken: list[tuple[float, float, float, float]] = [(x - 5, y - 5, x + 5, y + 5) for x, y, _, _ in points]
    placed = []
    for x, y, text, bold in sorted(points, key=lambda p: not p[3]):  # picks first
        w = len(text) * CHAR_W * (1.1 if bold else 1)
        centred = min(max(x - w / 2, left + 2), right - w - 2)  # above/below, slid inside the plot
        for x0, ty in ((x + 8, y + 4), (x - 8 - w, y + 4), (centred, y - 9), (centred, y + 16)):
            rect = (x0, ty - LABEL_H + 2, x0 + w, ty + 2)
            inside = rect[0] >= left and rect[2] <= right and rect[1] >= top and rect[3] <= bottom
            if inside and not any(rect[0] < o[2] and o[0] < rect[2] and rect[1] < o[3] and o[1] < rect[3]
                                  for o in taken):
                taken.append(rect)
                placed.append(f'<text x="{x0:.1f}" y="{ty:.1f}" class="{"pick" if bold else "point"}">'
                              f'{escape(text)}</text>')
                break
    return placed


def scatter(points: list[Point], title: str, x_label: str, y_label: str, log_x: bool = False,
            width: int = 640, height: int = 380, colours: dict[str, str] | None = None,
            x_max: float | None = None, y_min: float | None = None) -> str:
    """Scatter plot, one colour per group; frontier points are ringed and joined by a dashed line per group.

    x_max / y_min are budget limits: drawn as dashed lines with the region beyond them shaded as infeasible.
    """
    if not points:
        return f'<p class="empty">{escape(title)}: no data</p>'
    left, right, top, bottom = 60, 150, 30, 45
    xs = [p.x for p in points] + ([x_max * 1.15] if x_max else [])  # keep the limit (and past it) in view
    ys = [p.y for p in points] + ([y_min] if y_min is not None else [])
    log_x = log_x and min(xs) > 0 and max(xs) / min(xs) > 20
    x_ticks = _ticks(min(xs), max(xs), log=log_x)
    y_pad = (max(ys) - min(ys)) * 0.08 or 0.01
    y_ticks = _ticks(min(ys) - y_pad, max(ys) + y_pad)
    x0, x1 = x_ticks[0], x_ticks[-1]
    if not log_x:
        x0, x1 = min(x0, min(xs)), max(x1, max(xs))
    y0, y1 = y_ticks[0], y_ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(value: float) -> float:
        if log_x:
            return left + plot_w * (math.log10(value) - math.log10(x0)) / (math.log10(x1) - math.log10(x0))
        return left + plot_w * (value - x0) / ((x1 - x0) or 1)

    def sy(value: float) -> float:
        return top + plot_h * (1 - (value - y0) / ((y1 - y0) or 1))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}" class="plot">',
             f'<text x="{left}" y="18" class="title">{escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for tick in x_ticks:
        if x0 <= tick <= x1:
            x = sx(tick)
            parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#eee"/>'
                         f'<text x="{x:.1f}" y="{top + plot_h + 15}" text-anchor="middle">{_fmt(tick)}</text>')
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">{escape(x_label)}'
                 f'{" (log)" if log_x else ""}</text>')
    parts.append(f'<text transform="translate(14 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
                 f'{escape(y_label)}</text>')
    if x_max is not None:
        parts.append(f'<rect x="{sx(x_max):.1f}" y="{top}" width="{left + plot_w - sx(x_max):.1f}" '
                     f'height="{plot_h}" fill="{INFEASIBLE}" fill-opacity="0.08"/>'
                     f'<line x1="{sx(x_max):.1f}" y1="{top}" x2="{sx(x_max):.1f}" y2="{top + plot_h}" '
                     f'stroke="{INFEASIBLE}" stroke-dasharray="6 3"/>'
                     f'<text x="{sx(x_max) + 4:.1f}" y="{top + 12}" class="limit">limit {_fmt(x_max)}</text>')
    if y_min is not None:
        parts.append(f'<rect x="{left}" y="{sy(y_min):.1f}" width="{plot_w}" height="{top + plot_h - sy(y_min):.1f}" '
                     f'fill="{INFEASIBLE}" fill-opacity="0.08"/>'
                     f'<line x1="{left}" y1="{sy(y_min):.1f}" x2="{left + plot_w}" y2="{sy(y_min):.1f}" '
                     f'stroke="{INFEASIBLE}" stroke-dasharray="6 3"/>'
                     f'<text x="{left + 4}" y="{sy(y_min) - 4:.1f}" class="limit">minimum {_fmt(y_min)}</text>')
    groups = sorted({p.group for p in points})
    colour = {**colours_for(groups), **(colours or {})}
    frontier = [p for p in points if p.highlight]
    for group in groups:  # one frontier line per group (accuracies of different models do not compare)
        line = sorted((p for p in frontier if p.group == group), key=lambda p: p.x)
        if len(line) > 1:
            path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in line)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour[group]}" stroke-dasharray="4 3"/>')
    for p in points:
        tip = f"<title>{escape(p.label)}: {_fmt(p.x)} / {_fmt(p.y)}</title>"
        if p.pick:
            parts.append(f'<path d="{_star(sx(p.x), sy(p.y), 9)}" fill="{colour[p.group]}" stroke="#000" '
                         f'stroke-width="1.5" class="pick">{tip}</path>')
            continue
        ring = ' stroke="#000" stroke-width="2"' if p.highlight else ""
        parts.append(f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="{5 if p.highlight else 4}" '
                     f'fill="{colour[p.group]}" fill-opacity="0.8"{ring}>{tip}</circle>')
    parts += _place_labels([(sx(p.x), sy(p.y), ("pick: " if p.pick else "") + p.label, p.pick) for p in points],
                           (left, top, left + plot_w, top + plot_h))
    for i, group in enumerate(groups):
        y = top + 12 + i * 16
        parts.append(f'<circle cx="{left + plot_w + 14}" cy="{y - 4}" r="5" fill="{colour[group]}"/>'
                     f'<text x="{left + plot_w + 24}" y="{y}">{escape(group)}</text>')
    y = top + 12 + len(groups) * 16
    if frontier:
        parts.append(f'<circle cx="{left + plot_w + 14}" cy="{y - 4}" r="5" fill="#fff" stroke="#000" '
                     f'stroke-width="2"/><text x="{left + plot_w + 24}" y="{y}">Pareto frontier</text>')
        y += 16
    if any(p.pick for p in points):
        parts.append(f'<path d="{_star(left + plot_w + 14, y - 4, 7)}" fill="#fff" stroke="#000"/>'
                     f'<text x="{left + plot_w + 24}" y="{y}">recommended</text>')
        y += 16
    if x_max is not None or y_min is not None:
        parts.append(f'<rect x="{left + plot_w + 8}" y="{y - 10}" width="12" height="12" fill="{INFEASIBLE}" '
                     f'fill-opacity="0.15" stroke="{INFEASIBLE}" stroke-dasharray="3 2"/>'
                     f'<text x="{left + plot_w + 24}" y="{y}">outside the budget</text>')
    parts.append("</svg>")
    return "".join(parts)


def _star(cx: float, cy: float, r: float) -> str:
    """SVG path of a five-pointed star (the recommended pick stands out from the circles)."""
    corners = []
    for i in range(10):
        radius = r if i % 2 == 0 else r * 0.45
        angle = math.pi / 2 + i * math.pi / 5
        corners.append(f"{cx + radius * math.cos(angle):.1f},{cy - radius * math.sin(angle):.1f}")
    return "M" + " L".join(corners) + " Z"


def bars(items: list[tuple[str, float]], title: str, unit: str, width: int = 640) -> str:
    """Horizontal bar chart (one bar per label), e.g. model size or peak memory per candidate."""
    if not items:
        return f'<p class="empty">{escape(title)}: no data</p>'
    label_w, row_h, top = 260, 18, 30
    height = top + row_h * len(items) + 10
    high = max(v for _, v in items) or 1
    plot_w = width - label_w - 70
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(title)}" class="plot">',
             f'<text x="4" y="18" class="title">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = top + i * row_h
        bar = plot_w * value / high
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(label[:42])}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{max(bar, 1):.1f}" height="{row_h - 5}" '
                     f'fill="{PALETTE[0]}"><title>{escape(label)}: {_fmt(value)} {escape(unit)}</title></rect>'
                     f'<text x="{label_w + bar + 4:.1f}" y="{y + 12}">{_fmt(value)} {escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)
