"""batching.permuted: a block's rows in the given order, 1-D and 2-D columns alike, with a gather
that checks no bounds, so an order of another length is refused before it."""

from __future__ import annotations

import numpy as np
import pytest

from sparkprep.train.batching import permuted


def test_every_column_takes_its_rows_in_the_given_order() -> None:
    block = {"x": np.array([10.0, 11.0, 12.0]), "y": np.array([0, 1, 2], np.int32),
             "emb": np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])}
    out = permuted(block, np.array([2, 0, 1]))
    assert out["x"].tolist() == [12.0, 10.0, 11.0]
    assert out["y"].tolist() == [2, 0, 1] and out["y"].dtype == np.int32
    assert out["emb"].tolist() == [[5.0, 6.0], [1.0, 2.0], [3.0, 4.0]]


def test_an_order_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="2 rows for a block of 3"):
        permuted({"x": np.arange(3.0)}, np.array([1, 0]))
