import math
from pathlib import Path

import numpy as np
import pytest

from sparkprep.publish.manifest import RowCounts, class_priors, class_weights
from sparkprep.errors import ContractError
from sparkprep.stages.normalise.fit import Moments, measure_groups
from sparkprep.stages.split import training_folds


def _moments(values):
    arr = np.asarray(values, dtype=float)
    return Moments(len(arr), float(arr.mean()), float(((arr - arr.mean()) ** 2).sum()))


def test_merged_moments_equal_the_moments_of_the_union():
    a, b = [1.0, 2.0, 4.0], [10.0, -3.0]
    merged = _moments(a).merge(_moments(b)).to_dict()
    assert merged["count"] == 5
    assert merged["mean"] == pytest.approx(np.mean(a + b))
    assert merged["std"] == pytest.approx(np.std(a + b))  # population std, as scikit-learn


def test_constant_column_gets_unit_std():
    assert _moments([3.0, 3.0]).to_dict()["std"] == 1.0


def test_training_folds_exclude_the_fold_and_the_holdout():
    assert training_folds(4, 1) == [0, 2, 3]
    assert training_folds(4, None) == [0, 1, 2, 3]


def test_fold_statistics_never_see_their_fold_or_the_holdout(spark):
    # fold -1: x=100 (holdout); fold 0: x=1, 3; fold 1: x=5; fold 2: x=7, null; replica row ignored.
    df = spark.createDataFrame(
        [(-1, 0, 0, 100.0), (0, 0, 0, 1.0), (0, 1, 0, 3.0), (1, 1, 0, 5.0), (2, 0, 0, 7.0),
         (2, 0, 0, None), (1, 1, 1, 1000.0)],
        "fold int, label_index int, replica int, x double")
    groups = measure_groups(df, ["x"])
    fold0 = groups.merged(training_folds(3, 0), ["x"])["x"].to_dict()  # 5, 7
    assert (fold0["count"], fold0["mean"], fold0["std"]) == (2, 6.0, 1.0)
    fold1 = groups.merged(training_folds(3, 1), ["x"])["x"].to_dict()  # 1, 3, 7
    assert fold1["mean"] == pytest.approx(11 / 3)
    assert fold1["std"] == pytest.approx(math.sqrt(((1 - 11 / 3) ** 2 + (3 - 11 / 3) ** 2 + (7 - 11 / 3) ** 2) / 3))
    # originals only: 7 rows minus the replica; per class over folds 1 and 2
    assert sum(groups.rows.values()) == 6
    assert groups.class_counts([1, 2], 2) == [2, 1]


def test_balanced_class_weights_and_priors():
    assert class_weights([90, 9, 1]) == pytest.approx([100 / 270, 100 / 27, 100 / 3])
    assert class_weights([4, 0]) == [0.5, 0.0]
    assert class_priors([3, 1]) == [0.75, 0.25]


def test_row_accounting_law_is_enforced():
    RowCounts(input=10, rejected=2, duplicates=3, output=5).check()
    with pytest.raises(ContractError, match="row accounting broken"):
        RowCounts(input=10, rejected=2, duplicates=3, output=4).check()


# --- transforms (issue 6) -------------------------------------------------------------------------

from dataclasses import replace  # noqa: E402

from pydantic import ValidationError  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_wine  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler  # noqa: E402

from sparkprep.config import ArrayTransform, CategoricalTransform, NumericTransform  # noqa: E402
from sparkprep.stages.normalise.fit import FitSpec, count_categories, fit_transforms  # noqa: E402
from sparkprep.stages.normalise.spark import apply_spark  # noqa: E402
from sparkprep.transform import TransformParams, params_of, transform_document  # noqa: E402

K = 3
SCHEMA = "fold int, replica int, label_index int, a double, b double, c double, cat string, emb array<double>"


