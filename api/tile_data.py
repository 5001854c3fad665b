"""The published cells behind a request's tiles, and the area a tile set covers.

The cells are what /v1/aggregate publishes for the same filters (public rules applied),
kept per snapshot; :mod:`tiles.layer` cuts tiles from them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import shapely

from disclosure.rules import PublicRules
from geo.cells import hex_to_cells
from publication.figures import PublicView, published_counts
from store.aggregate import Unit, unit_attributes
from store.engine import Cursor
from store.filters import Filters
from store.layers import read_layer_columns
from store.query import records_extent
from store.snapshot import Kind, Snapshot
from tiles.layer import CellLayer
from tiles.streets import StreetShapes

# Published cells per (filters, role, resolution) of a snapshot: what tiles are cut from.
CELL_LAYERS = Kind("tile cell layers", items=16)
STREET_SHAPES = Kind("street tile shapes", items=2)
STREET_COUNTS = Kind("street tile counts", items=16)
AREA_BOUNDS = Kind("study area bounds", items=4)


def cell_layer(
    snap: Snapshot,
    res: int,
    flt: Filters,
    pub: PublicView | None,
    rules: PublicRules,
    cursor: Cursor,
) -> CellLayer:
    """The published counts at ``res`` under the filters (a request's view of them)."""
    key = (str(snap.root), snap.id, res, flt, pub, rules if pub is not None else None)

    def build() -> CellLayer:
        shown = published_counts(snap, Unit("h3", res=res), flt, pub, rules, cursor)
        cells = hex_to_cells(shown.table.column("unit_id").to_pylist())
        counts = shown.table.column("count").to_numpy().astype(np.float64)
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
        return CellLayer.of(res, cells, counts, digest)

    return snap.memo(CELL_LAYERS, key, build)


def area_bounds(snap: Snapshot) -> tuple[float, float, float, float] | None:
    """Longitude/latitude bounds of the first boundary layer, else of the records.

    A store of another city without layers (police.uk, H3 only) opens over its own data.
    """
    if not snap.boundary_layers:
        return records_extent(snap)
    path = snap.path(snap.layer(snap.boundary_layers[0]).path)

    def bounds() -> tuple[float, float, float, float]:
        table = read_layer_columns(path, ("geometry",))
        geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
        west, south, east, north = shapely.total_bounds(geoms)
        return float(west), float(south), float(east), float(north)

    return snap.memo(AREA_BOUNDS, (), bounds)


def attribution(setting: str | None, snap: Snapshot, lang: str = "es") -> str:
    """The credit maps and TileJSON show: the setting, else each stored source's own.

    ``Datos: …`` on Spanish pages and in TileJSON, ``Data: …`` on English ones.
    """
    if setting:
        return setting
    label = "Data" if lang == "en" else "Datos"
    credits = snap.memo(CREDITS, (), lambda: _credits(snap))
    return f"{label}: {', '.join(credits)} · Cuadra" if credits else "Cuadra"


CREDITS = Kind("source credits", items=8)


def _credits(snap: Snapshot) -> tuple[str, ...]:
    # Each stored source's profile, read once per snapshot (every page and TileJSON asks).
    from ingest.profiles import load_profile

    credits = []
    for source in sorted({b.source for b in snap.manifest.batches.values()}):
        try:
            credits.append(load_profile(source).attribution or source)
        except Exception:  # noqa: BLE001 - a profile given by path at ingest: its name
            credits.append(source)
    return tuple(credits)


def street_shapes(snap: Snapshot) -> StreetShapes | None:
    """The snapshot's street segments for tiles (None without a street layer)."""
    layer = snap.manifest.street_layer
    if layer is None:
        return None

    def build() -> StreetShapes:
        attrs = unit_attributes(snap, Unit("street", layer=layer), geometry=True)
        geoms = shapely.from_wkb(attrs.column("geometry").to_numpy(zero_copy_only=False))
        ids = attrs.column("unit_id").cast("string").to_pylist()
        return StreetShapes.of(geoms, ids, attrs.column("name").to_pylist())

    return snap.memo(STREET_SHAPES, layer, build)


def street_counts(
    snap: Snapshot,
    flt: Filters,
    pub: PublicView | None,
    rules: PublicRules,
    cursor: Cursor,
) -> tuple[dict[str, int], str]:
    """The counts per street /v1/aggregate publishes for the request, and their digest."""
    key = (str(snap.root), snap.id, "street", flt, pub, rules if pub is not None else None)

    def build() -> tuple[dict[str, int], str]:
        assert snap.manifest.street_layer is not None
        unit = Unit("street", layer=snap.manifest.street_layer)
        shown = published_counts(snap, unit, flt, pub, rules, cursor)
        ids = shown.table.column("unit_id").to_pylist()
        counts = dict(zip(ids, shown.table.column("count").to_pylist(), strict=True))
        return counts, hashlib.sha256(repr(key).encode()).hexdigest()[:24]

    return snap.memo(STREET_COUNTS, key, build)
