"""Writing incident data files: one GeoParquet file per year and batch, sorted by H3."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from store.cubes import CubeSpec, build_cubes, cube_path, write_cube
from store.errors import StoreError
from store.parquet import read_parquet
from store.schema import (
    BASE_NAMES,
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
_DICTIONARY = {
    "source",
    "offense",
    "category",
    "batch",
    "repairs",
    "street_id",
    "local_date",
    "local_hour",
}
_NO_STATS = {"incident_id", GEOMETRY, BBOX, "repairs", "street_id"}
_BBOX_STATS = [f"{BBOX}.xmin", f"{BBOX}.ymin", f"{BBOX}.xmax", f"{BBOX}.ymax"]


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


def write_incidents(
    root: Path, table: pa.Table, tag: str, cubes: Sequence[CubeSpec] = ()
) -> list[DataFile]:
    """Write a conformed table as year partitions; return the new files (fsync'd).

    Rows are sorted by H3 cell inside each file so that spatial filters prune row groups
    (the Parquet statistics of ``h3`` and of the bbox covering column). Each file gets a
    cube per family in ``cubes``, written before the file is returned.
    """
    if table.num_rows == 0:
        return []
    years = pc.year(table.column("local_date")).to_numpy()
    jobs = []
    if years.size and bool(np.all(years[1:] >= years[:-1])):
        # Already grouped by year (ingest sorts by year, then cell): zero-copy slices.
        bounds = np.flatnonzero(np.diff(years)) + 1
        for start, stop in zip(np.r_[0, bounds], np.r_[bounds, years.size], strict=True):
            jobs.append((int(years[start]), table.slice(int(start), int(stop - start))))
    else:
        for year in np.unique(years):
            jobs.append((int(year), table.filter(pa.array(years == year))))
    files = _write_years(root, jobs, tag, cubes)
    folders = {root / Path(f.path).parent for f in files}
    folders |= {root / Path(c).parent for f in files for c in f.cubes.values()}
    for folder in folders:
        fsync_dir(folder)
    fsync_dir(root / INCIDENTS)
    return files


def _write_years(
    root: Path, jobs: list[tuple[int, pa.Table]], tag: str, cubes: Sequence[CubeSpec]
) -> list[DataFile]:
    """Each year's file and its cubes, as separate tasks on two threads, largest first.

    A year's data file and its cubes do not depend on each other; as one task per year,
    the last year was written by one thread while the other sat idle.
    """
    parts = [(year, _sorted_by_cell(part)) for year, part in jobs]
    rels = {
        year: Path(INCIDENTS) / f"year={year}" / f"part-{tag}-{uuid.uuid4().hex[:8]}.parquet"
        for year, _ in parts
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        sizes: dict[int, Future[int]] = {}
        cube_files: dict[int, Future[dict[str, str]]] = {}
        for year, part in sorted(parts, key=lambda job: -job[1].num_rows):
            sizes[year] = pool.submit(_write_file, root, rels[year], part)
            cube_files[year] = pool.submit(_write_cubes, root, rels[year], part, cubes)
        files = []
        for year, part in parts:
            dates = part.column("local_date")
            files.append(
                DataFile(
                    path=rels[year].as_posix(),
                    rows=part.num_rows,
                    bytes=sizes[year].result(),
                    year=year,
                    min_date=str(pc.min(dates).as_py()),
                    max_date=str(pc.max(dates).as_py()),
                    cubes=cube_files[year].result(),
                )
            )
    return files


def _sorted_by_cell(part: pa.Table) -> pa.Table:
    cells = part.column("h3").to_numpy()
    if cells.size > 1 and not bool(np.all(cells[1:] >= cells[:-1])):
        return part.take(pa.array(np.argsort(cells, kind="stable")))
    return part


def _write_file(root: Path, rel: Path, part: pa.Table) -> int:
    """Write one year's data file (GeoParquet) and fsync it; its size in bytes."""
    lon = part.column("lon").to_numpy()
    lat = part.column("lat").to_numpy()
    bbox = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
    part = with_geo_metadata(part, geo_metadata(["Point"], bbox))
    layer_names = set(part.column_names) - set(BASE_NAMES) - {GEOMETRY, BBOX}
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        part,
        path,
        compression="zstd",
        row_group_size=ROW_GROUP_SIZE,
        write_page_index=True,
        # Dictionary pages and statistics only where they pay: ids, points and WKB are
        # unique per row, and their min/max prune nothing.
        use_dictionary=[c for c in part.column_names if c in _DICTIONARY or c in layer_names],
        write_statistics=[c for c in part.column_names if c not in _NO_STATS] + _BBOX_STATS,
        # Coordinates compress smaller with their bytes split by significance.
        use_byte_stream_split=["lon", "lat", *_BBOX_STATS],
    )
    fsync_file(path)
    return path.stat().st_size


def _write_cubes(
    root: Path, rel: Path, part: pa.Table, cubes: Sequence[CubeSpec]
) -> dict[str, str]:
    """Write the cubes of one year's data file (at ``rel``); family -> cube path."""
    return {
        family: write_cube(root, cube_path(rel, family), cube)
        for family, cube in build_cubes(part, cubes).items()
    }


def read_incidents(root: Path, files: list[DataFile], columns: list[str] | None = None) -> pa.Table:
    """Read the given data files as one table (empty list: empty table)."""
    if not files:
        return pa.table({})
    tables = [read_parquet(root / f.path, columns=columns) for f in files]
    return pa.concat_tables(tables, promote_options="default")
