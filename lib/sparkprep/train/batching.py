"""Column blocks (dicts of equal-length numpy arrays) → shuffled windows → batches of a fixed size."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Block = dict[str, np.ndarray]


def shuffled_windows(blocks: Iterable[Block], window_rows: int, rng: np.random.Generator) -> Iterator[Block]:
    """Concatenate blocks until at least `window_rows` rows are held, then yield them permuted.

    Each window holds whole blocks (row groups), so rows mix within a row group whatever its size
    and across row groups up to the window. Memory: at most window_rows plus one block, twice
    (the concatenation and its permuted copy).

    Args:
        blocks: column blocks, in reading order.
        window_rows: the rows a window holds at least before it is permuted (the last may hold fewer).
        rng: the epoch's generator for this rank (sharding.epoch_rng).
    """
    pending: list[Block] = []
    held = 0
    for block in blocks:
        pending.append(block)
        held += rows_of(block)
        if held >= window_rows:
            yield permuted(concat(pending), rng.permutation(held))
            pending, held = [], 0
    if pending:
        yield permuted(concat(pending), rng.permutation(held))


def skip_rows(blocks: Iterable[Block], rows: int) -> Iterator[Block]:
    """The blocks without their first `rows` rows (a resume into a stream that cannot be entered
    anywhere else than at its start).

    Args:
        blocks: column blocks, in reading order.
        rows: how many rows to leave out.
    """
    for block in blocks:
        n = rows_of(block)
        if rows >= n:
            rows -= n
            continue
        yield slice_rows(block, rows, n) if rows else block
        rows = 0


def rebatch(blocks: Iterable[Block], batch_size: int) -> Iterator[Block]:
    """Batches of exactly `batch_size` rows (the last one may be shorter); slices of the blocks,
    so copies happen only for a batch that straddles two blocks.

    Args:
        blocks: column blocks, in reading order.
        batch_size: rows per batch.
    """
    carry: Block | None = None
    for block in blocks:
        n, i = rows_of(block), 0
        if carry is not None:
            need = batch_size - rows_of(carry)
            if n < need:
                carry = concat([carry, block])
                continue
            yield concat([carry, slice_rows(block, 0, need)])
            carry, i = None, need
        while i + batch_size <= n:
            yield slice_rows(block, i, i + batch_size)
            i += batch_size
        if i < n:
            carry = slice_rows(block, i, n)
    if carry is not None:
        yield carry


def rows_of(block: Block) -> int:
    """The number of rows of a block (its columns have as many).

    Args:
        block: a block with at least one column.
    """
    return len(next(iter(block.values())))


def concat(blocks: list[Block]) -> Block:
    """The blocks' rows, in order, as one block (the block itself when there is one).

    Args:
        blocks: blocks with the same columns.
    """
    if len(blocks) == 1:
        return blocks[0]
    return {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}


def slice_rows(block: Block, start: int, stop: int) -> Block:
    """Rows [start, stop) of a block, as views of its arrays.

    Args:
        block: a block.
        start: the first row.
        stop: one past the last row.
    """
    return {name: array[start:stop] for name, array in block.items()}


def permuted(block: Block, order: np.ndarray) -> Block:
    """The block's rows in the given order (a copy).

    Args:
        block: a block.
        order: a permutation of its rows.

    Raises:
        ValueError: `order` does not have as many rows as the block (the gather checks no bounds).
    """
    if len(order) != rows_of(block):
        raise ValueError(f"a permutation of {len(order)} rows for a block of {rows_of(block)}")
    indices = pa.array(order)
    return {name: _gathered(array, order, indices) for name, array in block.items()}


def _gathered(array: np.ndarray, order: np.ndarray, indices: pa.Array) -> np.ndarray:
    """array[order], the shuffle's whole cost: Arrow's take gathers a 1-D column about twice as
    fast as numpy (both sides zero-copy), a fifth faster again without its bounds check, which a
    permutation of the block's rows cannot fail; numpy is faster for 2-D (whole rows of a list
    column). Both release the GIL while they copy."""
    if array.ndim == 1:
        return pc.take(pa.array(array), indices, boundscheck=False).to_numpy(zero_copy_only=False)
    return np.take(array, order, axis=0)
