"""Headline figures of bench/RESULTS.md and the plot of prepare by input size, from bench/results/*.json.

Each headline figure comes from the newest result that measures it (the JSON's `date`, else the
date in its file name), with the conditions it ran under (config overrides included), its date,
commit and file. The table goes between two marker lines under RESULTS.md's preamble (the markers
are added there on the first run); the dated log below them is left as it is. Regenerating
without new results writes the same file.

    .venv/etl/bin/python bench/headline.py
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- headline: written by bench/headline.py from bench/results/*.json; edit the script, not these lines -->"
END = "<!-- /headline -->"
PLOT = "prepare-scaling.png"
#: What an override of bench/run.py's `--set` turns off, said beside it in the conditions.
OVERRIDE_MEANING = {"dedup.near=null": "near-duplicate detection off",
                    "rebalance.method=none": "no oversampling"}
#: run.py sizes its rows by 264.1 bytes a row, the generator now writes about 322, so `--gb 1` and
#: `--gb 5` give 1.22 and 6.1 GB of CSV, and `--gb 16.4` 20 GB: a size is matched within this factor.
SIZE_TOLERANCE = 1.3


@dataclass(frozen=True)
class Result:
    """One bench/results/*.json with the commit that last wrote it."""

    path: Path
    data: dict
    commit: str
    committed_at: int

    @property
    def date(self) -> str:
        """ISO date (and time, where the bench recorded one)."""
        if "date" in self.data:
            return str(self.data["date"])
        day, _, hhmm = re.match(r"(\d{4}-\d{2}-\d{2})(T(\d{4}))?", self.path.name).groups()
        return f"{day}T{hhmm[:2]}:{hhmm[2:]}" if hhmm else day

    def newness(self) -> tuple[str, int, str]:
        # Several benches record only the day; among same-day files the later commit ran later.
        return self.date, self.committed_at, self.path.name


@dataclass(frozen=True)
class Figure:
    """A headline row: which results measure it, and its value and conditions from one of them."""

    name: str
    measures: Callable[[dict], bool] | None  # None: no bench measures it yet
    render: Callable[[dict], tuple[str, str]] | None
    missing: str = "no result in bench/results/ measures this yet"


def _git_commits(results_dir: Path) -> dict[str, tuple[str, int]]:
    """File name -> (short hash, commit time) of the last commit that wrote it. The last, not the
    first: a rerun of a bench rewrites a file of the same name (e.g. 2026-11-29-suite-2gb.json), and
    the commit that added it holds other figures. Empty outside a git repository."""
    log = subprocess.run(["git", "log", "--format=@%h %ct", "--name-only", "--", "."], cwd=results_dir,
                         capture_output=True, text=True)
    found: dict[str, tuple[str, int]] = {}
    commit = ("", 0)
    for line in log.stdout.splitlines() if log.returncode == 0 else []:
        if line.startswith("@"):
            short, seconds = line[1:].split()
            commit = (short, int(seconds))
        elif line:
            found.setdefault(Path(line).name, commit)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=results_dir, capture_output=True, text=True)
    for line in dirty.stdout.splitlines() if dirty.returncode == 0 else []:
        name = Path(line[3:]).name
        found[name] = ("uncommitted", found.get(name, ("", 0))[1])
    return found


def load_results(results_dir: Path) -> list[Result]:
    """Every JSON object in `results_dir`."""
    commits = _git_commits(results_dir)
    results = []
    for path in sorted(results_dir.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            short, seconds = commits.get(path.name, ("not in git", 0))
            results.append(Result(path, data, short, seconds))
    return results


def _is_suite(d: dict) -> bool:
    return {"gb", "floor_s", "driver_memory"} <= d.keys()


def _has_prepare(d: dict) -> bool:
    return _is_suite(d) and isinstance(d.get("prepare", {}).get("ratio_to_floor"), (int, float))


def _near(mb: float, gb: float) -> bool:
    return abs(math.log(mb / 1000 / gb)) <= math.log(SIZE_TOLERANCE)


def _size(d: dict) -> str:
    return f"{d['input_mb']:,} MB CSV, {d['rows']:,} rows (run.py --gb {d['gb']:g})"


def _load(d: dict) -> str:
    if "load_avg_start" not in d:
        return ""
    return f", load {d['load_avg_start']:.1f} → {d['load_avg_end']:.1f}"


def overrides_note(d: dict) -> str:
    """prepare's configuration as run: conf/demo.yaml and every override, each said in words."""
    if "overrides" not in d:
        return "conf/demo.yaml, overrides not recorded (run.py before it recorded them)"
    if not d["overrides"]:
        return "conf/demo.yaml as is (no override)"
    said = [f"**{o}** ({OVERRIDE_MEANING[o]})" if o in OVERRIDE_MEANING else f"**{o}**" for o in d["overrides"]]
    return "conf/demo.yaml with " + ", ".join(said)


def _prepare(d: dict) -> tuple[str, str]:
    p = d["prepare"]
    value = (f"**{p['ratio_to_floor']}x** floor ({p['seconds']:,} s against {d['floor_s']} s, "
             f"{p['seconds'] / (d['input_mb'] / 1000):.0f} s/GB)")
    if "ratio_to_tuned_floor" in p:
        value += f"; {p['ratio_to_tuned_floor']}x the floor with prepare's 64 KB dictionary pages"
    return value, f"{overrides_note(d)}; {_size(d)}; {d['master']}, driver {d['driver_memory']}{_load(d)}"


def _prepare_at(gb: float) -> Figure:
    return Figure(f"prepare / floor, ~{gb:g} GB", lambda d: _has_prepare(d) and _near(d["input_mb"], gb), _prepare)


def _neardup(d: dict) -> tuple[str, str]:
    runs = sorted(d["runs"], key=lambda r: r["texts"])
    top = runs[-1]
    sizes = " / ".join(f"{r['us_per_text']}" for r in runs) + " µs/text at " + " / ".join(f"{r['texts']:,}" for r in runs)
    growth = ", ".join(f"{r['growth_vs_previous']}x time for {r['size_growth']}x texts" for r in runs if "growth_vs_previous" in r)
    value = f"**{top['ratio_to_floor']}x** floor, {top['us_per_text']} µs/text"
    docs = d.get("documents")
    if docs:
        value += f"; {docs['mb_per_s_per_core']} MB/s per core on 2-8 KB documents"
    return value, (f"add_dup_clusters, NearDupConfig defaults, {top['texts']:,} generated texts, {d['master']}; "
                   f"floor: the texts read and written as Parquet; {sizes} texts ({growth})"
                   + (f"; {docs['texts']:,} documents, {docs['text_mb']:,} MB, {docs['ratio_to_floor']}x their floor" if docs else ""))


def _peers(d: dict) -> tuple[str, str]:
    generated = [r for r in d["runs"] if r.get("corpus", "~90 chars") == "~90 chars"]
    run = max(generated, key=lambda r: r["texts"])
    real = [r for r in d["runs"] if r not in generated]

    def versus(peer: str, label: str) -> str:
        r, faster = run[peer], run[peer].get("ours_faster")
        if faster is None:
            return f"{label}: {r['status']}"
        if isinstance(faster, str):  # the peer was stopped at the time limit
            return f"**{faster.removeprefix('> ')}x+** faster than {label} (stopped at its time limit)"
        return f"**{faster}x** faster than {label}"

    def quality(r: dict) -> str:
        return f"precision {r['precision']}, recall {r['recall']}"
    ours, mllib, sketch = run["ours"], run["mllib"], run["datasketch"]
    return (f"ours {versus('mllib', 'MLlib')}, {versus('datasketch', 'datasketch')}",
            f"bench/neardup_peers.py, {run['texts']:,} generated texts, {d['master']}: ours {ours['seconds']} s "
            f"({quality(ours)}), MLlib {mllib['seconds']} s, {mllib['status']} ({quality(mllib)}), datasketch "
            f"{sketch['seconds']} s, {sketch['status']} ({quality(sketch)}); truth: exact Jaccard >= 0.8 over "
            f"{run['truth']['over']}" + "".join(
                f"; on {r['texts']:,} {r['corpus']}: ours {r['ours']['seconds']} s ({quality(r['ours'])}), MLlib "
                f"{r['mllib']['seconds']} s ({quality(r['mllib'])}), datasketch {r['datasketch']['seconds']} s "
                f"({quality(r['datasketch'])})" for r in real))


def _profile(d: dict) -> tuple[str, str]:
    value = f"**{d['ratio_to_scan']}x** scan ({d['profile_s']} s against {d['scan_s']} s"
    value += f"; CPU {d['cpu_ratio_to_scan']}x)" if "cpu_ratio_to_scan" in d else ")"
    # Before the format flag the bench wrote Parquet only, and named its size parquet_mb.
    mb, fmt = d.get("input_mb", d.get("parquet_mb")), d.get("format", "parquet")
    how = f", profile's {d['profile_path']} path" if "profile_path" in d else ""
    rounds = f", best of {d['rounds']} interleaved rounds" if "rounds" in d else ""
    return value, (f"{d['rows']:,} rows x {d['columns']} columns, {mb:,} MB {fmt}{how}{rounds}, {d['master']}; "
                   "the scan reads every column")


def _fit(d: dict) -> tuple[str, str]:
    ratio, cpu = d["ratio_to_floor"], d.get("cpu_ratio_to_floor", {})
    value = f"**{ratio['all']:.2f}x** (all)" + (f", CPU {cpu['all']:.2f}x" if "all" in cpu else "")
    value += "".join(f"; {spec} {ratio[spec]:.2f}x" for spec in ("moments", "sketches") if spec in ratio)
    load = f", load {d['load_avg_end']:.1f} at the end" if "load_avg_end" in d else ""
    return value, (f"measure_groups + count_categories + fit_transforms for {d['k']} folds and final; all = KLL "
                   "sketches (robust, clip, median) + categorical + array[8], what conf/demo.yaml fits; "
                   f"{d['rows']:,} rows, {d['parquet_bytes'] / 1e9:.2f} GB Parquet, {d['master']}{load}; "
                   "floor: one agg(mean) of the 13 numeric columns")


def _loaders(d: dict) -> tuple[str, str]:
    ratio = d["ratio_to_raw"]
    petastorm = max((n for n in ratio if n.startswith("petastorm")), key=ratio.get, default=None)
    value = f"**{ratio['arrow, shuffle']:.2f}x** arrow, shuffled; {ratio['arrow, no shuffle']:.2f}x not shuffled"
    if petastorm:
        value += f"; petastorm {ratio[petastorm]:.2f}x at best ({petastorm.removeprefix('petastorm, ')})"
    return value, (f"make_loader (default: arrow, shuffled), split final: {d['rows_read']:,} of {d['rows_written']:,} "
                   f"rows, {d['features']}, batch {d['batch_size']}, row groups {d['row_group_rows']:,}; floor: the "
                   f"faster raw pyarrow reader into torch, {d['rows_per_s']['raw pyarrow']:,} rows/s"
                   + (f"; best of {d['rounds']} interleaved rounds, load {d['load_avg_start']:.1f} → "
                      f"{d['load_avg_end']:.1f}" if "rounds" in d else ""))


def _status(status: str) -> str:
    # run.py records a child that died before printing as "exit <returncode>: <stderr tail>", and
    # a negative returncode is the signal that killed it.
    killed = re.fullmatch(r"exit -(\d+):\s*(.*)", status, re.S)
    if killed:
        return f"killed by signal {killed[1]}" + (f": {killed[2].strip()}" if killed[2].strip() else ", no output")
    return status


def _pandas(name: str) -> Callable[[dict], tuple[str, str]]:
    def render(d: dict) -> tuple[str, str]:
        p = d[name]
        if "ratio_to_floor" in p:
            value = f"**{p['ratio_to_floor']}x** floor ({p['seconds']:,} s against {d['floor_s']} s, peak RSS {p['peak_rss_mb']:,} MB)"
        else:
            value = f"**stops**: {_status(p['status'])}"
        cap = f"RLIMIT_AS {p['cap_gb']} GB" if p.get("cap_gb") else "no memory cap"
        return value, (f"bench/pandas_baseline.py: pandas + scikit-learn + imblearn in memory, no holdout, near-dup, "
                       f"quarantine or manifest (less work than prepare); {cap}; {_size(d)}{_load(d)}")
    return render


def figures() -> list[Figure]:
    """The headline rows of issue 30, in their order."""
    return [
        *(_prepare_at(gb) for gb in (1, 5, 20)),
        Figure("near-dup µs/text", lambda d: bool(d.get("runs")) and "us_per_text" in d["runs"][0], _neardup),
        Figure("near-dup vs peers", lambda d: bool(d.get("runs")) and "mllib" in d["runs"][0], _peers),
        Figure("profile / scan", lambda d: "ratio_to_scan" in d, _profile),
        Figure("fit / aggregation", lambda d: isinstance(d.get("ratio_to_floor"), dict) and "all" in d["ratio_to_floor"], _fit),
        Figure("readers / raw pyarrow", lambda d: "ratio_to_raw" in d, _loaders),
        Figure("the pandas way / floor", lambda d: _is_suite(d) and "pandas" in d, _pandas("pandas")),
        Figure("the pandas way, memory capped", lambda d: _is_suite(d) and "pandas-capped" in d, _pandas("pandas-capped")),
    ]


def newest(results: list[Result], figure: Figure) -> Result | None:
    """The newest result that measures `figure`."""
    if figure.measures is None:
        return None
    return max((r for r in results if figure.measures(r.data)), key=Result.newness, default=None)


def _when(date: str) -> str:
    return date[:16].replace("T", " ")


def table(results: list[Result]) -> list[str]:
    """The headline table, one row per figure."""
    lines = ["| figure | value | conditions | date | commit | source file |", "|---|---|---|---|---|---|"]
    for figure in figures():
        result = newest(results, figure)
        if result is None:
            lines.append(f"| {figure.name} | none | {figure.missing} | | | |")
            continue
        value, conditions = figure.render(result.data)
        link = f"[{result.path.name}](results/{result.path.name})"
        lines.append(f"| {figure.name} | {value} | {conditions} | {_when(result.date)} | {result.commit} | {link} |")
    return lines


def block(results: list[Result]) -> list[str]:
    """What goes between the markers: the table and the plot under it."""
    return [BEGIN, "", "## Headline figures", "",
            "The newest result of each figure in bench/results/ (by the date it records); the conditions name "
            "every config override.", "",
            *table(results), "",
            f"![prepare: seconds per GB of input and ratio to the floor, by input size](results/{PLOT})", "",
            f"[results/{PLOT}](results/{PLOT}): prepare's seconds per GB and ratio to the floor by input size, "
            "from the newest bench/run.py result at each size, each point labelled with its date and overrides.",
            "", END]


def _preamble_end(lines: list[str]) -> int:
    """Index of the blank line that ends the paragraph under the title."""
    text = next(i for i in range(1, len(lines)) if lines[i].strip())
    return next((i for i in range(text, len(lines)) if not lines[i].strip()), len(lines))


def write_headline(results: list[Result], results_md: Path) -> None:
    """Put the headline block between its markers in `results_md` (under the preamble if absent)."""
    lines = results_md.read_text().splitlines()
    new = block(results)
    if BEGIN in lines:
        start, end = lines.index(BEGIN), lines.index(END) + 1
    else:
        start = end = _preamble_end(lines) + 1
        new += [""]
    results_md.write_text("\n".join([*lines[:start], *new, *lines[end:]]) + "\n")


def scaling_points(results: list[Result]) -> list[Result]:
    """The newest suite result with prepare at each input size, smallest first. Runs of one `--gb`
    write the same CSV (a "-custom" name only says `--set` overrides were given), so sizes are
    grouped by input MB to two significant figures."""
    by_size: dict[float, Result] = {}
    for result in results:
        if _has_prepare(result.data):
            size = float(f"{result.data['input_mb']:.2g}")
            if size not in by_size or result.newness() > by_size[size].newness():
                by_size[size] = result
    return [by_size[size] for size in sorted(by_size)]


def _mb_label(mb: float) -> str:
    return f"{mb:,.0f} MB" if mb < 1000 else f"{mb / 1000:.1f} GB"


def plot_scaling(points: list[Result], path: Path) -> None:
    """Two panels over input size: prepare's and the floor's seconds per GB, and prepare's ratio to
    the floor (and to the tuned floor where the run measured it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [p.data for p in points]
    gb = [d["input_mb"] / 1000 for d in data]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 7))
    top.plot(gb, [d["prepare"]["seconds"] / g for d, g in zip(data, gb)], "o-", label="prepare")
    top.plot(gb, [d["floor_s"] / g for d, g in zip(data, gb)], "s--", color="grey", label="floor (CSV read, Parquet write)")
    top.set_ylabel("seconds per GB of input CSV")
    top.set_yscale("log")  # the floor is 10-50x below prepare
    top.legend(loc="upper right", fontsize=8)
    bottom.plot(gb, [d["prepare"]["ratio_to_floor"] for d in data], "o-", label="prepare / floor")
    tuned = [(g, d["prepare"]["ratio_to_tuned_floor"]) for d, g in zip(data, gb) if "ratio_to_tuned_floor" in d["prepare"]]
    if tuned:
        bottom.plot(*zip(*tuned), "^:", label="prepare / floor with 64 KB dictionary pages")
    bottom.axhline(3.0, color="red", linestyle="--", label="goal: 3x floor")
    for point, g, d in zip(points, gb, data):
        note = _when(point.date) + "".join(f"\n{o}" for o in d.get("overrides", []))
        bottom.annotate(note, (g, d["prepare"]["ratio_to_floor"]), textcoords="offset points", xytext=(4, 6), fontsize=7)
    bottom.set_ylabel("time / floor time (same run)")
    bottom.set_xlabel("input CSV (generated by bench/run.py)")
    bottom.set_xscale("log")
    bottom.set_xticks(gb, [_mb_label(d["input_mb"]) for d in data])
    bottom.minorticks_off()
    bottom.set_ylim(0, max(d["prepare"]["ratio_to_floor"] for d in data) * 1.2)
    bottom.legend(loc="lower left", fontsize=8)
    runs_on = {f"{d['master']}, driver {d['driver_memory']}" for d in data}
    top.set_title(f"prepare by input size, the newest run at each ({', '.join(sorted(runs_on))})")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def main() -> None:
    results = load_results(HERE / "results")
    plot_scaling(scaling_points(results), HERE / "results" / PLOT)
    write_headline(results, HERE / "RESULTS.md")


if __name__ == "__main__":
    main()
