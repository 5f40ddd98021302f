"""Benchmark: the trainer's loaders against raw pyarrow iteration into torch tensors, in one run.

Writes a sparkprep-shaped Parquet output (hive fold=-1..4, 10 float64 features, an 8-long
list<double>, the reserved columns, a manifest) in a temp dir, then reads split "final"
(fold != -1) at batch 1024 with: the floor (pq.ParquetFile.iter_batches of the same files and
columns, each column to a tensor), the arrow and the petastorm ("dummy" pool) backends, shuffled
and not, in interleaved rounds (each reader's best of --repeats: the machine is shared, so every
reader meets the same load), then Petastorm's other pools once. Where CUDA is there, it also
measures host -> GPU batches/s (raw pyarrow, and the shuffled arrow loader, pinned). Prints a
table with the load average, writes bench/results/<date>-loaders.json and appends rows to
bench/RESULTS.md.

    .venv/train/bin/python bench/loader_throughput.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from results_table import insert_rows  # bench/ is sys.path[0] when a bench script runs

from sparkprep.train import PetastormOptions, Sampling, make_loader

HERE = Path(__file__).resolve().parent
K, NUMERIC, WIDTH, BATCH = 5, 10, 8, 1024
FEATURES = [f"num_{i}" for i in range(NUMERIC)] + ["emb"]


def write_dataset(out: Path, rows: int, row_group_rows: int, seed: int = 0) -> None:
    """Rows spread over folds -1..K-1, one file per fold, as Spark's writer lays them out."""
    rng = np.random.default_rng(seed)
    folds = rng.integers(-1, K, rows)
    columns = {"row_id": pa.array(rng.integers(0, 2**62, rows)),
               "replica": pa.array(np.zeros(rows, np.int32)),
               "label_index": pa.array(rng.integers(0, 3, rows).astype(np.int32))}
    columns |= {f"num_{i}": pa.array(rng.standard_normal(rows)) for i in range(NUMERIC)}
    values = pa.array(rng.standard_normal(rows * WIDTH))
    columns["emb"] = pa.ListArray.from_arrays(pa.array(np.arange(0, rows * WIDTH + 1, WIDTH, dtype=np.int32)), values)
    table = pa.table(columns)
    for fold in range(-1, K):
        directory = out / "data" / f"fold={fold}"
        directory.mkdir(parents=True)
        pq.write_table(table.filter(pa.array(folds == fold)), directory / "part-00000.snappy.parquet",
                       row_group_size=row_group_rows)
    by_fold = {str(f): int((folds == f).sum()) for f in range(-1, K)}
    manifest = {
        "format_version": 1, "seed": 42,
        "output": {"format": "parquet", "data_path": "data", "partition_by": ["fold"], "delta_version": None},
        "columns": {"label": None, "numeric": FEATURES[:-1], "categorical": [], "array": ["emb"], "text": [],
                    "other": [], "reserved": ["row_id", "fold", "replica", "label_index"]},
        "schema": [{"name": f.name, "type": str(f.type)} for f in table.schema] + [{"name": "fold", "type": "int"}],
        "split": {"k": K}, "rows": {"output": rows, "replicas": 0, "by_fold": by_fold},
    }
    (out / "manifest.json").write_text(json.dumps(manifest))


def _parts(out: Path) -> list[Path]:
    return [p for fold in range(K) for p in sorted((out / "data" / f"fold={fold}").glob("*.parquet"))]


def _tensors(arrays: Iterable[tuple[str, pa.Array]]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(array.flatten().to_numpy().reshape(len(array), WIDTH)
                                   if pa.types.is_list(array.type) else array.to_numpy())
            for name, array in arrays}


def raw_iter_batches(out: Path, columns: list[str]) -> Iterable[dict[str, torch.Tensor]]:
    """A floor: the same files and columns, pyarrow's own batching, each column to a tensor."""
    for part in _parts(out):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=BATCH, columns=columns):
            yield _tensors(zip(batch.schema.names, batch.columns))


def raw_row_groups(out: Path, columns: list[str]) -> Iterable[dict[str, torch.Tensor]]:
    """A floor: whole row groups to tensors (zero-copy), batches as tensor views; no carry across
    row groups, so the last batch of each row group is short."""
    for part in _parts(out):
        file = pq.ParquetFile(part)
        for group in range(file.num_row_groups):
            table = file.read_row_group(group, columns=columns)
            whole = _tensors((name, table.column(name).combine_chunks()) for name in columns)
            for start in range(0, table.num_rows, BATCH):
                yield {name: tensor[start:start + BATCH] for name, tensor in whole.items()}


def rows_per_s(make: Callable[[], Iterable[dict[str, torch.Tensor]]], repeats: int) -> tuple[float, int]:
    """Best of `repeats` passes (the data is in the page cache after the first)."""
    best, rows = 0.0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        rows = sum(len(batch["label_index"]) for batch in make())
        best = max(best, rows / (time.perf_counter() - start))
    return best, rows


def interleaved(readers: dict[str, Callable[[], Iterable[dict[str, torch.Tensor]]]],
                rounds: int) -> dict[str, tuple[float, int]]:
    """Each reader's best pass over `rounds` rounds of one pass each, in turn."""
    best: dict[str, tuple[float, int]] = {name: (0.0, 0) for name in readers}
    for _ in range(rounds):
        for name, make in readers.items():
            speed, rows = rows_per_s(make, 1)
            best[name] = max(best[name], (speed, rows))
    return best


