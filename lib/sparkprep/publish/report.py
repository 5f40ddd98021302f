"""report.html: one self-contained page (inline SVG, no scripts, works offline), a pure function of
files: the manifest, the validate step's stats and verdict (stats.json, when the run validated) and
what the run measured of the data (report_data.json: the sections of publish/data_sections.py)."""

from __future__ import annotations

import html
from typing import Any

from sparkprep.contract import COPIES_COUNTED
from sparkprep.publish.data_sections import balance_section, columns_section, folds_section, near_section, section
from sparkprep.publish.svg import bars, histogram, table


def _quality(quality: dict[str, Any] | None) -> str:
    """Profile and validation: anomalies, null rates, label distribution, histograms, drift overlays."""
    if not quality:
        return ""
    stats, verdict = quality["stats"], quality["validation"]
    cols = stats["columns"]
    anomalies = "".join(f'<li class="{a["severity"]}">{html.escape(a["severity"])}: {html.escape(a["type"])}: '
                        f'{html.escape(a["message"])}</li>' for a in verdict["anomalies"]) or "<li>none</li>"
    distances = table([(c, ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items()))
                        for c, d in verdict["distances"].items()]) if verdict["distances"] else "<p>No baseline.</p>"
    nulls = bars("Null rate (% of rows)", {"null %": {n: round(100 * c["nulls"] / max(stats["rows"], 1), 3) for n, c in cols.items()}},
                  list(cols)) if cols else ""
    labels = [c for c in cols.values() if c["is_label"]]
    label = bars(f"Label distribution ({labels[0]['name']})", {"rows": dict(labels[0]["top"])},
                  [k for k, _ in labels[0]["top"]]) if labels else ""
    hists = "".join(histogram(f"{n} ({c['count']} values, mean {c['mean']:.4g}, std {c['std']:.4g})",
                               c["histogram"]["edges"], {"rows": c["histogram"]["counts"]})
                    for n, c in cols.items() if c["kind"] == "numeric" and c["histogram"])
    overlays = "".join(histogram(f"{n}: baseline vs current", o["edges"], o["series"])
                       for n, o in quality["overlays"].items())
    return (section("validation", f'Validation ({verdict["environment"]})',
                    f'<ul>{anomalies}</ul><h3>Distances to the baseline</h3>{distances}{overlays}')
            + section("profile", f'Profile ({stats["rows"]} rows)', f"{nulls}{label}{hists}"))


def _rebalance(manifest: dict[str, Any]) -> str:
    rebalance, rows = manifest.get("rebalance") or {}, manifest["rows"]
    method = rebalance.get("method", "none")
    if method == "none":
        return "none"
    counted = " (counted in the copies column; the loaders expand them)" if rebalance.get("copies") == COPIES_COUNTED else ""
    done = (f"{rows.get('replicas', 0)} copies added{counted}" if method == "oversample" else
            f"{rows.get('undersampled', 0)} originals left out of training (validation still sees them)")
    return f"{method} to target {rebalance.get('target')}: {done}"


def render_report(manifest: dict[str, Any], quality: dict[str, Any] | None = None,
                  data: dict[str, Any] | None = None) -> str:
    """The human report of one run.

    >>> render_report(json.loads(manifest_text), None, json.loads(report_data_text))

    Args:
        manifest: the run's manifest.
        quality: the validate step's stats, verdict and overlays, if the run validated.
        data: report_data.json's content (publish/report_data.py), if the run measured it.
    """
    rows = manifest["rows"]
    per_fold = {("holdout" if f == "-1" else f"fold {f}"): counts
                for f, counts in manifest["counts"]["per_fold_per_class"].items()}
    reasons = manifest["rejections"]["by_reason"]
    summary = table([("run", manifest["run_id"]), ("created", manifest["created_at"]),
                      ("input rows", rows["input"]), ("rejected", rows["rejected"]),
                      ("duplicates", rows["duplicates"]), ("output rows", rows["output"]),
                      ("rebalance", _rebalance(manifest)),
                      ("folds", manifest["split"]["k"]), ("seed", manifest["seed"]),
                      ("format", manifest["output"]["format"]), ("classes", ", ".join(f"{c} ({n:,})" for c, n in manifest["class_counts"].items()))])
    accounting = bars("Row accounting", {"rows": {"input": rows["input"], "output": rows["output"],
                                                     "duplicates": rows["duplicates"], "rejected": rows["rejected"]}},
                       ["input", "output", "duplicates", "rejected"])
    folds = bars("Rows per fold and class", per_fold, manifest["classes"], log_scale=True)
    rejected = bars("Rejections by reason", {"rejected": reasons}, sorted(reasons)) if reasons else "<p>No rejected rows.</p>"
    by_column: dict[str, dict[str, int]] = {}
    for entry in manifest["rejections"].get("by_column", []):
        by_column.setdefault(entry["column"] or "(whole record)", {})[entry["reason"]] = entry["rows"]
    if by_column:
        rejected += bars("Rejections by column and reason", by_column, sorted(reasons))
    duplicates = manifest.get("duplicates")
    if duplicates:
        conflicts = duplicates["label_conflicts"]
        rejected += bars("Duplicates by kind (rows absorbed)", {"duplicates": duplicates["by_kind"]},
                          list(duplicates["by_kind"]))
        rejected += table([("rows with conflicting labels", conflicts["rows"]), ("conflict policy", conflicts["policy"]),
                            ("split", manifest["split"].get("method", "")),
                            ("group deviation (rows)", manifest["split"].get("group_deviation_rows", "-")),
                            ("groups allow within 1", manifest["split"].get("group_within_one_reachable", "-"))])
    skipped = manifest["quarantine"].get("unreadable_file_bytes", {})
    if skipped:  # their rows are in no count above
        rejected += ("<h3>Input files skipped as unreadable (input.on_unreadable_file: quarantine)</h3>"
                     + table([(uri, f"{size:,} bytes") for uri, size in skipped.items()]))
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in manifest.get("warnings", [])) or "<li>none</li>"
    measured = (columns_section(data, manifest) + folds_section(data, manifest) + balance_section(manifest)
                + near_section(data)) if data else ""
    return _page(manifest["run_id"], f"""<h1>sparkprep report</h1>{summary}
{section("rows", "Rows", accounting + folds + rejected)}
{section("warnings", "Warnings", f"<ul>{warnings}</ul>")}{measured}{_quality(quality)}""")


def render_blocked_report(manifest: dict[str, Any], quality: dict[str, Any]) -> str:
    """The report of a run the quality gate stopped: why, what stays published, then the anomalies
    and plots of the validate step.

    Args:
        manifest: the blocked run's manifest.
        quality: the validate step's stats, verdict and overlays.
    """
    blocked, output = manifest["blocked"], manifest["output"]
    previous = blocked["previous_run_id"]
    summary = table([("run", manifest["run_id"]), ("created", manifest["created_at"]), ("status", "BLOCKED"),
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
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}th,td{{border:1px solid #ccc;padding:2px 8px;text-align:left}}
figure{{margin:1.5em 0}}figcaption{{font-weight:bold;margin-bottom:4px}}
pre{{white-space:pre-wrap}}.row{{display:flex;flex-wrap:wrap;gap:0 16px}}.row figure{{margin:.4em 0}}
.row figcaption{{font-weight:normal;font-size:12px}}.note{{font-size:11px;color:#555;margin:2px 0;max-width:420px}}
td.over{{background:#f6c9c9}}.distances td{{font-size:12px}}.pairs td{{font-size:12px;vertical-align:top}}
h3 small{{font-weight:normal;color:#666}}</style></head>
<body>{body}</body></html>
"""
