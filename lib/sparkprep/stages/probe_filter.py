"""A blocked Bloom filter over 64-bit probes, in plain Spark SQL: a set test whose broadcast stays
small and bounded however many members the set has.

Exact dedup and conflicts send the rows whose probe repeats to their grouping and every other
row straight through; the group split groups only the rows of repeated group values; near-dup
joins its clusters to the rows (`join_small`).
Broadcasting the repeated probes themselves costs the driver about 175 bytes per probe while it
builds Spark's hash map: 2.5M probes took 440 MB of a 1 GB heap, and a 20 GB run died of it. The
filter takes 16 to 32 bits per member, at most `MAX_BITS` in all (16 MB). It passes every member
and a few others: about 0.2% of non-members at 16 bits per member, more once the members
outgrow `MAX_BITS / 16` (8M); the memory never grows. So a caller must be correct for any superset
of the members, as dedup's collapse is (a row without a duplicate collapses to itself).
`mark_members` broadcasts a small set (EXACT_MEMBERS) as it is: exact, and one aggregation to
build instead of the filter's few stages (about a second saved per use on small sets).

Layout: blocks of 4096 bits (64 longs), one row per block with a bit set. A probe picks its block
from its own bits and sets `HASHES` bits in it from 12-bit slices of a second hash, so a test is
one lookup in the broadcast (few, wide rows) and `HASHES` bit tests in one array.
"""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkprep.io.write import Materialise, counted

BLOCK_BITS = 4096
_WORDS = BLOCK_BITS // 64
HASHES = 4
BITS_PER_MEMBER = 16
MAX_BITS = 1 << 27
log = logging.getLogger(__name__)

#: Up to this many members a set is broadcast as it is rather than as a Bloom filter: at the ~175
#: bytes a member the driver needs while it builds the broadcast (above), 44 MB at most.
EXACT_MEMBERS = 250_000
#: Up to this many rows `join_small` broadcasts a table packed into blocks of about
#: PACKED_PER_BLOCK keys (about 20 bytes a key with one value column: 60 MB at the limit).
PACKED_MEMBERS = 3_000_000
PACKED_PER_BLOCK = 16
BLOCK = "_sp_filter_block"
WORDS = "_sp_filter_words"


def filter_bits(members: int) -> int:
    """Bits for a filter of `members` probes: a power of two, 16 per member or more, at least one
    block and at most `MAX_BITS`.

    Args:
        members: the number of probes the filter holds.
    """
    return min(MAX_BITS, max(BLOCK_BITS, 1 << (BITS_PER_MEMBER * members - 1).bit_length()))


