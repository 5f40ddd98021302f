"""Which rows each DDP rank reads in an epoch: exact, equal, disjoint shards planned from metadata.

A split is a list of units (one Parquet row group each) with the number of rows the split takes
from it. An epoch's order is a seeded permutation of the units; rank r of W takes the rows at
positions [r*m, (r+1)*m) of that order, with m the same on every rank, so every rank yields the
same number of batches (uneven shards hang DDP's all-reduce: Petastorm #508/#719, Ray #66085).
Contiguous ranges rather than rows [r::W]: a rank then decodes about 1/W of the row groups
(plus at most two it shares with a neighbour), not all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from sparkprep.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    """A row group of a file (or the whole file: row_group None), and how many of its rows the split
    reads (originals only for val/test)."""

    file: int
    row_group: int | None
    rows: int


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of a unit, counted among the rows the split reads from it."""

    unit: Unit
    start: int
    stop: int


@dataclass(frozen=True)
class ShardSpec:
    """What every rank passes alike (seed, shuffle, drop_last) and what differs (rank)."""

    rank: int
    world_size: int
    seed: int
    shuffle: bool
    drop_last: bool


@dataclass(frozen=True)
class Shard:
    """One rank's rows for one epoch, in reading order; `dropped` and `padded` count rows of the
    whole split: dropped so that ranks are equal (drop_last) or repeated to fill the last rank."""

    pieces: tuple[Piece, ...]
    rows: int
    dropped: int
    padded: int


def epoch_rng(seed: int, epoch: int, *stream: int) -> np.random.Generator:
    """A generator that is a pure function of (seed, epoch, stream): never torch's or numpy's global one."""
    return np.random.default_rng([seed, epoch, *stream])


def plan_shard(units: Sequence[Unit], spec: ShardSpec, epoch: int) -> Shard:
    """Rank `spec.rank`'s pieces for `epoch`. With `drop_last` the last n mod world_size rows of
    the epoch's order are left out; otherwise ranks are filled up to ceil(n / world_size) rows by
    repeating rows from the start of the epoch's order."""
    world_size = spec.world_size
    units = [u for u in units if u.rows]
    total = sum(u.rows for u in units)
    per_rank = total // world_size if spec.drop_last else -(-total // world_size)
    if per_rank == 0:
        raise InputError(f"the split has {total} row(s), fewer than world_size={world_size}: "
                         f"use fewer ranks or drop_last=False")
    if spec.shuffle:
        units = [units[i] for i in epoch_rng(spec.seed, epoch).permutation(len(units))]
    start = spec.rank * per_rank
    pieces = tuple(p for a, b in _wrapped(start, start + per_rank, total) for p in _pieces(units, a, b))
    covered = per_rank * world_size
    return Shard(pieces=pieces, rows=per_rank, dropped=max(0, total - covered), padded=max(0, covered - total))


def whole_files(units: Sequence[Unit]) -> list[Unit]:
    """The row-group units merged into one unit per file, in file order: the plan of a reader that
    opens whole files (Petastorm), so that a rank opens about 1/W of the files."""
    rows: dict[int, int] = {}
    for unit in units:
        rows[unit.file] = rows.get(unit.file, 0) + unit.rows
    return [Unit(file=f, row_group=None, rows=n) for f, n in rows.items()]


def _wrapped(start: int, stop: int, total: int) -> Iterator[tuple[int, int]]:
    """[start, stop) as ranges of [0, total): positions past the end repeat the order from its start."""
    while start < stop:
        a = start % total
        b = min(total, a + stop - start)
        yield a, b
        start += b - a


def _pieces(units: Sequence[Unit], start: int, stop: int) -> Iterator[Piece]:
    offset = 0
    for unit in units:
        a, b = max(start, offset), min(stop, offset + unit.rows)
        if a < b:
            yield Piece(unit, a - offset, b - offset)
        offset += unit.rows
        if offset >= stop:
            return
