"""The native backend: one split read with pyarrow, row group by row group, into torch tensors.

Memory per rank is bounded by the shuffle window: with shuffle, at most 2 x (the window of base.SHUFFLE_BATCHES
batches + the rows of one row group) decoded rows of the selected columns (a window and its permuted copy);
without shuffle, one row group plus one batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sparkprep.errors import ContractError
from sparkprep.train.backends.base import BackendOptions, ReadPlan, ShardedLoader, Source, is_list
from sparkprep.train.batching import Block
from sparkprep.train.sharding import Shard



@dataclass(frozen=True)
class ArrowOptions(BackendOptions):
    """The default backend, pyarrow row group by row group; it has no options of its own."""

    def loader(self, plan: ReadPlan) -> ArrowLoader:
        """An ArrowLoader of the split.

        Args:
            plan: what to read, and how ranks share it.
        """
        return ArrowLoader(plan)


class ArrowLoader(ShardedLoader):
    """The shard's pieces read with pyarrow, row group by row group; see `ShardedLoader`.

    Args:
        plan: what to read, and how ranks share it; its units are row groups.
    """

    def __init__(self, plan: ReadPlan) -> None:
        keep, columns = plan.keep, plan.columns
        self._read = [*columns, keep.column] if keep and keep.column not in columns else list(columns)
        super().__init__(plan)

    def _blocks(self, shard: Shard, epoch: int) -> Iterator[Block]:
        sources, keep = self.plan.sources, self.plan.keep
        opened: tuple[int, pq.ParquetFile] | None = None
        for piece in shard.pieces:
            unit = piece.unit
            if opened is None or opened[0] != unit.file:
                opened = (unit.file, sources[unit.file].open())
            table = opened[1].read_row_group(unit.row_group, columns=self._read)
            if keep:
                table = table.filter(keep.mask(table))
            table = table.slice(piece.start, piece.stop - piece.start)
            yield {name: _to_numpy(table.column(name), name, sources[unit.file]) for name in self.plan.columns}


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
