"""What a user would write instead: the demo pipeline the obvious way in pandas + scikit-learn.

Reads the generated CSV into memory, drops unparsable lines, out-of-range and unlabelled rows,
exact duplicates (`drop_duplicates`) and older versions of an id, then for each of the k folds of
`StratifiedKFold` oversamples the training rows (`RandomOverSampler`), fits a `StandardScaler` on
them and writes the fold's train and validation rows as Parquet. No holdout, no near-duplicates,
no quarantine, no manifest: less work than `prepare`, so its time is a lower bound.

Prints one JSON line: seconds, rows, peak RSS, and `status` ("ok" or the error that stopped it,
e.g. MemoryError under `--cap-gb`, which sets RLIMIT_AS like `ulimit -v`).

    .venv/etl/bin/python bench/pandas_baseline.py RAW_DIR OUT_DIR [--cap-gb 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

COLUMNS = ["id", "num_0", "num_1", "num_2", "num_3", "num_4", "cat_0", "emb", "text", "grp", "event_time", "label"]
NUMERIC = [f"num_{j}" for j in range(5)]


def prepare_pandas(raw: Path, out: Path, k: int = 5, seed: int = 42) -> int:
    """The pipeline; returns the number of rows written over all folds."""
    import numpy as np
    import pandas as pd
    from imblearn.over_sampling import RandomOverSampler
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    files = sorted(p for p in raw.glob("part-*") if p.stat().st_size)
    df = pd.concat([pd.read_csv(f, header=None, names=COLUMNS, dtype=str, on_bad_lines="skip",
                                keep_default_na=False, na_values=[""]) for f in files], ignore_index=True)
    for c in NUMERIC:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["event_time"] = pd.to_datetime(df["event_time"], errors="coerce")
    df = df.dropna(subset=["label"])
    df = df[df["num_0"].isna() | df["num_0"].between(-1000, 1000)]
    df["cat_0"] = df["cat_0"].str.strip().str.lower()
    df = df.drop_duplicates()
    df = df.sort_values("event_time").drop_duplicates(subset="id", keep="last").reset_index(drop=True)
    emb = np.array([np.array(s.split(";"), dtype=float) if isinstance(s, str) else np.full(4, np.nan)
                    for s in df["emb"]], dtype=object)
    features = df[NUMERIC].fillna(df[NUMERIC].median())
    written = 0
    out.mkdir(parents=True, exist_ok=True)
    for fold, (train, valid) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(df, df["label"])):
        sampler = RandomOverSampler(random_state=seed)
        idx, _ = sampler.fit_resample(np.asarray(train).reshape(-1, 1), df["label"].to_numpy()[train])
        rows = df.iloc[idx.ravel()].copy()
        scaler = StandardScaler().fit(features.iloc[idx.ravel()])
        rows[NUMERIC] = scaler.transform(features.iloc[idx.ravel()])
        rows["emb"] = list(emb[idx.ravel()])
        held = df.iloc[valid].copy()
        held[NUMERIC] = scaler.transform(features.iloc[valid])
        held["emb"] = list(emb[valid])
        rows.to_parquet(out / f"fold{fold}-train.parquet")
        held.to_parquet(out / f"fold{fold}-valid.parquet")
        written += len(rows) + len(held)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--cap-gb", type=float, help="address-space limit (RLIMIT_AS, as `ulimit -v`)")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # thread stacks count against RLIMIT_AS
    if args.cap_gb:
        cap = int(args.cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    start = time.perf_counter()
    result = {"cap_gb": args.cap_gb, "status": "ok", "rows": None}
    try:
        result["rows"] = prepare_pandas(args.raw, args.out)
    except MemoryError as exc:
        result["status"] = f"MemoryError {exc}".strip()
    except Exception as exc:  # an allocation failure surfaces as other errors too (ArrowMemoryError, ...)
        result["status"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    result["seconds"] = round(time.perf_counter() - start, 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))
    sys.exit(0 if result["status"] == "ok" else 1)


if __name__ == "__main__":
    main()
