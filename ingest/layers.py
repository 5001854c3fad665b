"""Reading boundary polygons and street lines from vector files into store-ready data.

Quirks are fixed only where the fix cannot change an answer, and every fix is counted
in the layer's notes: invalid polygons are repaired with ``make_valid`` (counted), 3-D
coordinates lose their z (counted; cuadrantes_2016 is EPSG:4979 with z = 0), any CRS is
projected to WGS84.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyogrio
import shapely
from pyproj import CRS

from geo.crs import WGS84, transform_xy, utm_crs_for
from ingest.enrich import relayer
from ingest.errors import IngestError
from store import Store
from store.layers import BoundaryData, StreetData
from store.snapshots import Manifest

POLYGON_TYPES = {3, 6}  # Polygon, MultiPolygon
LINE_TYPES = {1, 5}  # LineString, MultiLineString


def _read(path: str | Path, layer: str | None) -> tuple[dict, object]:
    p = Path(path)
    if not p.exists():
        raise IngestError(f"layer file {str(p)!r} does not exist")
    try:
        with warnings.catch_warnings():
            # GDAL renumbers repeated GeoJSON feature ids; we never use them (the Geochicas
            # streets repeat 388 OSM way ids across tile-clipped pieces).
            warnings.filterwarnings(
                "ignore", message="Several features with id", category=RuntimeWarning
            )
            frame = pyogrio.read_dataframe(p, layer=layer)
    except Exception as exc:  # GDAL raises several error types
        raise IngestError(f"cannot read {p.name!r} with GDAL: {exc}") from exc
    return {"crs": frame.crs}, frame


def _to_wgs84(
    geoms: npt.NDArray[np.object_], crs: CRS | None, notes: Counter[str]
) -> npt.NDArray[np.object_]:
    if shapely.has_z(geoms).any():
        notes["dropped_z"] += int(shapely.has_z(geoms).sum())
        geoms = shapely.force_2d(geoms)
    if crs is None:
        notes["crs_assumed_wgs84"] += 1
        return geoms
    # Geographic 3-D CRSs on WGS84 (EPSG:4979) have the same lon/lat as EPSG:4326.
    if crs.is_geographic and crs.to_2d() == CRS.from_user_input(WGS84).to_2d():
        return geoms
    if crs.is_geographic and crs.ellipsoid and crs.ellipsoid.name == "WGS 84":
        return geoms
    coords = shapely.get_coordinates(geoms)
    x, y = transform_xy(coords[:, 0], coords[:, 1], crs.to_string(), WGS84)
    return shapely.set_coordinates(geoms.copy(), np.column_stack([x, y]))


def _field(frame: object, name: str | None, what: str) -> list[object] | None:
    if name is None:
        return None
    columns = list(frame.columns)  # type: ignore[attr-defined]
    if name not in columns:
        raise IngestError(
            f"no field {name!r} ({what}); the file's fields are: {', '.join(c for c in columns if c != 'geometry')}"
        )
    return frame[name].tolist()  # type: ignore[index]


def read_boundaries(
    path: str | Path,
    *,
    id_field: str | None = None,
    name_field: str | None = None,
    population_field: str | None = None,
    layer: str | None = None,
    dissolve: bool = False,
) -> tuple[BoundaryData, dict[str, int]]:
    """Read polygons for ``cuadra boundaries add``.

    Parameters
    ----------
    path
        GeoJSON, GeoPackage, Shapefile or any GDAL vector file.
    id_field, name_field, population_field
        Attribute names. Without an id field the feature's position is its id.
    layer
        Layer of a multi-layer file (default: the first).
    dissolve
        Merge features that share an id (population summed), e.g. alcaldías from colonias.
    """
    meta, frame = _read(path, layer)
    notes: Counter[str] = Counter()
    geoms = np.asarray(frame.geometry.values, dtype=np.object_)  # type: ignore[attr-defined]
    n = len(geoms)
    if n == 0:
        raise IngestError(f"{Path(path).name!r} has no features")
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    types = shapely.get_type_id(geoms)
    wrong = ~missing & ~np.isin(types, list(POLYGON_TYPES))
    if wrong.any():
        raise IngestError(
            f"{Path(path).name!r} has {int(wrong.sum())} features that are not polygons "
            f"(first at position {int(np.flatnonzero(wrong)[0])}); boundaries must be polygons"
        )
    geoms = _to_wgs84(geoms, meta["crs"], notes)
    invalid = ~missing & ~shapely.is_valid(geoms)
    if invalid.any():
        notes["repaired_invalid"] += int(invalid.sum())
        fixed = shapely.make_valid(geoms[invalid])
        # make_valid may return a collection with stray lines; keep the polygonal part.
        geoms[invalid] = np.asarray([_polygonal(g) for g in fixed], dtype=np.object_)
    if missing.any():
        notes["skipped_empty"] += int(missing.sum())

    ids, names, pop = _attributes(frame, n, id_field, name_field, population_field)
    keep = ~missing & np.array([i is not None and i != "" for i in ids])
    if (~missing & ~keep).any():
        raise IngestError(
            f"{Path(path).name!r}: {int((~missing & ~keep).sum())} features have an empty id in {id_field!r}"
        )
    geoms = geoms[keep]
    ids = [i for i, k in zip(ids, keep, strict=True) if k]
    names = [v for v, k in zip(names, keep, strict=True) if k]
    if pop is not None:
        pop = pop[keep]
    counts = Counter(ids)
    repeated = {k: c for k, c in counts.items() if c > 1}
    if repeated and not dissolve:
        example = ", ".join(f"{k!r} ×{c}" for k, c in list(repeated.items())[:3])
        raise IngestError(
            f"id field {id_field!r} is not unique in {Path(path).name!r}: {len(repeated)} values "
            f"repeat ({example}). Choose a unique --id-field, or --dissolve to merge features "
            "that share an id"
        )
    if repeated:
        geoms, ids, names, pop = _dissolve(geoms, ids, names, pop)
        notes["dissolved_into"] = len(ids)
    return (
        BoundaryData(ids=[str(i) for i in ids], names=names, population=pop, polygons=geoms),
        dict(notes),
    )


def _attributes(
    frame: Any,
    n: int,
    id_field: str | None,
    name_field: str | None,
    population_field: str | None,
) -> tuple[list[str | None], list[str | None], npt.NDArray[np.float64] | None]:
    """Each feature's id (its position without an id field), name and population."""
    ids_raw = _field(frame, id_field, "id")
    ids: list[str | None] = (
        [str(i) for i in range(n)] if ids_raw is None else [_text(v) for v in ids_raw]
    )
    names_raw = _field(frame, name_field, "name")
    names: list[str | None] = [None] * n if names_raw is None else [_text(v) for v in names_raw]
    pop_raw = _field(frame, population_field, "population")
    pop = (
        None
        if pop_raw is None
        else np.asarray(
            [np.nan if v is None else float(v) for v in pop_raw],  # type: ignore[arg-type]
            dtype=np.float64,  # type: ignore[arg-type]
        )
    )
    return ids, names, pop


