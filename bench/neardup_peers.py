"""Benchmark: near-duplicate detection, ours against Spark MLlib and datasketch, on the same texts
in the same run, with the precision and recall of each against an exact truth.

For each size, generated texts (row_id, ~90-character text, ~2% near-duplicates and ~3% exact
copies, as neardup_scale.py) are written as Parquet once; ours and MLlib get one untimed warm-up
on 1,000 of them (as the floor does), then every tool is measured:

- floor: Spark reading the texts and writing them back (for the ratios);
- ours: `add_dup_clusters` (NearDupConfig defaults: 25 bands x 8 rows), materialised; its answer is
  every pair of rows in one cluster, and (untimed) the verified edges of `verified_pairs`;
- Spark MLlib, the built-in way: normalised text -> set of 5-character shingles -> HashingTF
  (binary, 2^18) -> MinHashLSH (25 hash tables, seed 1, to match our 25 bands loosely) ->
  approxSimilarityJoin at distance 0.2, a < b; broadcast joins off during it (with them it runs out
  of heap). Each of its tables is one MinHash (an OR of 25, no AND of rows), so every pair that
  shares one minimum becomes a candidate whose exact distance it computes;
- datasketch: MinHash(num_perm=200) per text, MinHashLSH(threshold=0.8), every text inserted and
  queried on the driver (texts already in memory); its candidates are its answer, as a user takes
  them (how many are at Jaccard >= 0.8 is reported too).
The peers run under `--peer-timeout`: a peer still running then is stopped and reported as such.

Truth: every pair of texts whose character 5-shingle sets (lower-cased, whitespace runs collapsed
to one space, trimmed) have an exact Jaccard similarity >= 0.8, found without Spark by a permissive
banding (40 bands x 4 rows: a pair at 0.8 is missed with probability (1 - 0.8^4)^40 ~ 6e-10) and
exact verification. Where its buckets would hold over TRUTH_MAX_PAIRS pairs, the truth covers a
random sample of 20,000 texts and every tool is scored on the pairs with both ends in it.
`--self-check` compares the truth with brute force over all pairs of 500 texts. `--docstrings`
adds a run on a real text collection shipped inside PyPI packages: the docstrings of 200+
characters of DOCSTRING_PACKAGES (as installed in the ETL environment).

Prints one JSON line per size, writes bench/results/<date>-neardup-peers.json and adds one row per
tool and size to bench/RESULTS.md (first table).

    .venv/etl/bin/python bench/neardup_peers.py --sizes 20000 100000
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import itertools
import json
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
from py4j.protocol import Py4JError, Py4JNetworkError
from datasketch import MinHash, MinHashLSH as SketchLSH
from pyspark.ml.feature import HashingTF, MinHashLSH
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from neardup_scale import Scratch, generated_texts  # bench/ is sys.path[0] when a bench script runs
from results_table import insert_rows

from sparkprep.config import NearDupConfig, SparkConfig
from sparkprep.contract import DUP_CLUSTER, ROW_ID
from sparkprep.io.session import build_session
from sparkprep.stages.dedup.minhash import BandHasher, bucket_pairs, jaccard
from sparkprep.stages.dedup.near import add_dup_clusters, candidate_pairs, verified_pairs

HERE = Path(__file__).resolve().parent
THRESHOLD, SHINGLE = 0.8, 5
TRUTH_BANDS, TRUTH_ROWS, TRUTH_SAMPLE = 40, 4, 20_000
#: Pairs the truth's buckets may hold (each one an exact Jaccard) before it falls back to a sample.
TRUTH_MAX_PAIRS = 20_000_000
MLLIB_TABLES, SKETCH_PERM = 25, 200
#: approxSimilarityJoin keeps distance < threshold, strictly: a pair at exactly 0.8 needs the slack.
MLLIB_DISTANCE = 1 - THRESHOLD + 1e-9
Pairs = set[tuple[int, int]]


class _TooManyPairs(Exception):
    """The truth's buckets hold more pairs than TRUTH_MAX_PAIRS."""


def _session(master: str) -> SparkSession:
    return build_session(SparkConfig(master=master, shuffle_partitions=16,
                                     conf={"spark.ui.showConsoleProgress": "false"}), "sparkprep-bench-neardup-peers")


def _warm_up(spark: SparkSession, source: str, work: Path) -> None:
    """One untimed run of each Spark tool on 1,000 of the texts, as the floor has: a session's first
    run starts the Python workers and JIT-compiles (at 2,000 texts, ours took 24 s cold and 9-10 s
    warm, MLlib 23 s cold and 12 s warm; whichever ran second got the other's warm-up)."""
    sample = str(work / "warm-up")
    spark.read.parquet(source).where(F.col(ROW_ID) < 1000).write.mode("overwrite").parquet(sample)
    _ours(spark, sample, work, 1000)
    _mllib(spark, sample, work, 600)


