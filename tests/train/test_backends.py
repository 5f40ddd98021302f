"""Both backends: contract rows as a direct pyarrow read gives them, exact DDP shards, seeded order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import torch
from torch.utils.data import DataLoader

from handmade import (BASE, K, LAYOUTS, generated_rows, manifest_for, table_of, write_generated_output, write_manifest,
                      write_parquet_output)
from sparkprep.errors import ContractError, InputError
from sparkprep.train import DatasetFiles, Sampling, load_manifest, make_loader
from sparkprep.train.backends import base
from sparkprep.train.backends.base import Source, count_units
from sparkprep.train.files import TRAINING
from sparkprep.train.location import OutputLocation
from sparkprep.train.loader import BACKENDS

SPLITS = [("train", f) for f in range(K)] + [("val", f) for f in range(K)] + [("final", 0), ("test", 0)]


@pytest.fixture(scope="module", params=LAYOUTS)
def many(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """~400 rows (write_generated_output), their copies written as rows or counted."""
    out = tmp_path_factory.mktemp(f"many-{request.param}") / "out"
    by_fold = Counter(str(f) for f, _, rep, _ in generated_rows() if rep == 0)
    write_generated_output(out, request.param, rows={"output": sum(by_fold.values()), "by_fold": by_fold})
    return out


def contract_rows(out: Path, split: str, fold: int) -> list[tuple[int, int]]:
    """A direct pyarrow read of the whole dataset, with DESIGN.md's filters written out; train and
    final read a row with counted copies as itself and its copies (replica 0..copies)."""
    f, rep = ds.field("fold"), ds.field("replica")
    where = {"train": (f != fold) & (f != -1), "val": (f == fold) & (rep == 0),
             "final": f != -1, "test": (f == -1) & (rep == 0)}[split]
    table = ds.dataset(out / "data", format="parquet", partitioning="hive").to_table(filter=where)
    ids = [r - BASE for r in table.column("row_id").to_pylist()]
    if "copies" in table.column_names and split in ("train", "final"):
        return sorted((i, c) for i, n in zip(ids, table.column("copies").to_pylist()) for c in range(n + 1))
    return sorted(zip(ids, table.column("replica").to_pylist()))


def read_batches(out: Path, fold: int, split: str, **kwargs) -> list[list[tuple[int, int]]]:
    """(row_id - BASE, replica) of each batch, in the order the loader yields them."""
    kwargs.setdefault("batch_size", 8)
    with make_loader(str(out), fold, split, columns=["row_id", "replica"], **kwargs) as loader:
        return [list(zip((b["row_id"] - BASE).tolist(), b["replica"].tolist())) for b in loader]


def flat(batches: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    return [row for batch in batches for row in batch]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("split", "fold"), SPLITS)
def test_both_backends_read_the_rows_a_direct_pyarrow_read_selects(many: Path, backend: str, split: str,
                                                                   fold: int) -> None:
    expected = contract_rows(many, split, fold)
    assert expected and (split in ("val", "test") or any(rep for _, rep in expected))
    assert sorted(flat(read_batches(many, fold, split, backend=backend))) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_val_and_test_counts_equal_the_manifests_originals_per_fold(many: Path, backend: str) -> None:
    by_fold = load_manifest(str(many))["rows"]["by_fold"]
    for fold in range(K):
        assert len(flat(read_batches(many, fold, "val", backend=backend))) == by_fold[str(fold)] > 0
    assert len(flat(read_batches(many, 0, "test", backend=backend))) == by_fold["-1"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize(("split", "fold"), [("train", 1), ("val", 0), ("test", 0)])
def test_ranks_get_equal_batch_counts_and_disjoint_rows_covering_the_split_minus_the_dropped(
        many: Path, world_size: int, split: str, fold: int, backend: str) -> None:
    expected = contract_rows(many, split, fold)
    loaders = [make_loader(str(many), fold, split, columns=["row_id", "replica"], batch_size=8,
                           sampling=Sampling(seed=11, rank=r, world_size=world_size), backend=backend)
               for r in range(world_size)]
    ranks = [read_batches(many, fold, split, sampling=Sampling(seed=11, rank=r, world_size=world_size),
                          backend=backend) for r in range(world_size)]
    assert len({len(b) for b in ranks}) == 1 and len(ranks[0]) == len(loaders[0]) == len(loaders[-1])
    assert len({len(flat(b)) for b in ranks}) == 1
    dropped = loaders[0].dropped
    assert dropped == len(expected) % world_size and all(ld.dropped == dropped and ld.padded == 0 for ld in loaders)
    rows = [row for batches in ranks for row in flat(batches)]
    assert len(set(rows)) == len(rows)  # disjoint (and no row twice within a rank)
    assert set(rows) <= set(expected) and len(rows) == len(expected) - dropped


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("world_size", [2, 3])
def test_without_drop_last_ranks_are_filled_by_repeating_rows(many: Path, world_size: int, backend: str) -> None:
    expected = contract_rows(many, "val", 2)
    ranks = [read_batches(many, 2, "val", sampling=Sampling(rank=r, world_size=world_size, drop_last=False),
                          backend=backend) for r in range(world_size)]
    loader = make_loader(str(many), 2, "val", sampling=Sampling(rank=0, world_size=world_size, drop_last=False),
                         backend=backend)
    assert len({len(flat(b)) for b in ranks}) == 1 and len({len(b) for b in ranks}) == 1
    rows = [row for batches in ranks for row in flat(batches)]
    assert set(rows) == set(expected)
    padded = len(rows) - len(expected)
    assert padded == loader.padded == -len(expected) % world_size and loader.dropped == 0
    assert sum(c - 1 for c in Counter(rows).values()) == padded


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_ranks_than_rows_pads_every_rank_to_one_row_without_drop_last(many: Path, backend: str) -> None:
    n = len(contract_rows(many, "test", 0))
    world = n + 2
    ranks = [flat(read_batches(many, 0, "test", sampling=Sampling(rank=r, world_size=world, drop_last=False),
                               backend=backend)) for r in range(world)]
    assert all(len(rows) == 1 for rows in ranks)
    assert {r for rows in ranks for r in rows} == set(contract_rows(many, "test", 0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_seed_and_epoch_give_the_same_order_and_another_epoch_another(many: Path, backend: str) -> None:
    def order(**kwargs) -> list[tuple[int, int]]:
        return flat(read_batches(many, 0, "train", backend=backend, sampling=Sampling(**kwargs)))

    first = order(seed=3, epoch=0)
    assert first == order(seed=3, epoch=0)
    assert sorted(first) == sorted(order(seed=3, epoch=1))
    assert first != order(seed=3, epoch=1)
    assert first != order(seed=4, epoch=0)
    # Mixed across files and row groups: not the file order an unshuffled read gives.
    assert first != order(shuffle=False)
    head = {row_id for row_id, _ in first[:20]}
    assert head - {row_id for row_id, _ in order(shuffle=False)[:40]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_epoch_changes_the_order_of_the_next_pass_and_the_global_rng_plays_no_part(many: Path,
                                                                                       backend: str) -> None:
    loader = make_loader(str(many), 0, "train", columns=["row_id"], batch_size=16, sampling=Sampling(seed=9),
                         backend=backend)

    def ids() -> list[int]:
        return torch.cat([b["row_id"] for b in loader]).tolist()

    torch.manual_seed(0)
    epoch_0 = ids()
    torch.manual_seed(1)
    assert ids() == epoch_0
    loader.set_epoch(1)
    epoch_1 = ids()
    assert epoch_1 != epoch_0 and sorted(epoch_1) == sorted(epoch_0)
    loader.set_epoch(0)
    assert ids() == epoch_0


@pytest.mark.parametrize("backend", BACKENDS)
def test_num_epochs_runs_consecutive_epochs_from_the_set_one(many: Path, backend: str) -> None:
    one = [flat(read_batches(many, 1, "val", sampling=Sampling(epoch=e, seed=2), backend=backend)) for e in (4, 5)]
    assert flat(read_batches(many, 1, "val", sampling=Sampling(epoch=4, seed=2, num_epochs=2),
                             backend=backend)) == one[0] + one[1]


def test_it_works_as_an_iterable_dataset_in_a_dataloader(many: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader = make_loader(str(many), 0, "val", columns=["row_id"], batch_size=5, sampling=Sampling(seed=1))
    direct = [b["row_id"] for b in loader]
    through = [b["row_id"] for b in DataLoader(loader, batch_size=None)]
    assert len(through) == len(loader) and all(torch.equal(a, b) for a, b in zip(direct, through))
    # As inside a DataLoader worker process with num_workers=2 (real workers take seconds to shut down).
    monkeypatch.setattr(base, "get_worker_info", lambda: SimpleNamespace(num_workers=2))
    with pytest.raises(InputError, match="num_workers 0 or 1"):
        next(iter(loader))


def test_batches_have_the_requested_size_and_only_the_last_is_short(many: Path) -> None:
    sizes = [len(b) for b in read_batches(many, 0, "train", batch_size=8)]
    assert set(sizes[:-1]) == {8} and 0 < sizes[-1] <= 8


def test_only_the_files_of_the_selected_folds_are_opened(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_parquet_output(out, table_of(generated_rows(60)), row_group_size=7)
    write_manifest(out, manifest_for("parquet", k=K))
    for part in (out / "data").glob("fold=1/*.parquet"):
        part.write_bytes(b"not parquet")
    assert sorted(flat(read_batches(out, 0, "val"))) == contract_rows_without_fold_1(out, 0)
    with pytest.raises(Exception, match="Parquet magic bytes not found"):
        read_batches(out, 0, "train")  # fold 1 is in it: the broken files are opened then


def contract_rows_without_fold_1(out: Path, fold: int) -> list[tuple[int, int]]:
    table = ds.dataset(out / "data" / f"fold={fold}", format="parquet").to_table(filter=ds.field("replica") == 0)
    return sorted(zip((r - BASE for r in table.column("row_id").to_pylist()), table.column("replica").to_pylist()))


def test_originals_are_counted_without_statistics_too(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    table = table_of(generated_rows(90))
    write_parquet_output(out, table, row_group_size=7)
    for part in (out / "data").glob("fold=*/*.parquet"):
        pq.write_table(pq.read_table(part), part, row_group_size=7, write_statistics=False)
    write_manifest(out, manifest_for("parquet", k=K))
    for world in (1, 2):
        rows = [flat(read_batches(out, 1, "val", sampling=Sampling(rank=r, world_size=world))) for r in range(world)]
        assert len({len(r) for r in rows}) == 1
    assert sorted(flat(read_batches(out, 1, "val"))) == contract_rows(out, "val", 1)


def test_array_columns_are_2d_and_64_bit_ids_are_exact(many: Path) -> None:
    with make_loader(str(many), 0, "val", columns=["row_id", "emb", "num_1"], batch_size=1000) as loader:
        (batch,) = list(loader)
    assert batch["emb"].shape == (len(batch["row_id"]), 2) and batch["emb"].dtype == torch.float64
    assert ((batch["row_id"] - BASE).double() == batch["emb"][:, 0]).all()
    assert (batch["num_1"] == -batch["emb"][:, 0]).all()
    assert batch["row_id"].dtype == torch.int64 and int(batch["row_id"].min()) > BASE


def test_ragged_lists_and_string_columns_are_refused_by_name(tmp_path: Path) -> None:
    import pyarrow as pa

    out = tmp_path / "out"
    table = table_of([(0, 1, 0, 0), (0, 2, 0, 1), (1, 3, 0, 0)])
    emb = pa.array([[1.0, 2.0], [1.0], [3.0, 4.0]], pa.list_(pa.float64()))
    write_parquet_output(out, table.set_column(table.schema.get_field_index("emb"), "emb", emb))
    write_manifest(out, manifest_for("parquet", k=2))
    with pytest.raises(ContractError, match="'emb' .* lists of lengths 1 to 2"):
        list(make_loader(str(out), 0, "val", columns=["emb"]))
    with pytest.raises(InputError, match="column 'label' .* string"):
        make_loader(str(out), 0, "val", columns=["label"])


def _undersampled_flag(fold: int, row: int, replica: int) -> bool:
    """in_train by hand: every third CV original is undersampled; copies and the holdout never are."""
    return not (fold != -1 and replica == 0 and row % 3 == 1)


@pytest.fixture(scope="module")
def undersampled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`many`'s rows with `in_train`, sorted by it, so that row groups of 7 are all false, all true
    or mixed: each way of counting a row group (statistics or a read of the column) is taken."""
    out = tmp_path_factory.mktemp("undersampled") / "out"
    rows = sorted(generated_rows(), key=lambda r: _undersampled_flag(*r[:3]))
    table = table_of(rows).append_column("in_train", pa.array([_undersampled_flag(*r[:3]) for r in rows]))
    write_parquet_output(out, table, files={-1: 2, 0: 3, 1: 2, 2: 3}, row_group_size=7)
    by_fold = Counter(str(f) for f, _, rep, _ in rows if rep == 0)
    write_manifest(out, manifest_for("parquet", k=K, rows={"output": sum(by_fold.values()), "by_fold": by_fold},
                                     rebalance={"method": "undersample", "target": 1.0}))
    return out


