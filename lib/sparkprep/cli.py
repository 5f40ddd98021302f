"""`sparkprep` command line: parse args → load config → build session → call the library.

Exit codes: 0 success; 1 other sparkprep error; 2 configuration error; 3 input error;
4 contract violation (e.g. broken row accounting).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from sparkprep.config import Config, load_config
from sparkprep.errors import SparkprepError

log = logging.getLogger("sparkprep")


def _generate(config: Config) -> None:
    from sparkprep.generate import write_generated
    from sparkprep.session import build_session

    config.require("generate")
    assert config.generate is not None
    rows = write_generated(build_session(config.spark, "sparkprep-generate"), config.generate)
    print(f"generated {rows} rows ({config.generate.format}) at {config.generate.path}")


def _prepare(config: Config) -> None:
    from sparkprep.pipeline import run
    from sparkprep.session import build_session

    config.require("input", "columns", "output")
    result = run(build_session(config.spark, "sparkprep-prepare"), config)
    print(summary_table(result.manifest, result.out))


def _jars(config: Config) -> None:
    from sparkprep.session import DELTA_PACKAGE, build_session

    build_session(config.spark, "sparkprep-jars").stop()
    print(f"Delta jars ready ({DELTA_PACKAGE})")


def _verify(config: Config, out: str) -> None:
    from sparkprep.errors import ContractError
    from sparkprep.session import build_session
    from sparkprep.verify import verify_output

    verdict = verify_output(build_session(config.spark, "sparkprep-verify"), out)
    for check in verdict.checks:
        failed = [v for v in verdict.violations if v.startswith(check + ":")]
        print(f"{'FAIL' if failed else 'ok  '}  {check}")
        for violation in failed:
            print(f"      {violation[len(check) + 2:]}")
    if not verdict.ok:
        raise ContractError(f"{out}: {len(verdict.violations)} violation(s) of the data contract")


COMMANDS: dict[str, tuple[Callable[..., None], str]] = {
    "generate": (_generate, "write the synthetic demo dataset (generate: section)"),
    "prepare": (_prepare, "run the pipeline: input → training-ready shards + manifest.json"),
    "jars": (_jars, "resolve and cache Delta's JVM jars from Maven Central"),
    "verify": (_verify, "prove a finished dataset keeps the data contract (exit 4 if not)"),
}


def summary_table(manifest: dict, out: str) -> str:
    """The end-of-run table printed for humans."""
    rows = manifest["rows"]
    lines = [("output", out), ("format", manifest["output"]["format"]),
             ("input rows", rows["input"]), ("rejected", rows["rejected"]),
             ("duplicates", rows["duplicates"]), ("output rows", rows["output"]),
             ("replicas (training copies)", rows["replicas"])]
    lines += [(f"  {'holdout' if f == '-1' else 'fold ' + f}", n) for f, n in rows["by_fold"].items()]
    lines += [(f"  rejected: {reason}", n) for reason, n in manifest["rejections"]["by_reason"].items()]
    lines += [("classes", ", ".join(manifest["classes"])), ("seconds", manifest["timings_s"]["total"])]
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
        if name == "verify":
            cmd.add_argument("out", help="output root of a prepare run (any Hadoop URI)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        config = load_config(args.config, args.set)
        extra = [args.out] if args.command == "verify" else []
        COMMANDS[args.command][0](config, *extra)
    except SparkprepError as exc:
        print(f"sparkprep {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
