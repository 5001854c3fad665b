"""The map's basemap: the store's own archive (built here from its layers), or the setting's.

``cuadra basemap build`` and ``cuadra demo`` write ``<store>/basemap/basemap.pmtiles`` from
the current snapshot's boundary and street layers (tiles/basemap.py cuts the tiles);
``/v1/tiles/basemap/{z}/{x}/{y}.mvt`` serves the tiles of that archive, or of the PMTiles file
CUADRA_BASEMAP names (a Protomaps extract of Mexico, say). An XYZ URL template in the
setting is a raster basemap the page asks for itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression

from store import Store
from store.aggregate import Unit, unit_attributes
from tiles.basemap import NAME, BasemapLayer, build_basemap, minzoom_for

FOLDER = "basemap"
ARCHIVE = "basemap.pmtiles"


def archive_path(store: Store) -> Path:
    """Where the store's own basemap archive lives."""
    return store.root / FOLDER / ARCHIVE


def build_store_basemap(
    store: Store, maxzoom: int = 15, attribution: str = "", path: Path | None = None
) -> tuple[Path, int]:
    """Write the store's basemap from its current layers; the archive and its tile count.

    ``path``: where (default: the store's own archive, which the map uses unless
    CUADRA_BASEMAP names another).
    """
    snap = store.snapshot()
    layers = []
    units = [Unit("layer", layer=name) for name in snap.boundary_layers]
    if snap.manifest.street_layer:
        units.append(Unit("street", layer=snap.manifest.street_layer))
    for unit in units:
        attrs = unit_attributes(snap, unit, geometry=True)
        geoms = shapely.from_wkb(attrs.column("geometry").to_numpy(zero_copy_only=False))
        kind = "street" if unit.kind == "street" else "boundary"
        assert unit.layer is not None
        layers.append(
            BasemapLayer(
                unit.layer,
                kind,
                geoms,
                attrs.column("unit_id").cast("string").to_pylist(),
                attrs.column("name").to_pylist(),
                minzoom_for(kind, len(geoms)),
            )
        )
    path = path or archive_path(store)
    tiles = build_basemap(layers, path, maxzoom=maxzoom, attribution=attribution)
    if path == archive_path(store):
        store.push(f"{FOLDER}/{ARCHIVE}")  # a remote store's servers bring it from there
    return path, tiles


@dataclass(frozen=True)
class Basemap:
    """What the map pages draw beneath the data."""

    kind: str  # "cuadra" (our archive), "protomaps" (another vector archive), "xyz", "none"
    url: str | None = None  # the tile URL template the page asks
    max_zoom: int = 15
    archive: Path | None = None


def choose(setting: str | None, raster: str | None, store: Store) -> Basemap:
    """The basemap of a server: the setting's archive or template, else the store's own."""
    if setting and "{z}" in setting:
        return Basemap("xyz", setting)
    if raster:
        return Basemap("xyz", raster)
    path = Path(setting) if setting else archive_path(store)
    if not path.is_file():
        return Basemap("none")
    reader = _reader(path)
    kind = "cuadra" if reader.metadata().get("name") == NAME else "protomaps"
    header = reader.header()
    return Basemap(kind, "/v1/tiles/basemap/{z}/{x}/{y}.mvt", int(header["max_zoom"]), path)


_readers: dict[tuple[str, int], Reader] = {}
_lock = threading.Lock()


def _reader(path: Path) -> Reader:
    # An archive is read through one memory map per file version (path, modification time);
    # a rebuilt archive replaces the old map (the file is replaced whole, never rewritten).
    key = (str(path), path.stat().st_mtime_ns)
    with _lock:
        reader = _readers.get(key)
        if reader is None:
            for old in [k for k in _readers if k[0] == key[0]]:
                del _readers[old]
            with open(path, "rb") as handle:  # the map outlives the descriptor
                reader = _readers[key] = Reader(MmapSource(handle))
    return reader


def tile(basemap: Basemap, z: int, x: int, y: int) -> tuple[bytes | None, dict[str, Any]]:
    """A tile's bytes as stored, and the headers that say how they are encoded."""
    if basemap.archive is None:
        return None, {}
    reader = _reader(basemap.archive)
    data = reader.get(z, x, y)
    compression = reader.header()["tile_compression"]
    headers = {"Content-Encoding": "gzip"} if compression == Compression.GZIP else {}
    return data, headers
