"""Ingest in parts, and on Dask: the same snapshot as one part in this process."""

from __future__ import annotations

import csv
import gzip
import shutil
import socket
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.parts import SeenIds, id_hashes
from ingest.pipeline import IngestReport, ingest
from ingest.profiles import load_profile
from store import Store
from store.snapshots import Manifest
from tests.conftest import POINTS, SAMPLE_CSV

PROFILE = load_profile("fgj-cdmx")
SMALL = 12_000  # the 50k sample in five parts
REPORT_FIELDS = ("input_rows", "accepted", "rejected", "duplicates", "duplicates_within_input",
                 "duplicates_already_stored", "repairs", "time_imputed", "unknown_offenses",
                 "assigned", "batch")  # fmt: skip


def _store(template: Path, tmp: Path, name: str) -> Store:
    root = tmp / name
    shutil.copytree(template, root)
    return Store(root)


def _records(store: Store, manifest: Manifest) -> pa.Table:
    """Every record of the snapshot, in incident id order (file layout aside)."""
    files = [str(store.root / f.path) for f in manifest.files]
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    table = table.drop_columns(["geometry", "bbox"]) if "bbox" in table.column_names else table
    plain = pa.table({c: pc.cast(table[c], pa.string()) if pa.types.is_dictionary(table[c].type)
                      else table[c] for c in table.column_names})  # fmt: skip
    return plain.sort_by("incident_id")


def _partitions(store: Store, manifest: Manifest) -> Counter[tuple[int, str]]:
    """Each file's year and the digest of its records in written order (names aside)."""
    out: Counter[tuple[int, str]] = Counter()
    for f in manifest.files:
        t = pq.read_table(store.root / f.path, columns=["incident_id", "h3", "local_date"])
        out[(f.year, str(hash(tuple(t.column("incident_id").to_pylist()))))] += 1
    return out


