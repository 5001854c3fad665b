"""The store: a folder of immutable data files and the manifests that name them."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from cachetools import LRUCache

from store.cubes import CUBES, CubeSpec, build_rollup, cube_specs, rollup_key
from store.errors import EditConflict, SnapshotConflict, StoreError
from store.incidents import INCIDENTS, conform, read_incidents, write_incidents
from store.keys import KEYS
from store.layers import (
    BoundaryData,
    LoadedBoundary,
    LoadedStreets,
    StreetData,
    load_boundary,
    load_streets,
    read_layer_columns,
    write_boundary,
    write_streets,
)
from store.objects import Remote, cache_folder, is_remote
from store.parquet import read_parquet
from store.schema import RESERVED
from store.snapshot import Memo, Snapshot
from store.snapshots import (
    MANIFESTS,
    Batch,
    DataFile,
    Layer,
    Manifest,
    list_snapshots,
    manifest_path,
    publish,
    read_manifest,
)
from store.transaction import Transaction

LAYERS = "layers"
REPORTS = "reports"
DEFAULT_STREET_DISTANCE = 50.0
# Below this many data files per snapshot, queries read the files' own cubes (a rollup
# costs an ingest about a second a family and would save a query little).
ROLLUP_MIN_FILES = 16
# Street grids are stored for this reach; a larger snapping distance rebuilds the grid.
STREET_REACH = DEFAULT_STREET_DISTANCE
# Snapshot objects a store keeps, least recently asked for first out (the current one and
# a few older ones read with as_of).
KEPT_SNAPSHOTS = 8
# Objects of a remote store that change in place: read again when their ETag changes.
# How old an object no manifest names must be before vacuum deletes it from a bucket:
# longer than any ingest takes to upload its files and put its manifest.
VACUUM_GRACE = timedelta(days=1)
# The alerts book (alerts/book.py): a SQLite file, shared through the bucket when remote.
BOOK = "alerts/alerts.sqlite"
MUTABLE = (KEYS, "basemap/basemap.pmtiles", BOOK)

# The enrich stage for stored records: the new layer version's column (ingest supplies it).
Enricher = Callable[[pa.Table, Manifest, Layer], pa.Array]


class Store:
    """A Cuadra store rooted at a folder, or on object storage (``s3://bucket/prefix``).

    Readers call ``manifest()`` and read exactly the files it names; writers hold an
    advisory lock, write new files, and publish a new manifest atomically. A remote
    store's files are read from this machine's cache folder (``root``), which holds a
    snapshot's manifest only once every file it names is there (store/objects.py);
    ``refresh`` brings the remote's newest snapshot.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.remote: Remote | None = None
        if is_remote(root):
            self.remote = Remote(str(root))
            self.root = cache_folder(self.remote.url)
            self.location = self.remote.url
        else:
            self.root = Path(root).resolve()
            self.location = str(self.root)
        self.memo = Memo()  # what readers derive from snapshots, bounded per kind
        self._snapshots: LRUCache[tuple[int, str], Snapshot] = LRUCache(maxsize=KEPT_SNAPSHOTS)
        self._snapshots_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._etags: dict[str, str] = {}  # mutable objects' ETags as last brought here
        # Called with each newly current snapshot when first read (a server prepares it).
        self.on_new_snapshot: Callable[[Snapshot], None] | None = None
        # A remote store is brought here when first read, not when opened: `keys list`
        # needs no snapshot's files.
        self._refreshed = False

    # -- a remote store's objects ------------------------------------------------------

    def refresh(self, snapshots: bool = True) -> int | None:
        """Bring a remote store's newest snapshot and changed mutable objects here.

        The snapshot's files first, then its manifest: a reader of the cache folder sees
        the new snapshot whole or not at all. Returns the newest snapshot's number (None
        for a local or empty store, or with ``snapshots=False``: the key ring and basemap
        only). A local store needs no refresh.
        """
        if self.remote is None:
            return None
        with self._refresh_lock:
            published: list[int] = []
            if snapshots:
                published = self.snapshots()
                if published and not manifest_path(self.root, published[-1]).exists():
                    self._bring(published[-1])
                self._refreshed = True
            for rel in MUTABLE:
                etag = self.remote.etag(rel)
                if etag is not None and etag != self._etags.get(rel):
                    with self._object_lock(rel):  # not over a copy being edited
                        self.remote.download(rel, self.root / rel)
                    self._etags[rel] = etag
            return published[-1] if published else None

    def _bring(self, seq: int) -> bool:
        """Download a remote snapshot's files, then its manifest; False if there is none."""
        assert self.remote is not None
        got = self.remote.get(f"{MANIFESTS}/{seq:08d}.json")
        if got is None:
            return False
        manifest = Manifest.from_json(got[0].decode("utf-8"))
        remote = self.remote
        missing = [rel for rel in sorted(_named(manifest)) if not (self.root / rel).exists()]

        def bring(rel: str) -> None:
            if not remote.download(rel, self.root / rel):
                raise StoreError(f"{self.location}: snapshot {seq} names {rel}, which is gone")

        _in_parallel(bring, missing)
        _publish_here(self.root, manifest)
        return True

    def _publish(self, manifest: Manifest, parent: Manifest | None) -> None:
        """Publish a written snapshot: upload its new files, then its manifest, if remote."""
        if self.remote is not None:
            known = _named(parent) if parent is not None else set()
            remote = self.remote
            _in_parallel(
                lambda rel: remote.put(rel, self.root / rel), sorted(_named(manifest) - known)
            )
            for batch in manifest.batches.values():
                if parent is None or batch.batch not in parent.batches:
                    self._upload_loose(batch.rejects)
            key = f"{MANIFESTS}/{manifest.snapshot:08d}.json"
            if not self.remote.put(key, manifest.to_json().encode("utf-8"), etag=None):
                raise SnapshotConflict(
                    f"snapshot {manifest.snapshot} was published by another writer"
                )
            _publish_here(self.root, manifest)
            return
        publish(self.root, manifest)

    def _upload_loose(self, path: str | None) -> None:
        if path is None or self.remote is None:
            return
        local = Path(path)
        if local.is_file() and local.resolve().is_relative_to(self.root):
            self.remote.put(local.resolve().relative_to(self.root).as_posix(), local)

    def push(self, rel: str) -> None:
        """Upload a mutable object written here (a remote store's basemap); no-op if local."""
        if self.remote is not None:
            self.remote.put(rel, self.root / rel)
            self._etags[rel] = self.remote.etag(rel) or ""

    @contextmanager
    def editing(self, rel: str) -> Iterator[Path]:
        """Change a mutable object under the writer lock; yields its local path.

        On a remote store the object is read first and written back only if no other
        writer changed it meanwhile (``If-Match``); otherwise EditConflict, and nothing
        is lost: the change can be made again. The background refresh waits meanwhile: it
        must not bring the bucket's copy over the one being changed.
        """
        if self.remote is None:
            with self.writing():
                yield self.root / rel
            return
        with self._refresh_lock, self._object_lock(rel):
            yield from self._edit_remote(rel)

    @contextmanager
    def _object_lock(self, rel: str) -> Iterator[None]:
        """One process at a time changes a mutable object's copy here (workers share it)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _edit_remote(self, rel: str) -> Iterator[Path]:
        assert self.remote is not None
        before = self.remote.get(rel)
        path = self.root / rel
        if before is not None:
            # Replaced, not rewritten: a reader of the old copy (a SQLite book) keeps its file.
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = path.with_name(f".edit-{path.name}")
            fresh.write_bytes(before[0])
            os.replace(fresh, path)
        try:
            yield path
            if not self.remote.put(rel, path.read_bytes(), etag=before[1] if before else None):
                raise EditConflict(f"{rel} was changed by another writer meanwhile: run again")
        except BaseException:
            # The copy here is no longer the remote's: bring the remote's back, so that
            # readers here keep a whole one (a book's subscriptions), or leave none.
            self._etags.pop(rel, None)
            try:
                restored = self.remote.download(rel, path)
            except StoreError:
                restored = False
            if not restored:
                path.unlink(missing_ok=True)
            raise
        self._etags[rel] = self.remote.etag(rel) or ""

    def put_object(self, rel: str, data: bytes) -> bool:
        """Store an immutable object under the store if none is there; False if one was."""
        path = self.root / rel
        if self.remote is not None and not self.remote.put(rel, data, etag=None):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return self.remote is not None
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    def has_object(self, rel: str) -> bool:
        """Whether an immutable object is under the store (here, or in a remote's bucket)."""
        if (self.root / rel).exists():
            return True
        return self.remote is not None and self.remote.etag(rel) is not None

    def get_object(self, rel: str) -> bytes | None:
        """An immutable object under the store (brought here once if remote); None if absent."""
        path = self.root / rel
        if not path.exists() and self.remote is not None:
            self.remote.download(rel, path)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    # -- reading ---------------------------------------------------------------------

    def snapshot(self, as_of: int | None = None) -> Snapshot:
        """The current snapshot, or snapshot ``as_of``: one object per published snapshot.

        Raises :class:`StoreError` on an empty store or an unknown ``as_of``.
        """
        manifest = self.require_manifest(as_of)
        # created_at tells a snapshot from one of the same number in a store rebuilt in place.
        key = (manifest.snapshot, manifest.created_at)
        with self._snapshots_lock:
            snap = self._snapshots.get(key)
            fresh = snap is None
            if snap is None:
                snap = self._snapshots[key] = Snapshot(self, manifest)
        if fresh and as_of is None and self.on_new_snapshot is not None:
            self.on_new_snapshot(snap)
        return snap

    def snapshots(self) -> list[int]:
        """Published snapshot numbers, ascending."""
        if self.remote is not None:
            keys = self.remote.listing(MANIFESTS)
            return sorted(int(Path(k).stem) for k in keys if Path(k).stem.isdigit())
        return list_snapshots(self.root)

    def manifest(self, as_of: int | None = None) -> Manifest | None:
        """The current snapshot's manifest, or snapshot ``as_of``; None if empty."""
        if self.remote is not None and not self._refreshed:
            self.refresh()
        if as_of is not None and self.remote is not None:
            if not manifest_path(self.root, as_of).exists():
                with self._refresh_lock:
                    self._bring(as_of)
        return read_manifest(self.root, as_of)

    def require_manifest(self, as_of: int | None = None) -> Manifest:
        """Like ``manifest`` but raise a clear error on an empty store."""
        manifest = self.manifest(as_of)
        if manifest is None:
            raise StoreError(f"the store at {self.location} is empty: ingest a file first")
        return manifest

    def data_files(self, manifest: Manifest) -> list[Path]:
        """Absolute paths of a snapshot's incident files."""
        return [self.root / f.path for f in manifest.files]

    def files_between(
        self, manifest: Manifest, start: date | None, end: date | None
    ) -> list[DataFile]:
        """The snapshot's files that may hold local dates in ``[start, end)``.

        Each file's date range is in the manifest, so a query for one year opens that
        year's files only, however many years the store holds.
        """
        lo = start.isoformat() if start else None
        hi = end.isoformat() if end else None
        return [
            f
            for f in manifest.files
            if (lo is None or f.max_date >= lo) and (hi is None or f.min_date < hi)
        ]

    def read(self, manifest: Manifest, columns: list[str] | None = None) -> pa.Table:
        """Read a snapshot's incidents (for tests and small stores)."""
        return read_incidents(self.root, manifest.files, columns)

    def existing_ids(self, manifest: Manifest | None, source: str) -> pa.Array:
        """incident_id values already stored for one source."""
        if manifest is None or not manifest.files:
            return pa.array([], pa.string())
        parts = []
        for f in manifest.files:
            t = read_parquet(self.root / f.path, columns=["incident_id", "source"])
            mine = pc.equal(t.column("source").cast(pa.string()), source)
            parts.append(t.column("incident_id").filter(mine).combine_chunks())
        return pa.concat_arrays(parts) if parts else pa.array([], pa.string())

    def boundary(self, manifest: Manifest, name: str) -> LoadedBoundary:
        """Load a boundary layer of a snapshot for point assignment."""
        layer = self._layer(manifest, name, "boundary")
        assert layer.cells_path is not None
        path = self.root / layer.path
        return _boundary(str(path), str(self.root / layer.cells_path), path.stat().st_mtime_ns)

    def streets(self, manifest: Manifest) -> LoadedStreets | None:
        """Load the snapshot's street layer, or None when it has none."""
        if manifest.street_layer is None:
            return None
        layer = self._layer(manifest, manifest.street_layer, "street")
        assert layer.metric_crs is not None and layer.cells_path is not None
        path = self.root / layer.path
        cells = str(self.root / layer.cells_path)
        return _streets(str(path), cells, layer.metric_crs, path.stat().st_mtime_ns)

    def layer_ids(self, manifest: Manifest, name: str) -> pa.Array:
        """The feature ids of a boundary or street layer version, in stored order."""
        layer = manifest.layers[name]
        column = "street_id" if layer.kind == "street" else "id"
        return read_layer_columns(self.root / layer.path, (column,)).column(0).combine_chunks()

    def cube_specs(self, manifest: Manifest | None) -> list[CubeSpec]:
        """The cubes every incident file of this snapshot gets."""
        if manifest is None:
            return cube_specs({}, None)
        layers = {name: self.layer_ids(manifest, name) for name in manifest.boundary_layers}
        streets = manifest.street_layer
        return cube_specs(layers, self.layer_ids(manifest, streets) if streets else None)

    def _layer(self, manifest: Manifest, name: str, kind: str) -> Layer:
        layer = manifest.layers.get(name)
        if layer is None or layer.kind != kind:
            have = ", ".join(sorted(manifest.layers)) or "none"
            raise StoreError(
                f"no {kind} layer {name!r} in snapshot {manifest.snapshot} (have: {have})"
            )
        return layer

    # -- writing ---------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[Manifest | None]:
        """Hold the writer lock; yield the current manifest (None for an empty store)."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / MANIFESTS).mkdir(exist_ok=True)
        with open(self.root / ".writer.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.refresh()  # another machine's writer may have published since
                yield self.manifest()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def transaction(self, label: str) -> Iterator[Transaction]:
        """Hold the writer lock for one change; what it wrote is removed unless committed.

        ``label`` names its files (an ingest's batch id), for whoever lists the store.
        """
        with self.writing() as parent:
            txn = Transaction(self, parent, label)
            try:
                yield txn
            except BaseException:
                if txn.committed is None:
                    txn.abort()
                raise
            finally:
                txn.close()

    def commit_files(
        self,
        parent: Manifest | None,
        files: list[DataFile],
        batch: Batch,
        replace_source: bool = False,
    ) -> Manifest:
        """Publish a snapshot that adds already written incident files as one batch.

        With ``replace_source`` the batch is the source's whole release: the parent's files
        and batches of that source are left out of the new snapshot (they stay in the
        parent's), and the batch records which ones it replaced.

        Its year rollups are the parent's plus the new files' cubes (or, where the parent
        has none or files were left out, the sum of every file's cubes); a store of a few
        files has none.
        """
        files = [replace(f, source=batch.source) for f in files]
        kept = list(parent.files) if parent else []
        batches = dict(parent.batches) if parent else {}
        if replace_source and parent is not None:
            kept = [f for f in kept if batch.source not in self.file_sources(f)]
            replaced = sorted(b for b, old in batches.items() if old.source == batch.source)
            batches = {b: old for b, old in batches.items() if b not in replaced}
            batch = replace(batch, replaced=replaced)
        every = [*kept, *files]
        snapshot = (parent.snapshot + 1) if parent else 1
        dropped = parent is not None and len(kept) < len(parent.files)
        rollups: dict[str, str] = {}
        families = set.intersection(*(set(f.cubes) for f in every)) if every else set()
        if len(every) <= ROLLUP_MIN_FILES and not (parent and parent.rollups):
            families = set()  # a few files' cubes are as quick to read as one rollup
        for family in sorted(families):
            key = rollup_key(family, yearly=True)
            if parent is not None and key in parent.rollups and not dropped:
                inputs = [parent.rollups[key], *(f.cubes[family] for f in files)]
            else:
                inputs = [f.cubes[family] for f in every]
            name = f"{snapshot:08d}-{family}-year-{uuid.uuid4().hex[:8]}.parquet"
            rel = Path(CUBES) / "rollup" / name
            rollups[key] = build_rollup(self.root, inputs, family, rel, yearly=True)
        manifest = Manifest(
            snapshot=snapshot,
            parent=parent.snapshot if parent else None,
            created_at=_now(),
            operation=f"replace {batch.source}" if batch.replaced else "ingest",
            files=every,
            layers=dict(parent.layers) if parent else {},
            batches={**batches, batch.batch: batch},
            street_layer=parent.street_layer if parent else None,
            rollups=rollups,
        )
        self._publish(manifest, parent)
        return manifest

    def file_sources(self, data_file: DataFile) -> set[str]:
        """The sources of a data file's records (read from the file for old manifests)."""
        if data_file.source is not None:
            return {data_file.source}
        column = read_parquet(self.root / data_file.path, columns=["source"]).column("source")
        return set(pc.unique(column.cast(pa.string())).to_pylist())

    def add_boundary(
        self,
        parent: Manifest | None,
        name: str,
        data: BoundaryData,
        *,
        id_field: str | None,
        name_field: str | None,
        population_field: str | None,
        source_file: str,
        notes: dict[str, int],
        enrich: Enricher,
    ) -> Manifest:
        """Store a boundary layer version and re-assign stored incidents to it (``enrich``)."""
        _check_layer_name(name, parent)
        version = _next_version(parent, name)
        folder = self.root / LAYERS / name / f"v{version}"
        if folder.exists():
            shutil.rmtree(folder)  # left by a writer that died before publishing
        poly_path, cells_path = write_boundary(folder, data)
        layer = Layer(
            name=name,
            kind="boundary",
            version=version,
            path=self._rel(poly_path),
            cells_path=self._rel(cells_path),
            features=len(data.ids),
            id_field=id_field,
            name_field=name_field,
            population_field=population_field,
            source_file=source_file,
            notes=notes,
        )
        return self._relayer(parent, layer, enrich)

    def add_streets(
        self,
        parent: Manifest | None,
        name: str,
        data: StreetData,
        *,
        name_field: str | None,
        source_file: str,
        notes: dict[str, int],
        enrich: Enricher,
    ) -> Manifest:
        """Store a street network version and re-snap stored incidents to it (``enrich``)."""
        _check_layer_name(name, parent, street=True)
        version = _next_version(parent, name)
        folder = self.root / LAYERS / name / f"v{version}"
        if folder.exists():
            shutil.rmtree(folder)
        path, grid = write_streets(folder, data, STREET_REACH)
        layer = Layer(
            name=name,
            kind="street",
            version=version,
            path=self._rel(path),
            cells_path=self._rel(grid),
            features=len(data.lines),
            name_field=name_field,
            metric_crs=data.metric_crs,
            source_file=source_file,
            notes=notes,
        )
        return self._relayer(parent, layer, enrich)

    def _relayer(self, parent: Manifest | None, layer: Layer, enrich: Enricher) -> Manifest:
        """Publish a snapshot with a new layer version.

        Incident files are rewritten from the store itself (never from the source files)
        so that their layer columns follow the new version; ``enrich`` gives the column.
        """
        layers = dict(parent.layers) if parent else {}
        layers[layer.name] = layer
        street_layer = parent.street_layer if parent else None
        if layer.kind == "street":
            street_layer = layer.name
        draft = Manifest(
            snapshot=(parent.snapshot + 1) if parent else 1,
            parent=parent.snapshot if parent else None,
            created_at=_now(),
            operation=f"{layer.kind} {layer.name} v{layer.version}",
            files=[],
            layers=layers,
            batches=dict(parent.batches) if parent else {},
            street_layer=street_layer,
        )
        column = layer.name if layer.kind == "boundary" else "street_id"
        files: list[DataFile] = []
        specs = self.cube_specs(draft) if parent and parent.files else []
        for f in parent.files if parent else []:
            table = read_parquet(self.root / f.path)
            table = _set_column(table, column, enrich(table, draft, layer))
            conformed = conform(table, draft.boundary_layers)
            written = write_incidents(self.root, conformed, "relayer", specs)
            files.extend(replace(w, source=f.source) for w in written)
        manifest = replace(draft, files=files)
        self._publish(manifest, parent)
        return manifest

    def _rel(self, path: str) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def vacuum(self, dry_run: bool = False, grace: timedelta = VACUUM_GRACE) -> list[Path]:
        """Delete files no published snapshot names (left by killed writers).

        A local store is cleaned under the writer lock. On a remote store, the bucket's
        objects that no manifest names and that were written more than ``grace`` ago (a
        writer elsewhere uploads its files before it puts its manifest: give it that long),
        then the cache folder's. Returns what was (or, with ``dry_run``, would be) deleted,
        as paths under the store's root.
        """
        if self.remote is None:
            with self.writing():  # no writer here meanwhile: none can be half-way
                return self._vacuum_here(dry_run, None)
        # The cache folder too, with the same grace: a server may be bringing a snapshot's
        # files here, whose manifest comes last.
        cutoff = (datetime.now(UTC) - grace).timestamp()
        return self._vacuum_bucket(dry_run, grace) + self._vacuum_here(dry_run, cutoff)

    def _vacuum_bucket(self, dry_run: bool, grace: timedelta) -> list[Path]:
        assert self.remote is not None
        keep: set[str] = set()
        for seq in self.snapshots():
            got = self.remote.get(f"{MANIFESTS}/{seq:08d}.json")
            if got is not None:
                keep |= _named(Manifest.from_json(got[0].decode("utf-8")))
        cutoff = datetime.now(UTC) - grace
        garbage = sorted(
            key
            for folder in (INCIDENTS, LAYERS, CUBES)
            for key, written in self.remote.modified(folder).items()
            if key not in keep and written < cutoff
        )
        if not dry_run:
            self.remote.delete(garbage)
        return [self.root / key for key in garbage]

    def _vacuum_here(self, dry_run: bool, cutoff: float | None) -> list[Path]:
        keep: set[Path] = set()
        for seq in list_snapshots(self.root):
            m = read_manifest(self.root, seq)
            assert m is not None
            keep.update(self.root / rel for rel in _named(m))
        garbage = [
            p
            for folder in (self.root / INCIDENTS, self.root / LAYERS, self.root / CUBES)
            if folder.exists()
            for p in folder.rglob("*")
            if p.is_file()
            if p not in keep
            if cutoff is None or p.stat().st_mtime < cutoff
        ]
        garbage += list((self.root / MANIFESTS).glob(".tmp-*"))
        if not dry_run:
            for p in garbage:
                p.unlink(missing_ok=True)
        return garbage


def _named(manifest: Manifest) -> set[str]:
    """Every file a manifest names, relative to the store root."""
    named = {f.path for f in manifest.files}
    named.update(c for f in manifest.files for c in f.cubes.values())
    named.update(manifest.rollups.values())
    for layer in manifest.layers.values():
        named.add(layer.path)
        if layer.cells_path:
            named.add(layer.cells_path)
    return named


# Objects moved at once between the bucket and the cache folder (the client releases the
# interpreter while it waits on the network).
TRANSFERS = 8


def _in_parallel(move: Callable[[str], object], keys: list[str]) -> None:
    """Upload or download every key, several at a time; the first error is raised."""
    if len(keys) <= 1:
        for key in keys:
            move(key)
        return
    with ThreadPoolExecutor(max_workers=TRANSFERS) as pool:
        for done in [pool.submit(move, key) for key in keys]:
            done.result()


def _publish_here(root: Path, manifest: Manifest) -> None:
    """Publish a manifest the remote already holds in the cache folder (once)."""
    try:
        publish(root, manifest)
    except SnapshotConflict:
        pass  # brought by another process sharing the folder


def _set_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def _check_layer_name(name: str, parent: Manifest | None, street: bool = False) -> None:
    if not name.isidentifier() or name.lower() != name:
        raise StoreError(
            f"layer name {name!r} must be lower-case letters, digits and underscores "
            "(it becomes a column name)"
        )
    if name in RESERVED or (name == "street" and not street):
        raise StoreError(f"layer name {name!r} is reserved by the record schema")
    if parent and name in parent.layers:
        kind = parent.layers[name].kind
        if (kind == "street") != street:
            raise StoreError(f"{name!r} is already a {kind} layer")


def _next_version(parent: Manifest | None, name: str) -> int:
    if parent and name in parent.layers:
        return parent.layers[name].version + 1
    return 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# Layer versions are immutable: an ingest in parts (or a Dask worker) loads each once. The
# file's mtime in the key guards against a store deleted and rebuilt at the same path.
@lru_cache(maxsize=8)
def _boundary(path: str, cells_path: str, mtime_ns: int) -> LoadedBoundary:
    return load_boundary(Path(path), Path(cells_path))


@lru_cache(maxsize=2)
def _streets(path: str, cells_path: str, metric_crs: str, mtime_ns: int) -> LoadedStreets:
    return load_streets(Path(path), Path(cells_path), metric_crs)