def _dataset_rows(x, y):
    """Rows of a real dataset: holdout every 10th row, folds i % K, and a wild copy of every 7th
    original (replica 1, same fold) that must not move any statistic."""
    rows = []
    for i, (features, label) in enumerate(zip(x, y)):
        fold = -1 if i % 10 == 0 else i % K
        a, b, c = (float(v) for v in features[:3])
        row = (fold, 0, int(label), a, b, c, "abcde"[i % 5] if i % 4 else "rare" if i < 40 else None, [a, b])
        rows.append(row)
        if i % 7 == 0 and fold != -1:
            rows.append((fold, 1, int(label), a * 1e6, -b, 1e9, "copy", [1e9, 1e9]))
    return rows


def _fit(spark, rows, spec):
    df = spark.createDataFrame(rows, SCHEMA)
    groups = measure_groups(df, list(spec.numeric), spec)
    return fit_transforms(groups, count_categories(df, list(spec.categorical)), spec, K)


SPEC = FitSpec({"a": NumericTransform(), "b": NumericTransform(method="minmax"),
                "c": NumericTransform(method="robust", impute="median")},
               {"cat": CategoricalTransform(encoding="onehot", min_count=2)},
               {"emb": ArrayTransform()}, {"emb": 2})


@pytest.mark.parametrize("load", [load_breast_cancer, load_wine])
def test_fold_parameters_equal_scikit_learn_fitted_on_the_folds_training_originals(spark, load):
    x, y = load(return_X_y=True)
    final, folds = _fit(spark, _dataset_rows(x, y), SPEC)
    fold_of = np.array([-1 if i % 10 == 0 else i % K for i in range(len(y))])
    for fold, params in [*folds.items(), (None, final)]:
        train = x[(fold_of != fold) & (fold_of != -1)]
        a, b, c = params.numeric
        std = StandardScaler().fit(train[:, :1])  # default settings: centred, population std
        assert (a.center, a.scale, a.count) == (pytest.approx(std.mean_[0], rel=1e-12),
                                                pytest.approx(std.scale_[0], rel=1e-12), len(train))
        mm = MinMaxScaler().fit(train[:, 1:2])
        assert (b.center, b.scale) == (mm.data_min_[0], pytest.approx(mm.data_range_[0], rel=1e-12))
        # Quantiles are exact (of every value here) and a value of the data (numpy's inverted_cdf);
        # RobustScaler interpolates between neighbouring values, hence the tolerance against it.
        q25, q50, q75 = np.quantile(train[:, 2], [0.25, 0.5, 0.75], method="inverted_cdf")
        assert (c.center, c.scale, c.fill) == (q50, pytest.approx(q75 - q25, rel=1e-12), q50)
        robust = RobustScaler().fit(train[:, 2:3])
        assert c.center == pytest.approx(robust.center_[0], rel=0.02)
        assert c.scale == pytest.approx(robust.scale_[0], rel=0.05)
        emb = StandardScaler().fit(train[:, :2])
        assert params.arrays[0].center == pytest.approx(tuple(emb.mean_), rel=1e-12)
        assert params.arrays[0].scale == pytest.approx(tuple(emb.scale_), rel=1e-12)
        # scikit-learn's own transform gives the same numbers as ours
        ours = params.apply_numpy({"a": train[:, 0]})["a"]
        np.testing.assert_allclose(ours, std.transform(train[:, :1])[:, 0], rtol=0, atol=1e-12)