def _floor_s(spark: SparkSession, source: str, work: Path) -> float:
    """Seconds to read the texts and write them back, after one warm-up."""
    for _ in range(2):
        start = time.perf_counter()
        spark.read.parquet(source).write.mode("overwrite").parquet(str(work / "floor"))
    return time.perf_counter() - start


def _ours(spark: SparkSession, source: str, work: Path, n: int) -> tuple[float, Pairs, Pairs]:
    """(seconds of add_dup_clusters, pairs of rows sharing a cluster, verified edges (untimed))."""
    materialise = Scratch(spark, Path(tempfile.mkdtemp(prefix="ours-", dir=work)))
    texts, config = spark.read.parquet(source), NearDupConfig(column="text")
    start = time.perf_counter()
    clustered = materialise(add_dup_clusters(texts, config, materialise), "clusters")
    seconds = time.perf_counter() - start
    members = defaultdict(set)
    for row, cluster in clustered.where(F.col(DUP_CLUSTER) != F.col(ROW_ID)).select(ROW_ID, DUP_CLUSTER).collect():
        members[cluster] |= {row, cluster}
    pairs = {pair for rows in members.values() for pair in itertools.combinations(sorted(rows), 2)}
    edges = verified_pairs(texts, candidate_pairs(texts, config, n), config).select("a", "b").collect()
    return seconds, pairs, {(a, b) for a, b in edges}


def _spark_shingles(texts: DataFrame) -> DataFrame:
    """(row_id, shingles): each non-empty normalised text's 5-character substrings, in SQL."""
    normal = texts.select(ROW_ID, F.trim(F.regexp_replace(F.lower("text"), r"\s+", " ")).alias("t"))
    # A text shorter than one shingle is one shingle: itself (substring past the end stops there).
    # Empty texts go: MinHashLSH fails on a vector without a non-zero entry.
    starts = F.sequence(F.lit(1), F.greatest(F.length("t") - SHINGLE + 1, F.lit(1)))
    return normal.where(F.length("t") > 0).select(
        ROW_ID, F.transform(starts, lambda i: F.col("t").substr(i, F.lit(SHINGLE))).alias("shingles"))


def _mllib_join(texts: DataFrame) -> DataFrame:
    """(a, b), a < b: MLlib's pairs at Jaccard distance <= 0.2 of the texts' 5-shingle sets."""
    shingled = _spark_shingles(texts)
    vectors = HashingTF(inputCol="shingles", outputCol="features", binary=True, numFeatures=1 << 18).transform(shingled)
    model = MinHashLSH(inputCol="features", outputCol="hashes", numHashTables=MLLIB_TABLES, seed=1).fit(vectors)
    joined = model.approxSimilarityJoin(vectors, vectors, MLLIB_DISTANCE, distCol="distance")
    return joined.select(F.col(f"datasetA.{ROW_ID}").alias("a"), F.col(f"datasetB.{ROW_ID}").alias("b")).where("a < b")


def _failure(exc: Exception) -> str:
    """A failed peer's status: the JVM's heap error where there is one, else the first line."""
    if isinstance(exc, (ConnectionError, Py4JNetworkError)):
        return "failed: the JVM exited (in local mode, a task's OutOfMemoryError ends it: see its log)"
    lines = str(exc).splitlines() or [type(exc).__name__]
    return next((line.strip() for line in lines if "OutOfMemoryError" in line), f"failed: {lines[0][:200]}")


def _run_limited(spark: SparkSession, action, limit: float) -> tuple[float, str]:
    """(seconds, status) of `action`, run in a thread whose Spark jobs are cancelled after `limit` s."""
    sc, group, failures = spark.sparkContext, f"peer-{time.time_ns()}", []

    def run() -> None:
        sc.setJobGroup(group, "near-dup peer", interruptOnCancel=True)
        try:
            action()
        except Exception as exc:  # reported as the peer's status: the bench goes on with the others
            failures.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(limit)
    seconds = time.perf_counter() - start
    if not thread.is_alive():
        return seconds, _failure(failures[0]) if failures else "ok"
    while thread.is_alive():  # cancel again: the action may have started its next job meanwhile
        sc.cancelJobGroup(group)
        thread.join(5)
    return limit, f"stopped after {limit:.0f} s (time limit)"