def _dissolve(
    geoms: npt.NDArray[np.object_],
    ids: list[str | None],
    names: list[str | None],
    pop: npt.NDArray[np.float64] | None,
) -> tuple[
    npt.NDArray[np.object_], list[str | None], list[str | None], npt.NDArray[np.float64] | None
]:
    order: dict[str | None, list[int]] = {}
    for i, key in enumerate(ids):
        order.setdefault(key, []).append(i)
    out_geoms = np.asarray(
        [shapely.union_all(geoms[idx]) for idx in order.values()], dtype=np.object_
    )
    out_names = [names[idx[0]] for idx in order.values()]
    out_pop = None if pop is None else np.asarray([np.nansum(pop[idx]) for idx in order.values()])
    return out_geoms, list(order), out_names, out_pop


def _polygonal(geom: Any) -> Any:
    parts = shapely.get_parts(geom)
    polys = [p for p in parts if shapely.get_type_id(p) in POLYGON_TYPES]
    return shapely.multipolygons(polys) if len(polys) != 1 else polys[0]


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_streets(
    path: str | Path,
    *,
    name_field: str | None = None,
    id_field: str | None = None,
    layer: str | None = None,
) -> tuple[StreetData, dict[str, int]]:
    """Read street lines for ``cuadra streets add`` and pick their metric CRS (UTM)."""
    meta, frame = _read(path, layer)
    notes: Counter[str] = Counter()
    geoms = np.asarray(frame.geometry.values, dtype=np.object_)  # type: ignore[attr-defined]
    if len(geoms) == 0:
        raise IngestError(f"{Path(path).name!r} has no features")
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    types = shapely.get_type_id(geoms)
    wrong = ~missing & ~np.isin(types, list(LINE_TYPES))
    if wrong.any():
        raise IngestError(
            f"{Path(path).name!r} has {int(wrong.sum())} features that are not lines; "
            "streets must be LineStrings or MultiLineStrings"
        )
    if missing.any():
        notes["skipped_empty"] += int(missing.sum())
    geoms = _to_wgs84(geoms[~missing], meta["crs"], notes)
    names_raw = _field(frame, name_field, "name")
    names = [None] * len(missing) if names_raw is None else [_text(v) for v in names_raw]
    ids_raw = _field(frame, id_field, "id")
    source_ids = [None] * len(missing) if ids_raw is None else [_text(v) for v in ids_raw]
    names = [v for v, m in zip(names, missing, strict=True) if not m]
    source_ids = [v for v, m in zip(source_ids, missing, strict=True) if not m]
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    metric = utm_crs_for((xmin + xmax) / 2, (ymin + ymax) / 2)
    return StreetData(names=names, source_ids=source_ids, lines=geoms, metric_crs=metric), dict(
        notes
    )


def add_boundary_file(
    store: Store,
    name: str,
    path: str | Path,
    *,
    id_field: str | None = None,
    name_field: str | None = None,
    population_field: str | None = None,
    layer: str | None = None,
    dissolve: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[Manifest, dict[str, int]]:
    """Read a polygon file and commit it as boundary layer ``name`` (``boundaries add``).

    Returns the new snapshot's manifest and the layer's notes (repairs, dropped z, ...).
    """
    say = progress or (lambda _msg: None)
    say("reading")
    data, notes = read_boundaries(
        path,
        id_field=id_field,
        name_field=name_field,
        population_field=population_field,
        layer=layer,
        dissolve=dissolve,
    )
    say("indexing and re-assigning incidents")
    with store.writing() as parent:
        manifest = store.add_boundary(
            parent,
            name,
            data,
            id_field=id_field,
            name_field=name_field,
            population_field=population_field,
            source_file=str(path),
            notes=notes,
            enrich=relayer(store),
        )
    return manifest, notes


def add_street_file(
    store: Store,
    name: str,
    path: str | Path,
    *,
    name_field: str | None = None,
    id_field: str | None = None,
    layer: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Manifest, dict[str, int]]:
    """Read a line file and commit it as the street network ``name`` (``streets add``)."""
    say = progress or (lambda _msg: None)
    say("reading")
    data, notes = read_streets(path, name_field=name_field, id_field=id_field, layer=layer)
    say("indexing and snapping incidents")
    with store.writing() as parent:
        manifest = store.add_streets(
            parent,
            name,
            data,
            name_field=name_field,
            source_file=str(path),
            notes=notes,
            enrich=relayer(store),
        )
    return manifest, notes
