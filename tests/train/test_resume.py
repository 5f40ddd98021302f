"""Resuming a loader from its state: exactly the batches not received, in order; inside torchdata's
StatefulDataLoader (with a worker process ahead of the consumer) and torch.distributed.checkpoint;
elastic resumes at another world size; states and manifests that must be refused."""

from __future__ import annotations

import json
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
import torch.distributed.checkpoint as dcp
from torchdata.stateful_dataloader import StatefulDataLoader

from handmade import (BASE, K, LAYOUTS, generated_rows, manifest_for, table_of, write_generated_output, write_manifest,
                      write_parquet_output)
from sparkprep.errors import InputError
from sparkprep.train import PetastormOptions, Sampling, make_loader
from sparkprep.train.loader import BACKENDS

Rows = list[tuple[int, int]]


@pytest.fixture(scope="module", params=LAYOUTS)
def many(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """~400 rows (write_generated_output), their copies written as rows or counted; a run id."""
    out = tmp_path_factory.mktemp(f"many-{request.param}") / "out"
    write_generated_output(out, request.param, run_id="20261206T000000Z-aaaaaa")
    return out


def loader_of(out: Path, backend: str = "arrow", **sampling: object):
    return make_loader(str(out), 0, "train", columns=["row_id", "replica"], batch_size=8, backend=backend,
                       sampling=Sampling(**{"seed": 5, **sampling}))


def pairs(batches) -> list[Rows]:
    return [list(zip((b["row_id"] - BASE).tolist(), b["replica"].tolist())) for b in batches]


def epoch(loader, number: int) -> list[Rows]:
    loader.set_epoch(number)
    return pairs(loader)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_resumed_loader_yields_exactly_the_batches_not_received_then_the_same_next_epoch(many: Path,
                                                                                          backend: str) -> None:
    # Rank 1 of 2: the position is the ranks' together, each rank resumes its own rows.
    whole = loader_of(many, backend, rank=1, world_size=2)
    first, second = epoch(whole, 0), epoch(whole, 1)
    assert len(first) == len(whole) > 6 and first != second

    before = loader_of(many, backend, rank=1, world_size=2)
    before.set_epoch(0)
    received = pairs(islice(before, 3))
    state = before.state_dict()
    assert state["epoch"] == 0 and state["position"] == 2 * 3 * 8 and len(json.dumps(state)) < 400

    once = loader_of(many, backend, rank=1, world_size=2)
    once.load_state_dict(state)
    once.set_epoch(0)  # a training loop sets the epoch it resumes in: the state still applies
    again = pairs(islice(once, 2))
    twice = loader_of(many, backend, rank=1, world_size=2)
    twice.load_state_dict(once.state_dict())  # a second resume, from the resumed loader's state
    rest = pairs(twice)
    assert received + again + rest == first
    assert epoch(twice, 1) == second

    # A resume in a later epoch, and a state saved at the end of an epoch, which yields nothing more.
    later = loader_of(many, backend, rank=1, world_size=2)
    later.set_epoch(1)
    head = pairs(islice(later, 4))
    resumed = loader_of(many, backend, rank=1, world_size=2)
    resumed.load_state_dict(later.state_dict())
    assert head + pairs(resumed) == second
    end = resumed.state_dict()
    assert end["epoch"] == 1 and end["position"] == 2 * len(flat(second)) + resumed.dropped
    done = loader_of(many, backend, rank=1, world_size=2)
    done.load_state_dict(end)
    assert pairs(done) == []


def flat(batches: list[Rows]) -> Rows:
    return [row for batch in batches for row in batch]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_inside_a_stateful_dataloader_with_a_worker_ahead_the_state_counts_what_the_consumer_got(
        many: Path, num_workers: int) -> None:
    expected = epoch(loader_of(many), 0)
    kwargs = dict(batch_size=None, num_workers=num_workers, **({"prefetch_factor": 4} if num_workers else {}))
    first = StatefulDataLoader(loader_of(many), **kwargs)
    batches = iter(first)
    received = pairs(islice(batches, 3))
    state = first.state_dict()
    del batches  # the worker has made batches beyond the third; they were never received
    # StatefulDataLoader holds our loader's state as of the batch the consumer got (not a replay
    # of the steps, which is its fallback for a dataset without state).
    assert [s["position"] for s in loader_states(state)] == [3 * 8]
    second = StatefulDataLoader(loader_of(many), **kwargs)
    second.load_state_dict(state)
    assert received + pairs(second) == expected


def loader_states(state: object) -> list[dict]:
    """The loader states nested in a StatefulDataLoader's state."""
    if isinstance(state, dict):
        if {"version", "position", "epoch"} <= state.keys():
            return [state]
        return [found for value in state.values() for found in loader_states(value)]
    return []


def test_torch_distributed_checkpoint_saves_and_restores_it(many: Path, tmp_path: Path) -> None:
    expected = epoch(loader_of(many), 0)
    before = loader_of(many)
    received = pairs(islice(before, 5))
    dcp.save({"loader": before}, checkpoint_id=str(tmp_path / "ckpt"))
    after = loader_of(many)
    dcp.load({"loader": after}, checkpoint_id=str(tmp_path / "ckpt"))
    assert received + pairs(after) == expected


@pytest.mark.parametrize(("drop_last", "shuffle"), [(True, True), (False, True), (True, False)])
def test_elastic_a_run_saved_at_three_ranks_resumes_at_two_and_sees_every_row_once(many: Path, drop_last: bool,
                                                                                    shuffle: bool) -> None:
    options = dict(elastic=True, drop_last=drop_last, shuffle=shuffle)
    uninterrupted = [flat(epoch(loader_of(many, rank=r, world_size=3, **options), 0)) for r in range(3)]
    seen_whole = Counter(row for rank in uninterrupted for row in rank)
    every = set(flat(epoch(loader_of(many, shuffle=False), 0)))
    threes = [loader_of(many, rank=r, world_size=3, **options) for r in range(3)]
    before = [flat(pairs(islice(ld, 4))) for ld in threes]
    states = [ld.state_dict() for ld in threes]
    assert states[0] == states[1] == states[2] and states[0]["position"] == 3 * 4 * 8
    twos = [loader_of(many, rank=r, world_size=2, **options) for r in range(2)]
    for ld in twos:
        ld.load_state_dict(states[0])
    after = [flat(pairs(ld)) for ld in twos]
    assert len(after[0]) == len(after[1])  # equal shares, so DDP's collectives stay in step
    seen = Counter(row for rank in before + after for row in rank)
    remainder = len(every) - 3 * 4 * 8
    if drop_last:  # no repeat, no skip: every row once, but for the reported remainder
        assert max(seen.values()) == 1 and twos[0].dropped == remainder % 2 and twos[0].padded == 0
        assert len(seen) == len(every) - twos[0].dropped and set(seen) <= every
        assert set(seen_whole) <= every and len(seen_whole) == len(every) - len(every) % 3
    else:  # every row, and the reported padding repeats rows from the start of the order
        assert set(seen) == every and sum(seen.values()) - len(every) == twos[0].padded == -remainder % 2


def test_elastic_orders_do_not_depend_on_the_world_size(many: Path) -> None:
    """Global batch j of W ranks is rows [j*W*B, (j+1)*W*B) of one order, whatever W is."""
    def global_order(world: int) -> Rows:
        ranks = [epoch(loader_of(many, rank=r, world_size=world, elastic=True, drop_last=False), 0)
                 for r in range(world)]
        return [row for step in zip(*ranks) for batch in step for row in batch]

    one = global_order(1)
    assert global_order(2)[:len(one)] == one == global_order(3)[:len(one)]


def test_a_state_from_another_dataset_run_seed_or_world_size_is_refused_naming_it(many: Path,
                                                                                  tmp_path: Path) -> None:
    state = loader_of(many, rank=0, world_size=2).state_dict()
    with pytest.raises(InputError, match="another seed: saved with seed=5, this loader has seed=6"):
        loader_of(many, rank=0, world_size=2, seed=6).load_state_dict(state)
    with pytest.raises(InputError, match="saved at world_size=2, this loader has world_size=3: without "
                                         r"Sampling\(elastic=True\)"):
        loader_of(many, rank=0, world_size=3).load_state_dict(state)
    with pytest.raises(InputError, match="another dataset: .* fold 0'.* fold 1'"):
        make_loader(str(many), 1, "train", batch_size=8, sampling=Sampling(seed=5, world_size=2)).load_state_dict(state)
    with pytest.raises(InputError, match="another batch size"):
        make_loader(str(many), 0, "train", batch_size=9, sampling=Sampling(seed=5, world_size=2)).load_state_dict(state)
    rerun = tmp_path / "out"
    write_parquet_output(rerun, table_of(generated_rows()), row_group_size=7)
    write_manifest(rerun, manifest_for("parquet", k=K, run_id="20261207T000000Z-bbbbbb"))
    with pytest.raises(InputError, match="another run id: saved with run_id='20261206T000000Z-aaaaaa', "
                                         "this loader has run_id='20261207T000000Z-bbbbbb'"):
        loader_of(rerun, rank=0, world_size=2).load_state_dict({**state, "dataset": f"file://{rerun} train fold 0"})
    with pytest.raises(InputError, match="not a sparkprep loader state"):
        loader_of(many).load_state_dict({"epoch": 0})
    # An elastic state is not a plain one: its position counts rows of another order.
    with pytest.raises(InputError, match="another elastic"):
        loader_of(many, world_size=2).load_state_dict(loader_of(many, world_size=2, elastic=True).state_dict())


def test_petastorm_refuses_elastic_and_mid_epoch_states_it_cannot_follow(many: Path) -> None:
    with pytest.raises(InputError, match="elastic=True.* needs backend='arrow'"):
        loader_of(many, "petastorm", elastic=True)
    loader = loader_of(many, "petastorm")
    next(iter(loader))
    state = loader.state_dict()
    threaded = make_loader(str(many), 0, "train", columns=["row_id", "replica"], batch_size=8,
                           sampling=Sampling(seed=5), backend=PetastormOptions(reader_pool_type="thread"))
    with pytest.raises(InputError, match="reader_pool_type='dummy'"):
        threaded.load_state_dict(state)


@pytest.mark.parametrize(("key", "value"), [("data_path", "../elsewhere"), ("data_path", "/etc"),
                                            ("data_path", "file:///tmp/other/data"), ("transform", "../../x.json")])
def test_a_manifest_edited_to_point_outside_the_dataset_root_is_refused(tmp_path: Path, key: str, value: str) -> None:
    out = tmp_path / "out"
    write_parquet_output(out, table_of(generated_rows(60)), row_group_size=7)
    manifest = manifest_for("parquet", k=K)
    if key == "data_path":
        manifest["output"]["data_path"] = value
    else:
        manifest["normalisation"]["transform"]["path"] = value
    # What "../elsewhere" points at is readable: only the check stands between the reader and it.
    write_parquet_output(tmp_path / "elsewhere-root", table_of(generated_rows(30)), row_group_size=7)
    (tmp_path / "elsewhere-root" / "data").rename(tmp_path / "elsewhere")
    write_manifest(out, manifest)
    field = "output.data_path" if key == "data_path" else "normalisation.transform.path"
    with pytest.raises(InputError, match=f"{field} '{value}' in the manifest of .* points outside the dataset root"):
        make_loader(str(out), 0, "train", transform="fold" if key == "transform" else None)
