"""Stored boundary and street layers: writing them and loading them for assignment."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from geo.cells import cells_to_parents
from geo.polygons import CellTable, PolygonIndex, polygons_to_cell_table
from geo.streets import SegmentIndex
from store.parquet import read_parquet
from store.schema import geo_metadata, with_geo_metadata
from store.snapshots import fsync_file

Geometries = npt.NDArray[np.object_]


@dataclass(frozen=True)
class BoundaryData:
    """A boundary layer's features, ready to store."""

    ids: list[str]
    names: list[str | None]
    population: npt.NDArray[np.float64] | None
    polygons: Geometries


@dataclass(frozen=True)
class StreetData:
    """A street layer's features, ready to store."""

    names: list[str | None]
    source_ids: list[str | None]
    lines: Geometries
    metric_crs: str


def labels_at(ids: npt.NDArray[np.object_], pos: npt.NDArray[np.int32]) -> pa.Array:
    """Feature ids at positions (null where the position is -1), as a dictionary array.

    The ids of a layer are few and repeat over millions of incidents: a dictionary keeps
    gathers cheap, and Parquet stores the column dictionary-encoded anyway.
    """
    dictionary = pa.array(ids.tolist(), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(pos, pa.int32(), mask=pos < 0), dictionary)


@dataclass(frozen=True)
class LoadedBoundary:
    """A boundary layer loaded for point assignment."""

    ids: npt.NDArray[np.object_]
    index: PolygonIndex

    def assign(
        self,
        lon: npt.NDArray[np.float64],
        lat: npt.NDArray[np.float64],
        cells15: npt.NDArray[np.uint64],
    ) -> pa.Array:
        """Polygon ids for points (null outside every polygon)."""
        return labels_at(self.ids, self.index.assign(lon, lat, cells15))


@dataclass(frozen=True)
class LoadedStreets:
    """A street layer loaded for nearest-segment search."""

    ids: npt.NDArray[np.object_]
    index: SegmentIndex
    metric_crs: str

    def snap(
        self, lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], distance: float
    ) -> pa.Array:
        """Nearest street ids within ``distance`` metres (null beyond)."""
        index = self.index
        if distance > index.reach:
            index = index.with_reach(distance)
        pos, _ = index.nearest(lon, lat, distance)
        return labels_at(self.ids, pos)


def _bbox_column(geoms: Geometries) -> pa.Array:
    bounds = shapely.bounds(geoms)
    return pa.StructArray.from_arrays(
        [pa.array(bounds[:, i]) for i in range(4)], names=["xmin", "ymin", "xmax", "ymax"]
    )


def _type_names(geoms: Geometries) -> set[str]:
    names = {0: "Point", 1: "LineString", 3: "Polygon", 5: "MultiLineString", 6: "MultiPolygon"}
    return {names.get(int(t), "Unknown") for t in np.unique(shapely.get_type_id(geoms))}


