"""Immutable snapshots published atomically.

Protocol (SPEC §3): a writer first writes and fsyncs every new data file, then writes the
manifest to a temporary file, fsyncs it, and publishes it with ``os.link`` to
``manifests/<seq>.json``. ``link`` fails if the name exists, so publishing is an atomic
put-if-absent: two writers cannot both publish snapshot ``seq``, and a reader never sees a
half-written manifest. The current snapshot is the highest published sequence number.
A process killed at any instant leaves, at worst, unreferenced data files and a temporary
manifest behind; ``Store.vacuum`` removes them.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from store.errors import SnapshotConflict, StoreError

FORMAT = "cuadra-snapshot/1"
MANIFESTS = "manifests"
_NAME = re.compile(r"^(\d{8})\.json$")


@dataclass(frozen=True)
class DataFile:
    """One incident data file of a snapshot, relative to the store root."""

    path: str
    rows: int
    bytes: int
    year: int
    min_date: str
    max_date: str
    # Pre-aggregated cube files of this data file, by unit family (store/cubes.py).
    cubes: dict[str, str] = field(default_factory=dict)
    # The source of its records (one per file: an ingest reads one profile); None in
    # manifests written before sources were recorded.
    source: str | None = None


@dataclass(frozen=True)
class Layer:
    """A stored boundary or street layer version."""

    name: str
    kind: str  # "boundary" or "street"
    version: int
    path: str
    features: int
    cells_path: str | None = None
    id_field: str | None = None
    name_field: str | None = None
    population_field: str | None = None
    metric_crs: str | None = None
    source_file: str | None = None
    notes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    """An ingested input: its content hash and what came of it."""

    batch: str
    source: str
    inputs: list[str]
    input_rows: int
    accepted: int
    rejected: int
    duplicates: int
    report: str
    rejects: str | None
    # With ``cuadra ingest --replace``: the source's earlier batches this one replaced.
    replaced: list[str] = field(default_factory=list)
    # What the source's dates are known to: "day", or "month" (police.uk).
    date_precision: str = "day"


@dataclass(frozen=True)
class Manifest:
    """A snapshot: the complete list of files and layers that make up the store."""

    snapshot: int
    parent: int | None
    created_at: str
    operation: str
    files: list[DataFile]
    layers: dict[str, Layer]
    batches: dict[str, Batch]
    street_layer: str | None = None
    format: str = FORMAT
    # One cube per unit family summing every data file's cube (store/cubes.py): open and
    # long date ranges read one file, however many batches and parts the store holds.
    rollups: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of incident records in the snapshot."""
        return sum(f.rows for f in self.files)

    @property
    def boundary_layers(self) -> list[str]:
        """Names of the boundary layers, in the order their columns appear."""
        return [n for n, layer in self.layers.items() if layer.kind == "boundary"]

    @property
    def month_sources(self) -> set[str]:
        """Sources whose profile declares (or whose date formats give) months, not days."""
        return {b.source for b in self.batches.values() if b.date_precision == "month"}

    def to_json(self) -> str:
        """Serialise as the manifest file's text."""
        return json.dumps(asdict(self), indent=1, sort_keys=False, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest file's text."""
        raw: dict[str, Any] = json.loads(text)
        if raw.get("format") != FORMAT:
            raise StoreError(f"unknown snapshot format {raw.get('format')!r}")
        return cls(
            snapshot=int(raw["snapshot"]),
            parent=raw["parent"],
            created_at=raw["created_at"],
            operation=raw["operation"],
            files=[DataFile(**f) for f in raw["files"]],
            layers={k: Layer(**v) for k, v in raw["layers"].items()},
            batches={k: Batch(**v) for k, v in raw["batches"].items()},
            street_layer=raw.get("street_layer"),
            rollups=dict(raw.get("rollups", {})),
        )


def manifest_path(root: Path, seq: int) -> Path:
    """Where snapshot ``seq``'s manifest lives."""
    return root / MANIFESTS / f"{seq:08d}.json"


def list_snapshots(root: Path) -> list[int]:
    """Published snapshot numbers, ascending."""
    folder = root / MANIFESTS
    if not folder.is_dir():
        return []
    seqs = [int(m.group(1)) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(seqs)


def read_manifest(root: Path, seq: int | None = None) -> Manifest | None:
    """Read snapshot ``seq`` (the current one by default); None for an empty store."""
    if seq is None:
        seqs = list_snapshots(root)
        if not seqs:
            return None
        seq = seqs[-1]
    path = manifest_path(root, seq)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise StoreError(f"no snapshot {seq} in {root} (have: {list_snapshots(root)})") from None
    return _parse_manifest(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _parse_manifest(path: str, mtime_ns: int, size: int) -> Manifest:
    # Published manifests never change; the stat in the key guards against a store
    # deleted and rebuilt at the same path.
    return Manifest.from_json(Path(path).read_text(encoding="utf-8"))


def publish(root: Path, manifest: Manifest) -> None:
    """Publish a manifest atomically; raise SnapshotConflict if its number is taken."""
    folder = root / MANIFESTS
    folder.mkdir(parents=True, exist_ok=True)
    target = manifest_path(root, manifest.snapshot)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(manifest.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError as exc:
            raise SnapshotConflict(
                f"snapshot {manifest.snapshot} was published by another writer"
            ) from exc
        fsync_dir(folder)
    finally:
        Path(tmp).unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries durable (new or renamed files in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a written file's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
