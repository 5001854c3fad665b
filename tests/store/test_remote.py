"""A store on S3 (moto's server, a real S3 protocol peer): read, written and raced."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.pipeline import ingest
from ingest.profiles import load_profile
from store import SnapshotConflict, Store, StoreError
from store.keys import KEYS, KeyRing, Role
from tests.conftest import SAMPLE_CSV


@contextmanager
def machine(name: Path) -> Iterator[None]:
    """Stores opened inside are this machine's: their own cache folder."""
    before = os.environ["CUADRA_CACHE"]
    os.environ["CUADRA_CACHE"] = str(name)
    try:
        yield
    finally:
        os.environ["CUADRA_CACHE"] = before


def halves(tmp: Path, rows: int) -> tuple[Path, Path]:
    """The sample's first ``rows`` records and the next ``rows``, as two CSV files."""
    with gzip.open(SAMPLE_CSV, "rt", encoding="utf-8", newline="") as src:
        header = next(src)
        lines = [next(src) for _ in range(2 * rows)]
    paths = tmp / "first.csv", tmp / "second.csv"
    for path, part in zip(paths, (lines[:rows], lines[rows:]), strict=True):
        path.write_text(header + "".join(part), encoding="utf-8")
    return paths


def fresh(url: str) -> str:
    return f"{url}/{uuid.uuid4().hex[:8]}"


def test_a_store_written_on_one_machine_is_read_on_another(s3_server: str, tmp_path: Path) -> None:
    url = fresh(s3_server)
    first, second = halves(tmp_path, 3_000)
    with machine(tmp_path / "a"):
        writer = Store(url)
        one = ingest(writer, [str(first)], load_profile("fgj-cdmx"))
        two = ingest(writer, [str(second)], load_profile("fgj-cdmx"))
        written = writer.read(writer.require_manifest(), ["incident_id"])
    assert (one.snapshot, two.snapshot) == (1, 2)
    assert writer.location == url and str(writer.root).startswith(str(tmp_path / "a"))
    with machine(tmp_path / "b"):
        reader = Store(url)
    assert str(reader.root).startswith(str(tmp_path / "b"))
    assert not reader.root.exists()  # nothing is brought until the store is read
    assert reader.snapshots() == [1, 2]
    manifest = reader.require_manifest()
    assert manifest.snapshot == 2 and manifest.rows == one.accepted + two.accepted
    read = reader.read(manifest, ["incident_id"])
    assert sorted(read.column(0).to_pylist()) == sorted(written.column(0).to_pylist())
    # Only the newest snapshot was brought; an older one comes when asked for.
    assert [p.name for p in (reader.root / "manifests").glob("*.json")] == ["00000002.json"]
    assert reader.require_manifest(1).rows == one.accepted
    with pytest.raises(StoreError, match="no snapshot 9"):
        reader.require_manifest(9)


def test_racing_writers_both_land(s3_server: str, tmp_path: Path) -> None:
    """Machine A's ingest reads snapshot 1; machine B commits snapshot 2 meanwhile, with
    half of A's records. A's conditional put of snapshot 2 is refused, and A ingests again
    onto B's snapshot: nothing lost, nothing stored twice."""
    url = fresh(s3_server)
    first, second = halves(tmp_path, 2_000)
    header, *rows = second.read_text(encoding="utf-8").splitlines(keepends=True)
    a_file, b_file = tmp_path / "a.csv", tmp_path / "b.csv"
    a_file.write_text(header + "".join(rows[:1000]), encoding="utf-8")
    b_file.write_text(header + "".join(rows[500:]), encoding="utf-8")
    profile = load_profile("fgj-cdmx")
    with machine(tmp_path / "a"):
        a = Store(url)
    with machine(tmp_path / "b"):
        b = Store(url)
    ingest(a, [str(first)], profile)
    raced: list[int | None] = []

    def meanwhile(stage: str) -> None:
        if stage == "committing" and not raced:
            raced.append(ingest(b, [str(b_file)], profile).snapshot)

    report = ingest(a, [str(a_file)], profile, progress=meanwhile)
    assert raced == [2]
    assert report.commit_attempts == 2 and report.snapshot == 3
    # Against B's snapshot, A's records that B stored are duplicates.
    assert report.duplicates_already_stored >= 500
    # The oracle: the same three files ingested one after another into a local store.
    local = Store(tmp_path / "local")
    for path in (first, b_file, a_file):
        ingest(local, [str(path)], profile)
    with machine(tmp_path / "c"):
        final = Store(url)
    got = final.read(final.require_manifest(), ["incident_id"]).column(0).to_pylist()
    want = local.read(local.require_manifest(), ["incident_id"]).column(0).to_pylist()
    assert len(got) == len(set(got)), "a record stored twice"
    assert sorted(got) == sorted(want)


