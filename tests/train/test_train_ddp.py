"""examples/train_ddp.py under torchrun: 2 CPU ranks (gloo) train from the shards and learn."""

import json
import os
import subprocess
import sys
from pathlib import Path

from handmade import PRIORS
from sparkprep.train.tiny import expected_initial_loss

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_ddp.py"


def test_two_ranks_train_in_step_start_at_the_priors_and_learn(separable_out: Path, tmp_path: Path) -> None:
    scalars = tmp_path / "scalars.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(EXAMPLE),
         str(separable_out), "--fold", "1", "--epochs", "3", "--batch-size", "128", "--scalars", str(scalars)],
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # 2 ranks x 8 batches: the training split (fold 0, 2000 rows) in equal shards, nothing dropped.
    assert "2 ranks x 8 batches/epoch; 0 train and 0 val row(s) dropped" in done.stdout
    line = done.stdout.split("initial loss ")[1].splitlines()[0]
    initial, expected = float(line.split(",")[0]), float(line.split("these batches ")[1].split()[0])
    assert abs(initial - expected) < 1e-3  # class-weighted: the mean of -log p over the batches' labels
    assert abs(expected - expected_initial_loss(PRIORS, [2 / 3, 2.0])) < 0.15
    epochs = [json.loads(line) for line in scalars.read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1, 2] and {e["fold"] for e in epochs} == {1}
    assert epochs[-1]["loss"] < epochs[0]["loss"] and epochs[-1]["val_accuracy"] > 0.95
