"""Snapshots: atomic publication, conflicts, old snapshots, and crashes at any instant."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingest.pipeline import ingest
from ingest.profiles import load_profile
from store import SnapshotConflict, Store
from store.snapshots import publish
from tests.conftest import SAMPLE_CSV, sample_head


def test_publishing_a_taken_number_is_a_conflict(empty_store: Store) -> None:
    ingest(empty_store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    manifest = empty_store.require_manifest()
    with pytest.raises(SnapshotConflict, match="snapshot 1 was published by another writer"):
        publish(empty_store.root, manifest)


def test_reingest_adds_nothing_and_as_of_reads_old(empty_store: Store, tmp_path: Path) -> None:
    head = sample_head(tmp_path / "head.csv.gz", 20_000)
    first = ingest(empty_store, [str(head)], load_profile("fgj-cdmx"))
    assert first.snapshot == 1 and first.accepted == 20_000
    second = ingest(empty_store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    # The head's records come again in the whole file: duplicates by incident id.
    assert second.snapshot == 2 and second.duplicates == 20_000 and second.accepted == 30_000
    again = ingest(empty_store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    assert again.status == "already_ingested"
    assert again.accepted == 0 and again.duplicates == again.input_rows == 50_000
    assert empty_store.snapshots() == [1, 2]
    # The same bytes under another name are the same batch.
    copy = tmp_path / "copy.csv.gz"
    shutil.copy(SAMPLE_CSV, copy)
    assert ingest(empty_store, [str(copy)], load_profile("fgj-cdmx")).status == "already_ingested"
    # Snapshot 1 still reads as it was: the head's records, no more.
    old, now = _store_rows(empty_store.root, 1), _store_rows(empty_store.root)
    assert old is not None and now is not None
    assert len(old) == 20_000 and len(now) == 50_000 and old < now


def _store_rows(root: Path, as_of: int | None = None) -> set[str] | None:
    store = Store(root)
    manifest = store.manifest(as_of)
    if manifest is None:
        return None
    ids: set[str] = set()
    for path in store.data_files(manifest):
        ids.update(pq.read_table(path, columns=["incident_id"]).column(0).to_pylist())
    assert len(ids) == manifest.rows  # readable, complete, no duplicates
    return ids


def test_sigkill_at_random_moments_never_corrupts(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    ingest(Store(clean), [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    expected = _store_rows(clean)
    assert expected is not None and len(expected) == 50_000

    root = tmp_path / "killed"
    cmd = [sys.executable, "-m", "api.cli", "ingest", str(SAMPLE_CSV), "-p", "fgj-cdmx",
           "--store", str(root), "--json"]  # fmt: skip
    rng = random.Random(20241128)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for _ in range(6):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(0.2, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Whatever instant it died at, the store is readable: nothing, or all of it.
        rows = _store_rows(root)
        assert rows is None or rows == expected
        shutil.rmtree(root / "manifests", ignore_errors=True) if rows is None else None
    final = subprocess.run(cmd, capture_output=True, env=env, check=True)
    assert final.returncode == 0
    assert _store_rows(root) == expected
    # Files a killed writer left behind are named by no snapshot, and vacuum removes them.
    Store(root).vacuum()
    assert _store_rows(root) == expected
