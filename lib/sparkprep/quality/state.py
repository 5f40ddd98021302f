"""Mergeable partial statistics of profiled columns, computed over Arrow batches.

The computing core of `sparkprep.quality.profile` (no Spark here: it runs in Python tasks on the
executors, fed by `mapInArrow` or by `sparkprep.io.arrow_tasks` reading Parquet itself). One
`PartialProfile` holds one state per column; `add` folds a chunk of rows (numbers as float64
arrays, strings as Arrow arrays) into it, `merge` combines two partials. Numeric columns go through
one compiled loop per chunk (`sparkprep.quality.kernels`), the others through numpy and Arrow.
Every merged field is independent of the order of batches and partials except the floating-point
moments (Chan's formula), which differ in the last bits only (stats.json rounds them):
- integer counts (nulls, NaN, inf, DDSketch bucket counts, length counts, categorical counts) add;
- HyperLogLog registers merge by max; min/max by min/max.

Numeric values are coded by their DDSketch bucket with the formula of the previous, Spark-computed
version, ceil(ln|x| / ln γ), with Spark's own log (fdlibm) for values on a bucket edge, so the keys
are Spark's (`tests/etl/test_profile.py` checks every edge); one signed integer per value,
`code = ±(index + _BIAS)`, 0 for the zero bucket, so that code order is value order and a column's
counts are one array over the range of codes it has seen. Distinct values: one HyperLogLog per
column (splitmix64 of the double's bits; pandas' SipHash for strings; Ertl's estimator).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pandas.util import hash_array

from sparkprep.io.arrow_tasks import NUMBER_KINDS
from sparkprep.quality.kernels import _BIAS, _EDGE, _HLL_Q, _LOG_GAMMA, HLL_P, TINY, fold_numbers, tally

#: Categorical columns keep exact counts up to this many distinct values per column; beyond it
#: only the most frequent are kept (their counts become lower bounds) and `distinct` is estimated.
CATEGORICAL_CAP = 100_000


def bucket_codes(x: np.ndarray) -> np.ndarray:
    """DDSketch bucket code of each finite double: ±(ceil(ln|x| / ln γ) + _BIAS), 0 below TINY
    (the values `fold_numbers` finds on a bucket edge, and the reference its tests compare with).

    Args:
        x: finite doubles.
    """
    a = np.abs(x)
    zero = a < TINY
    any_zero = bool(zero.any())
    if any_zero:
        a[zero] = 1.0
    np.log(a, out=a)
    np.divide(a, _LOG_GAMMA, out=a)
    # numpy's log and Spark's (fdlibm) differ by an ulp now and then, which moves a value that
    # sits on a bucket edge to the next bucket: recompute those with fdlibm's log.
    near = np.abs(a - np.rint(a)) < _EDGE
    if near.any():
        near &= a != 0.0  # |x| = 1 (and the zero bucket, set to 1 above): ln 1 = 0 in every libm
        at = np.flatnonzero(near)
        edge_values, inverse = np.unique(np.abs(x[at]), return_inverse=True)
        a[at] = np.array([fdlibm_log(v) / _LOG_GAMMA for v in edge_values.tolist()])[inverse]
    np.ceil(a, out=a)
    a += _BIAS
    np.copysign(a, x, out=a)
    codes = a.astype(np.int64)
    if any_zero:
        codes[zero] = 0
    return codes


_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01, 2.222219843214978396e-01,
       1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01)


def fdlibm_log(x: float) -> float:
    """ln x of a positive normal double exactly as fdlibm's e_log.c computes it, which is
    java.lang.StrictMath.log and so Spark's `log` (a line-by-line port; Python floats are IEEE
    doubles without fused multiply-add, so every step rounds as in C).

    Args:
        x: a positive normal double.
    """
    bits = struct.unpack("<q", struct.pack("<d", x))[0]
    hx, lx = bits >> 32, bits & 0xFFFFFFFF
    k = (hx >> 20) - 1023
    hx &= 0x000FFFFF
    i = (hx + 0x95F64) & 0x100000
    x = struct.unpack("<d", struct.pack("<q", ((hx | (i ^ 0x3FF00000)) << 32) | lx))[0]  # x or x/2 in [sqrt(2)/2, sqrt(2))
    k += i >> 20
    f, dk = x - 1.0, float(k)
    if (0x000FFFFF & (2 + hx)) < 3:  # |f| < 2^-20
        if f == 0.0:
            return 0.0 if k == 0 else dk * _LN2_HI + dk * _LN2_LO
        r = f * f * (0.5 - 0.33333333333333333 * f)
        return f - r if k == 0 else dk * _LN2_HI - ((r - dk * _LN2_LO) - f)
    lg1, lg2, lg3, lg4, lg5, lg6, lg7 = _LG
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (lg1 + w * (lg3 + w * (lg5 + w * lg7))) + w * (lg2 + w * (lg4 + w * lg6))
    if (hx - 0x6147A) | (0x6B851 - hx) > 0:
        hfsq = 0.5 * f * f
        return f - (hfsq - s * (hfsq + r)) if k == 0 else dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)
    return f - s * (f - r) if k == 0 else dk * _LN2_HI - ((s * (f - r) - dk * _LN2_LO) - f)


def bucket_key(code: int) -> str:
    """The stats.json key of a bucket code ('+i', '-i', '0').

    Args:
        code: a bucket code.
    """
    return "0" if code == 0 else f"+{code - _BIAS}" if code > 0 else f"-{-code - _BIAS}"


def _count(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct integers of `values` (sorted) and how often each occurs."""
    if not len(values):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    lo = int(values.min())
    counts = np.bincount(values - lo)
    keys = np.flatnonzero(counts)
    return keys + lo, counts[keys]