def test_changing_only_fold_k_moves_every_parameter_but_fold_ks(spark):
    x, y = load_wine(return_X_y=True)
    rows = _dataset_rows(x, y)
    changed = [(f, r, lab, a * 3 + 1, b * 5 - 10, c + 100, "zzz" if cat else cat, [e * 2 for e in emb]) if f == 1
               else (f, r, lab, a, b, c, cat, emb) for f, r, lab, a, b, c, cat, emb in rows]
    before_final, before = _fit(spark, rows, SPEC)
    after_final, after = _fit(spark, changed, SPEC)
    # Fold 1's parameters do not move (to rounding: moments are summed around a shift taken from
    # the first rows, which may be fold 1's; the shift conditions the sums, it is not a statistic).
    assert after[1].categorical == before[1].categorical
    for old, new in zip((*before[1].numeric, *before[1].arrays), (*after[1].numeric, *after[1].arrays)):
        numbers = [f for f in ("center", "scale", "fill", "lower", "upper") if hasattr(old, f)]
        flat = [np.ravel([getattr(p, f) for f in numbers]) for p in (old, new)]
        np.testing.assert_allclose(flat[1], flat[0], rtol=1e-12, err_msg=old.column)
    for fold in (0, 2):
        for old, new in zip((*before[fold].numeric, *before[fold].arrays), (*after[fold].numeric, *after[fold].arrays)):
            assert old.center != new.center and old.scale != new.scale, old.column
        assert "zzz" in after[fold].categorical[0].vocabulary and "zzz" not in before[fold].categorical[0].vocabulary
    assert after_final != before_final


def test_vocabulary_by_frequency_with_min_count_and_max_size(spark):
    # training folds of fold 0 are 1 and 2: x 3 (fold 1) + 1 (fold 2), y 2, w 2, v 1; z only in fold 0
    cats = [(0, "z"), (0, "z"), (0, "z"), (1, "x"), (1, "x"), (1, "x"), (1, "y"), (2, "y"), (2, "x"),
            (2, "w"), (2, "w"), (2, "v"), (-1, "h"), (1, None)]
    rows = [(f, 0, 0, 1.0, 1.0, 1.0, c, [1.0, 1.0]) for f, c in cats] + [(1, 1, 0, 1.0, 1.0, 1.0, "copy", [1.0, 1.0])]
    spec = FitSpec(categorical={"cat": CategoricalTransform(min_count=2, max_size=2)})
    final, folds = _fit(spark, rows, spec)
    assert folds[0].categorical[0].vocabulary == ("x", "w")  # x 4, then w and y tie at 2: by value
    assert final.categorical[0].vocabulary == ("x", "z")
    unlimited = replace(spec, categorical={"cat": CategoricalTransform()})
    assert _fit(spark, rows, unlimited)[1][0].categorical[0].vocabulary == ("x", "w", "y", "v")


def _awkward_rows():
    """Training rows plus what serving meets: null, NaN, ±inf, negatives for log1p, unseen categories."""
    values = [(1.0, "a"), (2.0, "b"), (3.0, "a"), (10.0, "c"), (1e6, "a"), (-4.0, "b"), (0.5, "b"), (7.0, "a")]
    rows = [(i % K, 0, 0, v, v, v, c, [v, -v]) for i, (v, c) in enumerate(values)]
    odd = [None, float("nan"), float("inf"), float("-inf"), -0.5, -1e300]
    rows += [(-1, 0, 0, v, v, v, c, [v if v is not None else float("nan"), 1.0])
             for v, c in zip(odd, [None, "never-seen", "", "a", "b", "zz"])]
    return rows


AWKWARD = FitSpec({"a": NumericTransform(log1p=True, impute="median", method="robust", clip=(0.1, 0.9)),
                   "b": NumericTransform(impute="constant", fill_value=-2.0, method="minmax", clip=(0.0, 0.75)),
                   "c": NumericTransform(log1p=True)},
                  {"cat": CategoricalTransform(encoding="onehot")}, {"emb": ArrayTransform(per_element=False)},
                  {"emb": 2})


