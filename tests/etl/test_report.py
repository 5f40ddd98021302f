"""report.html's data sections from hand-written samples, transforms and manifests: what
report_data.json holds (publish/report_data.py) and how the page draws it (publish/data_sections.py).
Pure Python: no Spark session."""

import html
import math
import re

import pytest

from sparkprep.publish.report import render_report
from sparkprep.publish.report_data import (REJECTED, SAMPLED_FOLD, UNKNOWN, build_report_data, categorical_bins,
                                           column_views, distances, fold_views, histogram, numeric_bins)
from sparkprep.quality.drift import METRICS
from sparkprep.quality.sample import Roles, Sample
from sparkprep.transform import CategoricalParams, NumericParams, TransformParams

ROLES = Roles(label="label", numeric=("x",), categorical=("c",), text=("t",))


def _sample(**columns) -> Sample:
    (n,) = {len(v) for v in columns.values()}
    return Sample(columns, n)


def test_an_outlier_falls_in_a_tail_and_a_plain_range_has_none():
    plain = [float(v) for v in range(100)]
    bins = numeric_bins(plain)
    assert (bins["edges"][0], bins["edges"][-1], len(bins["edges"])) == (0.0, 99.0, 21)
    counted = histogram(bins, {"s": plain + [1e6, None, math.nan, math.inf]})["series"]["s"]
    assert (sum(counted["counts"]), counted["below"], counted["above"], counted["missing"]) == (100, 0, 1, 3)
    assert (counted["low"], counted["high"]) == (0.0, 1e6)
    # Bins of values with an outlier (below the 99.5% quantile) span the bulk: the outlier is beyond them.
    values = [v % 100 for v in range(1000)] + [1e6]
    wide = numeric_bins(values)
    assert wide["edges"][-1] < 100 and histogram(wide, {"s": values})["series"]["s"]["above"] == 1


def test_lengths_get_whole_number_bins():
    bins = numeric_bins(list(range(81, 109)), "text length")
    assert all(e == int(e) for e in bins["edges"]) and len({b - a for a, b in zip(bins["edges"], bins["edges"][1:])}) == 1
    assert histogram(bins, {"s": list(range(81, 109))})["series"]["s"]["counts"] == [2] * 14


def test_categorical_bins_keep_the_most_frequent_values_and_count_the_rest():
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] + [None] * 2
    bins = categorical_bins(values, top=2)
    assert bins["labels"] == ["a", "b"]  # c ties b, loses on the value
    assert histogram(bins, {"s": values})["series"]["s"] == {"counts": [5, 3], "other": 4, "missing": 2}


def test_distances_are_zero_for_the_same_distribution_and_name_the_bin_that_moved():
    same = histogram(categorical_bins(list("aab")), {"training": list("aabaab"), "validation": list("aab")})
    assert distances(same, "training", "validation")["psi"] == pytest.approx(0)
    moved = histogram(categorical_bins(list("aab")), {"training": list("aab"), "validation": list("bbb")})
    found = distances(moved, "training", "validation")
    # a and b both moved by 2/3; a, gone altogether, moved most for its size.
    assert found["linf"] == pytest.approx(2 / 3) and found["moved_most"] == "a" and found["wasserstein"] is None


def test_columns_show_one_sample_as_read_cleaned_and_transformed():
    x = [1.0, 2.0, 3.0, None, 5000.0]  # the last row is an outlier cleaning rejected
    sample = _sample(x=x, label=["p", "p", "q", "q", "p"], c=["u", "v", "zz", "u", "u"], t=[3, 4, 5, 6, 7],
                     **{REJECTED: [False, False, False, False, True]})
    final = TransformParams("final", numeric=(NumericParams("x", "standard", False, 2.0, 1.0, 2.5, 2.0, 0.5, 3),),
                            categorical=(CategoricalParams("c", "onehot", ("u", "v")),))
    views = column_views(sample, ROLES, final)
    assert list(views) == ["x", "label", "c", "t"]
    read = views["x"]["read"]
    assert read["edges"][-1] == 3.0  # the cleaned values' bins
    assert read["series"]["as read"]["above"] == 1 and read["series"]["cleaned"]["above"] == 0
    assert (read["series"]["as read"]["missing"], read["series"]["cleaned"]["high"]) == (1, 3.0)
    # x through the transform: the null filled (2.0), clipped to [1, 2.5], centred on 2, scaled by 0.5.
    transformed = views["x"]["transformed"]
    assert transformed["filled"] == 1 and (transformed["low"], transformed["high"]) == (-2.0, 1.0)
    assert sum(transformed["series"]["transformed"]["counts"]) == 4
    c = views["c"]["transformed"]
    assert dict(zip(c["labels"], c["series"]["transformed"]["counts"])) == {"u": 2, "v": 1, UNKNOWN: 1}
    assert views["label"]["transformed"] is None and views["t"]["transformed"] is None


K = 5


def _folds_sample(skewed_fold: int | None) -> Sample:
    """Five folds and a holdout, the same values in each fold but `skewed_fold`'s: x shifted by a
    tenth of its range, c 80% a instead of half."""
    folds, x, c = [], [], []
    for fold in range(-1, K):
        for i in range(400):
            folds.append(fold)
            x.append(float(i % 50) + (5.0 if fold == skewed_fold else 0.0))
            c.append(("a" if i % 5 else "b") if fold == skewed_fold else "ab"[i % 2])
    return _sample(x=x, label=["p"] * len(x), c=c, t=[5] * len(x), **{SAMPLED_FOLD: folds})


