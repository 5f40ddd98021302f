"""report.html: one self-contained page (inline SVG, no scripts, works offline) from the manifest."""

from __future__ import annotations

import html
import math
from typing import Any

_PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _bars(title: str, series: dict[str, dict[str, int]], keys: list[str], log_scale: bool = False) -> str:
    """Grouped horizontal bars: one group per series entry, one bar per key."""
    width, bar, gap, left = 640, 14, 10, 140
    peak = max([v for s in series.values() for v in s.values()] or [1]) or 1
    scale = (lambda v: math.log10(1 + v) / math.log10(1 + peak)) if log_scale else (lambda v: v / peak)
    y, parts = 30, []
    for group, values in series.items():
        parts.append(f'<text x="4" y="{y + bar}" font-size="12">{html.escape(group)}</text>')
        for i, key in enumerate(keys):
            v = values.get(key, 0)
            w = max(1.0, scale(v) * (width - left - 80)) if v else 0
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" '
                         f'fill="{_PALETTE[i % len(_PALETTE)]}"><title>{html.escape(key)}: {v}</title></rect>'
                         f'<text x="{left + w + 4:.1f}" y="{y + bar - 3}" font-size="10">{v}</text>')
            y += bar
        y += gap
    legend = "".join(f'<tspan fill="{_PALETTE[i % len(_PALETTE)]}">■ {html.escape(k)} </tspan>'
                     for i, k in enumerate(keys))
    scale_note = " (log scale)" if log_scale else ""
    return (f'<figure><figcaption>{html.escape(title)}{scale_note}</figcaption>'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 10}">'
            f'<text x="4" y="14" font-size="12">{legend}</text>{"".join(parts)}</svg></figure>')


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _histogram(title: str, edges: list[float], series: dict[str, list[int]]) -> str:
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
                         f'height="{h:.1f}" fill="{_PALETTE[i % len(_PALETTE)]}" fill-opacity="{opacity}">'
                         f'<title>{html.escape(name)} [{edges[b]:.4g}, {edges[b + 1]:.4g}): {c}</title></rect>')
    legend = "".join(f'<tspan fill="{_PALETTE[i % len(_PALETTE)]}">■ {html.escape(k)} </tspan>' for i, k in enumerate(series))
    axis = (f'<text x="{left}" y="{height + 16}" font-size="10">{edges[0]:.4g}</text>'
            f'<text x="{width - 10}" y="{height + 16}" font-size="10" text-anchor="end">{edges[-1]:.4g}</text>'
            f'<text x="4" y="14" font-size="11">{legend if len(series) > 1 else ""}</text>')
    return (f'<figure><figcaption>{html.escape(title)}</figcaption><svg class="plot" xmlns="http://www.w3.org/2000/svg" '
            f'width="{width}" height="{height + bottom}">{axis}{"".join(parts)}</svg></figure>')


def _quality(quality: dict[str, Any] | None) -> str:
    """Profile and validation: anomalies, null rates, label distribution, histograms, drift overlays."""
    if not quality:
        return ""
    stats, verdict = quality["stats"], quality["validation"]
    cols = stats["columns"]
    anomalies = "".join(f'<li class="{a["severity"]}">{html.escape(a["severity"])}: {html.escape(a["type"])}: '
                        f'{html.escape(a["message"])}</li>' for a in verdict["anomalies"]) or "<li>none</li>"
    distances = _table([(c, ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items()))
                        for c, d in verdict["distances"].items()]) if verdict["distances"] else "<p>No baseline.</p>"
    nulls = _bars("Null rate (% of rows)", {"null %": {n: round(100 * c["nulls"] / max(stats["rows"], 1), 3) for n, c in cols.items()}},
                  list(cols)) if cols else ""
    labels = [c for c in cols.values() if c["is_label"]]
    label = _bars(f"Label distribution ({labels[0]['name']})", {"rows": dict(labels[0]["top"])},
                  [k for k, _ in labels[0]["top"]]) if labels else ""
    hists = "".join(_histogram(f"{n} ({c['count']} values, mean {c['mean']:.4g}, std {c['std']:.4g})",
                               c["histogram"]["edges"], {"rows": c["histogram"]["counts"]})
                    for n, c in cols.items() if c["kind"] == "numeric" and c["histogram"])
    overlays = "".join(_histogram(f"{n}: baseline vs current", o["edges"], o["series"])
                       for n, o in quality["overlays"].items())
    return (f'<h2>Validation ({html.escape(verdict["environment"])})</h2><ul>{anomalies}</ul>'
            f'<h3>Distances to the baseline</h3>{distances}{overlays}'
            f'<h2>Profile ({stats["rows"]} rows)</h2>{nulls}{label}{hists}')


def _rebalance(manifest: dict[str, Any]) -> str:
    rebalance, rows = manifest.get("rebalance") or {}, manifest["rows"]
    method = rebalance.get("method", "none")
    if method == "none":
        return "none"
    done = (f"{rows.get('replicas', 0)} copies added" if method == "oversample" else
            f"{rows.get('undersampled', 0)} originals left out of training (validation still sees them)")
    return f"{method} to target {rebalance.get('target')}: {done}"


