"""The per-text and per-task work of near-duplicate detection, compiled with numba: normalise,
shingle, MinHash band keys, pair up the rows of each bucket, and the exact Jaccard similarity of
candidate pairs.

1. Normalise: Arrow lower-cases the batch (`utf8_lower`, in C); the kernel decodes its UTF-8,
   collapses every run of whitespace (Python's `str.isspace` set) into one space and trims.
2. Shingles: every window of `size` characters (or words: each word hashed first) is hashed once
   into 64 bits (FNV-style fold + splitmix64). A text shorter than one window is one shingle; an
   empty or null text has none and is never compared. Shingles are compared by these hashes: two
   distinct shingles of a pair collide with probability ~2^-64 x shingles^2, nothing at this scale.
3. Band keys: one-permutation hashing within each band. Band j multiplies every shingle hash by its
   own odd constant a_j (a bijection of the 64-bit values); the top bits of the product pick one of
   `rows` bins and each bin keeps its smallest product. Two texts agree on a non-empty bin with
   probability equal to their Jaccard similarity, so a band of r bins matches with probability
   ~J^r, as r independent MinHashes would, at one multiply per shingle per band instead of one per
   MinHash: bands x shingles operations instead of bands x rows x shingles (8x fewer at the
   defaults). A bin that no shingle fell into borrows the next non-empty bin's value, salted by
   the distance (densification by rotation), so short texts keep `rows` values per band. The r
   values are folded into one 64-bit key salted by the band, so keys of different bands never meet.
4. Buckets: a task's (key, row) entries, keys cut to their low 32 bits, sorted by key; the rows of
   one key are paired up.
5. Jaccard: the two texts' shingle hashes, sorted and deduplicated, counted by a merge.

The kernels work on a whole Arrow batch at once (concatenated code points and the offsets where
each text ends), so Python touches no single text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkprep.compiled import kernel, splitmix64

_FULL = np.uint64(0xFFFFFFFFFFFFFFFF)
_FNV = np.uint64(0x100000001B3)
_SPACE = np.uint32(32)
_HALF = np.uint64(32)
_LOW = np.uint64(0xFFFFFFFF)


@kernel(inline="always")
def _is_space(c):  # pragma: no cover (compiled)
    """Python's str.isspace for one code point."""
    return (c == 32 or 9 <= c <= 13 or 28 <= c <= 31 or c == 133 or c == 160 or c == 5760
            or 8192 <= c <= 8202 or c == 8232 or c == 8233 or c == 8239 or c == 8287 or c == 12288)


@kernel
def _code_points(data, offsets, valid):  # pragma: no cover (compiled)
    """(code points, end of each text in them): the UTF-8 texts decoded, whitespace runs collapsed
    to one space, leading and trailing whitespace dropped; a null text is empty."""
    n = offsets.size - 1
    units = np.empty(max(0, offsets[n] - offsets[0]), np.uint32)
    ends = np.empty(n, np.int64)
    k = 0
    for t in range(n):
        first = k
        space = False
        i, stop = offsets[t], offsets[t + 1]
        while valid[t] and i < stop:
            b = np.uint32(data[i])
            if b < 0x80:
                c, i = b, i + 1
            elif b < 0xE0:
                c, i = ((b & 0x1F) << 6) | (np.uint32(data[i + 1]) & 0x3F), i + 2
            elif b < 0xF0:
                c = ((b & 0x0F) << 12) | ((np.uint32(data[i + 1]) & 0x3F) << 6) | (np.uint32(data[i + 2]) & 0x3F)
                i += 3
            else:
                c = (((b & 0x07) << 18) | ((np.uint32(data[i + 1]) & 0x3F) << 12)
                     | ((np.uint32(data[i + 2]) & 0x3F) << 6) | (np.uint32(data[i + 3]) & 0x3F))
                i += 4
            if _is_space(c):
                space = k > first
            else:
                if space:
                    units[k] = _SPACE
                    k += 1
                    space = False
                units[k] = c
                k += 1
        ends[t] = k
    return units[:k], ends


