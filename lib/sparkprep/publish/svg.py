"""The report's drawings: inline SVG and HTML tables, no scripts, nothing fetched (the page works offline)."""

from __future__ import annotations

import html
import math
from typing import Any

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
#: The colour of a histogram's tail bins (values beyond its edges) and of `other`.
TAIL = "#B0B0B0"


def esc(value: Any) -> str:
    """`value` as HTML text."""
    return html.escape(str(value))


def legend(names: list[str], y: int = 14) -> str:
    """One line of coloured squares and names, in PALETTE order."""
    spans = "".join(f'<tspan fill="{PALETTE[i % len(PALETTE)]}">■ {esc(k)} </tspan>' for i, k in enumerate(names))
    return f'<text x="4" y="{y}" font-size="11">{spans}</text>'


def figure(caption: str, svg: str) -> str:
    """`svg` under its caption (HTML, escaped by the caller)."""
    return f"<figure><figcaption>{caption}</figcaption>{svg}</figure>"


def table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def bars(title: str, series: dict[str, dict[str, int]], keys: list[str], log_scale: bool = False) -> str:
    """Grouped horizontal bars: one group per series entry, one bar per key."""
    width, bar, gap, left = 640, 14, 10, 140
    peak = max([v for s in series.values() for v in s.values()] or [1]) or 1
    scale = (lambda v: math.log10(1 + v) / math.log10(1 + peak)) if log_scale else (lambda v: v / peak)
    y, parts = 30, []
    for group, values in series.items():
        parts.append(f'<text x="4" y="{y + bar}" font-size="12">{esc(group)}</text>')
        for i, key in enumerate(keys):
            v = values.get(key, 0)
            w = max(1.0, scale(v) * (width - left - 80)) if v else 0
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"><title>{esc(key)}: {v}</title></rect>'
                         f'<text x="{left + w + 4:.1f}" y="{y + bar - 3}" font-size="10">{v}</text>')
            y += bar
        y += gap
    scale_note = " (log scale)" if log_scale else ""
    return figure(esc(title) + scale_note, f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 10}">'
                  f'{legend(keys)}{"".join(parts)}</svg>')


def histogram(title: str, edges: list[float], series: dict[str, list[int]]) -> str:
    """Vertical bars over equal-width bins; several series are overlaid, half transparent."""
    width, height, left, bottom = 640, 160, 50, 24
    # Each series as fractions of its own total, so a baseline and a current batch of different
    # sizes overlay on one scale.
    fractions = {name: [c / (sum(counts) or 1) for c in counts] for name, counts in series.items()}
    peak = max([f for fs in fractions.values() for f in fs] or [1]) or 1
    step = (width - left - 10) / max(len(edges) - 1, 1)
    opacity = 0.55 if len(series) > 1 else 1
    parts = []
    for i, (name, counts) in enumerate(series.items()):
        for b, (c, f) in enumerate(zip(counts, fractions[name])):
            h = f / peak * (height - 20)
            parts.append(f'<rect class="bar" x="{left + b * step:.1f}" y="{height - h:.1f}" width="{max(step - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="{PALETTE[i % len(PALETTE)]}" fill-opacity="{opacity}">'
                         f'<title>{esc(name)} [{edges[b]:.4g}, {edges[b + 1]:.4g}): {c}</title></rect>')
    axis = (f'<text x="{left}" y="{height + 16}" font-size="10">{edges[0]:.4g}</text>'
            f'<text x="{width - 10}" y="{height + 16}" font-size="10" text-anchor="end">{edges[-1]:.4g}</text>'
            f'{legend(list(series)) if len(series) > 1 else ""}')
    return figure(esc(title), f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" '
                  f'width="{width}" height="{height + bottom}">{axis}{"".join(parts)}</svg>')


def _slots(hist: dict[str, Any]) -> list[tuple[str, str]]:
    """(part, label) of each bar slot of a report_data histogram: `counts` for a bin, else the
    series' entry that the slot shows (`below`, `above`, `other`)."""
    if hist["kind"] == "categorical":
        return [("counts", str(v)[:14]) for v in hist["labels"]] + [("other", "(other)")]
    edges = hist["edges"]
    inner = [("counts", f"{edges[i]:.3g}") for i in range(max(len(edges) - 1, 0))]
    return [("below", f"<{edges[0]:.3g}" if edges else "")] + inner + [("above", f">{edges[-1]:.3g}" if edges else "")]


