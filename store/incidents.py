"""Writing incident data files: one GeoParquet file per year and batch, sorted by H3."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store.errors import StoreError
from store.schema import (
    BBOX,
    GEOMETRY,
    geo_metadata,
    incident_schema,
    points_to_bbox,
    points_to_wkb,
    with_geo_metadata,
)
from store.snapshots import DataFile, fsync_dir, fsync_file

INCIDENTS = "incidents"
ROW_GROUP_SIZE = 65_536


def conform(table: pa.Table, layers: list[str]) -> pa.Table:
    """Cast a batch to the on-disk schema, adding geometry and bbox; raise on a gap."""
    schema = incident_schema(layers)
    lon = table.column("lon").to_numpy()
    lat = table.column("lat").to_numpy()
    columns: list[pa.Array | pa.ChunkedArray] = []
    for f in schema:
        if f.name == GEOMETRY:
            columns.append(points_to_wkb(lon, lat))
        elif f.name == BBOX:
            columns.append(points_to_bbox(lon, lat))
        elif f.name in table.column_names:
            columns.append(table.column(f.name).cast(f.type))
        elif f.nullable:
            columns.append(pa.nulls(table.num_rows, f.type))
        else:
            raise StoreError(f"incident batch lacks required column {f.name!r}")
    return pa.Table.from_arrays(columns, schema=schema)


def write_incidents(root: Path, table: pa.Table, tag: str) -> list[DataFile]:
    """Write a conformed table as year partitions; return the new files (fsync'd).

    Rows are sorted by H3 cell inside each file so that spatial filters prune row groups
    (the Parquet statistics of ``h3`` and of the bbox covering column).
    """
    if table.num_rows == 0:
        return []
    years = pc.year(table.column("local_date")).to_numpy()
    jobs = []
    for year in np.unique(years):
        part = table.filter(pa.array(years == year))
        jobs.append((int(year), part))
    with ThreadPoolExecutor(max_workers=2) as pool:
        files = list(pool.map(lambda job: _write_one(root, job[0], job[1], tag), jobs))
    for folder in {root / Path(f.path).parent for f in files}:
        fsync_dir(folder)
    fsync_dir(root / INCIDENTS)
    return files


def _write_one(root: Path, year: int, part: pa.Table, tag: str) -> DataFile:
    part = part.take(pc.sort_indices(part, sort_keys=[("h3", "ascending")]))
    lon = part.column("lon").to_numpy()
    lat = part.column("lat").to_numpy()
    bbox = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    part = with_geo_metadata(part, geo_metadata(["Point"], bbox))
    rel = Path(INCIDENTS) / f"year={year}" / f"part-{tag}-{uuid.uuid4().hex[:8]}.parquet"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        part,
        path,
        compression="zstd",
        row_group_size=ROW_GROUP_SIZE,
        write_page_index=True,
    )
    fsync_file(path)
    dates = part.column("local_date")
    return DataFile(
        path=rel.as_posix(),
        rows=part.num_rows,
        bytes=path.stat().st_size,
        year=year,
        min_date=str(pc.min(dates).as_py()),
        max_date=str(pc.max(dates).as_py()),
    )


def read_incidents(root: Path, files: list[DataFile], columns: list[str] | None = None) -> pa.Table:
    """Read the given data files as one table (empty list: empty table)."""
    if not files:
        return pa.table({})
    tables = [pq.read_table(root / f.path, columns=columns) for f in files]
    return pa.concat_tables(tables, promote_options="default")
