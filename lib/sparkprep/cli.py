"""`sparkprep` command line: parse args → load config → build session → call the library.

Exit codes: 0 success; 1 other sparkprep error; 2 configuration error; 3 input error;
4 contract violation (e.g. broken row accounting). `validate`: 0 clean, 1 blocking anomalies,
2 usage or input error (its input errors exit 2, as data-validation gates expect).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sparkprep.config import Config, load_config
from sparkprep.errors import InputError, SparkprepError

if TYPE_CHECKING:
    from sparkprep.config import InputConfig
    from sparkprep.quality.profile import Profile

log = logging.getLogger("sparkprep")


def _generate(config: Config) -> None:
    from sparkprep.generate import write_generated
    from sparkprep.io.session import build_session

    config.require("generate")
    assert config.generate is not None
    rows = write_generated(build_session(config.spark, "sparkprep-generate"), config.generate)
    print(f"generated {rows} rows ({config.generate.format}) at {config.generate.path}")


def _prepare(config: Config) -> None:
    from sparkprep.pipeline import run
    from sparkprep.io.session import build_session

    config.require("input", "columns", "output")
    result = run(build_session(config.spark, "sparkprep-prepare"), config)
    print(summary_table(result.manifest, result.out))


def _jars(config: Config) -> None:
    from sparkprep.io.session import DELTA_PACKAGE, build_session

    build_session(config.spark, "sparkprep-jars").stop()
    print(f"Delta jars ready ({DELTA_PACKAGE})")


def _verify(config: Config, out: str) -> None:
    from sparkprep.errors import ContractError
    from sparkprep.io.session import build_session
    from sparkprep.publish.verify import verify_output

    verdict = verify_output(build_session(config.spark, "sparkprep-verify"), out)
    for check in verdict.checks:
        failed = [v for v in verdict.violations if v.startswith(check + ":")]
        print(f"{'FAIL' if failed else 'ok  '}  {check}")
        for violation in failed:
            print(f"      {violation[len(check) + 2:]}")
    if not verdict.ok:
        raise ContractError(f"{out}: {len(verdict.violations)} violation(s) of the data contract")


def _input_config(config: Config, args: argparse.Namespace) -> "InputConfig":
    from sparkprep.config import InputConfig

    if not args.input:
        config.require("input")
        assert config.input is not None
        return config.input
    if config.input is None or (args.format and args.format != config.input.format):
        return InputConfig(paths=args.input, format=args.format or "parquet")
    return config.input.model_copy(update={"paths": args.input})


def _profile_input(config: Config, args: argparse.Namespace, app: str) -> "Profile":
    from sparkprep.quality.gate import profile_frame, typed_input
    from sparkprep.io.session import build_session

    spark = build_session(config.spark, app)
    stats = profile_frame(typed_input(spark, _input_config(config, args)), config.columns)
    if getattr(args, "out", None):
        from sparkprep.io.fs import HadoopFS, qualify

        HadoopFS(spark, qualify(args.out)).write_text(qualify(args.out), json.dumps(stats.to_dict(), indent=1))
    return stats


def _profile(config: Config, args: argparse.Namespace) -> None:
    stats = _profile_input(config, args, "sparkprep-profile")
    print(f"profiled {stats.rows} rows x {len(stats.columns)} columns -> {args.out}")


def _infer_schema(config: Config, args: argparse.Namespace) -> None:
    from sparkprep.quality.gate import load_stats
    from sparkprep.quality.schema_rules import dump_schema, infer_schema

    Path(args.out).write_text(dump_schema(infer_schema(load_stats(args.stats), args.domain_cap)))
    print(f"schema written to {args.out}; review and edit it (severities, environments, ranges)")


def _validate(config: Config, args: argparse.Namespace) -> None:
    from sparkprep.quality.gate import Checked, check, load_stats
    from sparkprep.publish.report import render_validation_report

    stats = load_stats(args.stats) if args.stats else _profile_input(config, args, "sparkprep-validate")
    result = check(stats, args.schema, args.environment, args.baseline)
    if args.report:
        Path(args.report).write_text(json.dumps(result.to_dict(), indent=1))
    if args.html:
        checked = Checked(stats, load_stats(args.baseline) if args.baseline else None, result)
        title = f"{args.stats or ', '.join(args.input or ['the configured input'])} against {args.schema}"
        Path(args.html).write_text(render_validation_report(checked.for_report(), title))
    for a in result.anomalies:
        print(f"{a.severity.upper():7}  {a.type:26}  {a.message}")
    for column, d in result.distances.items():
        print(f"distance {column}: " + " ".join(
            f"{name} {'-' if v is None else f'{v:.4g}'}{f' ({d.moved_most})' if name == 'linf' else ''}"
            for name, v in d.values.items()))
    if result.blocking:
        raise SparkprepError(f"{len(result.blocking)} blocking anomal{'y' if len(result.blocking) == 1 else 'ies'}")
    print(f"clean: {len(result.anomalies)} non-blocking anomalies")


def _options(name: str, cmd: argparse.ArgumentParser) -> None:
    """The options of the data-quality commands (profile, infer-schema, validate)."""
    if name in ("profile", "validate"):
        cmd.add_argument("--input", action="append", help="input path (repeatable; default: input.paths)")
        cmd.add_argument("--format", help="input format (default: input.format, else parquet)")
    if name == "profile":
        cmd.add_argument("--out", required=True, help="where to write stats.json")
    if name == "infer-schema":
        cmd.add_argument("--stats", required=True, help="stats.json written by `sparkprep profile`")
        cmd.add_argument("--out", required=True, help="schema YAML to write")
        cmd.add_argument("--domain-cap", type=int, default=100, help="largest categorical domain to list")
    if name == "validate":
        cmd.add_argument("--schema", required=True, help="schema YAML (see `sparkprep infer-schema`)")
        cmd.add_argument("--stats", help="validate this stats.json instead of profiling --input")
        cmd.add_argument("--baseline", help="stats.json of the previous batch (drift) or of training (skew)")
        cmd.add_argument("--environment", default="TRAINING", choices=["TRAINING", "SERVING"])
        cmd.add_argument("--report", help="write anomalies and distances as JSON here")
        cmd.add_argument("--html", help="write a self-contained report.html here (anomalies, distances, "
                         "baseline vs current histograms, the batch's profile plots)")


COMMANDS: dict[str, tuple[Callable[..., None], str]] = {
    "generate": (_generate, "write the synthetic demo dataset (generate: section)"),
    "prepare": (_prepare, "run the pipeline: input → training-ready shards + manifest.json"),
    "jars": (_jars, "resolve and cache Delta's JVM jars from Maven Central"),
    "verify": (_verify, "prove a finished dataset keeps the data contract (exit 4 if not)"),
    "profile": (_profile, "statistics of the input in one pass -> stats.json"),
    "infer-schema": (_infer_schema, "a schema YAML (rules to edit) from a stats.json"),
    "validate": (_validate, "anomalies and drift of an input vs a schema (exit 1 if blocking)"),
}
_WITH_ARGS = ("profile", "infer-schema", "validate")


def summary_table(manifest: dict, out: str) -> str:
    """The end-of-run table printed for humans.

    Args:
        manifest: the published manifest.
        out: the output directory.
    """
    rows = manifest["rows"]
    lines = [("output", out), ("format", manifest["output"]["format"]),
             ("input rows", rows["input"]), ("rejected", rows["rejected"]),
             ("duplicates", rows["duplicates"]), ("output rows", rows["output"]),
             ("replicas (training copies)", rows["replicas"]),
             ("undersampled (not trained on)", rows.get("undersampled", 0))]
    lines += [(f"  {'holdout' if f == '-1' else 'fold ' + f}", n) for f, n in rows["by_fold"].items()]
    lines += [(f"  rejected: {reason}", n) for reason, n in manifest["rejections"]["by_reason"].items()]
    skipped = manifest["quarantine"].get("unreadable_file_bytes", {})
    if skipped:
        lines.append(("skipped unreadable files", f"{len(skipped)} ({sum(skipped.values()):,} bytes; rows unknown)"))
    lines += [("classes", ", ".join(f"{c} ({n:,})" for c, n in manifest["class_counts"].items())),
              ("seconds", manifest["timings_s"]["total"])]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparkprep", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", default="conf/demo.yaml", help="YAML config (default: %(default)s)")
        cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config value, e.g. --set split.k=3 (repeatable)")
        cmd.add_argument("--verbose", action="store_true",
                         help="everything Spark, Ivy and the JVM print (same as --set spark.verbose=true)")
        if name == "verify":
            cmd.add_argument("out", help="output root of a prepare run (any Hadoop URI)")
        _options(name, cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `sparkprep` command; returns its exit status (errors map to codes by kind).

    Args:
        argv: the arguments (default: the process's).
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        config = load_config(args.config, [*args.set, *(["spark.verbose=true"] if args.verbose else [])])
        extra = [args.out] if args.command == "verify" else [args] if args.command in _WITH_ARGS else []
        COMMANDS[args.command][0](config, *extra)
    except SparkprepError as exc:
        print(f"sparkprep {args.command}: error: {exc}", file=sys.stderr)
        return 2 if args.command == "validate" and isinstance(exc, InputError) else exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
