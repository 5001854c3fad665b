"""One published snapshot as readers see it, and the bounded caches derived from it.

A :class:`Snapshot` is the store, one manifest, and a namespace in the store's
:class:`Memo`: everything a reader derives from the snapshot's immutable files (year
cubes, summaries, study areas, tile layers, published shapes) is kept there under a
:class:`Kind` that bounds it, and is forgotten with the snapshot. Routes receive one
``Snapshot``; the store hands out one object per published snapshot, so two requests of
the same snapshot share what either derived.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cachetools import LRUCache

from store.snapshots import DataFile, Layer, Manifest

if TYPE_CHECKING:
    from store.store import Store

T = TypeVar("T")


@dataclass(frozen=True)
class Kind:
    """A kind of derived value and its bound: at most ``items`` values, or ``bytes``.

    A kind bounded by bytes measures each value by its ``nbytes`` (arrays, Arrow tables,
    year cubes), ``len`` (encoded bodies), or the sum over a tuple's parts.
    """

    name: str
    items: int = 16
    bytes: int | None = None


def size_of(value: Any) -> int:
    """About how many bytes a cached value holds (at least 1 KiB, the entry's overhead)."""
    if isinstance(value, bytes | bytearray):
        n = len(value)
    elif isinstance(value, tuple):
        n = sum(size_of(v) for v in value)
    else:
        n = int(getattr(value, "nbytes", 0))
    return max(n, 1024)


class Memo:
    """Thread-safe LRU caches, one per :class:`Kind`, shared by a store's snapshots.

    Values are built outside the lock: two requests that miss together both build, and
    the second result replaces the first (the values are equal; a build lock would make
    every request wait behind the slowest build of any key).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._caches: dict[Kind, LRUCache[Hashable, Any]] = {}

    def get(self, kind: Kind, key: Hashable, make: Callable[[], T]) -> T:
        """The value of ``key``, built by ``make`` on a miss."""
        with self._lock:
            cache = self._caches.get(kind)
            if cache is None:
                cache = self._caches[kind] = (
                    LRUCache(maxsize=kind.items)
                    if kind.bytes is None
                    else LRUCache(maxsize=kind.bytes, getsizeof=size_of)
                )
            hit = cache.get(key, _MISSING)
        if hit is not _MISSING:
            return hit  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            if kind.bytes is None or size_of(value) <= kind.bytes:
                cache[key] = value
        return value

    def clear(self) -> None:
        """Forget every value (tests; a store rebuilt in place)."""
        with self._lock:
            self._caches.clear()


_MISSING = object()
_tokens = itertools.count()


class Snapshot:
    """A store as one manifest names it: its files, layers and the values derived from them.

    Immutable: a new ingest publishes a new snapshot and leaves this one as it was.
    """

    __slots__ = ("_token", "manifest", "store")

    def __init__(self, store: Store, manifest: Manifest) -> None:
        self.store = store
        self.manifest = manifest
        # Derived values are keyed by this object, not by the snapshot's number: a
        # manifest changed in memory (tests read a snapshot without its cubes) shares nothing.
        self._token = next(_tokens)

    @property
    def id(self) -> int:
        """The snapshot's number."""
        return self.manifest.snapshot

    @property
    def root(self) -> Path:
        """The store's folder."""
        return self.store.root

    @property
    def boundary_layers(self) -> list[str]:
        """Names of the boundary layers, in the order their columns appear."""
        return self.manifest.boundary_layers

    def layer(self, name: str) -> Layer:
        """A layer version of this snapshot by name."""
        return self.manifest.layers[name]

    def path(self, rel: str) -> Path:
        """The absolute path of a file the manifest names."""
        return self.store.root / rel

    def files_between(self, start: date | None, end: date | None) -> list[DataFile]:
        """The incident files that may hold local dates in ``[start, end)``."""
        return self.store.files_between(self.manifest, start, end)

    def memo(self, kind: Kind, key: Hashable, make: Callable[[], T]) -> T:
        """A value derived from this snapshot, built once by ``make`` while it is kept."""
        return self.store.memo.get(kind, (self._token, key), make)

    def __repr__(self) -> str:
        return f"Snapshot({str(self.store.root)!r}, {self.id})"