def gpu_batches_per_s(make: Callable[[], Iterable[dict[str, torch.Tensor]]], repeats: int) -> float:
    """Best of `repeats` passes of batches copied to the GPU (asynchronously where pinned), synchronised."""
    best = 0.0
    for _ in range(repeats):
        start, batches = time.perf_counter(), 0
        for batch in make():
            for tensor in batch.values():
                tensor.to("cuda", non_blocking=True)
            batches += 1
        torch.cuda.synchronize()
        best = max(best, batches / (time.perf_counter() - start))
    return best


def loader(out: Path, **kwargs) -> Callable[[], Iterable[dict[str, torch.Tensor]]]:
    def make() -> Iterable[dict[str, torch.Tensor]]:
        with make_loader(str(out), 0, "final", batch_size=BATCH, **kwargs) as batches:
            yield from batches
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--row-group-rows", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; each reader's best counts")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # Petastorm's pyarrow deprecation warnings and torch's read-only arrays, here and in pool processes.
    warnings.filterwarnings("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"
    columns = [*FEATURES, "label_index"]
    load_start = os.getloadavg()[0]
    gpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="sparkprep-bench-") as tmp:
        out = Path(tmp) / "out"
        write_dataset(out, args.rows, args.row_group_rows)
        dummy = PetastormOptions(workers_count=1, reader_pool_type="dummy")
        runs = interleaved({
            "raw iter_batches": lambda: raw_iter_batches(out, columns),
            "raw row groups": lambda: raw_row_groups(out, columns),
            "arrow, no shuffle": loader(out, sampling=Sampling(shuffle=False)),
            "arrow, shuffle": loader(out, sampling=Sampling(seed=1)),
            "petastorm, dummy x1, no shuffle": loader(out, sampling=Sampling(shuffle=False), backend=dummy),
            "petastorm, dummy x1, shuffle": loader(out, sampling=Sampling(seed=1), backend=dummy),
        }, args.repeats)
        # The floor is the faster of the two raw readers: ours must beat plain pyarrow done well.
        runs = {"raw pyarrow": max(runs["raw iter_batches"], runs["raw row groups"]), **runs}
        for pool, workers in [("thread", 10), ("thread", 4), ("thread", 1), ("process", 2)]:
            options = PetastormOptions(workers_count=workers, reader_pool_type=pool)
            try:
                runs[f"petastorm, {pool} x{workers}, no shuffle"] = rows_per_s(
                    loader(out, sampling=Sampling(shuffle=False), backend=options), 1)
            except Exception as err:  # a pool Petastorm cannot start here is reported, not fatal
                print(f"petastorm {pool} x{workers}: {type(err).__name__}: {err}")
        if torch.cuda.is_available():
            gpu = {"raw row groups": gpu_batches_per_s(lambda: raw_row_groups(out, columns), args.repeats),
                   "arrow, shuffle": gpu_batches_per_s(loader(out, sampling=Sampling(seed=1)), args.repeats)}
    load = (load_start, os.getloadavg()[0])
    floor, rows = runs["raw pyarrow"]
    print(f"\n{rows:,} rows (split 'final' of {args.rows:,}), batch {BATCH}, row groups of {args.row_group_rows:,}; "
          f"best of {args.repeats} interleaved rounds; load average {load[0]:.1f} -> {load[1]:.1f}")
    print(f"{'reader':40} {'rows/s':>12} {'x raw':>7}")
    for name, (speed, count) in runs.items():
        assert count == rows, f"{name} read {count} rows, the floor {rows}"
        print(f"{name:40} {speed:12,.0f} {speed / floor:7.2f}")
    for name, speed in gpu.items():
        print(f"host -> GPU, {name:27} {speed:12,.0f} batches/s")
    record(args, runs, rows, load, gpu)


def record(args: argparse.Namespace, runs: dict[str, tuple[float, int]], rows: int, load: tuple[float, float],
           gpu: dict[str, float]) -> None:
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    floor = runs["raw pyarrow"][0]
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / f"{date}-loaders.json").write_text(json.dumps({
        "date": date, "rows_written": args.rows, "rows_read": rows, "batch_size": BATCH,
        "row_group_rows": args.row_group_rows, "features": f"{NUMERIC} float64 + list<double>[{WIDTH}]",
        "rounds": args.repeats, "load_avg_start": round(load[0], 2), "load_avg_end": round(load[1], 2),
        "rows_per_s": {name: round(speed) for name, (speed, _) in runs.items()},
        "ratio_to_raw": {name: round(speed / floor, 3) for name, (speed, _) in runs.items()},
        **({"gpu_batches_per_s": {name: round(speed, 1) for name, speed in gpu.items()}} if gpu else {}),
    }, indent=2) + "\n")
    source = (f"{rows:,} rows ({NUMERIC} float64 + list<double>[{WIDTH}]), batch {BATCH}, "
              f"row groups {args.row_group_rows:,}, split final, best of {args.repeats} interleaved rounds, "
              f"load {load[0]:.1f} -> {load[1]:.1f}")
    lines = [f"| {date} | loader: {name} vs raw pyarrow → torch | {source} | {floor:,.0f} rows/s | "
             f"{runs[name][0]:,.0f} rows/s | **{runs[name][0] / floor:.2f}x** |"
             for name in ("arrow, no shuffle", "arrow, shuffle", "petastorm, dummy x1, no shuffle",
                          "petastorm, dummy x1, shuffle")]
    insert_rows(HERE / "RESULTS.md", lines)


if __name__ == "__main__":
    main()