def undersampled_rows(out: Path, split: str, fold: int) -> list[tuple[int, int]]:
    """contract_rows, minus the rows with in_train false for train and final (DESIGN.md)."""
    skipped = {(r, rep) for f, r, rep, _ in generated_rows() if not _undersampled_flag(f, r, rep)}
    rows = contract_rows(out, split, fold)
    return [row for row in rows if row not in skipped] if split in ("train", "final") else rows


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("split", "fold"), [("train", 0), ("train", 2), ("val", 1), ("final", 0), ("test", 0)])
def test_undersampled_originals_are_left_out_of_train_and_final_only(undersampled: Path, backend: str,
                                                                     split: str, fold: int) -> None:
    expected = undersampled_rows(undersampled, split, fold)
    every = contract_rows(undersampled, split, fold)
    assert (len(expected) < len(every)) == (split in ("train", "final"))
    assert sorted(flat(read_batches(undersampled, fold, split, backend=backend))) == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("split", ["train", "final"])
def test_undersampled_ranks_stay_exact(undersampled: Path, backend: str, world_size: int, split: str) -> None:
    expected = undersampled_rows(undersampled, split, 1)
    ranks = [flat(read_batches(undersampled, 1, split, sampling=Sampling(seed=3, rank=r, world_size=world_size),
                               backend=backend)) for r in range(world_size)]
    assert len({len(r) for r in ranks}) == 1
    rows = [row for rank in ranks for row in rank]
    assert len(set(rows)) == len(rows) == len(expected) - len(expected) % world_size and set(rows) <= set(expected)


