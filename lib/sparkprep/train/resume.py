"""A loader's position as a small, versioned state (`loader.state_dict()`): what it reads, how
ranks share it, and how far the consumer got; and the check that refuses a state saved for
another dataset, run, seed, order or world size, naming what differs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from sparkprep.errors import InputError

STATE_VERSION = 1
#: What a state must match, with what to do when it does not (world_size has its own rule).
_SAME = {
    "dataset": "resume with the loader of the dataset, split and fold it was saved for",
    "run_id": "the dataset was rewritten by another run since; start the epoch over",
    "seed": "pass the seed it was saved with (Sampling(seed=...))",
    "shuffle": "pass the Sampling(shuffle=...) it was saved with",
    "drop_last": "pass the Sampling(drop_last=...) it was saved with",
    "batch_size": "pass the batch_size it was saved with: the shuffle windows are sized in batches",
    "elastic": "pass the Sampling(elastic=...) it was saved with",
}


@dataclass(frozen=True)
class LoaderState:
    """Where a loader is: the identity of what it reads and the consumer's position in it.

    A position counts rows of the epoch's order that the ranks together have received: world_size
    times the rows each rank received (equal on every rank), or the split's row count once the
    epoch is over. So the state is the same on every rank (torch.distributed.checkpoint keeps one
    copy), and with `elastic` it is the length of the order's prefix the ranks have consumed.

    Args:
        dataset: the output's URL, the split and the fold.
        run_id: the run that wrote the output (its manifest's run_id).
        seed: the seed of the order.
        shuffle: whether the order is shuffled.
        drop_last: whether remainders are dropped (else padded).
        batch_size: rows per batch (the shuffle window is sized in batches).
        elastic: whether the order is global (Sampling.elastic).
        world_size: the ranks that read when the state was saved.
        epoch: the epoch the consumer is in.
        position: rows of that epoch's order the ranks together have received.
        last_epoch: the last epoch of the iteration in progress; None when it runs forever.
    """

    dataset: str
    run_id: str | None
    seed: int
    shuffle: bool
    drop_last: bool
    batch_size: int
    elastic: bool
    world_size: int
    epoch: int
    position: int
    last_epoch: int | None

    def to_dict(self) -> dict[str, Any]:
        """The state as plain values (what StatefulDataLoader and torch.distributed.checkpoint save)."""
        return {"version": STATE_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> LoaderState:
        """A state from `to_dict`'s output.

        Args:
            state: what `to_dict` returned, as loaded back.

        Raises:
            InputError: it is not a loader state of this version.
        """
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in state]
        if state.get("version") != STATE_VERSION or missing:
            raise InputError(f"not a sparkprep loader state of version {STATE_VERSION} (version "
                             f"{state.get('version')!r}, missing {', '.join(missing) or 'nothing'}): "
                             f"pass what loader.state_dict() returned")
        return cls(**{n: state[n] for n in names})

    def check_resumable_by(self, loader: LoaderState) -> None:
        """Refuse a saved state that the loader described by `loader` cannot resume.

        Args:
            loader: the state of the loader that would resume (its identity; its position is not used).

        Raises:
            InputError: a field differs, named with both values and what to do.
        """
        for name, fix in _SAME.items():
            saved, here = getattr(self, name), getattr(loader, name)
            if saved != here:
                raise InputError(f"the loader state is from another {name.replace('_', ' ')}: saved "
                                 f"with {name}={saved!r}, this loader has {name}={here!r}; {fix}")
        if self.world_size != loader.world_size and not self.elastic:
            raise InputError(f"the loader state was saved at world_size={self.world_size}, this loader has "
                             f"world_size={loader.world_size}: without Sampling(elastic=True) each rank's "
                             f"rows depend on the world size; resume with {self.world_size} ranks, or train "
                             f"with elastic=True from the start of an epoch")
