"""Individual incident records (for analysts): keyset pages and streamed exports."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from store.errors import StoreError
from store.filters import FilterError, Filters
from store.snapshot import Snapshot
from store.snapshots import Manifest
from store.sql import quote

BASE_COLUMNS = [
    "source",
    "incident_id",
    "occurred_at",
    "local_date",
    "local_hour",
    "time_imputed",
    "offense",
    "category",
    "sensitive",
    "lon",
    "lat",
    "street_id",
    "repairs",
]
MAX_PAGE = 1_000


def columns(manifest: Manifest) -> list[str]:
    """The record columns served: the fixed ones, the H3 cell as hex, each layer's id."""
    return [*BASE_COLUMNS, "h3", *manifest.boundary_layers]


def _select(manifest: Manifest) -> str:
    names = [quote(c) for c in BASE_COLUMNS]
    names.append("lower(hex(h3)) AS h3")
    names += [quote(layer) for layer in manifest.boundary_layers]  # checked layer names
    return ", ".join(names)


def encode_cursor(source: str, incident_id: str) -> str:
    """An opaque cursor after the record (source, incident_id)."""
    raw = f"{source}\x00{incident_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (source, incident_id) a cursor points after; FilterError if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        source, incident_id = raw.split("\x00")
    except (ValueError, UnicodeDecodeError):
        raise FilterError("cursor", cursor, "not a cursor from a previous page") from None
    return source, incident_id


def _files(snap: Snapshot, filters: Filters) -> list[str]:
    return [str(snap.path(f.path)) for f in snap.files_between(filters.start, filters.end)]


def page(
    snap: Snapshot,
    filters: Filters,
    limit: int,
    after: tuple[str, str] | None,
    con: duckdb.DuckDBPyConnection,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` records after ``after``, and the next page's cursor (None at the end).

    Records come in (source, incident_id) order, so pages never overlap or skip.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise FilterError("limit", limit, f"must be 1..{MAX_PAGE}")
    files = _files(snap, filters)
    if not files:
        return [], None
    where, params = filters.where(snap.boundary_layers)
    if after is not None:
        where = f"({where}) AND (source > ? OR (source = ? AND incident_id > ?))"
        params = [*params, after[0], after[0], after[1]]
    sql = (
        f"SELECT {_select(snap.manifest)} FROM read_parquet(?) WHERE {where} "
        "ORDER BY source, incident_id LIMIT ?"
    )
    result = con.execute(sql, [files, *params, limit + 1])
    names = [d[0] for d in result.description]
    rows = [dict(zip(names, r, strict=True)) for r in result.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1]["source"], rows[-1]["incident_id"]) if more else None


def batches(
    snap: Snapshot,
    filters: Filters,
    con: duckdb.DuckDBPyConnection,
    rows_per_batch: int = 10_000,
) -> Iterator[pa.RecordBatch]:
    """Every matching record, in batches: memory stays bounded however many there are."""
    files = _files(snap, filters)
    if not files:
        return
    where, params = filters.where(snap.boundary_layers)
    sql = f"SELECT {_select(snap.manifest)} FROM read_parquet(?) WHERE {where} ORDER BY source, incident_id"
    reader = con.sql(sql, params=[files, *params]).to_arrow_reader(rows_per_batch)
    try:
        yield from reader
    finally:
        reader.close()


def export_parquet(
    snap: Snapshot, filters: Filters, path: str, con: duckdb.DuckDBPyConnection
) -> int:
    """Write every matching record to a Parquet file (DuckDB streams it); the row count."""
    files = _files(snap, filters)
    if not files:
        raise StoreError("no records in the snapshot for these dates")
    where, params = filters.where(snap.boundary_layers)
    sql = (
        f"COPY (SELECT {_select(snap.manifest)} FROM read_parquet(?) WHERE {where} "
        "ORDER BY source, incident_id) TO ? (FORMAT parquet, COMPRESSION zstd)"
    )
    con.sql(sql, params=[files, *params, path])
    return int(pq.ParquetFile(path).metadata.num_rows)


def points(
    snap: Snapshot, filters: Filters, con: duckdb.DuckDBPyConnection, limit: int
) -> pa.Table:
    """lon, lat, local_date and source of every matching record (at most ``limit``).

    For statistics over points (kernel density, near repeats); StoreError when more than
    ``limit`` records match, so that memory stays bounded: narrow the filters.
    """
    files = _files(snap, filters)
    if not files:
        return pa.table(
            {
                "lon": pa.array([], pa.float64()),
                "lat": pa.array([], pa.float64()),
                "local_date": pa.array([], pa.date32()),
                "source": pa.array([], pa.string()),
            }
        )
    where, params = filters.where(snap.boundary_layers)
    sql = (
        "SELECT lon, lat, local_date, source::VARCHAR AS source "
        f"FROM read_parquet(?) WHERE {where} LIMIT ?"
    )
    table: pa.Table = con.sql(sql, params=[files, *params, limit + 1]).to_arrow_table()
    if table.num_rows > limit:
        raise FilterError(
            "filters",
            None,
            f"more than {limit} incidents match: narrow the dates, offenses or area",
        )
    return table