def _add_counts(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The sum of two sparse integer histograms (keys sorted)."""
    keys, counts = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
    if not len(keys):
        return keys, counts
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts, starts)


# --- HyperLogLog -------------------------------------------------------------------------------

def hash_strings(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each (non-null) string (pandas' SipHash with its fixed key, then mixed).

    Args:
        values: strings (an Arrow array).
    """
    return hash_array(np.asarray(values.to_numpy(zero_copy_only=False), dtype=object), categorize=False)


def hll_add(registers: np.ndarray, hashes: np.ndarray) -> None:
    """Update 2^HLL_P uint8 registers with 64-bit hashes (overwritten): register = first HLL_P
    bits, value = 1 + leading zeros of the other _HLL_Q bits (_HLL_Q + 1 when they are all 0).

    Args:
        registers: the registers, updated in place.
        hashes: 64-bit hashes (overwritten).
    """
    if not len(hashes):
        return
    index = (hashes >> np.uint64(_HLL_Q)).astype(np.intp)
    hashes &= np.uint64((1 << _HLL_Q) - 1)
    # The float's exponent field is 1023 + bit_length - 1 (exact: _HLL_Q <= 53 bits); 0 for 0.
    exponent = hashes.astype(np.float64).view(np.uint64)
    exponent >>= np.uint64(52)
    rank = np.subtract(np.uint64(1023 + _HLL_Q), exponent, out=exponent)
    np.minimum(rank, np.uint64(_HLL_Q + 1), out=rank)
    np.maximum.at(registers, index, rank.astype(np.uint8))


def hll_estimate(registers: np.ndarray) -> int:
    """Cardinality from the registers with Ertl's improved estimator (arXiv:1702.01284, alg. 6):
    unbiased over the whole range, small cardinalities included, without bias tables.

    Args:
        registers: HLL registers.
    """
    m, q = len(registers), _HLL_Q
    hist = np.bincount(registers, minlength=q + 2).astype(np.float64)
    if hist[0] == m:
        return 0

    def sigma(x: float) -> float:
        if x == 1.0:
            return math.inf
        y, z = 1.0, x
        while True:
            x *= x
            z_old, z, y = z, z + x * y, y + y
            if z == z_old:
                return z

    def tau(x: float) -> float:
        if x in (0.0, 1.0):
            return 0.0
        y, z = 1.0, 1.0 - x
        while True:
            x = math.sqrt(x)
            z_old, y = z, y * 0.5
            z -= (1 - x) ** 2 * y
            if z == z_old:
                return z / 3

    z = m * tau(1 - hist[q + 1] / m)
    for k in range(q, 0, -1):
        z = 0.5 * (z + hist[k])
    z += m * sigma(hist[0] / m)
    return int(round(m * m / (2 * math.log(2)) / z))


def _registers() -> np.ndarray:
    return np.zeros(1 << HLL_P, np.uint8)


# --- per-column states -------------------------------------------------------------------------

@dataclass
class NumericState:
    """Nulls, NaN, ±inf; moments, min and max of the finite values; DDSketch buckets; HLL."""

    nulls: int = 0
    nan: int = 0
    inf: int = 0
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    #: DDSketch bucket counts of codes first, first + 1, ... (a window that grows to the codes seen).
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    first: int = 0
    registers: np.ndarray = field(default_factory=_registers)

    @property
    def buckets(self) -> tuple[np.ndarray, np.ndarray]:
        """The bucket codes seen (sorted) and their counts."""
        keys = np.flatnonzero(self.counts)
        return keys + self.first, self.counts[keys]

    def add(self, x: np.ndarray, valid: np.ndarray | None) -> None:
        """Fold a chunk of values `x` (float64, C-contiguous) of which those where `valid` is
        false (`valid` None: none) are nulls, in one compiled pass (`kernels`).

        Args:
            x: the values.
            valid: false for nulls (None: none).
        """
        codes, near = np.empty(len(x), np.int64), np.empty(len(x), np.int64)
        logs = np.abs(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log(logs, out=logs)
        nulls, nan, inf, n, mean, m2, lo, hi, n_codes, n_near, code_lo, code_hi = fold_numbers(
            x, x.view(np.uint64), logs, valid, self.registers, codes, near)
        self.nulls += nulls
        self.nan += nan
        self.inf += inf
        if not n:
            return
        self._combine(n, mean, m2, lo, hi)
        codes = codes[:n_codes]
        if n_near:
            edge = bucket_codes(x[near[:n_near]])
            codes = np.concatenate([codes, edge])
            code_lo, code_hi = min(code_lo, int(edge.min())), max(code_hi, int(edge.max()))
        self._cover(code_lo, code_hi)
        tally(self.counts, self.first, codes)

    def _cover(self, lo: int, hi: int) -> None:
        """Grow the window of counts to hold codes lo..hi."""
        last = self.first + len(self.counts) - 1
        if len(self.counts) and self.first <= lo and hi <= last:
            return
        first, last = (min(self.first, lo), max(last, hi)) if len(self.counts) else (lo, hi)
        counts = np.zeros(last - first + 1, np.int64)
        counts[self.first - first:self.first - first + len(self.counts)] = self.counts
        self.counts, self.first = counts, first

    def _combine(self, n: int, mean: float, m2: float, lo: float, hi: float) -> None:
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total
        self.min, self.max = min(self.min, lo), max(self.max, hi)

    def merge(self, other: "NumericState") -> None:
        """Add `other`'s state into this one.

        Args:
            other: another partial of the same column.
        """
        self.nulls += other.nulls
        self.nan += other.nan
        self.inf += other.inf
        if other.n:
            self._combine(other.n, other.mean, other.m2, other.min, other.max)
        if len(other.counts):
            self._cover(other.first, other.first + len(other.counts) - 1)
            self.counts[other.first - self.first:other.first - self.first + len(other.counts)] += other.counts
        np.maximum(self.registers, other.registers, out=self.registers)


@dataclass
class LengthState:
    """Nulls and the histogram of lengths (sizes of arrays, lengths of strings)."""

    nulls: int = 0
    lengths: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: _count(np.empty(0, np.int64)))

    def add(self, lengths: np.ndarray, nulls: int) -> None:
        """Count a chunk's lengths and nulls.

        Args:
            lengths: the lengths of the present values.
            nulls: the chunk's nulls.
        """
        self.nulls += nulls
        self.lengths = _add_counts(self.lengths, _count(lengths.astype(np.int64)))

    def merge(self, other: "LengthState") -> None:
        """Add `other`'s counts into this one.

        Args:
            other: another partial of the same column.
        """
        self.nulls += other.nulls
        self.lengths = _add_counts(self.lengths, other.lengths)


@dataclass
class TextState(LengthState):
    """String lengths, and an HLL of the strings (hashed once per distinct value of a chunk)."""

    registers: np.ndarray = field(default_factory=_registers)

    def add_strings(self, column: pa.Array) -> None:
        """Fold a chunk of strings: their lengths, nulls and HLL.

        Args:
            column: the strings (an Arrow array).
        """
        values = column.drop_null()
        hll_add(self.registers, hash_strings(pc.unique(values)))
        self.add(pc.utf8_length(values).to_numpy(zero_copy_only=False), column.null_count)

    def merge(self, other: "TextState") -> None:
        """Add `other`'s state into this one.

        Args:
            other: another partial of the same column.
        """
        super().merge(other)
        np.maximum(self.registers, other.registers, out=self.registers)


@dataclass
class CategoricalState:
    """Nulls and exact value counts. Above CATEGORICAL_CAP distinct values only the
    CATEGORICAL_CAP most frequent are kept (their counts become lower bounds) and `registers`, an
    HLL of every value seen, estimates the distinct count; while exact, `registers` is None.
    Batches are counted by Arrow and compacted once 2 x CATEGORICAL_CAP pairs are pending."""

    nulls: int = 0
    values: list[pa.Array] = field(default_factory=list)
    counts: list[pa.Array] = field(default_factory=list)
    registers: np.ndarray | None = None
    pending: int = 0

    @property
    def exact(self) -> bool:
        return self.registers is None

    def add(self, column: pa.Array) -> None:
        """Fold a chunk of values: their counts (exact up to the cap, then an HLL).

        Args:
            column: the values (an Arrow array).
        """
        self.nulls += column.null_count
        vc = column.drop_null().value_counts()
        if not self.exact:
            hll_add(self.registers, hash_strings(vc.field("values")))
        self._append(vc.field("values"), vc.field("counts").cast(pa.int64()))

    def _append(self, values: pa.Array, counts: pa.Array) -> None:
        self.values.append(values)
        self.counts.append(counts)
        self.pending += len(values)
        if self.pending > 2 * CATEGORICAL_CAP:
            self.compact()

    def compact(self) -> None:
        """One (value, count) pair per distinct value; above the cap, keep the most frequent."""
        if len(self.values) > 1:
            table = pa.table({"v": pa.concat_arrays(self.values), "n": pa.concat_arrays(self.counts)})
            summed = table.group_by("v").aggregate([("n", "sum")])
            self.values, self.counts = [summed.column("v").combine_chunks()], [summed.column("n_sum").combine_chunks()]
        self.pending = sum(len(v) for v in self.values)
        if self.pending > CATEGORICAL_CAP:
            self._track_distinct()
            table = pa.table({"v": self.values[0], "n": self.counts[0]})
            top = table.sort_by([("n", "descending"), ("v", "ascending")]).slice(0, CATEGORICAL_CAP)
            self.values, self.counts = [top.column("v").combine_chunks()], [top.column("n").combine_chunks()]
            self.pending = CATEGORICAL_CAP

    def _track_distinct(self) -> None:
        """Start the HLL from the values still held (all values seen, while exact)."""
        if self.exact:
            self.registers = _registers()
            for values in self.values:
                hll_add(self.registers, hash_strings(values))

    def merge(self, other: "CategoricalState") -> None:
        """Add `other`'s state into this one.

        Args:
            other: another partial of the same column.
        """
        self.nulls += other.nulls
        if not (self.exact and other.exact):
            self._track_distinct()
            other._track_distinct()
            np.maximum(self.registers, other.registers, out=self.registers)
        for values, counts in zip(other.values, other.counts):
            self._append(values, counts)

    def items(self) -> list[tuple[str, int]]:
        """(value, count) pairs, most frequent first, ties by value."""
        self.compact()
        if not self.values:
            return []
        pairs = zip(self.values[0].to_pylist(), self.counts[0].to_pylist())
        return sorted(pairs, key=lambda vn: (-vn[1], vn[0]))

    def distinct(self) -> int:
        self.compact()
        return self.pending if self.exact else max(hll_estimate(self.registers), self.pending)


def new_state(kind: str) -> NumericState | LengthState | TextState | CategoricalState:
    """The empty state of a column of kind `kind`.

    Args:
        kind: numeric, categorical, text or array.
    """
    return {"numeric": NumericState, "categorical": CategoricalState, "text": TextState, "array": LengthState}[kind]()



@dataclass
class PartialProfile:
    """The statistics of some rows: their number and one state per profiled column (in order)."""

    kinds: tuple[str, ...]
    rows: int = 0
    states: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.states:
            self.states = [new_state(k) for k in self.kinds]

    def add(self, rows: int, numbers: Sequence[np.ndarray], valid: list[np.ndarray | None],
            strings: list[pa.Array]) -> None:
        """Fold a chunk of `rows` rows, whichever path read them (Spark's projection or Parquet
        read by pyarrow): `numbers`, one C-contiguous float64 array of `rows` values per numeric
        or array column in kinds order (the value, or the array's size); `valid`, per
        number column, its validity mask or None when it has no nulls (a null's slot in `numbers`
        is ignored); `strings`, the categorical and text columns as string arrays, in kinds order.

        Args:
            rows: the chunk's rows.
            numbers: per numeric or array column, its values (or sizes).
            valid: per such column, false for nulls (None: none).
            strings: per categorical or text column, its values.
        """
        self.rows += rows
        number_states = [s for s, k in zip(self.states, self.kinds) if k in NUMBER_KINDS]
        string_states = [s for s, k in zip(self.states, self.kinds) if k not in NUMBER_KINDS]
        for state, x, ok in zip(number_states, numbers, valid):
            if isinstance(state, NumericState):
                state.add(x, ok)
            else:
                x = x if ok is None else x[ok]
                state.add(x, rows - len(x))
        for state, column in zip(string_states, strings):
            if isinstance(state, TextState):
                state.add_strings(column)
            else:
                state.add(column)

    def merge(self, other: "PartialProfile") -> "PartialProfile":
        """Add `other` into this partial (and return it: the shape of an RDD fold).

        Args:
            other: another partial of the same columns.
        """
        self.rows += other.rows
        for mine, theirs in zip(self.states, other.states):
            mine.merge(theirs)
        return self
