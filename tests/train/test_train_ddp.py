"""examples/train_ddp.py under torchrun: 2 CPU ranks (gloo) train from the shards, learn, and leave
TensorBoard scalars for each fold."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from handmade import PRIORS
from sparkprep.train.loader import BACKENDS
from sparkprep.train.tiny import expected_initial_loss

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_ddp.py"
TAGS = {"loss/train", "loss/val", "accuracy/train", "accuracy/val"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_ranks_train_in_step_start_at_the_priors_and_learn(separable_out: Path, tmp_path: Path,
                                                               backend: str) -> None:
    logdir = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(EXAMPLE),
         str(separable_out), "--fold", "0", "1", "--epochs", "3", "--batch-size", "128", "--backend", backend,
         "--logdir", str(logdir)],
        capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    for fold in (0, 1):
        # 2 ranks x 8 batches: the training split (the other fold, 2000 rows) in equal shards, nothing dropped.
        assert f"fold {fold}: 2 ranks x 8 batches/epoch; 0 train and 0 val row(s) dropped" in done.stdout
        initial, expected = map(float, re.search(
            rf"fold {fold}: initial loss (\S+), the priors' loss on these batches (\S+)", done.stdout).groups())
        assert abs(initial - expected) < 1e-3  # class-weighted: the mean of -log p over the batches' labels
        assert abs(expected - expected_initial_loss(PRIORS, [2 / 3, 2.0])) < 0.15

    # One run directory per fold, one event file in each: rank 0 alone writes.
    assert sorted(p.name for p in logdir.iterdir()) == ["fold0", "fold1"]
    for fold in (0, 1):
        run = logdir / f"fold{fold}"
        assert len(list(run.glob("events.out.tfevents.*"))) == 1
        events = EventAccumulator(str(run))
        events.Reload()
        assert set(events.Tags()["scalars"]) == TAGS
        scalars = {tag: events.Scalars(tag) for tag in TAGS}
        assert all([s.step for s in series] == [0, 1, 2] for series in scalars.values())
        loss, val_accuracy = [s.value for s in scalars["loss/train"]], scalars["accuracy/val"][-1].value
        assert loss[-1] < loss[0] and val_accuracy > 0.95
        # The scalars are the ones printed (to 4 decimals), not some other numbers.
        printed = re.search(rf"fold {fold} epoch 2 loss/train (\S+)", done.stdout).group(1)
        assert abs(loss[-1] - float(printed)) < 1e-4
