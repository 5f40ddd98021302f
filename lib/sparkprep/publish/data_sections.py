"""report.html's sections about the data itself, each a pure function of report_data.json
(publish/report_data.py) and the manifest: columns (as read, cleaned, transformed), folds (training
vs validation with drift distances), class balance per fold, near-duplicate clusters."""

from __future__ import annotations

import re
from typing import Any

from sparkprep.publish.svg import PALETTE, bars, binned, esc, figure, shares, table
from sparkprep.quality.drift import METRICS

#: Colours of the series: as read, cleaned; training, validation; transformed.
_READ = [PALETTE[0], PALETTE[2]]
_FOLD = [PALETTE[0], PALETTE[1]]
_TRANSFORMED = [PALETTE[4]]
#: The distances a fold's table shows (the page's tooltips give every one).
_SHOWN = ("psi", "js")


def section(ident: str, title: str, body: str) -> str:
    """A titled section the page (and a browser test) finds by its id."""
    return f'<section id="{ident}"><h2>{esc(title)}</h2>{body}</section>'


def _sampled(sampled: int, rows: int, what: str) -> str:
    """Which rows a view shows: all of them, or how many of how many."""
    if sampled >= rows:
        return f"All {rows:,} {what}"
    return f"A uniform sample of {sampled:,} of the {rows:,} {what} (those with the smallest row_id)"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _series_line(hist: dict[str, Any]) -> str:
    """Per series: values, missing, and how many lie beyond the bins (or in `other`)."""
    parts = []
    for name, s in hist["series"].items():
        present = sum(s["counts"]) + s.get("below", 0) + s.get("above", 0) + s.get("other", 0)
        extra = [f"{s['missing']:,} missing"] if s["missing"] else []
        if s.get("below"):
            extra.append(f"{s['below']:,} below {hist['edges'][0]:.4g} (min {s['low']:.4g})")
        if s.get("above"):
            extra.append(f"{s['above']:,} above {hist['edges'][-1]:.4g} (max {s['high']:.4g})")
        if s.get("other"):
            extra.append(f"{s['other']:,} in other values")
        parts.append(f"{esc(name)}: {present:,} values" + (f" ({esc(', '.join(extra))})" if extra else ""))
    return "<p class=\"note\">" + "; ".join(parts) + "</p>"


#: Why a column has no transformed view, by role or kind.
_UNTRANSFORMED = {"label": "the label: a trainer reads its label_index (classes in the manifest's order)",
                  "text length": "text columns reach the trainer as they are",
                  "array length": "the transform scales an array's elements; their lengths stay"}


def _constant(hist: dict[str, Any]) -> str | None:
    """A sentence instead of a histogram whose values are all the same (None: they are not)."""
    if hist["kind"] != "categorical" and hist["low"] is not None and hist["low"] == hist["high"]:
        return f'<p class="note">every value is {hist["low"]:.6g}</p>'
    return None


def _plot(hist: dict[str, Any], colours: list[str]) -> str:
    """The histogram with its counts line."""
    return (_constant(hist) or binned(hist, colours=colours)) + _series_line(hist)


def _transformed(view: dict[str, Any]) -> str:
    hist = view["transformed"]
    if hist is None:
        why = _UNTRANSFORMED.get(view.get("role", ""), _UNTRANSFORMED.get(view["kind"], "no fitted parameters"))
        return figure("after the fitted transform", f'<p class="note">none: {esc(why)}</p>')
    how = (f"; {hist['filled']:,} missing filled" if hist.get("filled") else "") + (
        f"; {esc(hist['encoding'])} encoding, {esc('(unknown)')}: values outside the vocabulary" if "encoding" in hist else "")
    return figure(f"after the fitted transform{how}", _plot(hist, _TRANSFORMED))


def columns_section(data: dict[str, Any], manifest: dict[str, Any]) -> str:
    """Each column as read, after cleaning (shared bins) and after the final transform.

    Args:
        data: report_data.json's content.
        manifest: the run's manifest.
    """
    intro = (f"<p>{_sampled(data['samples']['as_read'], manifest['rows']['input'], 'input rows')}, at three points: "
             "as read (typed, rejected rows included), after cleaning (the rows cleaning accepted, on the same bins, "
             "so what it removed shows in the grey-edged tail bars), and through the final fitted transform. Bar "
             "heights are shares of each series' present values.</p>")
    parts = []
    for name, view in data["columns"].items():
        read = view["read"]
        left = figure("as read vs after cleaning", _plot(read, _READ))
        parts.append(f'<div class="column" id="column-{_slug(name)}"><h3>{esc(name)} <small>{esc(view["kind"])}</small></h3>'
                     f'<div class="row">{left}{_transformed(view)}</div></div>')
    return section("columns", "Columns: as read, after cleaning, after the fitted transform", intro + "".join(parts))


def _over(name: str, value: float | None) -> bool:
    limit = METRICS[name].threshold
    return value is not None and limit is not None and value > limit


def _distance_cell(d: dict[str, Any]) -> str:
    shown = " · ".join(f"{m} {d[m]:.3g}" for m in _SHOWN if d.get(m) is not None)
    every = "; ".join(f"{m} {d[m]:.4g}" for m in METRICS if d.get(m) is not None) + f"; moved most: {d.get('moved_most')}"
    over = any(_over(m, d.get(m)) for m in METRICS)
    return f'<td class="{"over" if over else "ok"}" title="{esc(every)}">{esc(shown)}</td>'


