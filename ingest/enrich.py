"""Enrichment of validated points: H3 cells, boundary layers and the nearest street.

Runs on the two cores while validation goes on. Streets need no cells, so a worker starts
snapping at once. The caller indexes cells and sorts the points by cell (cell-table
lookups on sorted cells are cache-friendly); then a second worker assigns half of the
boundary layers, and the street worker the other half when it is done with streets.
GEOS, numpy and h3ronpy release the GIL, so the three overlap; the caller goes on with
ids and columns that need no layer while the workers finish.

When a layer version changes, stored records are enriched again by the same functions
(``relayer``): one column, for records already validated.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from geo.cells import points_to_cells
from store import Store
from store.snapshots import Layer, Manifest
from store.store import DEFAULT_STREET_DISTANCE, Enricher

Floats = npt.NDArray[np.float64]
log = logging.getLogger(__name__)


@dataclass
class Enriched:
    """Per point: one id column per boundary layer, and its street id.

    Cells and their order are ready earlier: ``Enrichment.cells`` and ``cell_rank``.
    """

    layers: dict[str, pa.Array]
    street: pa.Array | None


@dataclass
class _Sorted:
    cells: npt.NDArray[np.uint64]
    order: npt.NDArray[np.intp]
    rank: npt.NDArray[np.intp]
    back: pa.Array
    lon: Floats
    lat: Floats


class Enrichment:
    """Enrichment running in the background; ``result()`` waits for it."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        store: Store,
        parent: Manifest | None,
        lon: Floats,
        lat: Floats,
    ) -> None:
        names = parent.boundary_layers if parent else []
        self._names = names
        half = (len(names) + 1) // 2
        self._sorted: Future[_Sorted] = Future()
        self._b = pool.submit(self._streets_then_layers, store, parent, lon, lat, names[half:])
        started = time.perf_counter()
        try:
            cells = _cells_with_help(pool, lon, lat)
            order = np.argsort(cells, kind="stable")
            # The inverse permutation by scatter: O(n), where a second argsort is not.
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            self._sorted.set_result(
                _Sorted(cells, order, rank, pa.array(rank), lon[order], lat[order])
            )
        except BaseException as exc:
            self._sorted.set_exception(exc)
            raise
        log.debug("cells and sort: %.3f s", time.perf_counter() - started)
        self._a = pool.submit(_assign, store, parent, self._sorted.result(), names[:half])

    def _streets_then_layers(
        self, store: Store, parent: Manifest | None, lon: Floats, lat: Floats, names: list[str]
    ) -> tuple[pa.Array | None, dict[str, pa.Array]]:
        street = None
        started = time.perf_counter()
        if parent is not None:
            street = street_ids(store, parent, lon, lat)
            log.debug("streets: %.3f s", time.perf_counter() - started)
        return street, _assign(store, parent, self._sorted.result(), names)

    def cells(self) -> npt.NDArray[np.uint64]:
        """Each point's H3 cell (ready once the constructor returns)."""
        return self._sorted.result().cells

    def cell_rank(self) -> npt.NDArray[np.intp]:
        """Each point's rank in cell order (ready once the constructor returns)."""
        return self._sorted.result().rank

    def result(self) -> Enriched:
        """Wait for both workers."""
        layers_a = self._a.result()
        street, layers_b = self._b.result()
        merged = {**layers_a, **layers_b}
        return Enriched(layers={name: merged[name] for name in self._names}, street=street)


# Points are indexed in this many slices, taken in turn by the caller and a helper task.
_CELL_SLICES = 8


def _cells_with_help(pool: ThreadPoolExecutor, lon: Floats, lat: Floats) -> npt.NDArray[np.uint64]:
    """H3 cells of the points, indexed here and, if a worker is idle, there too.

    h3ronpy releases the GIL, so a worker with nothing else to do (no street layer, or
    dates already parsed) halves the indexing; a helper still queued when the caller has
    taken the last slice is cancelled rather than waited for.
    """
    out = np.empty(lon.size, dtype=np.uint64)
    bounds = np.linspace(0, lon.size, _CELL_SLICES + 1).astype(np.intp)
    slices = iter(range(_CELL_SLICES))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(slices, None)
            if i is None:
                return
            lo, hi = bounds[i], bounds[i + 1]
            out[lo:hi] = points_to_cells(lon[lo:hi], lat[lo:hi])

    helper = pool.submit(work)
    work()
    if not helper.cancel():
        helper.result()  # it is indexing a slice: wait for that one
    return out


def _assign(
    store: Store, parent: Manifest | None, pts: _Sorted, names: list[str]
) -> dict[str, pa.Array]:
    out: dict[str, pa.Array] = {}
    if parent is None:
        return out
    sorted_cells = pts.cells[pts.order]
    for name in names:
        started = time.perf_counter()
        out[name] = boundary_ids(store, parent, name, pts.lon, pts.lat, sorted_cells).take(pts.back)
        log.debug("layer %s: %.3f s", name, time.perf_counter() - started)
    return out


def boundary_ids(
    store: Store,
    manifest: Manifest,
    name: str,
    lon: Floats,
    lat: Floats,
    cells: npt.NDArray[np.uint64],
) -> pa.Array:
    """Each point's polygon id in boundary layer ``name`` (null outside every polygon).

    Points sorted by cell are assigned fastest (the layer's cell table is read in order).
    """
    return store.boundary(manifest, name).assign(lon, lat, cells)


def street_ids(store: Store, manifest: Manifest, lon: Floats, lat: Floats) -> pa.Array | None:
    """Each point's nearest street segment within the snapping distance; None without streets."""
    streets = store.streets(manifest)
    return None if streets is None else streets.snap(lon, lat, DEFAULT_STREET_DISTANCE)


def relayer(store: Store) -> Enricher:
    """The enrich stage for stored records under a new layer version: that layer's column.

    Stored files are sorted by cell, and their cells are stored: no indexing, no sort.
    """

    def enrich(table: pa.Table, manifest: Manifest, layer: Layer) -> pa.Array:
        lon = table.column("lon").to_numpy()
        lat = table.column("lat").to_numpy()
        if layer.kind == "boundary":
            cells = table.column("h3").to_numpy()
            return boundary_ids(store, manifest, layer.name, lon, lat, cells)
        snapped = street_ids(store, manifest, lon, lat)
        assert snapped is not None  # the manifest names the new street layer
        return snapped

    return enrich
