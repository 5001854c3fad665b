"""The incident record on disk: Arrow schema, GeoParquet metadata and WKB points.

This module is the one definition of the format (SPEC §2). Ingest builds an Arrow table
with these columns and hands it to the store; nothing else writes incident files.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pyproj import CRS

GEOPARQUET_VERSION = "1.1.0"
GEOMETRY = "geometry"
BBOX = "bbox"

# Fixed columns in their order on disk; one string column per boundary layer follows
# ``street_id``'s neighbours (their names are the layer names).
BASE_FIELDS: list[pa.Field] = [
    pa.field("incident_id", pa.string(), nullable=False),
    pa.field("source", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("local_date", pa.date32(), nullable=False),
    pa.field("local_hour", pa.int8(), nullable=False),
    pa.field("time_imputed", pa.bool_(), nullable=False),
    pa.field("offense", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field("category", pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field("sensitive", pa.bool_(), nullable=False),
    pa.field("lon", pa.float64(), nullable=False),
    pa.field("lat", pa.float64(), nullable=False),
    pa.field("h3", pa.uint64(), nullable=False),
    pa.field("street_id", pa.dictionary(pa.int32(), pa.string())),
    pa.field("repairs", pa.dictionary(pa.int32(), pa.string())),
    pa.field("batch", pa.dictionary(pa.int32(), pa.string()), nullable=False),
]
TAIL_FIELDS: list[pa.Field] = [
    pa.field(GEOMETRY, pa.binary(), nullable=False),
    pa.field(
        BBOX,
        pa.struct(
            [
                pa.field("xmin", pa.float64()),
                pa.field("ymin", pa.float64()),
                pa.field("xmax", pa.float64()),
                pa.field("ymax", pa.float64()),
            ]
        ),
        nullable=False,
    ),
]
BASE_NAMES = [f.name for f in BASE_FIELDS]
RESERVED = set(BASE_NAMES) | {GEOMETRY, BBOX, "year", "month", "weekday"}


def incident_schema(layers: list[str]) -> pa.Schema:
    """Return the on-disk schema for a store with the given boundary layers."""
    layer_fields = [pa.field(name, pa.dictionary(pa.int32(), pa.string())) for name in layers]
    return pa.schema(BASE_FIELDS + layer_fields + TAIL_FIELDS)


def points_to_wkb(lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> pa.Array:
    """Encode points as ISO WKB (little-endian, 21 bytes each) without building geometries.

    Equal byte for byte to ``shapely.to_wkb(points, byte_order=1)`` (tested); about
    50 times faster, which matters at a million points.
    """
    n = lon.size
    record = np.dtype([("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")])
    buf = np.empty(n, dtype=record)
    buf["order"] = 1
    buf["kind"] = 1
    buf["x"] = lon
    buf["y"] = lat
    offsets = np.arange(0, 21 * (n + 1), 21, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(buf.tobytes())]
    )


def points_to_bbox(lon: npt.NDArray[np.float64], lat: npt.NDArray[np.float64]) -> pa.Array:
    """The GeoParquet 1.1 bbox covering column for points (min equals max)."""
    return pa.StructArray.from_arrays(
        [pa.array(lon), pa.array(lat), pa.array(lon), pa.array(lat)],
        names=["xmin", "ymin", "xmax", "ymax"],
    )


def geo_metadata(
    geometry_types: list[str],
    bbox: tuple[float, float, float, float] | None,
    crs: str = "OGC:CRS84",
    covering: bool = True,
) -> dict[str, Any]:
    """Build the GeoParquet 1.1 ``geo`` file metadata for a WKB geometry column.

    Parameters
    ----------
    geometry_types
        GeoParquet geometry type names present (e.g. ``["Point"]``).
    bbox
        The file's extent, ``(xmin, ymin, xmax, ymax)``, or None when empty.
    crs
        Any CRS pyproj understands; written as PROJJSON.
    covering
        Whether the file has the ``bbox`` covering column.
    """
    column: dict[str, Any] = {
        "encoding": "WKB",
        "geometry_types": geometry_types,
        "crs": json.loads(CRS.from_user_input(crs).to_json()),
        "edges": "planar",
    }
    if bbox is not None and all(np.isfinite(bbox)):
        column["bbox"] = [float(v) for v in bbox]
    if covering:
        column["covering"] = {
            "bbox": {
                "xmin": [BBOX, "xmin"],
                "ymin": [BBOX, "ymin"],
                "xmax": [BBOX, "xmax"],
                "ymax": [BBOX, "ymax"],
            }
        }
    return {
        "version": GEOPARQUET_VERSION,
        "primary_column": GEOMETRY,
        "columns": {GEOMETRY: column},
    }


def with_geo_metadata(table: pa.Table, meta: dict[str, Any]) -> pa.Table:
    """Attach ``geo`` metadata to a table's schema."""
    existing = dict(table.schema.metadata or {})
    existing[b"geo"] = json.dumps(meta).encode()
    return table.replace_schema_metadata(existing)
