"""Drift distances, from their definitions (no Spark: the inputs are hand-built stats)."""

import math

import pytest

from sparkprep.quality.drift import distances, jensen_shannon, linf, psi, wasserstein
from sparkprep.quality.profile import ColumnStats, bucket_value


def _cat(counts: dict[str, int]) -> ColumnStats:
    return ColumnStats(name="c", kind="categorical", type="string", count=sum(counts.values()), nulls=0,
                       top=[[k, n] for k, n in counts.items()])


def test_categorical_drift_names_the_value_that_moved_most():
    d = distances(_cat({"a": 3, "b": 1}), _cat({"a": 1, "b": 1}))
    assert d.linf == pytest.approx(0.25) and d.moved_most == "b"
    assert d.wasserstein is None


def test_js_is_zero_for_equal_and_one_for_disjoint():
    assert jensen_shannon({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0
    assert jensen_shannon({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)


def test_psi_by_its_formula():
    p, q = {"a": 0.5, "b": 0.5}, {"a": 0.25, "b": 0.75}
    assert psi(p, q) == pytest.approx(-0.25 * math.log(0.5) + 0.25 * math.log(1.5))


def test_wasserstein_of_a_shifted_point_mass_is_the_shift():
    one, three = "+0", "+55"  # bucket_value("+0") ~ 1, bucket_value("+55") ~ 3
    assert wasserstein({one: 1.0}, {three: 1.0}) == pytest.approx(bucket_value(three) - bucket_value(one))
    assert linf({one: 1.0}, {three: 1.0})[0] == 1.0