@kernel
def _words(units, ends):  # pragma: no cover (compiled)
    """(one hash per word, end of each text in them): the normalised texts cut at their spaces."""
    words = np.empty(units.size, np.uint64)
    word_ends = np.empty(ends.size, np.int64)
    k, start = 0, 0
    for t in range(ends.size):
        h, inside = _FNV, False
        for i in range(start, ends[t]):
            if units[i] == _SPACE:
                words[k] = splitmix64(h)
                k += 1
                h, inside = _FNV, False
            else:
                h, inside = (h ^ np.uint64(units[i])) * _FNV, True
        if inside:
            words[k] = splitmix64(h)
            k += 1
        word_ends[t] = k
        start = ends[t]
    return words[:k], word_ends


@kernel
def _shingles(tokens, ends, size):  # pragma: no cover (compiled)
    """(hash of every window of `size` tokens, end of each text in them); a text shorter than one
    window is one shingle, an empty text none. Windows are hashed whole, not rolled: at five
    tokens that costs less than a rolling hash's bookkeeping."""
    count = 0
    start = 0
    for t in range(ends.size):
        length = ends[t] - start
        count += 0 if length == 0 else max(1, length - size + 1)
        start = ends[t]
    hashes = np.empty(count, np.uint64)
    shingle_ends = np.empty(ends.size, np.int64)
    k, start = 0, 0
    for t in range(ends.size):
        length = ends[t] - start
        if length > 0:
            width = min(size, length)
            for i in range(start, ends[t] - width + 1):
                h = _FNV ^ np.uint64(width)
                for j in range(i, i + width):
                    h = (h ^ np.uint64(tokens[j])) * _FNV
                hashes[k] = splitmix64(h)
                k += 1
        shingle_ends[t] = k
        start = ends[t]
    return hashes, shingle_ends


@kernel
def _band_keys(hashes, ends, rows, multipliers, salts):  # pragma: no cover (compiled)
    """(texts with shingles, bands) keys: per band, one-permutation MinHash into `rows` bins,
    densified by rotation, folded with the band's salt. Shingles outside, bands inside, and a
    branch-free minimum: measured 1.9 us per ~90-character text against 2.7 the other way round
    and 8.4 with an `if` (a bin's minimum changes unpredictably, so the branch mispredicts)."""
    bands = multipliers.size
    keys = np.empty((ends.size, bands), np.uint64)
    bins = np.empty((bands, rows), np.uint64)
    filled = 0
    start = 0
    for t in range(ends.size):
        stop = ends[t]
        if stop == start:
            continue
        bins[:, :] = _FULL
        for i in range(start, stop):
            h = hashes[i]
            for band in range(bands):
                g = h * multipliers[band]
                b = ((g >> np.uint64(32)) * np.uint64(rows)) >> np.uint64(32)
                bins[band, b] = min(bins[band, b], g)
        for band in range(bands):
            key = salts[band]
            for r in range(rows):
                value, hops = bins[band, r], np.uint64(0)
                while value == _FULL:  # some bin of the band is filled: the text has a shingle
                    hops += np.uint64(1)
                    value = bins[band, (np.uint64(r) + hops) % np.uint64(rows)]
                if hops:
                    value = splitmix64(value + hops)
                key = splitmix64(key ^ value)
            keys[filled, band] = key
        filled += 1
        start = stop
    return keys[:filled]


@kernel
def _pair_jaccard(left, left_ends, right, right_ends):  # pragma: no cover (compiled)
    """Jaccard similarity of the shingle sets of text i of each side (0 when either has none)."""
    n = left_ends.size
    out = np.zeros(n)
    ls, rs = 0, 0
    for t in range(n):
        a = np.unique(left[ls:left_ends[t]])
        b = np.unique(right[rs:right_ends[t]])
        ls, rs = left_ends[t], right_ends[t]
        if a.size == 0 or b.size == 0:
            continue
        i = j = common = 0
        while i < a.size and j < b.size:
            if a[i] == b[j]:
                common += 1
                i += 1
                j += 1
            elif a[i] < b[j]:
                i += 1
            else:
                j += 1
        out[t] = common / (a.size + b.size - common)
    return out


