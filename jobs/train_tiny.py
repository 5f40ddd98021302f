"""Train a tiny model on one fold of a sparkprep output and print a summary (trainer env, no Spark).

    python jobs/train_tiny.py --out OUT [--fold 0] [--steps 30] [--class-weights]
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from sparkprep.errors import SparkprepError
from sparkprep.train.tiny import train_tiny


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="sparkprep output directory or URI")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--class-weights", action="store_true", help="weight the loss by the manifest's class weights")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("petastorm").setLevel(logging.WARNING)  # its INFO lines are about its own metadata
    # Petastorm 0.12 uses pyarrow's deprecated legacy dataset API: a screenful of warnings per run
    # that users can do nothing about.
    warnings.filterwarnings("ignore", category=FutureWarning, module="petastorm")
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    try:
        run = train_tiny(args.out, args.fold, args.steps, batch_size=args.batch_size,
                         class_weights=args.class_weights, seed=args.seed)
    except SparkprepError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    rows = [("steps", run.steps), ("initial loss", f"{run.initial_loss:.4f}"),
            ("expected (prior entropy)", f"{run.expected_initial_loss:.4f}"),
            ("ln(C)", f"{run.uniform_loss:.4f}"), ("final loss", f"{run.final_loss:.4f}"),
            ("val rows", run.val_rows), ("val accuracy", f"{run.val_accuracy:.4f}"),
            ("val majority baseline", f"{run.val_majority_baseline:.4f}"),
            ("val balanced accuracy", f"{run.val_balanced_accuracy:.4f}"),
            ("wall time (s)", f"{run.wall_s:.1f}")]
    for name, value in rows:
        print(f"{name:<26}{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