def render_report(manifest: dict[str, Any], quality: dict[str, Any] | None = None) -> str:
    """The human report of one run (`quality`: the validate step's stats, verdict and overlays).

    Args:
        manifest: the run's manifest.
        quality: the validate step's stats, verdict and overlays, if the run validated.
    """
    rows = manifest["rows"]
    per_fold = {("holdout" if f == "-1" else f"fold {f}"): counts
                for f, counts in manifest["counts"]["per_fold_per_class"].items()}
    reasons = manifest["rejections"]["by_reason"]
    summary = _table([("run", manifest["run_id"]), ("created", manifest["created_at"]),
                      ("input rows", rows["input"]), ("rejected", rows["rejected"]),
                      ("duplicates", rows["duplicates"]), ("output rows", rows["output"]),
                      ("rebalance", _rebalance(manifest)),
                      ("folds", manifest["split"]["k"]), ("seed", manifest["seed"]),
                      ("format", manifest["output"]["format"]), ("classes", ", ".join(f"{c} ({n:,})" for c, n in manifest["class_counts"].items()))])
    accounting = _bars("Row accounting", {"rows": {"input": rows["input"], "output": rows["output"],
                                                     "duplicates": rows["duplicates"], "rejected": rows["rejected"]}},
                       ["input", "output", "duplicates", "rejected"])
    folds = _bars("Rows per fold and class", per_fold, manifest["classes"], log_scale=True)
    rejected = _bars("Rejections by reason", {"rejected": reasons}, sorted(reasons)) if reasons else "<p>No rejected rows.</p>"
    by_column: dict[str, dict[str, int]] = {}
    for entry in manifest["rejections"].get("by_column", []):
        by_column.setdefault(entry["column"] or "(whole record)", {})[entry["reason"]] = entry["rows"]
    if by_column:
        rejected += _bars("Rejections by column and reason", by_column, sorted(reasons))
    duplicates = manifest.get("duplicates")
    if duplicates:
        conflicts = duplicates["label_conflicts"]
        rejected += _bars("Duplicates by kind (rows absorbed)", {"duplicates": duplicates["by_kind"]},
                          list(duplicates["by_kind"]))
        rejected += _table([("rows with conflicting labels", conflicts["rows"]), ("conflict policy", conflicts["policy"]),
                            ("split", manifest["split"].get("method", "")),
                            ("group deviation (rows)", manifest["split"].get("group_deviation_rows", "-")),
                            ("groups allow within 1", manifest["split"].get("group_within_one_reachable", "-"))])
    skipped = manifest["quarantine"].get("unreadable_file_bytes", {})
    if skipped:  # their rows are in no count above
        rejected += ("<h3>Input files skipped as unreadable (input.on_unreadable_file: quarantine)</h3>"
                     + _table([(uri, f"{size:,} bytes") for uri, size in skipped.items()]))
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in manifest.get("warnings", [])) or "<li>none</li>"
    return _page(manifest["run_id"], f"""<h1>sparkprep report</h1>{summary}
<h2>Rows</h2>{accounting}{folds}{rejected}
<h2>Warnings</h2><ul>{warnings}</ul>{_quality(quality)}""")


def render_blocked_report(manifest: dict[str, Any], quality: dict[str, Any]) -> str:
    """The report of a run the quality gate stopped: why, what stays published, then the anomalies
    and plots of the validate step.

    Args:
        manifest: the blocked run's manifest.
        quality: the validate step's stats, verdict and overlays.
    """
    blocked, output = manifest["blocked"], manifest["output"]
    previous = blocked["previous_run_id"]
    summary = _table([("run", manifest["run_id"]), ("created", manifest["created_at"]), ("status", "BLOCKED"),
                      ("output", output["path"]), ("published", "nothing"),
                      ("in force at the output", f"run {previous}" if previous else "no dataset"),
                      ("input rows profiled", manifest["stats_summary"]["rows"])])
    return _page(manifest["run_id"], f"""<h1>sparkprep report: run blocked</h1>{summary}
<h2>Why</h2><pre>{html.escape(blocked["message"])}</pre>{_quality(quality)}""")


def render_validation_report(quality: dict[str, Any], title: str) -> str:
    """`sparkprep validate --html`: the anomalies, every distance, baseline-vs-current overlays
    and the batch's profile plots, as one self-contained page.

    Args:
        quality: the stats, verdict and overlays.
        title: what was validated against what.
    """
    return _page(title, f"<h1>sparkprep validate: {html.escape(title)}</h1>{_quality(quality)}")


def _page(run_id: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sparkprep report {html.escape(run_id)}</title>
<style>body{{font-family:sans-serif;max-width:760px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:2px 8px;text-align:left}}
figure{{margin:1.5em 0}}figcaption{{font-weight:bold;margin-bottom:4px}}
pre{{white-space:pre-wrap}}</style></head>
<body>{body}</body></html>
"""
