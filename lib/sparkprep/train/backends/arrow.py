"""The native backend: one split read with pyarrow, row group by row group, into torch tensors.

The rank's rows are segments of shuffle windows (sharding.plan_order): each window is decoded once,
permuted by its own generator, and sliced, so a resume starts at its window without decoding the
ones before it. One thread decodes, a second permutes the window before, the consumer slices.
Memory per rank is bounded by the shuffle window W (base.SHUFFLE_BATCHES batches + the rows of one
row group, of the selected columns): at most 4 W in the making (a window being decoded, one waiting
for the second thread, one being permuted and its permuted copy), plus the `prefetch` windows made
ahead and the one the consumer is in; without shuffle, as many row groups and no copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sparkprep.errors import ContractError
from sparkprep.train.backends.base import (SHUFFLE_BATCHES, BackendOptions, EpochRows, ReadPlan, ShardedLoader,
                                           Source, is_list)
from sparkprep.train.batching import Block, concat, permuted, slice_rows
from sparkprep.train.copies import expanded
from sparkprep.train.sharding import Piece, Segment, Window, plan_order


@dataclass(frozen=True)
class ArrowOptions(BackendOptions):
    """The default backend, pyarrow row group by row group; it has no options beyond every backend's."""

    def loader(self, plan: ReadPlan) -> ArrowLoader:
        """An ArrowLoader of the split.

        Args:
            plan: what to read, and how ranks share it.
        """
        return ArrowLoader(plan, self)


class ArrowLoader(ShardedLoader):
    """The shard's pieces read with pyarrow, row group by row group; see `ShardedLoader`.

    Args:
        plan: what to read, and how ranks share it; its units are row groups.
    """

    def __init__(self, plan: ReadPlan, options: ArrowOptions) -> None:
        self._read = list(dict.fromkeys([*plan.columns, *plan.selected_by]))
        super().__init__(plan, options)

    def _epoch_rows(self, epoch: int, position: int) -> EpochRows:
        plan = self.plan
        order = plan_order(plan.units, plan.sampling, epoch, plan.batch_size, SHUFFLE_BATCHES * plan.batch_size,
                           position)
        return EpochRows(order.rows, order.dropped, order.padded, self._segments(order.segments))

    def _segments(self, segments: tuple[Segment, ...]) -> Iterator[Block]:
        read = self._windows(w for i, w in enumerate(s.window for s in segments)
                             if i == 0 or segments[i - 1].window is not w)
        # Two threads: the next window decodes while this one is permuted, so that on two cores the
        # shuffle costs no more time than the decoding it overlaps; the consumer only slices.
        windows = self._ahead(self._mixed(self._ahead(read, depth=1)))
        held: tuple[Window, Block] | None = None
        try:
            for segment in segments:
                if held is None or held[0] is not segment.window:
                    held = next(windows)
                yield slice_rows(held[1], segment.rows.start, segment.rows.stop)
        finally:
            windows.close()  # stops the prefetch thread when the consumer stops early

    def _windows(self, windows: Iterable[Window]) -> Iterator[tuple[Window, Block]]:
        """Each window's rows, decoded in reading order; a file stays open while its row groups follow."""
        opened: tuple[int, pq.ParquetFile] | None = None
        for window in windows:
            blocks = []
            for piece in window.pieces:
                if opened is None or opened[0] != piece.unit.file:
                    opened = (piece.unit.file, self.plan.sources[piece.unit.file].open())
                blocks.append(self._decoded(opened[1], piece))
            yield window, concat(blocks)

    @staticmethod
    def _mixed(read: Iterable[tuple[Window, Block]]) -> Iterator[tuple[Window, Block]]:
        """Each window's rows in its permuted order (as read without shuffle)."""
        for window, block in read:
            order = window.order()
            yield window, block if order is None else permuted(block, order)

    def _decoded(self, file: pq.ParquetFile, piece: Piece) -> Block:
        source, keep = self.plan.sources[piece.unit.file], self.plan.keep
        table = file.read_row_group(piece.unit.row_group, columns=self._read)
        if keep:
            table = table.filter(keep.mask(table))
        table = (expanded(table, piece.start, piece.stop) if self.plan.expand
                 else table.slice(piece.start, piece.stop - piece.start))
        return {name: _to_numpy(table.column(name), name, source) for name in self.plan.columns}


def _to_numpy(column: pa.ChunkedArray, name: str, source: Source) -> np.ndarray:
    """Numbers keep their stored dtype (numeric nulls become NaN); a fixed-length list becomes 2-D."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not is_list(array.type):
        return array.to_numpy(zero_copy_only=False)
    if array.null_count:
        raise ContractError(f"column {name!r} of {source.url} has null lists: array features must be "
                            f"fixed-length lists to become a 2-D tensor")
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
    else:
        lengths = np.diff(array.offsets.to_numpy())
        width = int(lengths[0]) if len(lengths) else 0
        if len(lengths) and (lengths != width).any():
            raise ContractError(f"column {name!r} of {source.url} has lists of lengths {lengths.min()} to "
                                f"{lengths.max()}: array features must have one fixed length")
    return array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), width)
