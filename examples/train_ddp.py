"""Train a small model with DDP on CPU (gloo) from a sparkprep output, one fold after another.

    .venv/train/bin/torchrun --standalone --nproc_per_node=2 examples/train_ddp.py out/demo --fold 0 1 2 \\
        --epochs 5 --logdir runs/demo
    .venv/train/bin/tensorboard --logdir runs/demo

The last layer starts at the manifest's class priors (bias log p), so the first loss should be the
priors' entropy, below ln(C); class weights come from the manifest too. Every rank gets the same
number of batches (the loader's exact shards), so the all-reduce never waits on a finished rank.
Rank 0 prints the loss curve and, with --logdir, writes TensorBoard scalars per epoch into one run
directory per fold (`<logdir>/fold<k>`): loss/train, loss/val, accuracy/train, accuracy/val.

With --checkpoint DIR the model, the optimiser and the training loader's position are saved with
torch.distributed.checkpoint every --checkpoint-every steps and at the end of each epoch; started
again with the same DIR (after a crash, a kill, or with another --epochs), it resumes where the
last checkpoint was, mid-epoch included: the loader yields exactly the batches not trained on yet.
The train metrics of a resumed epoch cover the batches after the checkpoint.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from sparkprep.contract import LABEL_INDEX
from sparkprep.train import Sampling, load_manifest, make_loader
from sparkprep.train.loader import BACKENDS
from sparkprep.train.tiny import FoldFeatures, batch_initial_loss, expected_initial_loss, prior_model


def summed(*values: float) -> list[float]:
    """Each value summed over the ranks."""
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a sparkprep output directory (with manifest.json)")
    parser.add_argument("--fold", type=int, nargs="+", default=[0], help="the folds to train, one model each")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="arrow", choices=list(BACKENDS))
    parser.add_argument("--logdir", type=Path, help="TensorBoard runs: <logdir>/fold<k> (rank 0 writes them)")
    parser.add_argument("--checkpoint", type=Path, help="save to and resume from this directory")
    parser.add_argument("--checkpoint-every", type=int, default=50, help="steps between mid-epoch checkpoints")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    manifest = load_manifest(args.out)
    done = saved_progress(args.checkpoint)
    for fold in args.fold:
        if done and args.fold.index(fold) < args.fold.index(done["fold"]):
            continue  # trained before the checkpoint
        writer = SummaryWriter(args.logdir / f"fold{fold}") if args.logdir and dist.get_rank() == 0 else None
        try:
            train_fold(args, manifest, fold, writer)
        finally:
            if writer:
                writer.close()
    # A rank died with SIGABRT ("terminate called without an active exception") after its last
    # fold: DDP's reducer sits in reference cycles, so it (and gloo work holding tensors) was freed
    # only at interpreter teardown. Free it while the group and the interpreter are alive, after
    # both ranks are past their last collective.
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()


def train_fold(args: argparse.Namespace, manifest: dict[str, Any], fold: int, writer: SummaryWriter | None) -> None:
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)  # the model's init; the loader never draws from torch's generator
    features = FoldFeatures.from_manifest(manifest)
    priors = manifest["class_priors"]["folds"][str(fold)]
    weight = torch.tensor(manifest["class_weights"]["folds"][str(fold)], dtype=torch.float32)
    sampling = Sampling(rank=rank, world_size=world, seed=args.seed)
    common = dict(batch_size=args.batch_size, transform="fold", backend=args.backend)
    train = make_loader(args.out, fold, "train", sampling=sampling, **common)
    val = make_loader(args.out, fold, "val", sampling=replace(sampling, shuffle=False), **common)
    batches = [0] * world
    dist.all_gather_object(batches, len(train))
    assert len(set(batches)) == 1, f"ranks have different batch counts {batches}: all-reduce would hang"

    width = features.apply(next(iter(train))).shape[1]
    model = DistributedDataParallel(prior_model(width, priors))
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    checkpoint = Checkpoint(args.checkpoint, fold, model, optimiser, train) if args.checkpoint else None
    first_epoch = checkpoint.resume() if checkpoint else 0
    if rank == 0:
        print(f"fold {fold}: {world} ranks x {len(train)} batches/epoch; {train.dropped} train and {val.dropped} "
              f"val row(s) dropped for equal shards; priors' entropy {expected_initial_loss(priors, None):.4f}, "
              f"weighted {expected_initial_loss(priors, weight.tolist()):.4f}, ln(C) {math.log(len(priors)):.4f}")
    for epoch in range(first_epoch, args.epochs):
        train.set_epoch(epoch)  # keeps the loader's resumed position when it is in this epoch
        model.train()
        loss_sum = rows = correct = 0.0
        for step, batch in enumerate(train):
            x, y = features.apply(batch), batch[LABEL_INDEX].long()
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=weight)
            if epoch == step == 0:
                # Verify at init: the first loss must be the priors' loss on these very labels.
                initial, expected = (v / world for v in summed(loss.item(), batch_initial_loss(y, priors, weight.tolist())))
                if rank == 0:
                    print(f"fold {fold}: initial loss {initial:.4f}, the priors' loss on these batches "
                          f"{expected:.4f} (ln(C) = {math.log(len(priors)):.4f})")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(y)
            rows += len(y)
            correct += float((logits.argmax(1) == y).sum())
            if checkpoint and (step + 1) % args.checkpoint_every == 0:
                checkpoint.save(epoch)
        if checkpoint:
            checkpoint.save(epoch + 1)  # the epoch is done: a resume starts the next one
        loss_sum, rows, correct = summed(loss_sum, rows, correct)
        if rows == 0:  # resumed from a checkpoint taken after the epoch's last batch
            continue
        val_loss, val_accuracy = evaluate(model, val, features, weight)
        scalars = {"loss/train": loss_sum / rows, "loss/val": val_loss,
                   "accuracy/train": correct / rows, "accuracy/val": val_accuracy}
        if writer:
            for tag, value in scalars.items():
                writer.add_scalar(tag, value, epoch)
        if rank == 0:
            print(f"fold {fold} epoch {epoch} " + " ".join(f"{tag} {value:.4f}" for tag, value in scalars.items()))


def saved_progress(directory: Path | None) -> dict[str, int] | None:
    """The fold and epoch of the last checkpoint in `directory`; None when there is none."""
    latest = directory / "latest" if directory else None
    if latest is None or not latest.exists():
        return None
    fold, epoch, _ = latest.read_text().split()
    return {"fold": int(fold), "epoch": int(epoch)}


class Checkpoint:
    """One fold's model, optimiser and training loader, saved with torch.distributed.checkpoint into
    `<dir>/fold<k>-epoch<e>-<n>/`; `<dir>/latest` ("<fold> <epoch>") names the newest, replaced
    atomically by rank 0 after every rank has written, so a kill never leaves it half-saved."""

    def __init__(self, directory: Path, fold: int, model: torch.nn.Module, optimiser: torch.optim.Optimizer,
                 loader) -> None:
        self.directory, self.fold, self.model, self.optimiser, self.loader = directory, fold, model, optimiser, loader
        self.saves = 0
        directory.mkdir(parents=True, exist_ok=True)

    def _state(self) -> dict[str, Any]:
        model, optimiser = get_state_dict(self.model, self.optimiser)
        return {"model": model, "optimiser": optimiser, "loader": self.loader}

    def save(self, epoch: int) -> None:
        """Save now, labelled with the epoch to resume in (the loader's state says how far into it)."""
        self.saves += 1
        name = f"fold{self.fold}-epoch{epoch}-{self.saves}"
        dcp.save(self._state(), checkpoint_id=str(self.directory / name))
        dist.barrier()
        if dist.get_rank() == 0:
            (self.directory / "latest.tmp").write_text(f"{self.fold} {epoch} {name}")
            os.replace(self.directory / "latest.tmp", self.directory / "latest")
        dist.barrier()

    def resume(self) -> int:
        """Load the newest checkpoint of this fold, if any; the epoch to continue from."""
        latest = self.directory / "latest"
        if not latest.exists() or int(latest.read_text().split()[0]) != self.fold:
            return 0
        _, epoch, name = latest.read_text().split()
        state = self._state()
        dcp.load(state, checkpoint_id=str(self.directory / name))
        set_state_dict(self.model, self.optimiser, model_state_dict=state["model"],
                       optim_state_dict=state["optimiser"])
        if dist.get_rank() == 0:
            loader = self.loader.state_dict()
            print(f"fold {self.fold}: resumed from {name}; the loader had given epoch {loader['epoch']}'s first "
                  f"{loader['position']} rows")
        return int(epoch)


def evaluate(model: torch.nn.Module, val, features: FoldFeatures, weight: torch.Tensor) -> tuple[float, float]:
    """Loss (class-weighted, as in training) and accuracy over the ranks' val shards together."""
    model.eval()
    loss_sum = right = rows = 0.0
    with torch.no_grad():
        for batch in val:
            y = batch[LABEL_INDEX].long()
            logits = model(features.apply(batch))
            loss_sum += F.cross_entropy(logits, y, weight=weight).item() * len(y)
            right += float((logits.argmax(1) == y).sum())
            rows += len(y)
    loss_sum, right, rows = summed(loss_sum, right, rows)
    return loss_sum / rows, right / rows


if __name__ == "__main__":
    main()
