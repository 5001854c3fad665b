"""The store: a folder of immutable data files and the manifests that name them."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from cachetools import LRUCache

from store.cubes import CUBES, CubeSpec, build_rollup, cube_specs, rollup_key
from store.errors import StoreError
from store.incidents import INCIDENTS, conform, read_incidents, write_incidents
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

# The enrich stage for stored records: the new layer version's column (ingest supplies it).
Enricher = Callable[[pa.Table, Manifest, Layer], pa.Array]


class Store:
    """A Cuadra store rooted at a folder.

    Readers call ``manifest()`` and read exactly the files it names; writers hold an
    advisory lock, write new files, and publish a new manifest atomically.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.memo = Memo()  # what readers derive from snapshots, bounded per kind
        self._snapshots: LRUCache[tuple[int, str], Snapshot] = LRUCache(maxsize=KEPT_SNAPSHOTS)
        self._snapshots_lock = threading.Lock()

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
            if snap is None:
                snap = self._snapshots[key] = Snapshot(self, manifest)
        return snap

    def snapshots(self) -> list[int]:
        """Published snapshot numbers, ascending."""
        return list_snapshots(self.root)

    def manifest(self, as_of: int | None = None) -> Manifest | None:
        """The current snapshot's manifest, or snapshot ``as_of``; None if empty."""
        return read_manifest(self.root, as_of)

    def require_manifest(self, as_of: int | None = None) -> Manifest:
        """Like ``manifest`` but raise a clear error on an empty store."""
        manifest = self.manifest(as_of)
        if manifest is None:
            raise StoreError(f"the store at {self.root} is empty: ingest a file first")
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
        publish(self.root, manifest)
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
        publish(self.root, manifest)
        return manifest

    def _rel(self, path: str) -> str:
        return Path(path).resolve().relative_to(self.root).as_posix()

    def vacuum(self, dry_run: bool = False) -> list[Path]:
        """Delete files no published snapshot names (left by killed writers)."""
        keep: set[Path] = set()
        for seq in self.snapshots():
            m = read_manifest(self.root, seq)
            assert m is not None
            keep.update(self.root / f.path for f in m.files)
            keep.update(self.root / c for f in m.files for c in f.cubes.values())
            keep.update(self.root / r for r in m.rollups.values())
            for layer in m.layers.values():
                keep.add(self.root / layer.path)
                if layer.cells_path:
                    keep.add(self.root / layer.cells_path)
        garbage = [
            p
            for folder in (self.root / INCIDENTS, self.root / LAYERS, self.root / CUBES)
            if folder.exists()
            for p in folder.rglob("*")
            if p.is_file()
            if p not in keep
        ]
        garbage += list((self.root / MANIFESTS).glob(".tmp-*"))
        if not dry_run:
            for p in garbage:
                p.unlink(missing_ok=True)
        return garbage


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