def test_spark_and_numpy_appliers_agree_and_nothing_becomes_nan(spark):
    rows = _awkward_rows()
    final, folds = _fit(spark, rows, AWKWARD)
    ordered = spark.createDataFrame(rows, SCHEMA).orderBy("fold", "a", "cat")
    raw = ordered.toPandas()
    for params in (final, *folds.values()):
        spark_out = apply_spark(ordered, params).toPandas()
        batch = {"a": raw["a"].to_numpy(dtype=float), "b": raw["b"].to_numpy(dtype=float),
                 "c": raw["c"].to_numpy(dtype=float), "cat": raw["cat"].to_numpy(dtype=object),
                 "emb": np.array(raw["emb"].tolist(), dtype=float)}
        ours = params.apply_numpy(batch)
        for column in ("a", "b", "c"):
            np.testing.assert_allclose(ours[column], spark_out[column].to_numpy(dtype=float), rtol=0, atol=1e-6)
            assert np.isfinite(ours[column]).all(), column
        np.testing.assert_array_equal(ours["cat"], np.array(spark_out["cat"].tolist()))
        np.testing.assert_allclose(ours["emb"], np.array(spark_out["emb"].tolist()), rtol=0, atol=1e-6)
        assert np.isfinite(ours["emb"]).all()
    b = final.numeric[1]
    # constant fill on the raw scale, then clipped into the fitted range: missing b -> (lower - lower) / range
    assert final.apply_numpy({"b": np.array([np.nan])})["b"][0] == pytest.approx((max(-2.0, b.lower) - b.center) / b.scale)
    cat = final.apply_numpy({"cat": np.array(["never-seen", None, "a"], dtype=object)})["cat"]
    assert cat.argmax(axis=1).tolist() == [0, 0, 1 + final.categorical[0].vocabulary.index("a")]


def test_transform_json_round_trips_and_is_versioned(spark):
    final, folds = _fit(spark, _awkward_rows(), AWKWARD)
    import json
    document = json.loads(json.dumps(transform_document(final, folds)))
    assert params_of(document, None) == final and params_of(document, 2) == folds[2]
    assert TransformParams.from_dict(final.to_dict()) == final
    from sparkprep.errors import InputError
    with pytest.raises(InputError, match="format_version"):
        params_of({**document, "format_version": 99}, 0)
    with pytest.raises(InputError, match="no parameters for fold 7"):
        params_of(document, 7)


def test_config_refuses_clip_with_statistics_that_would_need_a_second_pass():
    with pytest.raises(ValidationError, match="second pass"):
        NumericTransform(clip=(0.01, 0.99))  # standard scaling of clipped values
    with pytest.raises(ValidationError, match="IQR"):
        NumericTransform(method="robust", impute="median", clip=(0.3, 0.99))
    assert NumericTransform(method="robust", impute="median", clip=(0.01, 0.99)).clip == (0.01, 0.99)


FIXTURE = Path(__file__).parents[1] / "fixtures" / "transform_awkward.json"


def awkward_fixture(spark) -> dict:
    """transform.json of _awkward_rows, the raw inputs and Spark's outputs for every training set:
    the trainer tests (no Spark there) check the numpy and torch appliers against these numbers."""
    final, folds = _fit(spark, _awkward_rows(), AWKWARD)
    ordered = spark.createDataFrame(_awkward_rows(), SCHEMA).orderBy("fold", "a", "cat")
    raw = ordered.toPandas()
    inputs = {c: [None if v is None else float(v) for v in raw[c]] for c in ("a", "b", "c")}
    inputs["cat"] = [v for v in raw["cat"]]
    inputs["emb"] = [list(map(float, e)) for e in raw["emb"]]
    outputs = {}
    for name, params in [("final", final), *((str(f), p) for f, p in folds.items())]:
        out = apply_spark(ordered, params).toPandas()
        outputs[name] = {c: out[c].tolist() for c in ("a", "b", "c")}
        outputs[name]["cat"] = [list(map(float, row)) for row in out["cat"]]
        outputs[name]["emb"] = [list(map(float, row)) for row in out["emb"]]
    return {"transform": transform_document(final, folds), "inputs": inputs, "spark": outputs}


