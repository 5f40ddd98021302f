"""Train a small model with DDP on CPU (gloo) from a sparkprep output, through the arrow loader.

    .venv/train/bin/torchrun --standalone --nproc_per_node=2 examples/train_ddp.py out/demo --fold 0 --epochs 5 \\
        --scalars runs/fold0.jsonl

The last layer starts at the manifest's class priors (bias log p), so the first loss should be the
priors' entropy, below ln(C); class weights come from the manifest too. Every rank gets the same
number of batches (the loader's exact shards), so the all-reduce never waits on a finished rank.
Rank 0 prints the loss curve and writes one JSON line of scalars per epoch (loss, accuracy, per
fold); TensorBoard is not in the trainer's environment, so scalars are JSON lines.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from sparkprep.train import load_manifest, make_loader
from sparkprep.train.loader import LABEL
from sparkprep.train.tiny import FoldFeatures, batch_initial_loss, expected_initial_loss, prior_model


def summed(*values: float) -> list[float]:
    """Each value summed over the ranks."""
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="a sparkprep output directory (with manifest.json)")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scalars", type=Path, help="JSON lines of per-epoch scalars (rank 0 writes them)")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)  # the model's init; the loader never draws from torch's generator
    manifest = load_manifest(args.out)
    features = FoldFeatures.from_manifest(manifest)
    priors = manifest["class_priors"]["folds"][str(args.fold)]
    weight = torch.tensor(manifest["class_weights"]["folds"][str(args.fold)], dtype=torch.float32)
    common = dict(batch_size=args.batch_size, rank=rank, world_size=world, seed=args.seed, transform="fold")
    train = make_loader(args.out, args.fold, "train", **common)
    val = make_loader(args.out, args.fold, "val", shuffle=False, **common)
    batches = [0] * world
    dist.all_gather_object(batches, len(train))
    assert len(set(batches)) == 1, f"ranks have different batch counts {batches}: all-reduce would hang"

    width = features.apply(next(iter(train))).shape[1]
    model = DistributedDataParallel(prior_model(width, priors))
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    if rank == 0:
        print(f"{world} ranks x {len(train)} batches/epoch; {train.dropped} train and {val.dropped} val "
              f"row(s) dropped for equal shards; priors' entropy {expected_initial_loss(priors, None):.4f}, "
              f"weighted {expected_initial_loss(priors, weight.tolist()):.4f}, ln(C) {math.log(len(priors)):.4f}")
    lines = []
    for epoch in range(args.epochs):
        train.set_epoch(epoch)
        model.train()
        loss_sum = rows = correct = 0.0
        for step, batch in enumerate(train):
            x, y = features.apply(batch), batch[LABEL].long()
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=weight)
            if epoch == step == 0:
                # Verify at init: the first loss must be the priors' loss on these very labels.
                initial, expected = (v / world for v in summed(loss.item(), batch_initial_loss(y, priors, weight.tolist())))
                if rank == 0:
                    print(f"initial loss {initial:.4f}, the priors' loss on these batches {expected:.4f} "
                          f"(ln(C) = {math.log(len(priors)):.4f})")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(y)
            rows += len(y)
            correct += float((logits.argmax(1) == y).sum())
        loss_sum, rows, correct = summed(loss_sum, rows, correct)
        scalars = {"fold": args.fold, "epoch": epoch, "loss": loss_sum / rows, "train_accuracy": correct / rows,
                   "val_accuracy": evaluate(model, val, features)}
        lines.append(json.dumps(scalars))
        if rank == 0:
            print(f"epoch {epoch} loss {scalars['loss']:.4f} train acc {scalars['train_accuracy']:.3f} "
                  f"val acc {scalars['val_accuracy']:.3f}")
    if rank == 0 and args.scalars:
        args.scalars.parent.mkdir(parents=True, exist_ok=True)
        args.scalars.write_text("\n".join(lines) + "\n")
    dist.destroy_process_group()


def evaluate(model: torch.nn.Module, val, features: FoldFeatures) -> float:
    """Accuracy over the ranks' val shards together."""
    model.eval()
    right = rows = 0.0
    with torch.no_grad():
        for batch in val:
            y = batch[LABEL].long()
            right += float((model(features.apply(batch)).argmax(1) == y).sum())
            rows += len(y)
    right, rows = summed(right, rows)
    return right / rows


if __name__ == "__main__":
    main()