def _write_geoparquet(path: Path, columns: dict[str, pa.Array], geoms: Geometries) -> None:
    table = pa.table(
        {
            **columns,
            "geometry": pa.array(shapely.to_wkb(geoms, byte_order=1), pa.binary()),
            "bbox": _bbox_column(geoms),
        }
    )
    total = shapely.total_bounds(geoms) if len(geoms) else None
    meta = geo_metadata(
        sorted(_type_names(geoms)) if len(geoms) else [],
        tuple(float(v) for v in total) if total is not None else None,  # type: ignore[arg-type]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(with_geo_metadata(table, meta), path, compression="zstd")
    fsync_file(path)


def write_boundary(folder: Path, data: BoundaryData) -> tuple[str, str]:
    """Write a boundary layer version (polygons and cell table); return both paths."""
    polygons_path = folder / "polygons.parquet"
    columns = {
        "id": pa.array(data.ids, pa.string()),
        "name": pa.array(data.names, pa.string()),
        "population": pa.array(
            data.population if data.population is not None else [None] * len(data.ids),
            pa.float64(),
        ),
    }
    _write_geoparquet(polygons_path, columns, data.polygons)
    table = polygons_to_cell_table(data.polygons)
    cells_path = folder / "cells.parquet"
    interior = np.r_[
        np.ones(table.interior_cells.size, bool), np.zeros(table.band_cells.size, bool)
    ]
    cells_table = pa.table(
        {
            "interior": pa.array(interior),
            "cell": pa.array(np.r_[table.interior_cells, table.band_cells]),
            "polygon": pa.array(np.r_[table.interior_polygon, table.band_polygon]),
        }
    ).replace_schema_metadata({"res": str(table.res)})
    pq.write_table(cells_table, cells_path, compression="zstd")
    fsync_file(cells_path)
    return str(polygons_path), str(cells_path)


def write_streets(folder: Path, data: StreetData, reach: float) -> tuple[str, str]:
    """Write a street layer version (lines in WGS84, and its search grid); return paths."""
    path = folder / "lines.parquet"
    columns = {
        "street_id": pa.array([str(i) for i in range(len(data.lines))], pa.string()),
        "name": pa.array(data.names, pa.string()),
        "source_id": pa.array(data.source_ids, pa.string()),
    }
    _write_geoparquet(path, columns, data.lines)
    grid_path = folder / "grid.npz"
    index = SegmentIndex.from_lines(np.asarray(data.lines), data.metric_crs, reach)
    with open(grid_path, "wb") as fh:
        np.savez(fh, **index.to_arrays())  # type: ignore[arg-type]
    fsync_file(grid_path)
    return str(path), str(grid_path)


def load_boundary(polygons_path: Path, cells_path: Path) -> LoadedBoundary:
    """Load a stored boundary layer and its cell table."""
    poly = read_parquet(polygons_path, columns=["id", "geometry"])
    geoms = shapely.from_wkb(poly.column("geometry").to_numpy(zero_copy_only=False))
    cells = read_parquet(cells_path)
    res = int((cells.schema.metadata or {})[b"res"])
    interior = cells.column("interior").to_numpy(zero_copy_only=False)
    cell = cells.column("cell").to_numpy()
    polygon = cells.column("polygon").to_numpy()
    table = CellTable(
        res=res,
        interior_cells=cell[interior],
        interior_polygon=polygon[interior],
        band_cells=cell[~interior],
        band_polygon=polygon[~interior],
    )
    ids = np.asarray(poly.column("id").to_pylist(), dtype=object)
    return LoadedBoundary(ids=ids, index=PolygonIndex(np.asarray(geoms), table))


def load_streets(path: Path, grid_path: Path, metric_crs: str) -> LoadedStreets:
    """Load a stored street layer's ids and its search grid."""
    ids = np.asarray(read_parquet(path, columns=["street_id"]).column(0).to_pylist(), dtype=object)
    with np.load(grid_path) as arrays:
        index = SegmentIndex.from_arrays(arrays)
    return LoadedStreets(ids=ids, index=index, metric_crs=metric_crs)


def read_layer_columns(path: Path, columns: tuple[str, ...]) -> pa.Table:
    """Columns of a stored layer file, read once per process.

    Layer versions are immutable; the file's mtime in the cache key guards against a
    store deleted and rebuilt at the same path.
    """
    return _read_columns(str(path), path.stat().st_mtime_ns, columns)


@lru_cache(maxsize=64)
def _read_columns(path: str, mtime_ns: int, columns: tuple[str, ...]) -> pa.Table:
    return read_parquet(path, columns=list(columns)).combine_chunks()


def layer_cells(path: Path, res: int) -> npt.NDArray[np.uint64]:
    """The H3 cells at ``res`` (<= the table's 11) that cover a boundary layer, ascending.

    Parents of the layer's stored res-11 cell table (interior and boundary cells), so the
    cells cover every polygon of the layer: a study area for statistics that need the
    units with no incident too.
    """
    return _layer_cells(str(path), path.stat().st_mtime_ns, res)


@lru_cache(maxsize=16)
def _layer_cells(path: str, mtime_ns: int, res: int) -> npt.NDArray[np.uint64]:
    cells = read_parquet(path, columns=["cell"]).column(0).to_numpy()
    return np.unique(cells_to_parents(np.asarray(cells, dtype=np.uint64), res))