def folds_section(data: dict[str, Any], manifest: dict[str, Any]) -> str:
    """Per fold and feature column: training vs validation side by side, and their distances.

    Args:
        data: report_data.json's content.
        manifest: the run's manifest.
    """
    views, k = data["folds"], manifest["split"]["k"]
    limits = ", ".join(f"{m} {metric.threshold}" for m, metric in METRICS.items() if metric.threshold is not None)
    intro = (f"<p>Training (folds other than k) vs validation (fold k): "
             f"{_sampled(data['samples']['output'], manifest['rows']['output'], 'originals of the output')}, the holdout "
             f"left out. Distances of quality/drift.py with training as the baseline, on the bins drawn (a cell is marked "
             f"where one exceeds its drift threshold: {esc(limits)}; hover for every distance).</p>")
    head = "".join(f"<th>fold {f}</th>" for f in range(k))
    rows = "".join(f"<tr><th>{esc(c)}</th>{''.join(_distance_cell(v['folds'][str(f)]['distances']) for f in range(k))}</tr>"
                   for c, v in views.items())
    key = "".join(f'<span style="color:{c}">■ {name}</span> ' for c, name in zip(_FOLD, ("training", "validation")))
    plots = [f'<p class="note">{key}</p>']
    for column, view in views.items():
        small = _constant(view) or "".join(
            figure(f"fold {f}: psi {view['folds'][str(f)]['distances']['psi']:.3g}",
                   binned({**view, "series": view["folds"][str(f)]["series"]}, 170, 60, _FOLD, key=False))
            for f in range(k))
        plots.append(f'<div class="column" id="folds-{_slug(column)}"><h3>{esc(column)} '
                     f'<small>{esc(view["kind"])}</small></h3><div class="row">{small}</div></div>')
    body = f'{intro}<table class="distances"><tr><th>column</th>{head}</tr>{rows}</table>{"".join(plots)}'
    return section("folds", "Folds: training vs validation", body)


def _summed(per_fold: dict[str, dict[str, int]], folds: list[str], classes: list[str]) -> dict[str, int]:
    return {c: sum(per_fold.get(f, {}).get(c, 0) for f in folds) for c in classes}


def balance_section(manifest: dict[str, Any]) -> str:
    """Per fold: the training portion's classes before and after rebalancing, and validation's.

    Args:
        manifest: the run's manifest (its per-fold, per-class counts).
    """
    counts, classes, k = manifest["counts"], manifest["classes"], manifest["split"]["k"]
    originals = counts["per_fold_per_class"]
    copies, skipped = counts["replicas_per_fold_per_class"], counts.get("undersampled_per_fold_per_class", {})
    rows: dict[str, dict[str, int]] = {}
    for name, held in [("final", None), *[(f"fold {f}", str(f)) for f in range(k)]]:
        train = [str(f) for f in range(k) if str(f) != held]
        before = _summed(originals, train, classes)
        added, left_out = _summed(copies, train, classes), _summed(skipped, train, classes)
        rows[f"{name} training, before"] = before
        rows[f"{name} training, after"] = {c: before[c] + added[c] - left_out[c] for c in classes}
        if held is not None:
            rows[f"{name} validation"] = {c: originals.get(held, {}).get(c, 0) for c in classes}
    rows["holdout (test)"] = {c: originals.get("-1", {}).get(c, 0) for c in classes}
    rebalance = manifest.get("rebalance") or {}
    method = rebalance.get("method", "none")
    intro = (f"<p>Rows per class in what a trainer reads: training portions before and after rebalancing "
             f"({esc(method)}{'' if method == 'none' else ', target ' + esc(rebalance.get('target'))}), and validation "
             f"(originals only). Shares of each bar; hover for counts.</p>")
    return section("balance", "Class balance per fold", intro + shares(rows, classes))


def near_section(data: dict[str, Any]) -> str:
    """What near-duplicate detection found: clusters, their sizes, example pairs.

    Args:
        data: report_data.json's content.
    """
    near = data.get("near_duplicates")
    if near is None:
        return section("near-duplicates", "Near-duplicate clusters", "<p>dedup.near is not configured.</p>")
    kept = {"all": "every row kept, each cluster in one fold", "representative": "one row per cluster kept"}
    summary = table([("text column", near["column"]), ("Jaccard at least", near["threshold"]),
                     ("keep", f"{near['keep']}: {kept.get(near['keep'], '')}"),
                     ("candidate pairs (shared band)", f"{near['candidate_pairs']:,}"),
                     ("pairs at or above the threshold", f"{near['pairs']:,}"), ("clusters", f"{near['clusters']:,}"),
                     ("rows in clusters", f"{near['rows']:,}"),
                     ("largest cluster", max(map(int, near["sizes"]), default=0))])
    sizes = bars("Clusters by size", {f"{s} rows": {"clusters": n} for s, n in near["sizes"].items()},
                 ["clusters"]) if near["sizes"] else ""
    examples = "".join(f"<tr><td>{e['jaccard']:.3f}</td><td>{esc(e['text_a'])}</td><td>{esc(e['text_b'])}</td></tr>"
                       for e in near["examples"])
    pairs = (f'<h3>Example pairs (least and most similar)</h3><table class="pairs"><tr><th>Jaccard</th><th>text</th>'
             f'<th>near-duplicate</th></tr>{examples}</table>') if examples else "<p>No pair at or above the threshold.</p>"
    return section("near-duplicates", "Near-duplicate clusters", summary + sizes + pairs)