def shingles(texts: pa.Array, kind: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, ends): the 64-bit hash of every shingle of every text, text i's being
    hashes[ends[i-1]:ends[i]] (in text order, repeats included).

    Args:
        texts: an Arrow string array (nulls: no shingles).
        kind: dedup.near.shingle: char or word.
        size: dedup.near.shingle_size.
    """
    lowered = pc.utf8_lower(texts.cast(pa.large_string()))
    validity = lowered.is_valid().to_numpy(zero_copy_only=False)
    _, offsets, data = lowered.buffers()
    offsets = np.frombuffer(offsets, np.int64)[lowered.offset:lowered.offset + len(lowered) + 1]
    data = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    units, ends = _code_points(data, offsets, validity)
    if kind == "word":
        units, ends = _words(units, ends)
    return _shingles(units, ends, size)


class BandHasher:
    """The band keys of one dedup.near config: the same multipliers and salts on every executor."""

    def __init__(self, kind: str, size: int, bands: int, rows: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.kind, self.size, self.rows = kind, size, rows
        self.multipliers = rng.integers(0, 1 << 63, size=bands, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
        self.salts = rng.integers(0, 1 << 63, size=bands, dtype=np.int64).astype(np.uint64)

    def keys(self, texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(owners, keys): the indexes of the texts that have shingles and their (owners, bands)
        band keys as int64.

        Args:
            texts: an Arrow string array.
        """
        hashes, ends = shingles(texts, self.kind, self.size)
        owners = np.flatnonzero(np.diff(ends, prepend=0))
        return owners, _band_keys(hashes, ends, self.rows, self.multipliers, self.salts).view(np.int64)


def jaccard(left: pa.Array, right: pa.Array, kind: str, size: int) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of left[i] and right[i], for every i (0 when
    either text has no shingles).

    Args:
        left: an Arrow string array.
        right: as many texts.
        kind: the shingle kind.
        size: the shingle size.
    """
    return _pair_jaccard(*shingles(left, kind, size), *shingles(right, kind, size))


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every run of equal values in sorted `keys`."""
    if not keys.size:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    ends = np.append(np.flatnonzero(keys[1:] != keys[:-1]) + 1, keys.size).astype(np.int64)
    return np.concatenate([[0], ends[:-1]]).astype(np.int64), ends


@kernel(inline="always")
def _run_end(packed, s):  # pragma: no cover (compiled)
    """The end of the run of entries that share packed[s]'s key (its high half)."""
    e = s + 1
    while e < packed.size and packed[e] >> _HALF == packed[s] >> _HALF:
        e += 1
    return e


@kernel
def _sorted_bucket_pairs(packed, rows, max_bucket):  # pragma: no cover (compiled)
    """The pairs (a, b), a < b, of the buckets of `packed`, (key << 32 | entry) sorted, so that a
    bucket is a run of equal high halves and its rows are rows[entry]: every pair of a bucket of at
    most `max_bucket` rows, and each row of a larger bucket with the bucket's smallest row."""
    n = packed.size
    total, s = 0, 0
    while s < n:
        e = _run_end(packed, s)
        size = e - s
        total += size - 1 if size > max_bucket else size * (size - 1) // 2
        s = e
    a = np.empty(total, np.int64)
    b = np.empty(total, np.int64)
    k, s = 0, 0
    while s < n:
        e = _run_end(packed, s)
        size = e - s
        if size > 1:
            members = np.empty(size, np.int64)
            for i in range(size):
                members[i] = rows[packed[s + i] & _LOW]
            members.sort()
            for i in range(1 if size > max_bucket else size - 1):
                for j in range(i + 1, size):
                    if members[i] != members[j]:
                        a[k], b[k] = members[i], members[j]
                        k += 1
        s = e
    return a[:k], b[:k]


@kernel
def _hot_runs(starts, ends, rows, max_bucket, total):  # pragma: no cover (compiled)
    """Which entries to keep, and the `total` (smallest row, row) pairs that replace every run
    rows[starts[i]:ends[i]] longer than `max_bucket`, of which only the smallest row is kept."""
    keep = np.ones(rows.size, np.bool_)
    a = np.empty(total, np.int64)
    b = np.empty(total, np.int64)
    k = 0
    for r in range(starts.size):
        s, e = starts[r], ends[r]
        if e - s <= max_bucket:
            continue
        smallest = s
        for i in range(s + 1, e):
            if rows[i] < rows[smallest]:
                smallest = i
        for i in range(s, e):
            if i != smallest:
                keep[i] = False
                if rows[i] != rows[smallest]:
                    a[k], b[k] = rows[smallest], rows[i]
                    k += 1
    return keep, a[:k], b[:k]