def test_kept_rows_per_row_group_are_counted_from_statistics_or_the_column(undersampled: Path) -> None:
    manifest = load_manifest(str(undersampled))
    files = DatasetFiles.for_split(str(undersampled), manifest, "final")
    assert files.keep == TRAINING
    sources = [Source.of(OutputLocation.of(str(undersampled)), url) for url in files.urls]
    counted = [u.rows for u in count_units(sources, files.keep)]
    direct = []
    for source in sources:
        file = source.open()
        for group in range(file.metadata.num_row_groups):
            flags = file.read_row_group(group, columns=["in_train"]).column("in_train").to_pylist()
            direct.append((sum(flags), len(flags)))
    assert counted == [kept for kept, _ in direct]
    assert {"none", "all", "some"} <= {"none" if k == 0 else "all" if k == n else "some" for k, n in direct}


def test_a_manifest_without_undersampling_reads_every_row_of_train(many: Path) -> None:
    assert DatasetFiles.for_split(str(many), load_manifest(str(many)), "train", fold=0).keep is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_counted_copies_are_read_as_the_same_rows_as_copies_written_as_rows(tmp_path: Path, backend: str) -> None:
    outs = {layout: tmp_path / layout for layout in LAYOUTS}
    for layout, out in outs.items():
        write_generated_output(out, layout)
    stored = {layout: ds.dataset(out / "data", partitioning="hive").count_rows() for layout, out in outs.items()}
    assert stored["count"] == sum(1 for _, _, rep, _ in generated_rows() if rep == 0) < stored["rows"]
    for split, fold in SPLITS:
        assert sorted(flat(read_batches(outs["count"], fold, split, backend=backend))) == \
            contract_rows(outs["rows"], split, fold), (split, fold)


