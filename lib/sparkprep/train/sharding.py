"""Which rows each DDP rank reads in an epoch: exact, equal, disjoint shards planned from metadata.

A split is a list of units (one Parquet row group each) with the number of rows the split takes
from it. An epoch's order is a seeded permutation of the units; rank r of W takes the rows at
positions [r*m, (r+1)*m) of that order, with m the same on every rank, so every rank yields the
same number of batches (uneven shards hang DDP's all-reduce: Petastorm #508/#719, Ray #66085).
Contiguous ranges rather than rows [r::W]: a rank then decodes about 1/W of the row groups
(plus at most two it shares with a neighbour), not all of them.

Rows are mixed in windows (`Window`: whole pieces, then a permutation drawn from the window's own
generator), so that any position of an epoch's order can be reached without decoding what comes
before it: that is what makes a resume exact and cheap (`plan_order`).

Elastic (`Sampling(elastic=True)`): the epoch's order is global, a function of (seed, epoch) only
(units permuted, mixed in windows that belong to no rank), and ranks take it one global batch at a
time: global batch j is W batches, rank r takes the r-th. So whenever every rank has received c
rows, the ranks together have received exactly the first W*c rows of the order, whatever W was,
and a resume at another world size takes the order on from there. The price: every rank decodes
every row group (it keeps 1/W of each).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from sparkprep.errors import InputError

log = logging.getLogger(__name__)

WINDOW_STREAM = 1  # epoch_rng stream of the in-memory shuffle (stream 0 permutes the units)


@dataclass(frozen=True)
class Unit:
    """A row group of a file (or the whole file), and how many of its rows the split reads.

    Args:
        file: the file's index in the split's list of files.
        row_group: the row group's index in the file; None for the whole file.
        rows: the rows the split reads from it (originals only for val/test; an original with
            counted copies as 1 + copies rows for train/final: sparkprep.train.copies).
    """

    file: int
    row_group: int | None
    rows: int


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of a unit, counted among the rows the split reads from it.

    Args:
        unit: the unit the rows are in.
        start: the first row, counted among the unit's rows that the split reads.
        stop: one past the last row.
    """

    unit: Unit
    start: int
    stop: int


@dataclass(frozen=True)
class Sampling:
    """Which rows a DDP rank reads, and in what order: what torch's DistributedSampler takes.

    Every rank gets the same number of rows and batches per epoch, disjoint, together the split
    minus `loader.dropped` rows (drop_last) or plus `loader.padded` repeated ones (no drop_last);
    dropped/padded are fewer than world_size. The order is a pure function of (seed, epoch): units
    permuted, rows mixed in a window of 8 batches plus one row group.

    >>> sampling = Sampling(rank=dist.get_rank(), world_size=dist.get_world_size(), seed=7)

    Args:
        rank: this process's rank, 0..world_size-1.
        world_size: the number of ranks that read the split together.
        shuffle: permute the units and mix rows per epoch; False reads in file order.
        seed: what the order derives from; None takes the manifest's, so ranks agree without
            being told.
        drop_last: leave out the last rows of the epoch's order so that ranks are equal, rather
            than repeat rows from its start.
        epoch: the first epoch an iteration yields (`loader.set_epoch` picks another).
        num_epochs: how many epochs an iteration yields; None repeats forever.
        elastic: one global order for every world size, so that a loader state saved at one
            world size resumes at another (`loader.load_state_dict`); every rank then decodes
            every row group. The arrow backend only.

    Raises:
        InputError: rank is not in 0..world_size-1.
    """

    rank: int = 0
    world_size: int = 1
    shuffle: bool = True
    seed: int | None = None
    drop_last: bool = True
    epoch: int = 0
    num_epochs: int | None = 1
    elastic: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise InputError(f"rank {self.rank} is out of range for world_size {self.world_size}")


