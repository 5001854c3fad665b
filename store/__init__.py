"""The dataset on disk: schema, partitions, snapshots, layers and the query engine."""

from store.errors import EditConflict, SnapshotConflict, StoreError
from store.store import Store

__all__ = ["EditConflict", "SnapshotConflict", "Store", "StoreError"]
