"""The dataset on disk: schema, partitions, snapshots, layers and the query engine."""

from store.errors import SnapshotConflict, StoreError
from store.store import Store

__all__ = ["SnapshotConflict", "Store", "StoreError"]
