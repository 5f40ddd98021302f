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
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sparkprep.errors import ContractError
from sparkprep.train.loader import LABEL, make_loader
from sparkprep.train.manifest import load_manifest

log = logging.getLogger(__name__)

INIT_TOLERANCE = 1e-3  # float32 logits; the expected value is exact
CLIP = 10.0  # transformed values beyond ±CLIP are outliers; clipping keeps one from dominating a step


@dataclass(frozen=True)
class FoldFeatures:
    """The model input: numeric then array columns of batches that `make_loader(...,
    transform="fold")` has already transformed with the fold's fitted parameters (transform.json)."""

    numeric: tuple[str, ...]
    arrays: tuple[str, ...]

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> FoldFeatures:
        return cls(tuple(manifest["columns"]["numeric"]), tuple(manifest["columns"]["array"]))

    def apply(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(rows, features) float32, clipped to ±CLIP."""
        rows = len(batch[LABEL])
        parts = [torch.stack([batch[c].double() for c in self.numeric], dim=1)] if self.numeric else []
        parts += [batch[c].double().reshape(rows, -1) for c in self.arrays]
        return torch.cat(parts, dim=1).clamp(-CLIP, CLIP).float()


@dataclass(frozen=True)
class TinyRun:
    steps: int
    initial_loss: float
    expected_initial_loss: float
    uniform_loss: float
    final_loss: float
    val_rows: int
    val_accuracy: float
    val_majority_baseline: float  # accuracy of always predicting the most frequent val class
    val_balanced_accuracy: float  # mean per-class recall: 1/C for a constant prediction
    wall_s: float


def expected_initial_loss(priors: list[float], weights: list[float] | None = None) -> float:
    """Cross-entropy of predicting the priors on rows drawn from them, with optional class weights.

    Unweighted this is the prior's entropy -sum(p log p); PyTorch's weighted mean divides by the
    summed weights, hence sum(p w (-log p)) / sum(p w).
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
    weight = torch.tensor(weights, dtype=torch.float32) if weights else None

    model: nn.Module | None = None
    initial = loss = math.nan
    every = max(1, steps // 10)
    with make_loader(out_dir, fold, "train", batch_size=batch_size, seed=seed, num_epochs=None,
                     transform="fold") as train:
        for step, batch in zip(range(steps), train):
            x, y = features.apply(batch), batch[LABEL].long()
            if model is None:
                model = prior_model(x.shape[1], priors)
                optimiser = torch.optim.Adam(model.parameters(), lr=lr)
            batch_loss = F.cross_entropy(model(x), y, weight=weight)
            if step == 0:
                initial = batch_loss.item()
                _verify_at_init(initial, y, priors, weights)
                log.info("initial loss %.4f; priors' entropy %.4f; ln(C) %.4f",
                         initial, expected, math.log(len(priors)))
            optimiser.zero_grad()
            batch_loss.backward()
            optimiser.step()
            loss = batch_loss.item()
            if step % every == 0 or step == steps - 1:
                log.info("step %d loss %.4f", step, loss)
    if model is None:
        raise ContractError(f"the training split of fold {fold} in {out_dir} yielded no rows")

    correct = rows = 0
    per_class = torch.zeros(len(priors), dtype=torch.long)
    hits = torch.zeros(len(priors), dtype=torch.long)
    model.eval()
    with torch.no_grad(), make_loader(out_dir, fold, "val", batch_size=batch_size, shuffle=False,
                                             transform="fold") as val:
        for batch in val:
            y = batch[LABEL].long()
            right = model(features.apply(batch)).argmax(1) == y
            correct += int(right.sum())
            per_class += torch.bincount(y, minlength=len(priors))
            hits += torch.bincount(y[right], minlength=len(priors))
            rows += len(y)
    return TinyRun(steps=steps, initial_loss=initial, expected_initial_loss=expected,
                   uniform_loss=math.log(len(priors)), final_loss=loss, val_rows=rows,
                   val_accuracy=correct / rows if rows else math.nan,
                   val_majority_baseline=int(per_class.max()) / rows if rows else math.nan,
                   val_balanced_accuracy=float((hits[per_class > 0] / per_class[per_class > 0]).mean())
                   if rows else math.nan,
                   wall_s=time.perf_counter() - started)


def prior_model(width: int, priors: list[float], hidden: int = 16) -> nn.Module:
    """A small MLP whose first prediction is the priors: zero last-layer weights, bias log p."""
    last = nn.Linear(hidden, len(priors))
    with torch.no_grad():
        last.weight.zero_()
        # A class absent from training gets a very negative bias rather than -inf (NaN gradients).
        last.bias.copy_(torch.tensor(priors).clamp_min(1e-12).log())
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), last)


def batch_initial_loss(labels: torch.Tensor, priors: list[float], weights: list[float] | None = None) -> float:
    """The loss a model that predicts exactly the priors must have on these labels."""
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