def test_two_ingests_at_once_from_two_processes(s3_server: str, tmp_path: Path) -> None:
    """Two `cuadra ingest` commands, each with its own cache, started together."""
    url = fresh(s3_server)
    first, second = halves(tmp_path, 4_000)
    procs = []
    for name, path in (("a", first), ("b", second)):
        env = {**os.environ, "CUADRA_CACHE": str(tmp_path / name)}
        cmd = [sys.executable, "-m", "api.entry", "ingest", str(path), "--profile", "fgj-cdmx",
               "--store", url, "--json"]  # fmt: skip
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-2000:] for o in outs]
    with machine(tmp_path / "c"):
        final = Store(url)
    manifest = final.require_manifest()
    assert manifest.snapshot == 2 and len(manifest.batches) == 2
    local = Store(tmp_path / "local")
    for path in (first, second):
        ingest(local, [str(path)], load_profile("fgj-cdmx"))
    got = final.read(manifest, ["incident_id"]).column(0)
    want = local.read(local.require_manifest(), ["incident_id"]).column(0)
    assert sorted(got.to_pylist()) == sorted(want.to_pylist())


def test_a_snapshot_number_is_published_once(s3_server: str, tmp_path: Path) -> None:
    """The protocol itself: a manifest put for a number already taken is refused."""
    url = fresh(s3_server)
    first, second = halves(tmp_path, 500)
    with machine(tmp_path / "a"):
        a = Store(url)
    with machine(tmp_path / "b"):
        b = Store(url)
    ingest(a, [str(first)], load_profile("fgj-cdmx"))
    with b.transaction("race") as txn:
        assert txn.parent is not None and txn.parent.snapshot == 1
        ingest(a, [str(second)], load_profile("fgj-cdmx"))  # A takes snapshot 2
        with pytest.raises(SnapshotConflict, match="snapshot 2 was published by another"):
            txn.commit([], a.require_manifest().batches[next(iter(a.require_manifest().batches))])
    assert Store(url).require_manifest().snapshot == 2


def test_keys_are_shared_and_edits_do_not_cross(s3_server: str, tmp_path: Path) -> None:
    url = fresh(s3_server)
    with machine(tmp_path / "a"):
        a = Store(url)
    with machine(tmp_path / "b"):
        b = Store(url)
    with a.editing(KEYS):
        record, text = KeyRing(a.root).create(Role.analyst, note="a")
    b.refresh()  # what a server does every few seconds
    assert KeyRing(b.root).authenticate(text) == record
    # B revokes it while A, which read the ring before, adds another: A's write is refused.
    with pytest.raises(StoreError, match="changed by another writer"):
        with a.editing(KEYS):
            KeyRing(a.root).create(Role.analyst, note="late")
            with b.editing(KEYS):
                KeyRing(b.root).revoke(record.id)
    b.refresh()
    a.refresh()
    ring = KeyRing(a.root).keys()
    assert [(k.id, k.active) for k in ring] == [(record.id, False)]
    assert KeyRing(b.root).authenticate(text) is None


