"""A bounded, uniform sample of rows, taken while a write that the run makes anyway is running.

The report shows every feature column's distribution as read, after cleaning, after the fitted
transform, and per fold (training vs validation). None of these is a pass of its own: each comes
from at most SAMPLE_ROWS rows that Spark collects during a write that happens anyway. `observe`
attaches one aggregate, `min_by(row, row_id, SAMPLE_ROWS)`, to the write of the typed scratch copy
(every input row, with whether cleaning rejected it) and to the write of the output (originals, with
their fold). It keeps the rows with the smallest `row_id`, a 64-bit content hash, so evenly spread:
the sample is a pure function of the rows (not of partitioning or order), and both writes sample
the same rows where they can, so a row sampled as read is, if it survives, in the output's sample
whenever that one reaches as far.

Cost: Spark evaluates observed aggregates row by row, uncompiled. Only rows whose row_id lies below
a threshold (a fraction `rate` of them) are offered to the aggregate; every other row costs one
comparison. `sampling_rate` picks the rate so that about OFFERED x SAMPLE_ROWS rows are offered:
from the row count where it is known (the output), else from the input's size in bytes, assuming
no row takes more than MAX_ROW_BYTES (a larger row makes the sample smaller, never costlier).
Memory: a task keeps at most SAMPLE_ROWS small rows: numbers, strings cut to STRING_CHARS
characters, and of text and array columns their lengths only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from sparkprep.config import ColumnsConfig
from sparkprep.contract import ROW_ID

#: Rows a sample keeps at most.
SAMPLE_ROWS = 20_000
#: Characters of a categorical value a sample keeps.
STRING_CHARS = 100
#: Rows offered to the sample per row it keeps, where the row count is known beforehand.
OFFERED = 2
#: Bytes of input per row assumed at most, where the row count is not known (the input's write).
MAX_ROW_BYTES = 4096
#: A size from this on is no size: what Spark states for a plan it has no statistics of.
_UNKNOWN_BYTES = 1 << 62


@dataclass(frozen=True)
class Roles:
    """The columns a sample keeps, by what it keeps of them: numbers (as double), the label and
    categorical values (strings, cut), text lengths (characters) and array lengths (elements)."""

    label: str | None = None
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    arrays: tuple[str, ...] = ()

    @classmethod
    def of(cls, columns: ColumnsConfig) -> "Roles":
        """The label and the feature columns of the columns section.

        Args:
            columns: the columns section.
        """
        return cls(columns.label, tuple(columns.numeric), tuple(columns.categorical), tuple(columns.text),
                   tuple(columns.array))

    @property
    def strings(self) -> tuple[str, ...]:
        """The label (where there is one) and the categorical columns."""
        return (*([self.label] if self.label else []), *self.categorical)

    def values(self) -> dict[str, Column]:
        """What the sample keeps of each column, by column name."""
        def length(c: Column, size: Column) -> Column:
            return F.when(c.isNotNull(), size)
        return {**{n: F.col(n).cast("double") for n in self.numeric},
                **{n: F.substring(F.col(n).cast("string"), 1, STRING_CHARS) for n in self.strings},
                **{n: length(F.col(n), F.length(F.col(n).cast("string"))) for n in self.text},
                **{n: length(F.col(n), F.size(F.col(n))) for n in self.arrays}}


@dataclass(frozen=True)
class Sample:
    """Sampled rows, column by column (column name -> values, None where null).

    Args:
        columns: the values of each sampled column, row by row.
        rows: how many rows were sampled.
    """

    columns: dict[str, list[Any]] = field(default_factory=dict)
    rows: int = 0


@dataclass(frozen=True)
class Sampling:
    """A write's rows with the sample attached, and the sample once the write has run.

    Args:
        rows: the rows to write (unchanged; the sample is taken as they are written).
        observation: Spark's record of the observed aggregate.
        names: the sampled columns, in the order of the sampled struct's fields.
    """

    rows: DataFrame
    observation: Observation
    names: tuple[str, ...]

    def taken(self) -> Sample:
        """The sampled rows; call it after the write (it waits for the write's metrics)."""
        found = self.observation.get.get("rows") or []
        return Sample({name: [r[i] for r in found] for i, name in enumerate(self.names)}, len(found))


def sampling_rate(rows: int | None = None, input_bytes: int | None = None) -> float:
    """The fraction of rows to offer to a sample: about OFFERED x SAMPLE_ROWS of them, from the
    row count, else from the input's bytes (at most MAX_ROW_BYTES a row); 1 when unknown (a plan
    without statistics states Spark's default size, 2^63 - 1 bytes).

    Args:
        rows: the rows to sample from, if known.
        input_bytes: the input's size in bytes, if the rows are not known.
    """
    if rows is not None:
        return min(1.0, OFFERED * SAMPLE_ROWS / max(rows, 1))
    if input_bytes and input_bytes < _UNKNOWN_BYTES:
        return min(1.0, SAMPLE_ROWS * MAX_ROW_BYTES / input_bytes)
    return 1.0


def sample_rows(df: DataFrame, roles: Roles, rate: float, extra: dict[str, Column] | None = None,
                where: Column | None = None) -> Sampling:
    """`df` with a uniform sample of up to SAMPLE_ROWS of its rows attached (module docstring):
    write `Sampling.rows`, then read `Sampling.taken()`.

    >>> sampling = sample_rows(rows, Roles.of(config.columns), sampling_rate(rows=n))
    >>> sampling.rows.write.parquet(uri); sample = sampling.taken()

    Args:
        df: rows with `row_id`, about to be written.
        roles: the columns to keep.
        rate: the fraction of rows offered to the sample (`sampling_rate`).
        extra: more values to keep per row, by name (a fold, whether cleaning rejected the row).
        where: only rows where this holds are sampled (originals, say).
    """
    kept = {**roles.values(), **(extra or {})}
    offered = F.lit(True) if where is None else where
    if rate < 1.0:
        # row_id is spread evenly over the longs: those below the threshold are a fraction `rate`.
        threshold = min(int(-(1 << 63) + rate * (1 << 64)), (1 << 63) - 1)
        offered = offered & (F.col(ROW_ID) < F.lit(threshold))
    row = F.struct(*[c.alias(f"c{i}") for i, c in enumerate(kept.values())])
    observation = Observation()
    observed = df.observe(observation, F.min_by(row, F.when(offered, F.col(ROW_ID)), F.lit(SAMPLE_ROWS)).alias("rows"))
    return Sampling(observed, observation, tuple(kept))
