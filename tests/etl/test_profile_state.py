"""profile's numpy core on hand-built arrays (no Spark): bucket keys, HyperLogLog error, merges."""

import math

import numpy as np
import pyarrow as pa

from sparkprep.quality import state as profile_state
from sparkprep.quality.profile import add_projected, bucket_value
from sparkprep.quality.kernels import ALPHA, GAMMA, HLL_RSE
from sparkprep.quality.state import (TINY, NumericState, PartialProfile, bucket_codes, bucket_key,
                                     hll_add, hll_estimate)


def keys(values):
    return [bucket_key(int(c)) for c in bucket_codes(np.array(values, dtype=np.float64))]


def test_bucket_keys_by_hand():
    # ln(1.03) / ln(1.01/0.99) = 1.478 -> 2; ln(0.5) / ln γ = -34.66 -> -34; |x| < 1e-12 -> "0";
    # the smallest non-zero bucket is ceil(ln(1e-12) / ln γ) = -1381.
    assert keys([1.0, 1.03, -1.03, 0.5, -0.5, 0.0, -0.0, 1e-13, -9.99e-13, 1e-12, -1e-12]) == [
        "+0", "+2", "-2", "+-34", "--34", "0", "0", "0", "0", "+-1381", "--1381"]
    # Bucket i holds (γ^(i-1), γ^i]: 1.0 closes bucket 0, the next double opens bucket 1.
    assert keys([np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0)]) == ["+1", "+0"]


def test_bucket_value_is_within_alpha_of_every_value_in_its_bucket():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.lognormal(0, 20, 10_000), -rng.lognormal(0, 20, 10_000), [1.7e308, -2.3e-12]])
    rep = np.array([bucket_value(k) for k in keys(x)])
    normal = np.abs(x) >= TINY  # the rest is in the zero bucket
    assert np.all(np.abs(rep - x)[normal] <= ALPHA * np.abs(x[normal]) * (1 + 1e-12))
    assert 0 < (~normal).sum() and np.all(rep[~normal] == 0.0)


def test_hll_is_within_its_error_on_100k_distinct_values_and_ignores_repeats():
    state = NumericState()
    values = np.arange(100_000, dtype=np.float64) * 0.37
    state.add(values, None)
    estimate = hll_estimate(state.registers)
    assert abs(estimate - 100_000) <= 3 * HLL_RSE * 100_000, estimate
    registers = state.registers.copy()
    state.add(values[::-1].copy(), None)  # the same values again, other order
    assert np.array_equal(state.registers, registers)


