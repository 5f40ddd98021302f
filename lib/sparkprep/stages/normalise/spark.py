"""The Spark applier of the fitted transforms (transform.py gives the formulas; the numpy and torch
appliers compute the same float64 expressions), and the value projections the fit shares with it.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkprep.transform import ArrayParams, TransformParams, UNKNOWN


def present(x: Column) -> Column:
    """x where it is a number; null for null, NaN and ±inf (they count as missing). x - x is 0 for
    every finite x and NaN otherwise: one subtraction, cheaper than isnan + abs per value.

    Args:
        x: a double column.
    """
    return F.when(x - x == 0, x)


def symlog(x: Column) -> Column:
    """sign(x) * log1p(|x|), as transform.py defines log1p.

    Args:
        x: a double column.
    """
    return F.signum(x) * F.log1p(F.abs(x))


def apply_spark(df: DataFrame, params: TransformParams) -> DataFrame:
    """`df` with every column of `params` replaced by its transformed value (sparkprep.transform
    gives the formulas; the numpy and torch appliers compute the same float64 expressions).

    >>> normalised = apply_spark(spark.read.parquet(out + "/data").where("fold = -1"), final)

    Args:
        df: rows with the columns `params` transforms.
        params: one training set's fitted transforms.
    """
    replaced: dict[str, Column] = {}
    for p in params.numeric:
        x = present(F.col(p.column).cast("double"))
        v = F.coalesce(symlog(x) if p.log1p else x, F.lit(p.fill))
        clipped = F.least(F.greatest(v, F.lit(p.lower)), F.lit(p.upper))
        replaced[p.column] = (clipped - F.lit(p.center)) / F.lit(p.scale)
    for p in params.categorical:
        index = (F.coalesce(F.try_element_at(F.map_from_arrays(F.lit(list(p.vocabulary)),
                                                                F.lit(list(range(1, p.width)))),
                                             F.col(p.column).cast("string")), F.lit(UNKNOWN))
                 if p.vocabulary else F.lit(UNKNOWN)).cast("long")
        replaced[p.column] = index if p.encoding == "index" else F.transform(
            F.sequence(F.lit(0), F.lit(p.width - 1)), _one_hot(index))
    for p in params.arrays:
        replaced[p.column] = F.transform(F.col(p.column).cast("array<double>"), _array_scaler(p))
    return df.withColumns(replaced)


def _one_hot(index: Column) -> Callable[[Column], Column]:
    return lambda j: (j == index).cast("double")


def _array_scaler(p: ArrayParams) -> Callable[[Column, Column], Column]:
    center, scale = F.lit(list(p.center)), F.lit(list(p.scale))

    def scaled(x: Column, i: Column) -> Column:
        c = F.element_at(center, i + 1)
        return (F.coalesce(present(x), c) - c) / F.element_at(scale, i + 1)

    return scaled