@dataclass(frozen=True)
class Shard:
    """One rank's rows for one epoch, in reading order.

    Args:
        pieces: the rank's rows, in reading order.
        rows: how many rows the pieces hold, the same on every rank.
        dropped: rows of the whole split left out so that ranks are equal (drop_last).
        padded: rows of the whole split repeated to fill the last ranks (no drop_last).
    """

    pieces: tuple[Piece, ...]
    rows: int
    dropped: int
    padded: int


def epoch_rng(seed: int, epoch: int, *stream: int) -> np.random.Generator:
    """A generator that is a pure function of (seed, epoch, stream): never torch's or numpy's global one.

    Args:
        seed: the run's seed.
        epoch: the epoch.
        *stream: which of the epoch's random decisions it draws (and for which rank), so that
            each has its own generator.
    """
    return np.random.default_rng([seed, epoch, *stream])


def plan_shard(units: Sequence[Unit], sampling: Sampling, epoch: int) -> Shard:
    """One rank's pieces for one epoch.

    With `drop_last` the last n mod world_size rows of the epoch's order are left out; otherwise
    ranks are filled up to ceil(n / world_size) rows by repeating rows from the start of the
    epoch's order.

    Args:
        units: the split's units, in file order.
        sampling: the rank and how ranks share the split; its seed must be set.
        epoch: the epoch whose order is planned.

    Raises:
        InputError: the split has fewer rows than ranks, and drop_last would leave them none.
    """
    world_size = sampling.world_size
    units = [u for u in units if u.rows]
    total = sum(u.rows for u in units)
    per_rank = total // world_size if sampling.drop_last else -(-total // world_size)
    if per_rank == 0:
        raise InputError(f"the split has {total} row(s), fewer than world_size={world_size}: "
                         f"use fewer ranks or drop_last=False")
    if sampling.shuffle:
        units = [units[i] for i in epoch_rng(sampling.seed, epoch).permutation(len(units))]
    start = sampling.rank * per_rank
    pieces = tuple(p for a, b in _wrapped(start, start + per_rank, total) for p in _pieces(units, a, b))
    covered = per_rank * world_size
    return Shard(pieces=pieces, rows=per_rank, dropped=max(0, total - covered), padded=max(0, covered - total))


@dataclass(frozen=True)
class Window:
    """Rows mixed together: the pieces' rows in order, then permuted by a generator of their own.

    Args:
        pieces: the rows, in reading order.
        key: what the window's generator derives from (epoch_rng's arguments); None keeps the
            rows in order (no shuffle).
    """

    pieces: tuple[Piece, ...]
    key: tuple[int, ...] | None

    @property
    def rows(self) -> int:
        """The rows the window holds."""
        return sum(p.stop - p.start for p in self.pieces)

    def order(self) -> np.ndarray | None:
        """The permutation of the window's rows; None when they stay in reading order."""
        return None if self.key is None else epoch_rng(*self.key).permutation(self.rows)


@dataclass(frozen=True)
class Segment:
    """Some consecutive rows of a window, counted in its permuted order.

    Args:
        window: the window the rows are in.
        rows: their positions in the window's permuted order.
    """

    window: Window
    rows: range


@dataclass(frozen=True)
class RankOrder:
    """One rank's rows of one epoch, from a position of the epoch on, in the order it yields them.

    Args:
        segments: the rows, in order; consecutive segments of one window share its decoding.
        rows: how many rows the segments hold, the same on every rank.
        dropped: rows of the split left out of the epoch so that ranks are equal (drop_last).
        padded: rows of the split repeated in the epoch to fill the last ranks (no drop_last).
    """

    segments: tuple[Segment, ...]
    rows: int
    dropped: int
    padded: int