def test_an_unreachable_object_store_is_a_one_line_error(
    s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens here once the socket is closed
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    with machine(tmp_path / "a"):
        store = Store(fresh(s3_server))
        with pytest.raises(StoreError, match=r"^cannot list s3://cuadra/\w+: ") as err:
            store.manifest()
    assert "\n" not in str(err.value)


def test_the_alerts_book_is_shared_by_every_machine(s3_server: str, tmp_path: Path) -> None:
    """Subscriptions made on two servers, sixteen of them at once, and an evaluation run
    on the ingest host all land in the one book in the bucket; each server reads them once
    its store refreshes, and a removal made on one is seen on the other."""
    from alerts.book import Book, Outcome, Subscription

    url = fresh(s3_server)
    stores = {}
    for name in ("a", "b", "host"):
        with machine(tmp_path / name):
            stores[name] = Store(url)
    books = {name: Book.of(store) for name, store in stores.items()}
    place = {"unit": "colonia", "id": "02-001"}
    books["a"].add(Subscription("first", "key-a", place, webhook_url="http://127.0.0.1:9/hook"))
    books["b"].add(Subscription("second", "key-b", place))
    # b's edit began from the bucket's book, which held a's subscription.
    assert [s.id for s in books["b"].subscriptions()] == ["first", "second"]
    assert [s.id for s in books["a"].subscriptions()] == ["first"]  # not refreshed yet
    stores["a"].refresh(snapshots=False)
    assert [s.id for s in books["a"].subscriptions()] == ["first", "second"]

    def subscribe(name: str) -> None:
        for i in range(8):
            books[name].add(Subscription(f"{name}-{i}", f"key-{name}", place))

    racing = [threading.Thread(target=subscribe, args=(n,)) for n in ("a", "b")]
    for t in racing:
        t.start()
    for t in racing:
        t.join()
    expected = {"first", "second"} | {f"{n}-{i}" for n in "ab" for i in range(8)}
    stores["host"].refresh(snapshots=False)
    assert {s.id for s in books["host"].subscriptions()} == expected

    # Deterministically: a writes while b's edit is under way; b's put is refused, and b
    # makes its change again on the book that holds a's.
    meanwhile: list[str] = []

    @contextmanager
    def interleaved(rel: str) -> Iterator[Path]:
        with stores["b"].editing(rel) as path:
            if not meanwhile:
                meanwhile.append("during")
                books["a"].add(Subscription("during", "key-a", place))
            yield path

    Book(stores["b"].root, editing=interleaved).add(Subscription("after", "key-b", place))
    expected |= {"during", "after"}
    assert {s.id for s in books["b"].subscriptions()} == expected

    assert books["b"].remove("second")
    first = books["host"].get("first")
    assert first is not None
    fired = books["host"].record([Outcome(first, "2024-05", True, {"count": 9})], snapshot=1)
    assert fired == ["first:2024-05"]
    for name in ("a", "b"):
        stores[name].refresh(snapshots=False)
        assert books[name].get("second") is None
        assert [a["id"] for a in books[name].alerts("first")] == ["first:2024-05"]
        assert [(d["alert"], d["status"]) for d in books[name].deliveries()] == [
            ("first:2024-05", "pending")
        ]
    assert len(books["a"].subscriptions()) == len(expected) - 1


def test_vacuum_clears_the_bucket_of_what_no_snapshot_names(s3_server: str, tmp_path: Path) -> None:
    """An object a refused or killed writer left (named by no manifest) is deleted from the
    bucket once older than the grace period, and not before; every snapshot still reads."""
    from datetime import timedelta

    url = fresh(s3_server)
    first, _ = halves(tmp_path, 1_000)
    with machine(tmp_path / "a"):
        store = Store(url)
        ingest(store, [str(first)], load_profile("fgj-cdmx"))
    manifest = store.require_manifest()
    named = manifest.files[0].path
    assert store.remote is not None
    # What a writer killed after uploading, before its manifest put, leaves behind.
    orphan = named.replace(".parquet", "-orphan.parquet")
    assert orphan != named and orphan.startswith("incidents/")
    store.remote.put(orphan, (store.root / named).read_bytes(), etag=None)
    assert store.vacuum(dry_run=True) == []  # younger than a day: a writer may be at work
    assert store.vacuum(dry_run=True, grace=timedelta(0)) == [store.root / orphan]
    assert store.remote.etag(orphan) is not None  # a dry run deletes nothing
    assert store.vacuum(grace=timedelta(0)) == [store.root / orphan]
    assert store.remote.etag(orphan) is None
    assert store.vacuum(grace=timedelta(0)) == []
    with machine(tmp_path / "b"):
        reader = Store(url)
    assert reader.read(reader.require_manifest(), ["incident_id"]).num_rows == manifest.rows
