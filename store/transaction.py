"""One writer's change to a store: files first, then one snapshot that names them, or nothing.

A :class:`Transaction` is what ingest sees of the store while it writes: a writer for
incident files (picklable, so that remote workers write the same files), a staging
folder for parts between tasks, the rejects file, and ``commit``. Leaving it with an
exception removes what it wrote; the writer lock is held throughout, and readers see
nothing until the new manifest is published.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from store.cubes import CUBES, CubeSpec
from store.incidents import INCIDENTS, conform, write_incidents
from store.snapshots import Batch, DataFile, Manifest

if TYPE_CHECKING:
    from store.store import Store

STAGING = "staging"
REJECTS = "rejects"


@dataclass(frozen=True)
class IncidentWriter:
    """Writes records as year files with their cubes, named for one transaction."""

    root: str
    tag: str
    layers: tuple[str, ...]
    specs: tuple[CubeSpec, ...]

    def write(self, records: pa.Table) -> list[DataFile]:
        """Write records (any column order; missing layer columns are null); the new files."""
        return write_incidents(
            Path(self.root), conform(records, list(self.layers)), self.tag, self.specs
        )


class Transaction:
    """Files written under the writer lock, published by :meth:`commit` or removed."""

    def __init__(self, store: Store, parent: Manifest | None, label: str) -> None:
        self.store = store
        self.parent = parent
        # Every file of this transaction carries the tag: an abort finds them all, those
        # written by remote workers too.
        self.tag = f"{label[:12]}-{uuid.uuid4().hex[:6]}"
        self._staging: Path | None = None
        self._rejects: Path | None = None
        self.committed: Manifest | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        """The parent snapshot's boundary layers: the layer columns written records carry."""
        return tuple(self.parent.boundary_layers) if self.parent else ()

    def writer(self) -> IncidentWriter:
        """The writer of this transaction's incident files (with the parent's cube families)."""
        specs = tuple(self.store.cube_specs(self.parent))
        return IncidentWriter(str(self.store.root), self.tag, self.layers, specs)

    def staging(self) -> Path:
        """A folder for intermediate files; removed when the transaction ends."""
        if self._staging is None:
            self._staging = self.store.root / STAGING / self.tag
            self._staging.mkdir(parents=True, exist_ok=True)
        return self._staging

    def write_rejects(self, name: str, tables: list[pa.Table]) -> str:
        """Write the rejected rows as one CSV file; its path."""
        folder = self.store.root / REJECTS
        folder.mkdir(parents=True, exist_ok=True)
        self._rejects = folder / f"{name}.csv"
        pacsv.write_csv(pa.concat_tables(tables, promote_options="default"), self._rejects)
        return str(self._rejects)

    def commit(self, files: list[DataFile], batch: Batch, replace_source: bool = False) -> Manifest:
        """Publish a snapshot of the parent's files and ``files`` as one batch.

        ``replace_source``: the batch replaces the parent's records of its source.
        """
        self.committed = self.store.commit_files(self.parent, files, batch, replace_source)
        return self.committed

    def abort(self) -> None:
        """Remove every file this transaction wrote (nothing was published)."""
        root = self.store.root
        pattern = f"part-{self.tag}-*.parquet"
        for path in [*root.glob(f"{INCIDENTS}/*/{pattern}"), *root.glob(f"{CUBES}/*/*/{pattern}")]:
            path.unlink(missing_ok=True)
        if self._rejects is not None:
            self._rejects.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove the staging folder."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
