"""Individual records for analysts: /v1/incidents, paged or streamed as a file."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import pyarrow as pa
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from api.areas import area_route
from api.auth import Principal
from api.context import AskDep
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.responses import csv_safe, json_response
from store import Store
from store.engine import Cursor
from store.filters import Filters
from store.keys import ACCESS
from store.records import MAX_PAGE, batches, columns, decode_cursor, export_parquet, page
from store.snapshot import Snapshot

router = APIRouter(prefix="/v1", tags=["incidents"], responses=ERROR_RESPONSES)
AUDIT_LOG = "audit.log"


class IncidentFormat(StrEnum):
    """Formats of /v1/incidents: one page of JSON, or every matching record as a file."""

    json = "json"
    geojson = "geojson"
    csv = "csv"
    parquet = "parquet"


class IncidentRecord(BaseModel):
    """One incident as stored (plus one id column per boundary layer)."""

    model_config = ConfigDict(extra="allow")
    source: str
    incident_id: str
    occurred_at: str = Field(description="UTC instant, ISO 8601.")
    local_date: str
    local_hour: int
    time_imputed: bool
    offense: str
    category: str
    sensitive: bool
    lon: float
    lat: float
    h3: str = Field(description="Resolution-15 H3 cell, hex.")
    street_id: str | None
    repairs: str | None


class IncidentPage(BaseModel):
    """A page of records in (source, incident_id) order."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    rows: list[IncidentRecord]


@area_route(
    router,
    "/incidents",
    response_model=IncidentPage,
    summary="Individual records (analyst or admin key)",
    # No anonymous access: api.main leaves the key schemes required for this route.
    openapi_extra={"x-key-required": True},
    responses={
        200: {
            "content": {
                "application/geo+json": {"description": "format=geojson: every matching record"},
                "text/csv": {"description": "format=csv: every matching record"},
                "application/vnd.apache.parquet": {"description": "format=parquet"},
            }
        },
        403: {"model": ErrorResponse, "description": "Records need an analyst or admin key."},
    },
)
def get_incidents(
    ask: AskDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description="Records per page (format=json).")
    ] = 100,
    cursor: Annotated[
        str | None,
        Query(max_length=400, description="`next_cursor` of the previous page."),
    ] = None,
    format: Annotated[
        IncidentFormat,
        Query(description="json: one page; geojson, csv, parquet: every match, streamed."),
    ] = IncidentFormat.json,
) -> Any:
    """Records with every common filter, for an analyst's own sources.

    Example: the records in a bbox in March 2024, 500 at a time —
    `/v1/incidents?bbox=-99.17,19.42,-99.15,19.44&start=2024-03-01&end=2024-04-01&limit=500`;
    then the same with `cursor=<next_cursor>` until `next_cursor` is null. Every request is
    written to the store's audit log (who, what, when).
    """
    ask.principal.require_key("individual records need an analyst or admin API key")
    flt = ask.filters()
    if ask.principal.scopes:
        flt = replace(flt, sources=ask.principal.scopes)
    # Checked now: a stream that has started can no longer answer 400.
    flt.check(ask.snap.boundary_layers)
    _audit(ask.snap.store, ask.principal, ask.request, format.value)
    headers = ask.headers_for(flt)
    if format is IncidentFormat.json:
        after = decode_cursor(cursor) if cursor else None
        rows, next_cursor = page(ask.snap, flt, limit, after, ask.cursor)
        for r in rows:
            r["occurred_at"] = r["occurred_at"].astimezone(UTC).isoformat()
        body = {"snapshot": ask.snap.id, "next_cursor": next_cursor, "rows": rows}
        return json_response(body, headers)
    if format is IncidentFormat.parquet:
        fd, path = tempfile.mkstemp(prefix="cuadra-export-", suffix=".parquet")
        os.close(fd)
        export_parquet(ask.snap, flt, path, ask.cursor)
        return FileResponse(
            path,
            media_type="application/vnd.apache.parquet",
            filename=f"incidents-{ask.snap.id}.parquet",
            headers=headers,
            background=BackgroundTask(os.unlink, path),
        )
    # Streams get a cursor of their own: the request's closes when the handler returns.
    stream = ask.request.app.state.engine.cursor()
    rows_iter = _stream(ask.snap, flt, stream)
    if format is IncidentFormat.csv:
        return StreamingResponse(
            _csv_lines(columns(ask.snap.manifest), rows_iter),
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    return StreamingResponse(
        _geojson_chunks(rows_iter, ask.snap.id), media_type="application/geo+json", headers=headers
    )


def _stream(snap: Snapshot, flt: Filters, con: Cursor) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches(snap, flt, con)
    finally:
        con.close()


def _csv_lines(names: list[str], source: Iterator[pa.RecordBatch]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(names)
    for batch in source:
        for row in batch.to_pylist():
            writer.writerow([csv_safe(_plain(row[n])) for n in names])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    yield buf.getvalue()


def _geojson_chunks(source: Iterator[pa.RecordBatch], snapshot: int) -> Iterator[bytes]:
    yield b'{"type":"FeatureCollection","snapshot":' + str(snapshot).encode() + b',"features":['
    first = True
    for batch in source:
        parts = []
        for row in batch.to_pylist():
            point = {"type": "Point", "coordinates": [row["lon"], row["lat"]]}
            props = {k: _plain(v) for k, v in row.items()}
            parts.append(orjson.dumps({"type": "Feature", "geometry": point, "properties": props}))
        if parts:
            yield (b"" if first else b",") + b",".join(parts)
            first = False
    yield b"]}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _audit(store: Store, principal: Principal, request: Request, fmt: str) -> None:
    """Append who asked for which records, and when, to the store's audit log."""
    record = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "key": principal.key_id,
        "role": principal.role.value,
        "scopes": list(principal.scopes),
        "path": request.url.path,
        "query": request.url.query,
        "format": fmt,
        "client": request.client.host if request.client else None,
    }
    folder = Path(store.root) / ACCESS
    folder.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    # O_APPEND: concurrent requests add whole lines, never overwrite each other.
    fd = os.open(folder / AUDIT_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