def test_counted_copies_per_row_group_are_counted_from_statistics_or_the_column(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_generated_output(out, "count")
    files = DatasetFiles.for_split(str(out), load_manifest(str(out)), "final")
    assert files.expand and files.keep is None
    assert not DatasetFiles.for_split(str(out), load_manifest(str(out)), "val", fold=0).expand
    sources = [Source.of(OutputLocation.of(str(out)), url) for url in files.urls]
    direct = [pq_counts(source, group) for source in sources for group in range(source.open().num_row_groups)]
    assert [u.rows for u in count_units(sources, None, expand=True)] == [len(c) + sum(c) for c in direct]
    assert {"none", "all", "some"} <= {"none" if not any(c) else "all" if all(c) else "some" for c in direct}


def pq_counts(source: Source, group: int) -> list[int]:
    return source.open().read_row_group(group, columns=["copies"]).column("copies").to_pylist()


def test_a_manifest_that_says_count_over_data_without_the_column_is_refused_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_generated_output(out, "rows")
    manifest = load_manifest(str(out))
    write_manifest(out, {**manifest, "rebalance": {**manifest["rebalance"], "copies": "count"}})
    with pytest.raises(ContractError, match=r"fold=0/part-00000.* has no copies column, but the manifest records "
                                            r"rebalance.copies count"):
        make_loader(str(out), 1, "train")
    assert make_loader(str(out), 1, "val") is not None  # val reads no copies