def test_a_skewed_fold_has_the_largest_distances_and_the_only_ones_over_the_threshold():
    views = fold_views(_folds_sample(skewed_fold=1), ROLES, k=K)
    assert list(views) == ["x", "c", "t"]  # the label's balance is the manifest's
    limit = METRICS["psi"].threshold
    for column in ("x", "c"):
        psi = [views[column]["folds"][str(f)]["distances"]["psi"] for f in range(K)]
        assert psi[1] > limit and all(p < limit for i, p in enumerate(psi) if i != 1), (column, psi)
    training = views["x"]["folds"]["1"]["series"]["training"]
    assert sum(training["counts"]) + training["below"] + training["above"] == 1600  # folds 0, 2-4, not the holdout
    unskewed = fold_views(_folds_sample(skewed_fold=None), ROLES, k=K)
    assert all(unskewed[c]["folds"][str(f)]["distances"]["psi"] == pytest.approx(0) for c in ("x", "c") for f in range(K))


def _manifest(k: int = K) -> dict:
    per_fold = {str(f): {"p": 90, "q": 10} for f in range(-1, k)}
    copies = {str(f): {"p": 0, "q": 80} for f in range(k)}
    return {"run_id": "r1", "created_at": "now", "seed": 1, "classes": ["p", "q"], "class_counts": {"p": 360, "q": 40},
            "rows": {"input": 450, "rejected": 20, "duplicates": 30, "output": 400, "replicas": 240},
            "counts": {"per_fold_per_class": per_fold, "replicas_per_fold_per_class": copies,
                       "undersampled_per_fold_per_class": {str(f): {"p": 0, "q": 0} for f in range(k)}},
            "rejections": {"by_reason": {"out_of_range": 20}, "by_column": []}, "split": {"k": k},
            "output": {"format": "parquet"}, "quarantine": {}, "rebalance": {"method": "oversample", "target": 1.0},
            "warnings": []}


NEAR = {"column": "t", "threshold": 0.8, "keep": "all", "candidate_pairs": 4, "pairs": 3, "clusters": 2, "rows": 5,
        "sizes": {"2": 1, "3": 1}, "examples": [{"a": 1, "b": 2, "jaccard": 0.8125, "text_a": "<b>one</b> text",
                                                 "text_b": "one text!"}]}


@pytest.fixture
def page():
    sample = _folds_sample(skewed_fold=1)
    as_read = Sample({**{k: v for k, v in sample.columns.items() if k != SAMPLED_FOLD},
                      REJECTED: [False] * sample.rows}, sample.rows)
    final = TransformParams("final", numeric=(NumericParams("x", "robust", False, 0.0, -math.inf, math.inf, 25.0, 10.0, 600),))
    data = build_report_data(as_read=as_read, output=sample, roles=ROLES, final=final, k=K, near_duplicates=NEAR)
    return render_report(_manifest(), None, data)


def test_the_page_has_a_section_for_each_view(page):
    for ident in ("rows", "columns", "folds", "balance", "near-duplicates"):
        assert f'<section id="{ident}">' in page
    assert 'id="column-x"' in page and 'id="folds-c"' in page
    assert "<script" not in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_skewed_fold_is_marked_in_the_distance_table(page):
    table = page.split('<table class="distances">')[1].split("</table>")[0]
    rows = dict(re.findall(r"<tr><th>(\w+)</th>(.*?)</tr>", table))
    for column in ("x", "c"):
        cells = re.findall(r'<td class="(\w+)"', rows[column])
        assert cells == ["ok", "over", "ok", "ok", "ok"], (column, cells)


def test_balance_shows_each_training_portion_before_and_after_and_validation(page):
    # fold 0's training portion is folds 1 to 4: 40 q originals, 320 copies added.
    assert "fold 0 training, before: q 40 (10.0%)" in page and "fold 0 training, after: q 360 (50.0%)" in page
    assert "fold 0 validation: q 10 (10.0%)" in page and "holdout (test): p 90" in page
    assert "oversample, target 1.0" in page


def test_near_duplicates_show_clusters_sizes_and_escaped_examples(page):
    near = page.split('<section id="near-duplicates">')[1].split("</section>")[0]
    assert "<th>clusters</th><td>2</td>" in near and "<th>largest cluster</th><td>3</td>" in near
    assert "Clusters by size" in near and "0.812" in near
    assert "&lt;b&gt;one&lt;/b&gt; text" in near and "<b>one</b>" not in near


def test_without_near_dup_or_data_the_page_says_so():
    data = build_report_data(as_read=Sample({"x": [], "label": [], "c": [], "t": [], REJECTED: []}, 0),
                             output=Sample({"x": [], "label": [], "c": [], "t": [], SAMPLED_FOLD: []}, 0), roles=ROLES,
                             final=TransformParams("final"), k=K, near_duplicates=None)
    page = render_report(_manifest(), None, data)
    assert "dedup.near is not configured" in html.unescape(page)
    assert '<section id="columns">' in page and '<section id="folds">' in page
    # An older run's report (no report_data.json): the sections about the data are not there.
    assert '<section id="columns">' not in render_report(_manifest(), None, None)
