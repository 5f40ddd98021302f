"""The tiny trainer starts at the priors' loss (verify at init) and learns a separable problem."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from handmade import PRIORS, ROWS_PER_FOLD
from sparkprep.errors import ContractError
from sparkprep.train import tiny as tiny_module
from sparkprep.train.tiny import batch_initial_loss, expected_initial_loss, train_tiny


def test_the_expected_initial_loss_is_the_priors_entropy() -> None:
    assert expected_initial_loss(PRIORS) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert expected_initial_loss([0.5, 0.5]) == pytest.approx(math.log(2))
    # class weights n / (C n_c): each class contributes equally, so the loss is the mean of -log p
    assert expected_initial_loss(PRIORS, [2 / 3, 2.0]) == pytest.approx(-(math.log(0.75) + math.log(0.25)) / 2)


@pytest.mark.parametrize("fold", [0, 1])
@pytest.mark.parametrize("class_weights", [False, True])
def test_training_starts_at_the_priors_loss_and_learns(separable_out: Path, fold: int, class_weights: bool) -> None:
    run = train_tiny(str(separable_out), fold, steps=30, batch_size=ROWS_PER_FOLD, class_weights=class_weights)
    assert run.expected_initial_loss == pytest.approx(expected_initial_loss(PRIORS, [2 / 3, 2.0] if class_weights else None))
    # A batch of ROWS_PER_FOLD rows drawn from the shuffling buffer: class frequencies within about
    # 0.01 of the priors, so the loss within about 0.01 of the expected one (0.05 is 5 sd). A model
    # that ignores the priors starts at ln 2, 0.13 (unweighted) or 0.14 (weighted) away.
    assert abs(run.initial_loss - run.expected_initial_loss) < 0.05
    assert run.final_loss < 0.5 * run.initial_loss
    assert run.val_rows == ROWS_PER_FOLD
    assert run.val_accuracy > 0.95
    assert run.val_majority_baseline == 0.75
    assert run.val_balanced_accuracy > 0.9


def test_the_batch_initial_loss_is_derived_from_its_labels() -> None:
    labels = torch.tensor([0, 0, 0, 1])
    assert batch_initial_loss(labels, PRIORS) == pytest.approx(-(3 * math.log(0.75) + math.log(0.25)) / 4)
    # weighted mean: class 1 counts 3 times as much as class 0
    assert batch_initial_loss(labels, PRIORS, [1.0, 3.0]) == pytest.approx(
        -(3 * math.log(0.75) + 3 * math.log(0.25)) / 6)


def test_verify_at_init_refuses_a_model_that_does_not_start_at_the_priors(monkeypatch, separable_out: Path) -> None:
    original = tiny_module.prior_model

    def uniform_start(width, priors, hidden=16):
        model = original(width, priors, hidden)
        with torch.no_grad():
            model[-1].bias.zero_()  # a forgotten bias init: starts at ln 2, not at the priors
        return model

    monkeypatch.setattr(tiny_module, "prior_model", uniform_start)
    with pytest.raises(ContractError, match=r"verify at init failed: first-batch loss 0\.693\d differs from 0\.5"):
        train_tiny(str(separable_out), 0, steps=5, batch_size=ROWS_PER_FOLD)


def load_job():
    path = Path(__file__).parents[2] / "jobs" / "train_tiny.py"
    spec = importlib.util.spec_from_file_location("train_tiny_job", path)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job


def test_the_job_prints_a_summary_and_exits_0(separable_out: Path, capsys: pytest.CaptureFixture) -> None:
    assert load_job().main(["--out", str(separable_out), "--steps", "10", "--batch-size", str(ROWS_PER_FOLD)]) == 0
    summary = dict(line.rsplit(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert summary["steps"] == "10" and summary["val rows"] == str(ROWS_PER_FOLD)
    assert float(summary["initial loss"]) == pytest.approx(float(summary["expected (prior entropy)"]), abs=0.05)


def test_the_job_reports_an_incomplete_dataset_with_the_input_error_exit_code(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    assert load_job().main(["--out", str(tmp_path)]) == 3
    assert f"no manifest.json in file://{tmp_path}" in capsys.readouterr().err