def _mllib(spark: SparkSession, source: str, work: Path, limit: float) -> tuple[float, str, Pairs]:
    path, setting = str(work / "mllib-pairs"), "spark.sql.autoBroadcastJoinThreshold"
    previous = spark.conf.get(setting)
    spark.conf.set(setting, "-1")
    try:
        seconds, status = _run_limited(spark, lambda: _mllib_join(spark.read.parquet(source)).write.parquet(path), limit)
        pairs = {(a, b) for a, b in spark.read.parquet(path).collect()} if status == "ok" else set()
    finally:
        with suppress(Py4JError, ConnectionError):  # a heap error may have taken the JVM down
            spark.conf.set(setting, previous)
        shutil.rmtree(path, ignore_errors=True)
    return seconds, status, pairs


def _shingle_set(text: str) -> set[str]:
    """The text's character shingles after normalisation (lower case, single spaces, trimmed)."""
    t = " ".join(text.lower().split())
    return {t[i:i + SHINGLE] for i in range(max(1, len(t) - SHINGLE + 1))} if t else set()


def _datasketch(ids: np.ndarray, texts: list[str], limit: float) -> tuple[float, str, Pairs]:
    """(seconds, status, candidate pairs) of datasketch; checks the clock between texts."""
    start, status = time.perf_counter(), "ok"
    lsh, sketches = SketchLSH(threshold=THRESHOLD, num_perm=SKETCH_PERM), []
    for k, (row, text) in enumerate(zip(ids.tolist(), texts)):
        if time.perf_counter() - start > limit:
            return limit, f"stopped after {limit:.0f} s at {k:,} texts (inserting)", set()
        shingles = _shingle_set(text)
        if shingles:
            sketch = MinHash(num_perm=SKETCH_PERM)
            sketch.update_batch([s.encode("utf-8") for s in shingles])
            lsh.insert(row, sketch)
            sketches.append((row, sketch))
    pairs = set()
    for k, (row, sketch) in enumerate(sketches):
        if time.perf_counter() - start > limit:
            status = f"stopped after {limit:.0f} s at {k:,} texts (querying)"
            break
        pairs |= {(row, other) for other in lsh.query(sketch) if row < other}
    return min(time.perf_counter() - start, limit), status, pairs


def _jaccards(pairs: Pairs, ids: np.ndarray, texts: pa.Array) -> np.ndarray:
    """Exact Jaccard of each pair's texts (ids sorted, texts in their order)."""
    a, b = (np.searchsorted(ids, np.array([p[i] for p in pairs], np.int64)) for i in (0, 1))
    return jaccard(texts.take(pa.array(a)), texts.take(pa.array(b)), "char", SHINGLE) if pairs else np.empty(0)