def _rejects(report: IngestReport) -> list[list[str]]:
    assert report.rejects_file is not None
    with open(report.rejects_file, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_parts_commit_what_one_part_commits(layers_store_template: Path, tmp_path: Path) -> None:
    whole_store = _store(layers_store_template, tmp_path, "whole")
    parts_store = _store(layers_store_template, tmp_path, "parts")
    whole = ingest(whole_store, [str(SAMPLE_CSV)], PROFILE)
    parts = ingest(parts_store, [str(SAMPLE_CSV)], PROFILE, batch_rows=SMALL)
    assert whole.parts == 1 and parts.parts >= 3
    assert {k: getattr(parts, k) for k in REPORT_FIELDS} == {
        k: getattr(whole, k) for k in REPORT_FIELDS
    }
    assert parts.balanced() and parts.accepted > 45_000
    a = _records(whole_store, whole_store.require_manifest())
    b = _records(parts_store, parts_store.require_manifest())
    assert a.drop_columns(["batch"]).equals(b.drop_columns(["batch"]))


def _with_bad_rows(tmp: Path) -> tuple[Path, list[int]]:
    """The sample with a few coordinates blanked to "NA" (hand-made rejects), as CSV."""
    with gzip.open(SAMPLE_CSV, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    bad = [3, 17_500, 31_000, 49_990]  # 1-based data rows, in different parts
    for r in bad:
        body[r - 1][header.index("latitud")] = "NA"
    path = tmp / "with-bad-rows.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    return path, bad


def test_rejected_rows_keep_their_place_in_the_file(
    layers_store_template: Path, tmp_path: Path
) -> None:
    path, bad = _with_bad_rows(tmp_path)
    whole = ingest(_store(layers_store_template, tmp_path, "w"), [str(path)], PROFILE)
    parts = ingest(
        _store(layers_store_template, tmp_path, "p"), [str(path)], PROFILE, batch_rows=SMALL
    )
    assert parts.parts >= 3 and parts.rejected == whole.rejected
    # Each rejected row keeps its line number in the file, whichever part it was in.
    assert _rejects(parts) == _rejects(whole)
    assert sorted(int(r[1]) for r in _rejects(parts)[1:]) == bad


def test_parquet_rejects_carry_every_source_column(
    layers_store_template: Path, tmp_path: Path
) -> None:
    # A seeded sample of the real Parquet file in several row groups, three rows moved
    # outside Mexico City. The ingest reads only the mapped columns; the rejects file
    # must still show every column of the file, as published, and the row's place.
    first = next(pq.ParquetFile(POINTS).iter_batches(batch_size=200_000))
    rows = np.sort(np.random.default_rng(7).choice(first.num_rows, 30_000, replace=False))
    table = pa.Table.from_batches([first]).take(pa.array(rows))
    bad = [5, 14_000, 29_990]  # 0-based rows, in different row groups and parts
    lon = table.column("longitud").to_numpy().copy()
    lon[bad] = -100.23
    table = table.set_column(table.column_names.index("longitud"), "longitud", pa.array(lon))
    path = tmp_path / "sample.parquet"
    pq.write_table(table, path, row_group_size=8_000)
    expected = [
        [str(i + 1), "outside_jurisdiction"]
        + [pc.cast(table.column(c), pa.string())[i].as_py() for c in table.column_names]
        for i in bad
    ]
    for name, batch_rows in (("whole", 1_000_000), ("parts", SMALL)):
        report = ingest(_store(layers_store_template, tmp_path, name), [str(path)], PROFILE,
                        batch_rows=batch_rows)  # fmt: skip
        header, *body = _rejects(report)
        assert header == ["_file", "_row", "_reason", *table.column_names]
        assert [row[1:] for row in body] == expected, name
        assert report.parts == (1 if name == "whole" else 2)


def test_a_record_met_in_an_earlier_part_is_a_duplicate(
    layers_store_template: Path, tmp_path: Path
) -> None:
    # The same file twice in one ingest: every record of the second copy is met before.
    store = _store(layers_store_template, tmp_path, "twice")
    copy = tmp_path / "again.csv.gz"
    shutil.copy(SAMPLE_CSV, copy)
    once = ingest(_store(layers_store_template, tmp_path, "once"), [str(SAMPLE_CSV)], PROFILE)
    report = ingest(store, [str(SAMPLE_CSV), str(copy)], PROFILE, batch_rows=SMALL)
    assert report.accepted == once.accepted
    assert report.duplicates_within_input == once.duplicates_within_input + once.accepted
    assert report.balanced()


def test_seen_ids_answer_like_a_set() -> None:
    ids = pa.array([f"id-{i}" for i in range(5_000)])
    seen = SeenIds()
    q1, q2 = id_hashes(ids.slice(0, 3_000))
    seen.add(q1, q2)
    p1, p2 = id_hashes(ids.slice(2_000, 3_000))
    assert seen.contains(p1, p2).tolist() == [True] * 1_000 + [False] * 2_000
    assert len(seen) == 3_000


def test_dask_engine_commits_the_default_engines_snapshot(
    layers_store_template: Path, tmp_path: Path
) -> None:
    local_store = _store(layers_store_template, tmp_path, "local")
    dask_store = _store(layers_store_template, tmp_path, "dask")
    path, _ = _with_bad_rows(tmp_path)
    local = ingest(local_store, [str(path)], PROFILE, batch_rows=SMALL)
    with _port_held(8787):  # Dask's usual HTTP port, taken by another program
        remote = ingest(dask_store, [str(path)], PROFILE, batch_rows=SMALL, engine="dask")
    assert remote.engine == "dask" and remote.parts == local.parts >= 3
    assert not any((dask_store.root / "staging").glob("*"))  # the staged parts are gone
    assert {k: getattr(remote, k) for k in REPORT_FIELDS} == {
        k: getattr(local, k) for k in REPORT_FIELDS
    }
    a_manifest, b_manifest = local_store.require_manifest(), dask_store.require_manifest()
    # Record for record, and partition for partition (each year file's records, in order).
    assert _records(local_store, a_manifest).equals(_records(dask_store, b_manifest))
    assert _partitions(local_store, a_manifest) == _partitions(dask_store, b_manifest)
    assert sorted(f.rows for f in a_manifest.files) == sorted(f.rows for f in b_manifest.files)
    assert _rejects(remote) == _rejects(local)
    # And the default engine with its default parts (one, here): the same records.
    default_store = _store(layers_store_template, tmp_path, "default")
    default = ingest(default_store, [str(path)], PROFILE)
    assert default.parts == 1 and default.engine == "local"
    assert (
        _records(dask_store, b_manifest)
        .drop_columns(["batch"])
        .equals(_records(default_store, default_store.require_manifest()).drop_columns(["batch"]))
    )
    assert not (dask_store.root / "staging").exists() or not any(
        (dask_store.root / "staging").iterdir()
    )


def test_seen_ids_over_many_parts() -> None:
    # Thirteen parts of a 2,000-id list with repeats inside the list: an id is "seen"
    # exactly when an earlier part held it, whichever part's run holds it.
    ids = [f"carpeta-{i % 15_000}" for i in range(26_000)]
    seen, earlier = SeenIds(), set()
    for start in range(0, len(ids), 2_000):
        part = list(dict.fromkeys(ids[start : start + 2_000]))  # unique within the part
        q1, q2 = id_hashes(pa.array(part))
        found = seen.contains(q1, q2)
        assert found.tolist() == [i in earlier for i in part]
        seen.add(q1[~found], q2[~found])
        earlier.update(part)
    assert len(seen) == 15_000


@contextmanager
def _port_held(port: int) -> Iterator[None]:
    """Hold a local TCP port (if nothing else does already) for the block."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", port))
        holder.listen()
    except OSError:
        pass  # held by someone else: the same situation
    try:
        yield
    finally:
        holder.close()