def _rounded(tree):
    """Floats to 10 significant digits: the fixture pins the numbers, not their last bits."""
    if isinstance(tree, float):
        return f"{tree:.10g}"  # as text, so that NaN equals NaN
    if isinstance(tree, dict):
        return {k: _rounded(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_rounded(v) for v in tree]
    return tree


def test_the_trainers_fixture_is_what_spark_fits_and_applies(spark):
    import json
    assert _rounded(json.loads(json.dumps(awkward_fixture(spark)))) == _rounded(json.loads(FIXTURE.read_text()))


def test_quantiles_of_a_large_output_are_exact_over_a_hash_sample_whatever_the_partitioning(spark):
    from pyspark.sql import functions as F

    from sparkprep.stages.normalise.fit import in_sketch_sample, smallest_training_set

    # 40,000 rows: every 10th in the holdout, folds id % K (K = 3), every 8th a copy, x null in every
    # 50th. Originals in the training sets: ids not ≡ 0 (mod 10) nor ≡ 7 (mod 8); x present unless
    # id ≡ 1 (mod 50).
    ids = F.col("id")
    df = spark.range(40_000, numPartitions=4).select(
        F.xxhash64(ids).alias("row_id"), F.when(ids % 10 == 0, -1).otherwise(ids % K).cast("int").alias("fold"),
        (ids % 8 == 7).cast("int").alias("replica"), (ids % 2).cast("int").alias("label_index"),
        F.when(ids % 50 == 1, None).otherwise(F.sqrt(ids.cast("double"))).alias("x"))
    spec = FitSpec({"x": NumericTransform(method="robust", clip=(0.01, 0.99), impute="median")}, sketch_sample=10_000)
    groups = measure_groups(df, ["x"], spec)
    present = df.where((F.col("replica") == 0) & (F.col("fold") != -1) & F.col("x").isNotNull())
    per_fold = [present.where(F.col("fold") == f).count() for f in range(K)]
    smallest = sum(per_fold) - max(per_fold)  # the fold-k training set that leaves out the largest fold
    rate = 10_000 / smallest
    assert smallest_training_set(groups.moments, "x") == smallest
    assert groups.sample_rates == {"x": rate}
    # The sample is exactly the training originals' present values whose row_id hashes below the rate.
    sampled = present.where(in_sketch_sample(rate)).select("fold", "x").collect()
    folds, values = groups.samples["x"]
    assert sorted(zip(folds.tolist(), values.tolist())) == sorted((r["fold"], r["x"]) for r in sampled)
    assert 0.8 * 10_000 * 35_000 / smallest < len(values) < 1.2 * 10_000 * 35_000 / smallest
    # The same rows are sampled however the data is partitioned.
    assert df.repartition(7).where(in_sketch_sample(0.25)).select("row_id").sort("row_id").collect() == \
        df.where(in_sketch_sample(0.25)).select("row_id").sort("row_id").collect()
    # Each set's quantiles are the sample's own, exactly, and the same on another partitioning
    # (KLL sketches, before, differed from run to run).
    final, folds_params = fit_transforms(groups, {}, spec, K)
    again, again_folds = fit_transforms(measure_groups(df.repartition(7), ["x"], spec), {}, spec, K)
    assert (final, folds_params) == (again, again_folds)
    for name, params in [("final", final), *((str(f), p) for f, p in folds_params.items())]:
        mine = [r["x"] for r in sampled if name == "final" or r["fold"] != int(name)]
        q01, q25, q50, q75, q99 = np.quantile(mine, [0.01, 0.25, 0.5, 0.75, 0.99], method="inverted_cdf")
        x = params.numeric[0]
        assert (x.center, x.scale, x.lower, x.upper) == (q50, q75 - q25, q01, q99)
        # And the median's rank in the whole set is within the sample's error (DKW at 99%) of 0.5.
        train = present if name == "final" else present.where(F.col("fold") != int(name))
        n, below = train.count(), train.where(F.col("x") < x.center).count()
        assert abs(below / n - 0.5) <= math.sqrt(math.log(200) / (2 * n * rate))
    # Without a sample size, or at least as large as the smallest set, every value is taken.
    assert measure_groups(df, ["x"], FitSpec(spec.numeric)).sample_rates == {"x": 1.0}
    assert measure_groups(df, ["x"], FitSpec(spec.numeric, sketch_sample=smallest)).sample_rates == {"x": 1.0}