def test_hll_small_counts_are_near_exact_and_nan_or_signed_zero_is_one_value():
    state = NumericState()
    other_nan = np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)[0]
    values = np.array([np.nan, other_nan, 0.0, -0.0, 1.0, np.inf, -np.inf, 12345.0])
    state.add(values, valid=np.arange(8) < 7)  # the last is a null: its slot's value is ignored
    assert hll_estimate(state.registers) == 5  # nan, 0, 1, inf, -inf
    assert (state.nulls, state.nan, state.inf, state.n, state.mean) == (1, 2, 2, 3, 1 / 3)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The HLL hash of doubles, written with numpy from its definition (-0.0 as 0.0)."""
    z = (x + 0.0).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def test_compiled_fold_equals_the_numpy_formulas_value_by_value():
    # Values of every kind the loop branches on, many exactly on bucket edges (γ^i and near it).
    rng = np.random.default_rng(3)
    edges = GAMMA ** rng.integers(-1300, 1300, 3_000).astype(np.float64)
    x = np.concatenate([rng.normal(0, 1e3, 20_000), rng.lognormal(0, 30, 5_000), -rng.lognormal(0, 30, 5_000),
                        edges, -edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf), [1.0, -1.0],
                        [0.0, -0.0, 5e-13, -1e-12, 1e-12, 1e150, -1.7e150, np.nan, np.inf, -np.inf]])
    rng.shuffle(x)
    valid = rng.random(len(x)) > 0.05
    state = NumericState()
    for lo in range(0, len(x), 7_000):  # several chunks: the window of counts grows
        state.add(x[lo:lo + 7_000], valid[lo:lo + 7_000])
    kept = x[valid]
    finite = kept[np.isfinite(kept)]
    registers = np.zeros_like(state.registers)
    hll_add(registers, _splitmix64(np.where(np.isnan(kept), np.nan, kept)))
    assert np.array_equal(state.registers, registers)
    codes, counts = np.unique(bucket_codes(finite.copy()), return_counts=True)
    assert state.buckets[0].tolist() == codes.tolist() and state.buckets[1].tolist() == counts.tolist()
    assert (state.nulls, state.nan, state.inf, state.n) == (
        int((~valid).sum()), int(np.isnan(kept).sum()), int(np.isinf(kept).sum()), len(finite))
    assert (state.min, state.max) == (finite.min(), finite.max())
    assert math.isclose(state.mean, finite.mean(), rel_tol=1e-12) and math.isclose(state.m2 / state.n, finite.var(), rel_tol=1e-12)
    extremes = np.array([1.7e308, -1.7e308, 2.2e-308])  # the last and first buckets (the moments overflow)
    state = NumericState()
    state.add(extremes, None)
    assert state.buckets[0].tolist() == sorted(bucket_codes(extremes.copy()).tolist())
    assert hll_estimate(np.zeros(1 << profile_state.HLL_P, np.uint8)) == 0


KINDS = ("numeric", "categorical", "text", "array")


def _table(rng, n):
    """The pre-projected layout: [x, array size] per row as one list<double>, then the strings."""
    x = rng.normal(10, 3, n)
    x[::17] = np.nan
    x[::29] = np.inf
    x[::31] = 0.0
    sizes = rng.integers(0, 9, n).astype(np.float64)
    null_x, null_size = np.arange(n) % 13 == 0, np.arange(n) % 5 == 0
    numbers = pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)),
                                       pa.array(np.column_stack([x, sizes]).ravel(),
                                                mask=np.column_stack([null_x, null_size]).ravel()))
    cats = rng.integers(0, 40, n).astype(str).astype(object)
    cats[::7] = None
    texts = ["ab" * int(k) for k in rng.integers(0, 6, n)]
    return pa.table([numbers, pa.array(cats, pa.string()), pa.array(texts)], names=["_numbers", "_s1", "_s2"]), x, ~null_x


def _exact_fields(p):
    num, cat, txt, arr = p.states
    return (p.rows, num.nulls, num.nan, num.inf, num.n, num.min, num.max, num.buckets[0].tolist(),
            num.buckets[1].tolist(), num.registers.tobytes(), cat.nulls, cat.items(), cat.distinct(), cat.exact,
            txt.nulls, txt.lengths[0].tolist(), txt.lengths[1].tolist(), txt.registers.tobytes(),
            arr.nulls, arr.lengths[0].tolist(), arr.lengths[1].tolist())


def _partials(table, cuts):
    parts = []
    for lo, hi in zip((0, *cuts), (*cuts, table.num_rows)):
        p = PartialProfile(KINDS)
        add_projected(p, table.slice(lo, hi - lo))
        parts.append(p)
    return parts


def test_merge_is_independent_of_batches_and_merge_order():
    rng = np.random.default_rng(7)
    table, x, valid = _table(rng, 20_000)
    whole = PartialProfile(KINDS)
    add_projected(whole, table)
    parts = _partials(table, (3, 5_000, 5_001, 12_345))
    left = PartialProfile(KINDS)
    for p in parts:
        left.merge(p)
    parts = _partials(table, (9_999, 17_000))
    tree = parts[2].merge(parts[0]).merge(parts[1])
    expected = _exact_fields(whole)
    assert _exact_fields(left) == expected and _exact_fields(tree) == expected
    for p in (left, tree):
        assert math.isclose(p.states[0].mean, whole.states[0].mean, rel_tol=1e-13)
        assert math.isclose(p.states[0].m2, whole.states[0].m2, rel_tol=1e-12)
    # and the fields are right: pandas-free by hand from the generating rules
    finite = x[valid & np.isfinite(x)]
    num = whole.states[0]
    assert (num.nulls, num.nan, num.inf, num.n) == (int((~valid).sum()), int(np.isnan(x[valid]).sum()),
                                                     int(np.isinf(x[valid]).sum()), len(finite))
    assert math.isclose(num.mean, finite.mean(), rel_tol=1e-12) and math.isclose(num.m2 / num.n, finite.var(), rel_tol=1e-12)
    assert int(num.buckets[1].sum()) == len(finite)
    sizes = whole.states[3]
    assert (sizes.nulls, int(sizes.lengths[1].sum())) == (4_000, 16_000)  # every 5th of 20,000 rows null


def test_categorical_above_the_cap_keeps_the_most_frequent_and_estimates_distinct(monkeypatch):
    monkeypatch.setattr(profile_state, "CATEGORICAL_CAP", 10)
    # "v{i}" occurs 100 - i times, i < 50. In two pieces, each piece keeps its own top 10: v00-v09
    # are whole in the first, so the merged top 10 is still exact here.
    values = [f"v{i:02d}" for i in range(50) for _ in range(100 - i)]
    states = []
    for pieces in ([values], [values[:1000], values[1000:]]):
        state = profile_state.CategoricalState()
        for piece in pieces:
            part = profile_state.CategoricalState()
            part.add(pa.array(piece))
            part.compact()
            state.merge(part)
        states.append(state)
    for state in states:
        assert not state.exact
        assert abs(state.distinct() - 50) <= 1
        assert state.items() == [(f"v{i:02d}", 100 - i) for i in range(10)]
    small = profile_state.CategoricalState()
    small.add(pa.array(["a", "b", None, "a"]))
    assert (small.exact, small.distinct(), small.items(), small.nulls) == (True, 2, [("a", 2), ("b", 1)], 1)
