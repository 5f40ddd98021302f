"""Run by test_resume_ddp.py under torchrun: each rank reads two epochs of a split and appends the
(row_id, replica) of every batch it receives to `<work>/rank<r>.log`; every 2 batches the ranks
checkpoint the loader with torch.distributed.checkpoint (`<work>/step-<n>/`, then `<work>/latest`
names it), each rank beside it the length its log had. A start with a checkpoint resumes from it
and cuts the log back to that length: what a training job redoes after a crash. With --halt E,
the ranks stop after their second checkpoint in epoch E, receive one more batch (lost with the
crash), write `<work>/halted<r>` (their pid) and wait to be killed."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch.distributed as dist
import torch.distributed.checkpoint as dcp

from sparkprep.train import Sampling, make_loader

EPOCHS = 2
EVERY = 2  # batches between checkpoints


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("work", type=Path)
    parser.add_argument("--backend", default="arrow")
    parser.add_argument("--halt", type=int, help="the epoch in which to stop and wait to be killed")
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    loader = make_loader(args.out, 0, "train", columns=["row_id", "replica"], batch_size=8, backend=args.backend,
                         sampling=Sampling(rank=rank, world_size=world, seed=3))
    log = args.work / f"rank{rank}.log"
    latest = args.work / "latest"
    first_epoch, steps = 0, 0
    if latest.exists():
        checkpoint = args.work / latest.read_text()
        dcp.load({"loader": loader}, checkpoint_id=str(checkpoint))
        os.truncate(log, int((checkpoint / f"rank{rank}.offset").read_text()))
        first_epoch, steps = loader.epoch, int(latest.read_text().removeprefix("step-"))
    saved_here = 0
    with log.open("a") as lines:
        for epoch in range(first_epoch, EPOCHS):
            loader.set_epoch(epoch)  # keeps a loaded state of this epoch
            for batch in loader:
                lines.writelines(f"{epoch} {row_id} {replica}\n"
                                 for row_id, replica in zip(batch["row_id"].tolist(), batch["replica"].tolist()))
                lines.flush()
                steps += 1
                if saved_here == 2 and epoch == args.halt:  # one batch past the checkpoint: lost with the crash
                    (args.work / f"halted{rank}").write_text(str(os.getpid()))
                    time.sleep(600)
                if steps % EVERY == 0:
                    checkpoint = args.work / f"step-{steps}"
                    dcp.save({"loader": loader}, checkpoint_id=str(checkpoint))
                    (checkpoint / f"rank{rank}.offset").write_text(str(lines.tell()))
                    dist.barrier()
                    if rank == 0:
                        (args.work / "latest.tmp").write_text(checkpoint.name)
                        os.replace(args.work / "latest.tmp", latest)
                    dist.barrier()
                    saved_here += epoch == args.halt
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
