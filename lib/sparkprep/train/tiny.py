"""A tiny end-to-end training run: proves that a sparkprep output trains, from init to val accuracy.

The model starts by predicting the class priors (last layer: zero weights, bias log p), so its first
loss is known before any step ("verify at init"): on the first batch it must equal, to float
precision, the cross-entropy of the priors on that batch's labels. A mismatch means the init or the
labels are not what the manifest says. The population value, the priors' entropy, is logged beside
it: a first batch is not a uniform sample of the training rows (row groups arrive whole), so only
the batch value is exact.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sparkprep.contract import FOLD, LABEL_INDEX
from sparkprep.errors import ContractError
from sparkprep.train.loader import make_loader
from sparkprep.train.manifest import load_manifest
from sparkprep.train.sharding import Sampling

log = logging.getLogger(__name__)

INIT_TOLERANCE = 1e-3  # float32 logits; the expected value is exact
CLIP = 10.0  # transformed values beyond ±CLIP are outliers; clipping keeps one from dominating a step


@dataclass(frozen=True)
class FoldFeatures:
    """The model input: numeric then array columns of batches that `make_loader(...,
    transform=FOLD)` has already transformed with the fold's fitted parameters (transform.json).

    Args:
        numeric: the numeric feature columns, in manifest order.
        arrays: the array feature columns, in manifest order.
    """

    numeric: tuple[str, ...]
    arrays: tuple[str, ...]

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> FoldFeatures:
        """The manifest's numeric and array feature columns.

        Args:
            manifest: the output's manifest (load_manifest).
        """
        return cls(tuple(manifest["columns"]["numeric"]), tuple(manifest["columns"]["array"]))

    def apply(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's features as one (rows, features) float32 tensor, clipped to ±CLIP.

        Args:
            batch: a batch of the loader, with these columns and label_index.
        """
        rows = len(batch[LABEL_INDEX])
        parts = [torch.stack([batch[c].double() for c in self.numeric], dim=1)] if self.numeric else []
        parts += [batch[c].double().reshape(rows, -1) for c in self.arrays]
        return torch.cat(parts, dim=1).clamp(-CLIP, CLIP).float()


@dataclass(frozen=True)
class TinyRun:
    """What a tiny run measured (train_tiny).

    Args:
        steps: optimiser steps taken.
        initial_loss: the first batch's loss, before any step.
        expected_initial_loss: the priors' (class-weighted) entropy, the population's initial loss.
        uniform_loss: ln(C), a model's initial loss that ignores the priors.
        final_loss: the last step's batch loss.
        val_rows: rows evaluated.
        val_accuracy: the share of them predicted right.
        val_majority_baseline: the accuracy of always predicting the most frequent val class.
        val_balanced_accuracy: the mean per-class recall, 1/C for a constant prediction.
        wall_s: seconds the run took.
    """

    steps: int
    initial_loss: float
    expected_initial_loss: float
    uniform_loss: float
    final_loss: float
    val_rows: int
    val_accuracy: float
    val_majority_baseline: float
    val_balanced_accuracy: float
    wall_s: float


def expected_initial_loss(priors: list[float], weights: list[float] | None = None) -> float:
    """Cross-entropy of predicting the priors on rows drawn from them, with optional class weights.

    Unweighted this is the prior's entropy -sum(p log p); PyTorch's weighted mean divides by the
    summed weights, hence sum(p w (-log p)) / sum(p w).

    Args:
        priors: the class priors, in class order.
        weights: the class weights of the loss; None for an unweighted loss.
    """
    w = weights or [1.0] * len(priors)
    num = sum(p * wc * -math.log(p) for p, wc in zip(priors, w) if p > 0)
    return num / sum(p * wc for p, wc in zip(priors, w))