def hot_runs(keys: np.ndarray, rows: np.ndarray, max_bucket: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keep, a, b) for (key, row) entries sorted by key: a key held by more than `max_bucket`
    entries keeps only its smallest row's, and each other row becomes a pair (smallest row, row),
    as `bucket_pairs` would link them; `keep` marks the entries left.

    Args:
        keys: band keys (int64), sorted.
        rows: the row_id of each entry.
        max_bucket: dedup.near.max_bucket.
    """
    starts, ends = _runs(keys)
    sizes = ends - starts
    return _hot_runs(starts, ends, rows, max_bucket, int((sizes - 1)[sizes > max_bucket].sum()))


def bucket_pairs(keys: np.ndarray, rows: np.ndarray, max_bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs (a, b), a < b, of the (band key, row) entries of one task: all pairs
    within a bucket of at most `max_bucket` rows; in a larger one (boilerplate, templates) each row
    paired with the bucket's smallest row only, so the pairs stay linear in the rows. A pair that
    shares several keys comes once per key (`distinct_pairs`).

    The keys are 32 bits: a task's keys share their high bits (its key range), and two keys that
    agree on the low 32 only add a candidate that verification drops (about n^2 / 2^33 of them for
    n entries). Each key and its entry's index are packed into one 64-bit value and sorted: a
    plain sort, where sorting the rows by the keys (argsort) cost 4x as much.

    Args:
        keys: band keys (uint32: the low half of `BandHasher.keys`), in any order.
        rows: the row_id of each entry.
        max_bucket: dedup.near.max_bucket.
    """
    if keys.size >= 1 << 32:
        raise ValueError(f"{keys.size} entries in one task: more than 32 bits can index")
    packed = (keys.astype(np.uint64) << _HALF) | np.arange(keys.size, dtype=np.uint64)
    packed.sort()
    return _sorted_bucket_pairs(packed, rows, max_bucket)


@kernel
def _by_task(keys, rows, tasks):  # pragma: no cover (compiled)
    """(low 32 bits of each key, its row, entries per task), grouped by task: a counting sort in two passes."""
    counts = np.zeros(tasks, np.int64)
    for i in range(keys.size):
        counts[((keys[i] >> _HALF) * np.uint64(tasks)) >> _HALF] += 1
    at = np.empty(tasks, np.int64)
    total = 0
    for t in range(tasks):
        at[t] = total
        total += counts[t]
    low = np.empty(keys.size, np.uint32)
    grouped = np.empty(keys.size, np.int64)
    for i in range(keys.size):
        t = ((keys[i] >> _HALF) * np.uint64(tasks)) >> _HALF
        low[at[t]] = keys[i] & _LOW
        grouped[at[t]] = rows[i]
        at[t] += 1
    return low, grouped, counts


def by_task(keys: np.ndarray, rows: np.ndarray, tasks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, rows, counts): (band key, row) entries grouped by the task that owns each key, task t
    owning the t-th of `tasks` equal ranges of the keys' high 32 bits, each key cut to its low 32
    bits (all `bucket_pairs` needs), and the number of entries of each task.

    Args:
        keys: band keys (int64, from `BandHasher.keys`).
        rows: the row_id of each entry.
        tasks: the number of bucket tasks.
    """
    return _by_task(keys.view(np.uint64), rows, tasks)


def has_hot_keys(keys: np.ndarray, max_bucket: int) -> bool:
    """Whether a key is held by more than `max_bucket` of `keys` (a sort, no argsort: usually none is).

    Args:
        keys: band keys, in any order.
        max_bucket: dedup.near.max_bucket.
    """
    ordered = np.sort(keys)
    return bool((ordered[max_bucket:] == ordered[:-max_bucket]).any())


def distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (a[i], b[i]) pairs, sorted.

    Args:
        a: first ends.
        b: second ends, as many.
    """
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    first = np.ones(a.size, bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first]