def binned(hist: dict[str, Any], width: int = 420, height: int = 120, colours: list[str] | None = None,
           key: bool = True) -> str:
    """A report_data histogram (publish/report_data.py): per bin, one bar per series side by side,
    each series as fractions of its own present values so that samples of different sizes compare;
    tail bins (values beyond the edges) and `other` as grey-edged bars at the ends, labelled with
    their counts, shown only when some series has values there; the missing values are not drawn
    (captions give them). `key`: a line naming the series' colours above the bars."""
    names = list(hist["series"])
    colours = colours or PALETTE
    slots, counts = _slots(hist), {}
    for name, s in hist["series"].items():
        inner = iter(s["counts"])
        counts[name] = [next(inner) if part == "counts" else s.get(part, 0) for part, _ in slots]
    shown = [i for i, (part, _) in enumerate(slots) if part == "counts" or any(c[i] for c in counts.values())]
    totals = {name: sum(c) or 1 for name, c in counts.items()}
    peak = max([c[i] / totals[n] for n, c in counts.items() for i in shown] or [1]) or 1
    top, bottom, left = 18 if key else 4, 28 if hist["kind"] == "categorical" else 16, 4
    step = min((width - 2 * left) / max(len(shown), 1), 20.0 * len(names))
    bar = max((step - 2) / max(len(names), 1), 1.0)
    parts = []
    for j, i in enumerate(shown):
        part, label = slots[i]
        x0 = left + j * step
        for s, name in enumerate(names):
            n = counts[name][i]
            h = max(n / totals[name] / peak * (height - top), 2.0 if n else 0.0)  # a count is never invisible
            edge = f' stroke="{TAIL}" stroke-width="1"' if part != "counts" else ""
            parts.append(f'<rect class="bar" x="{x0 + s * bar:.1f}" y="{height - h:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}" fill="{colours[s % len(colours)]}"{edge}><title>{esc(name)} {esc(label)}: '
                         f'{n}</title></rect>')
        if part != "counts":
            tallest = max(counts[name][i] / totals[name] for name in names) / peak * (height - top)
            parts.append(f'<text x="{x0:.1f}" y="{height - max(tallest, 2.0) - 2:.1f}" font-size="8">'
                         f'{"/".join(str(counts[name][i]) for name in names)}</text>')
        if hist["kind"] == "categorical" or part != "counts" or j in (0, len(shown) - 1):
            rotate = f' transform="rotate(30 {x0 + 2:.1f} {height + 10})"' if hist["kind"] == "categorical" else ""
            parts.append(f'<text x="{x0 + 2:.1f}" y="{height + 11}" font-size="9"{rotate}>{esc(label)}</text>')
    spans = "".join(f'<tspan fill="{colours[s % len(colours)]}">■ {esc(n)} </tspan>' for s, n in enumerate(names))
    line = f'<text x="4" y="12" font-size="10">{spans}</text>' if key else ""
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom}">'
            f'{line}{"".join(parts)}</svg>')


def shares(rows: dict[str, dict[str, int]], keys: list[str], width: int = 640) -> str:
    """One 100% stacked horizontal bar per row (name -> key -> count), a colour per key, each
    segment labelled with its count where it has room."""
    bar, gap, left = 16, 6, 170
    span = width - left - 10
    y, parts = 24, []
    for name, values in rows.items():
        total = sum(values.get(k, 0) for k in keys) or 1
        x = float(left)
        parts.append(f'<text x="4" y="{y + bar - 4}" font-size="11">{esc(name)}</text>')
        for i, k in enumerate(keys):
            n = values.get(k, 0)
            w = n / total * span
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{PALETTE[i % len(PALETTE)]}">'
                         f'<title>{esc(name)}: {esc(k)} {n:,} ({n / total:.1%})</title></rect>')
            if w > 8 * len(f"{n:,}"):
                parts.append(f'<text x="{x + 3:.1f}" y="{y + bar - 4}" font-size="10" fill="#fff">{n:,}</text>')
            x += w
        y += bar + gap
    return (f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 4}">'
            f'{legend(keys)}{"".join(parts)}</svg>')