def _block(probe: Column, bits: int) -> Column:
    return F.pmod(probe, F.lit(bits // BLOCK_BITS).cast("long"))


def _positions(probe: Column) -> list[Column]:
    """The bits a probe sets in its block, from a hash independent of the block's choice."""
    spread = F.xxhash64(F.lit("sparkprep/probe-filter"), probe)
    return [F.shiftright(spread, 12 * i).bitwiseAND(BLOCK_BITS - 1) for i in range(HASHES)]


def _bit(position: Column) -> tuple[Column, Column]:
    """(1-based index of the long in the block, bit in that long)."""
    return F.shiftright(position, 6).cast("int") + 1, position.bitwiseAND(63).cast("int")


def build(members: DataFrame, probe: str, bits: int) -> DataFrame:
    """The filter of `members`' long column `probe`, for `bits` (`filter_bits`): one row per block
    with a bit set, (`BLOCK`, `WORDS`: 64 longs).

    Args:
        members: the probes (one long column).
        probe: that column's name.
        bits: the filter's size (`filter_bits`).
    """
    word, bit = _bit(F.col("_sp_filter_position"))
    positions = members.select(_block(F.col(probe), bits).alias(BLOCK),
                               F.explode(F.array(*_positions(F.col(probe)))).alias("_sp_filter_position"))
    words = positions.groupBy(BLOCK, word.alias("_sp_word")).agg(
        F.bit_or(F.call_function("shiftleft", F.lit(1).cast("long"), bit)).alias("_sp_bits"))
    by_word = words.groupBy(BLOCK).agg(F.map_from_entries(F.collect_list(F.struct("_sp_word", "_sp_bits"))).alias("_sp_map"))
    return by_word.select(BLOCK, F.transform(F.sequence(F.lit(1), F.lit(_WORDS)),
                                             lambda i: F.coalesce(F.try_element_at("_sp_map", i), F.lit(0).cast("long"))).alias(WORDS))


def mark(df: DataFrame, probe: str, members: DataFrame, bits: int, flag: str) -> DataFrame:
    """`df` with boolean `flag`: false where its long column `probe` is surely not a member of the
    filter `members` (`build` with the same `bits`), true where it may be. `members` is broadcast.

    Args:
        df: rows with the long column `probe`.
        probe: the column to look up.
        members: the filter (`build`).
        bits: its size.
        flag: the boolean column to add.
    """
    def is_set(position: Column) -> Column:
        word, bit = _bit(position)
        return F.call_function("shiftright", F.element_at(F.col(WORDS), word), bit).bitwiseAND(1) == 1

    looked_up = df.withColumn(BLOCK, _block(F.col(probe), bits)).join(F.broadcast(members), BLOCK, "left")
    every_bit = reduce(lambda a, b: a & b, [is_set(p) for p in _positions(F.col(probe))])
    return looked_up.withColumn(flag, F.coalesce(every_bit, F.lit(False))).select(*df.columns, flag)


def repeated(df: DataFrame, probe: str, materialise: Materialise, name: str) -> tuple[DataFrame, int]:
    """The values of the long column `probe` that occur in more than one row of `df`, kept by
    `materialise` as `name`, and how many there are (one narrow aggregation; counted as written).

    Args:
        df: the rows.
        probe: the column.
        materialise: where the values are kept.
        name: their scratch name.
    """
    return counted(materialise, df.groupBy(probe).count().where(F.col("count") > 1).select(probe), name)


def mark_members(df: DataFrame, probe: str, members: DataFrame, count: int, materialise: Materialise,
                 flag: str, name: str, exact_members: int | None = None) -> DataFrame:
    """`df` with boolean `flag`: true for every row whose `probe` is among `members`', false for
    the others, but for a few that a Bloom filter cannot tell apart. Up to `exact_members` members
    the set itself is broadcast (exact: its build is one small aggregation, where the filter's
    takes several stages); beyond, a filter sized for `count` members (`build`, `mark`). The set
    or the filter is kept by `materialise` as `name`.

    Args:
        df: rows with the long column `probe`.
        probe: the column to look up, the same name in `members`.
        members: the probes of the set (duplicates allowed).
        count: how many distinct probes `members` holds (or an upper bound).
        materialise: where the set or the filter is kept.
        flag: the boolean column to add.
        name: its scratch name.
        exact_members: the most members broadcast as they are (default EXACT_MEMBERS).
    """
    if count <= (EXACT_MEMBERS if exact_members is None else exact_members):
        log.info("%s: the set of %d members, broadcast", name, count)
        distinct = materialise(members.select(probe).distinct().withColumn(flag, F.lit(True)), name)
        looked_up = df.join(F.broadcast(distinct), probe, "left")
        return looked_up.withColumn(flag, F.coalesce(F.col(flag), F.lit(False))).select(*df.columns, flag)
    bits = filter_bits(count)
    log.info("%s: a Bloom filter of %d bits for %d members", name, bits, count)
    return mark(df, probe, materialise(build(members, probe, bits), name), bits, flag)


def join_small(df: DataFrame, table: DataFrame, key: str, count: int, materialise: Materialise, name: str) -> DataFrame:
    """`df` left-joined with `table` (at most one row per `key`, `count` rows), with `df`'s columns
    first. Up to EXACT_MEMBERS rows the table is broadcast as it is, and up to PACKED_MEMBERS packed
    (`_packed_join`): one pass over `df` that shuffles none of its rows. Beyond, the rows a Bloom
    filter of its keys passes are shuffled and joined and the others get nulls (that reads `df`
    twice: once for the rows the filter passes, once for the others).

    Args:
        df: rows with the long column `key`.
        table: the rows to join, keyed by `key`.
        key: the column both have.
        count: how many rows `table` has (or an upper bound).
        materialise: where the packed table or the filter (or the broadcast set) is kept.
        name: its scratch name.
    """
    values = [c for c in table.columns if c != key]
    if count <= EXACT_MEMBERS:
        return df.join(F.broadcast(table), key, "left").select(*df.columns, *values)
    if count <= PACKED_MEMBERS:
        return _packed_join(df, table, key, values, count, materialise, name)
    flag = "_sp_join_small"
    marked = mark_members(df, key, table.select(key), count, materialise, flag, name, exact_members=0)
    hit = marked.where(F.col(flag)).drop(flag).join(table, key, "left").select(*df.columns, *values)
    types = dict(table.dtypes)
    miss = marked.where(~F.col(flag)).drop(flag).withColumns({c: F.lit(None).cast(types[c]) for c in values})
    return miss.unionByName(hit)


def _packed_join(df: DataFrame, table: DataFrame, key: str, values: list[str], count: int, materialise: Materialise,
                 name: str) -> DataFrame:
    """`join_small` through `table` packed: one row per block of about PACKED_PER_BLOCK keys (the
    block is the key modulo the number of blocks), holding the block's keys and each value column
    as aligned arrays. A row finds its block by a broadcast hash join and its key in the block's
    array. A broadcast row per key costs the driver about 175 bytes while it builds the broadcast;
    packed, a key costs about 8 bytes per column and the block's row overhead is shared."""
    blocks = max(1, count // PACKED_PER_BLOCK)
    log.info("%s: %d keys packed into %d blocks, broadcast", name, count, blocks)
    block = F.pmod(F.col(key), F.lit(blocks).cast("long"))
    entries = F.sort_array(F.collect_list(F.struct(key, *values)))
    packed = materialise(table.groupBy(block.alias(BLOCK))
                         .agg(entries.alias("_sp_entries"))
                         .select(BLOCK, *[F.col(f"_sp_entries.{c}").alias(f"_sp_packed_{c}") for c in [key, *values]]),
                         name)
    looked_up = df.withColumn(BLOCK, block).join(F.broadcast(packed), BLOCK, "left")
    at = F.array_position(F.col(f"_sp_packed_{key}"), F.col(key)).cast("int")
    return looked_up.select(*df.columns, *[F.when(at > 0, F.element_at(F.col(f"_sp_packed_{c}"), at)).alias(c)
                                           for c in values])