def train_tiny(out_dir: str, fold: int = 0, steps: int = 30, *, batch_size: int = 256,
               class_weights: bool = False, lr: float = 0.01, seed: int = 0) -> TinyRun:
    """Train a small MLP for `steps` steps on fold `fold`'s training rows; evaluate on its val rows.

    >>> run = train_tiny("/data/prepared", fold=0, steps=30)
    >>> run.initial_loss - run.expected_initial_loss < 0.05
    True

    Args:
        out_dir: the sparkprep output (a local path or a URI).
        fold: the fold whose training rows train and whose val rows evaluate.
        steps: optimiser steps; the training split repeats as often as they need.
        batch_size: rows per step and per evaluation batch.
        class_weights: weight the loss by the manifest's class weights of the fold.
        lr: Adam's learning rate.
        seed: the model's init and the training order.

    Raises:
        ContractError: the first loss is not the priors' (verify at init), or the split is empty.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    manifest = load_manifest(out_dir)
    features = FoldFeatures.from_manifest(manifest)
    priors = manifest["class_priors"]["folds"][str(fold)]
    weights = manifest["class_weights"]["folds"][str(fold)] if class_weights else None
    expected = expected_initial_loss(priors, weights)
    log.info("expected initial loss %.4f (prior entropy%s); ln(C) = %.4f",
             expected, ", class-weighted" if weights else "", math.log(len(priors)))
    with make_loader(out_dir, fold, "train", batch_size=batch_size, transform=FOLD,
                     sampling=Sampling(seed=seed, num_epochs=None)) as train:
        model, initial, loss = _fit(train, features, priors, weights, steps, lr)
    if model is None:
        raise ContractError(f"the training split of fold {fold} in {out_dir} yielded no rows")
    with torch.no_grad(), make_loader(out_dir, fold, "val", batch_size=batch_size, transform=FOLD,
                                      sampling=Sampling(shuffle=False)) as val:
        scores = _evaluate(model, val, features, len(priors))
    return TinyRun(steps=steps, initial_loss=initial, expected_initial_loss=expected,
                   uniform_loss=math.log(len(priors)), final_loss=loss, **scores,
                   wall_s=time.perf_counter() - started)


def _fit(train: Iterable[dict[str, torch.Tensor]], features: FoldFeatures, priors: list[float],
         weights: list[float] | None, steps: int, lr: float) -> tuple[nn.Module | None, float, float]:
    """The model after `steps` steps (None when the split yields no batch), its first loss and its last."""
    model: nn.Module | None = None
    weight = torch.tensor(weights, dtype=torch.float32) if weights else None
    initial = loss = math.nan
    every = max(1, steps // 10)
    for step, batch in zip(range(steps), train):
        x, y = features.apply(batch), batch[LABEL_INDEX].long()
        if model is None:
            model = prior_model(x.shape[1], priors)
            optimiser = torch.optim.Adam(model.parameters(), lr=lr)
        batch_loss = F.cross_entropy(model(x), y, weight=weight)
        if step == 0:
            initial = batch_loss.item()
            _verify_at_init(initial, y, priors, weights)
            log.info("initial loss %.4f; priors' entropy %.4f; ln(C) %.4f",
                     initial, expected_initial_loss(priors, weights), math.log(len(priors)))
        optimiser.zero_grad()
        batch_loss.backward()
        optimiser.step()
        loss = batch_loss.item()
        if step % every == 0 or step == steps - 1:
            log.info("step %d loss %.4f", step, loss)
    return model, initial, loss


def _evaluate(model: nn.Module, val: Iterable[dict[str, torch.Tensor]], features: FoldFeatures,
              classes: int) -> dict[str, float]:
    """TinyRun's val_ fields: rows, accuracy, the majority baseline and the balanced accuracy."""
    correct = rows = 0
    per_class = torch.zeros(classes, dtype=torch.long)
    hits = torch.zeros(classes, dtype=torch.long)
    model.eval()
    for batch in val:
        y = batch[LABEL_INDEX].long()
        right = model(features.apply(batch)).argmax(1) == y
        correct += int(right.sum())
        per_class += torch.bincount(y, minlength=classes)
        hits += torch.bincount(y[right], minlength=classes)
        rows += len(y)
    return dict(val_rows=rows, val_accuracy=correct / rows if rows else math.nan,
                val_majority_baseline=int(per_class.max()) / rows if rows else math.nan,
                val_balanced_accuracy=float((hits[per_class > 0] / per_class[per_class > 0]).mean())
                if rows else math.nan)


def prior_model(width: int, priors: list[float], hidden: int = 16) -> nn.Module:
    """A small MLP whose first prediction is the priors: zero last-layer weights, bias log p.

    Args:
        width: the number of input features.
        priors: the class priors, in class order.
        hidden: the width of the hidden layer.
    """
    last = nn.Linear(hidden, len(priors))
    with torch.no_grad():
        last.weight.zero_()
        # A class absent from training gets a very negative bias rather than -inf (NaN gradients).
        last.bias.copy_(torch.tensor(priors).clamp_min(1e-12).log())
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), last)


def batch_initial_loss(labels: torch.Tensor, priors: list[float], weights: list[float] | None = None) -> float:
    """The loss a model that predicts exactly the priors must have on these labels.

    Args:
        labels: a batch's label indices.
        priors: the class priors, in class order.
        weights: the class weights of the loss; None for an unweighted loss.
    """
    log_p = torch.tensor(priors, dtype=torch.float64).clamp_min(1e-12).log()[labels]
    w = torch.tensor(weights or [1.0] * len(priors), dtype=torch.float64)[labels]
    return float(-(w * log_p).sum() / w.sum())


def _verify_at_init(loss: float, labels: torch.Tensor, priors: list[float], weights: list[float] | None) -> None:
    expected = batch_initial_loss(labels, priors, weights)
    if abs(loss - expected) >= INIT_TOLERANCE:
        freq = (torch.bincount(labels, minlength=len(priors)).float() / len(labels)).tolist()
        raise ContractError(
            f"verify at init failed: first-batch loss {loss:.4f} differs from {expected:.4f}, the "
            f"loss of predicting the manifest's class_priors {priors} on this batch (class "
            f"frequencies {[round(f, 3) for f in freq]}): the model does not start at the priors, "
            f"or label_index is not what the manifest's classes say")