def plan_order(units: Sequence[Unit], sampling: Sampling, epoch: int, batch_size: int, window_rows: int,
               position: int = 0) -> RankOrder:
    """One rank's rows of an epoch, after the first `position` rows that all ranks together have
    received (the loader's state), as segments of shuffle windows.

    Without `elastic`, the rank's shard (plan_shard) in windows of its own, and `position` is
    world_size times the rows each rank received. With it, the epoch's global order from
    `position` on, a global batch at a time (the module's docstring); the remainder of the rows
    after `position` is dropped or padded as for a whole epoch.

    Args:
        units: the split's units, in file order.
        sampling: the rank and how ranks share the split; its seed must be set.
        epoch: the epoch whose order is planned.
        batch_size: rows per batch.
        window_rows: the rows a shuffle window holds at least (whole pieces).
        position: rows of the epoch's order that the ranks have received; the split's row count
            once the epoch is over.

    Raises:
        InputError: a fresh epoch would give the ranks no rows (plan_shard).
    """
    total = sum(u.rows for u in units)
    if not sampling.elastic:
        shard = plan_shard(units, sampling, epoch)
        skip = shard.rows if position >= total else position // sampling.world_size
        key = (sampling.seed, epoch, WINDOW_STREAM, sampling.rank)
        windows = _windows(shard.pieces, window_rows, key if sampling.shuffle else None)
        return RankOrder(_segments(windows, [(skip, shard.rows)]), shard.rows - skip, shard.dropped, shard.padded)
    world_size, rank = sampling.world_size, sampling.rank
    units = [u for u in units if u.rows]
    if sampling.shuffle:
        units = [units[i] for i in epoch_rng(sampling.seed, epoch).permutation(len(units))]
    remaining = max(0, total - position)
    per_rank = remaining // world_size if sampling.drop_last else -(-remaining // world_size)
    if position == 0 and per_rank == 0:
        plan_shard(units, sampling, epoch)  # raises its error: the split has fewer rows than ranks
    pieces = tuple(Piece(u, 0, u.rows) for u in units)
    windows = _windows(pieces, window_rows, (sampling.seed, epoch, WINDOW_STREAM) if sampling.shuffle else None)
    ranges = []
    for start in range(0, per_rank, batch_size):  # global batch j: W batches, rank r takes the r-th
        size = min(batch_size, per_rank - start)
        first = position + start * world_size + rank * size
        ranges += _wrapped(first, first + size, total)
    covered = per_rank * world_size
    return RankOrder(_segments(windows, ranges), per_rank, max(0, remaining - covered), max(0, covered - remaining))


def _windows(pieces: Sequence[Piece], window_rows: int, key: tuple[int, ...] | None) -> list[Window]:
    """Consecutive pieces grouped until a window holds at least `window_rows` rows, each window
    with its own generator (key + its index); one piece a window, unpermuted, without a key."""
    if key is None:
        return [Window((p,), None) for p in pieces]
    windows: list[Window] = []
    group: list[Piece] = []
    held = 0
    for piece in pieces:
        group.append(piece)
        held += piece.stop - piece.start
        if held >= window_rows:
            windows.append(Window(tuple(group), (*key, len(windows))))
            group, held = [], 0
    if group:
        windows.append(Window(tuple(group), (*key, len(windows))))
    return windows


def _segments(windows: Sequence[Window], ranges: Sequence[tuple[int, int]]) -> tuple[Segment, ...]:
    """Positions [a, b) of the windows' concatenated order, as slices of the windows."""
    offsets = [0, *accumulate(w.rows for w in windows)]
    segments = []
    for start, stop in ranges:
        i = bisect_right(offsets, start) - 1
        while start < stop:
            window, offset = windows[i], offsets[i]
            end = min(stop, offset + window.rows)
            segments.append(Segment(window, range(start - offset, end - offset)))
            start, i = end, i + 1
    return tuple(segments)


def whole_files(units: Sequence[Unit]) -> list[Unit]:
    """The row-group units merged into one unit per file, in file order: the plan of a reader that
    opens whole files (Petastorm), so that a rank opens about 1/W of the files.

    Args:
        units: row-group units, as count_units gives them.
    """
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