def truth_pairs(ids: np.ndarray, texts: pa.Array) -> Pairs:
    """All pairs (a, b), a < b, of texts at exact Jaccard >= 0.8 (module docstring).

    Args:
        ids: the texts' row_ids, ascending.
        texts: the texts, in the same order.
    """
    owners, keys = BandHasher("char", SHINGLE, TRUTH_BANDS, TRUTH_ROWS, seed=7).keys(texts)
    keys = keys.reshape(-1)
    _, sizes = np.unique(keys, return_counts=True)
    if int((sizes * (sizes - 1) // 2).sum()) > TRUTH_MAX_PAIRS:
        raise _TooManyPairs(f"largest bucket {sizes.max():,} texts")
    # Positions, not row_ids, in the buckets: a < b then holds for the row_ids too (ids ascend).
    # Keys cut to 32 bits, as a bucket task cuts them: a few more candidates, each verified below.
    a, b = bucket_pairs(keys.astype(np.uint32), np.repeat(owners.astype(np.int64), TRUTH_BANDS), 10**9)
    close = jaccard(texts.take(pa.array(a)), texts.take(pa.array(b)), "char", SHINGLE) >= THRESHOLD
    return set(zip(ids[a[close]].tolist(), ids[b[close]].tolist()))


def _brute_force(ids: list[int], texts: list[str]) -> Pairs:
    sets = [_shingle_set(t) for t in texts]
    return {(ids[i], ids[j]) for i, j in itertools.combinations(range(len(texts)), 2)
            if sets[i] and sets[j] and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= THRESHOLD}


def _collect(spark: SparkSession, source: str) -> tuple[np.ndarray, pa.Array]:
    table = spark.read.parquet(source).orderBy(ROW_ID).toArrow()
    return table.column(ROW_ID).to_numpy(), table.column("text").combine_chunks()


def _self_check(spark: SparkSession, work: Path) -> None:
    """Truth against brute force on 500 texts (plus short, cased and spaced ones); MLlib's shingles
    against the Python ones."""
    generated_texts(spark, work, 500)
    ids, texts = _collect(spark, str(work / "texts-500"))
    extra = ["ABCD", "abcd", "x", "", "  Hello   World\tfoo bar ", "hello world foo bar", "Hello World foo baR!"]
    ids, texts = np.append(ids, np.arange(500, 500 + len(extra))), pa.concat_arrays([texts, pa.array(extra)])
    expected, found = _brute_force(ids.tolist(), texts.to_pylist()), truth_pairs(ids, texts)
    assert found == expected, f"truth {len(found)} pairs, brute force {len(expected)}: {sorted(found ^ expected)[:10]}"
    python_sets = {i: _shingle_set(t) for i, t in zip(ids.tolist(), texts.to_pylist())}
    frame = spark.createDataFrame(list(zip(ids.tolist(), texts.to_pylist())), f"{ROW_ID} long, text string")
    spark_sets = {row: set(shingles) for row, shingles in _spark_shingles(frame).collect()}
    assert spark_sets == {i: s for i, s in python_sets.items() if s}, "MLlib's shingles differ from the truth's"
    print(json.dumps({"self_check": "ok", "texts": len(ids), "truth_pairs": len(found)}))


def _truth(ids: np.ndarray, texts: pa.Array) -> tuple[Pairs, set[int] | None, str]:
    """(truth pairs, the sampled row_ids or None when the truth covers every text, what it covers)."""
    try:
        return truth_pairs(ids, texts), None, f"all {ids.size:,} texts"
    except _TooManyPairs as exc:
        pick = np.sort(np.random.default_rng(7).choice(ids.size, min(TRUTH_SAMPLE, ids.size), replace=False))
        scope = f"a random sample of {pick.size:,} texts (over {TRUTH_MAX_PAIRS:,} bucket pairs: {exc})"
        return truth_pairs(ids[pick], texts.take(pa.array(pick))), set(ids[pick].tolist()), scope


def _scores(found: Pairs, truth: Pairs, sample: set[int] | None) -> dict:
    if sample is not None:
        found = {(a, b) for a, b in found if a in sample and b in sample}
    hits = len(found & truth)
    return {"precision": round(hits / len(found), 4) if found else None,
            "recall": round(hits / len(truth), 4) if truth else None}


def _tool(seconds: float, status: str, pairs: Pairs, run: dict, truth: Pairs, sample: set[int] | None) -> dict:
    return {"seconds": round(seconds, 2), "status": status, "ratio_to_floor": round(seconds / run["floor_s"], 1),
            "us_per_text": round(seconds / run["texts"] * 1e6, 1), "pairs": len(pairs), **_scores(pairs, truth, sample)}


#: The installed packages whose docstrings make the real text collection (--docstrings).
DOCSTRING_PACKAGES = ("pyspark", "pandas", "numpy", "scipy", "sklearn", "matplotlib", "pydantic", "hypothesis")


def docstrings(packages: tuple[str, ...] = DOCSTRING_PACKAGES, shortest: int = 200) -> list[str]:
    """A real text collection shipped inside PyPI packages: the docstrings (of `shortest` characters
    or more) of every function and class in the installed `packages`' sources, read with `ast`.
    Libraries copy paragraphs between docstrings (shared parameters, deprecation notes, templates),
    so near-duplicates are real ones."""
    found = []
    for package in packages:
        root = Path(importlib.util.find_spec(package).origin).parent
        for path in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue  # test fixtures and templates that are not Python 3.11
            found += [text for node in ast.walk(tree)
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and (text := ast.get_docstring(node)) and len(text) >= shortest]
    return found


def _docstring_texts(spark: SparkSession, work: Path) -> tuple[str, int]:
    texts = docstrings()
    source = str(work / "docstrings")
    spark.createDataFrame(list(enumerate(texts)), f"{ROW_ID} long, text string").repartition(4).write.parquet(source)
    return source, len(texts)


def _measure(spark: SparkSession, work: Path, n: int, limit: float, source: str | None = None) -> dict:
    """Every tool on the same texts (module docstring): n generated ones, or those at `source`."""
    corpus = "~90 chars" if source is None else "docstrings of " + ", ".join(DOCSTRING_PACKAGES)
    if source is None:
        source = str(work / f"texts-{n}")
        generated_texts(spark, work, n)
    _warm_up(spark, source, work)
    run = {"texts": n, "corpus": corpus, "floor_s": round(_floor_s(spark, source, work), 2)}
    ours_s, clusters, edges = _ours(spark, source, work, n)
    ids, texts = _collect(spark, source)
    start = time.perf_counter()
    truth, sample, scope = _truth(ids, texts)
    run["truth"] = {"pairs": len(truth), "seconds": round(time.perf_counter() - start, 2), "over": scope,
                    "sample": None if sample is None else len(sample), "bands": f"{TRUTH_BANDS}x{TRUTH_ROWS}"}
    run["ours"] = {**_tool(ours_s, "ok", clusters, run, truth, sample), "edges": len(edges),
                   **{f"edges_{k}": v for k, v in _scores(edges, truth, sample).items()}}
    seconds, status, pairs = _datasketch(ids, texts.to_pylist(), limit)
    run["datasketch"] = {**_tool(seconds, status, pairs, run, truth, sample), "num_perm": SKETCH_PERM,
                         "pairs_at_threshold": int((_jaccards(pairs, ids, texts) >= THRESHOLD).sum())}
    seconds, status, pairs = _mllib(spark, source, work, limit)
    run["mllib"] = {**_tool(seconds, status, pairs, run, truth, sample), "hash_tables": MLLIB_TABLES}
    for peer in ("mllib", "datasketch"):
        ratio = round(run[peer]["seconds"] / ours_s, 2)
        status = run[peer]["status"]
        run[peer]["ours_faster"] = ratio if status == "ok" else f"> {ratio}" if status.startswith("stopped") else None
    return run


def _jvm_alive(spark: SparkSession) -> bool:
    """False once a heap error in a task has ended the JVM (local mode exits on it); pyspark keeps
    the dead gateway, so this process cannot start another one."""
    try:
        return spark.range(1).count() == 1
    except (Py4JError, ConnectionError):
        return False


#: RESULTS.md's name and conditions of each tool.
LABELS = {"ours": ("ours", "add_dup_clusters, 25x8 bands"),
          "mllib": ("MLlib", "HashingTF 2^18 + MinHashLSH 25 tables, approxSimilarityJoin"),
          "datasketch": ("datasketch", "MinHash 200 perm + MinHashLSH 0.8, one Python process")}


def _rows(date: str, master: str, run: dict) -> list[str]:
    """One RESULTS.md row per tool (neardup_scale.py's shape)."""
    scope = "" if run["truth"]["sample"] is None else f", truth on a {run['truth']['sample']:,}-text sample"
    rows = []
    for tool, (label, conditions) in LABELS.items():
        r = run[tool]
        seconds = f"{label} {r['seconds']:.1f} s" if r["status"] == "ok" else f"{label} {r['status']}"
        if tool == "ours":
            quality = (f"precision {r['precision']} / {r['edges_precision']}, recall {r['recall']} / "
                       f"{r['edges_recall']} (cluster pairs / verified edges)")
        else:
            faster = f", ours is {r['ours_faster']}x faster" if r["ours_faster"] is not None else ""
            quality = f"precision {r['precision']}, recall {r['recall']}{faster}"
        rows.append(f"| {date[:10]} | near-dup peers: {label} ({conditions}, Jaccard 0.8) | {run['texts']:,} texts "
                    f"({run.get('corpus', '~90 chars')}), {master}{scope} | floor {run['floor_s']:.1f} s | {seconds} | "
                    f"**{r['ratio_to_floor']}x** floor, {quality} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 100_000])
    parser.add_argument("--peer-timeout", type=float, default=900, help="seconds a peer may run per size")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--self-check", action="store_true", help="only check the truth against brute force")
    parser.add_argument("--docstrings", action="store_true", help="also run on the docstrings of DOCSTRING_PACKAGES")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkprep-neardup-peers-"))
    spark, results = _session(args.master), []
    try:
        if args.self_check:
            _self_check(spark, work)
            return
        for n in args.sizes:
            results.append(_measure(spark, work, n, args.peer_timeout))
            print(json.dumps(results[-1]))
            if not _jvm_alive(spark):
                results[-1]["jvm_exited"] = f"after MLlib at {n:,} texts: larger sizes not run"
                print(json.dumps({"stopped": results[-1]["jvm_exited"]}))
                break
        if args.docstrings and _jvm_alive(spark):
            source, n = _docstring_texts(spark, work)
            results.append(_measure(spark, work, n, args.peer_timeout, source))
            print(json.dumps(results[-1]))
    finally:
        with suppress(Py4JError, ConnectionError):  # the JVM may be gone already (above)
            spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (HERE / "results" / f"{date[:10]}-neardup-peers.json").write_text(
        json.dumps({"date": date, "master": args.master, "peer_timeout_s": args.peer_timeout, "runs": results}, indent=2) + "\n")
    insert_rows(HERE / "RESULTS.md", [row for run in results for row in _rows(date, args.master, run)])


if __name__ == "__main__":
    main()
