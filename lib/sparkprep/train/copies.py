"""Counted copies (rebalance.copies: count) expanded into the rows a training split reads.

Such an output stores each original once, with its number of oversampled copies in `copies`
(docs/manifest.md). Train and final read every original as 1 + copies rows, replica 0..copies, in
the stored row order: exactly the rows that the output with copies written as rows holds, so a
split's (row_id, replica) multiset is the same in both layouts. Positions (sharding's units and
pieces, a loader state's position) count the expanded rows, so a range of them is expanded
without the rows around it: equal DDP shards and an exact resume come from the same plan as with
materialised copies.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkprep.contract import COPIES, REPLICA
from sparkprep.errors import ContractError


def expansion(copies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row i as 1 + copies[i] rows, in row order: the stored row each comes from and its replica.

    Args:
        copies: each stored row's count of copies.

    Returns:
        The stored row's index and the replica (0 for the original, then 1..copies) of each
        expanded row.

    Raises:
        ContractError: a count is negative.
    """
    times = copies.astype(np.int64) + 1
    if len(times) and times.min() < 1:
        raise ContractError(f"a {COPIES} count of {int(times.min()) - 1}: counts of copies are 0 or more")
    index = np.repeat(np.arange(len(times)), times)
    first = np.repeat(np.cumsum(times) - times, times)  # where each stored row's run starts
    return index, np.arange(len(index)) - first


def expanded_rows(table: pa.Table) -> int:
    """How many rows `table` expands to: its rows plus their copies.

    Args:
        table: stored rows with the `copies` column.
    """
    return table.num_rows + int(pc.sum(_counts(table)).as_py() or 0)


def expanded(table: pa.Table, start: int = 0, stop: int | None = None) -> pa.Table:
    """Rows [start, stop) of the expansion of `table`, with `replica` (where read) set to 0..copies.

    Args:
        table: stored rows with the `copies` column.
        start: the first expanded row.
        stop: one past the last; None for the end.
    """
    index, replica = expansion(_counts(table).to_numpy())
    index, replica = index[start:stop], replica[start:stop]
    rows = table.take(pa.array(index))
    if REPLICA in rows.column_names:
        at = rows.schema.get_field_index(REPLICA)
        rows = rows.set_column(at, rows.schema.field(REPLICA), pa.array(replica, rows.schema.field(REPLICA).type))
    return rows


def _counts(table: pa.Table) -> pa.Array:
    column = table.column(COPIES)
    if column.null_count:
        raise ContractError(f"{column.null_count} null {COPIES} count(s): the output is not as its manifest "
                            f"describes it (rebalance.copies: count); run `sparkprep verify` on it")
    return column.combine_chunks()
