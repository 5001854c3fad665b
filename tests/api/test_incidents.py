"""/v1/incidents: an analyst's records, paged without gaps or overlaps, or streamed."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import duckdb
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.responses import csv_safe
from api.settings import ServerSettings
from store import Store

BOX = {"bbox": "-99.20,19.38,-99.12,19.45", "start": "2023-01-01", "end": "2024-01-01"}


@pytest.fixture(scope="module")
def client(sample_store: Store, analyst_key: str) -> Iterator[TestClient]:
    headers = {"Authorization": f"Bearer {analyst_key}"}
    with TestClient(create_app(ServerSettings(store=sample_store.root)), headers=headers) as c:
        yield c


def expected_ids(store: Store) -> set[str]:
    files = [str(store.root / f.path) for f in store.require_manifest().files]
    rows = duckdb.sql(
        "SELECT incident_id FROM read_parquet(?) WHERE lon BETWEEN -99.20 AND -99.12 "
        "AND lat BETWEEN 19.38 AND 19.45 AND local_date >= DATE '2023-01-01' "
        "AND local_date < DATE '2024-01-01'",
        params=[files],
    ).fetchall()
    return {r[0] for r in rows}


def test_pages_cover_the_selection_exactly_once(client: TestClient, sample_store: Store) -> None:
    want = expected_ids(sample_store)
    assert len(want) > 1_000
    seen: list[str] = []
    cursor = None
    while True:
        params = {**BOX, "limit": 700, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/incidents", params=params).json()
        assert len(body["rows"]) <= 700
        seen += [r["incident_id"] for r in body["rows"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and set(seen) == want
    row = body["rows"][0]
    assert -99.20 <= row["lon"] <= -99.12 and row["h3"] and row["colonia"] is not None
    assert client.get("/v1/incidents", params={"limit": 5000}).status_code == 422
    bad = client.get("/v1/incidents", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["parameter"] == "cursor"


def test_exports_hold_every_record(client: TestClient, sample_store: Store) -> None:
    want = expected_ids(sample_store)
    geo = client.get("/v1/incidents", params={**BOX, "format": "geojson"})
    assert geo.headers["content-type"].startswith("application/geo+json")
    features = json.loads(geo.content)["features"]
    assert {f["properties"]["incident_id"] for f in features} == want
    lon, lat = features[0]["geometry"]["coordinates"]
    assert (lon, lat) == (features[0]["properties"]["lon"], features[0]["properties"]["lat"])
    text = client.get("/v1/incidents", params={**BOX, "format": "csv"}).text
    lines = text.splitlines()
    assert lines[0].startswith("source,incident_id,") and len(lines) - 1 == len(want)
    parquet = client.get("/v1/incidents", params={**BOX, "format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert set(table.column("incident_id").to_pylist()) == want


def test_records_need_a_key_and_access_is_audited(
    client: TestClient, sample_store: Store, analyst_key: str
) -> None:
    public = client.get("/v1/incidents", params=BOX, headers={"Authorization": ""})
    assert public.status_code == 403 and public.json()["error"] == "forbidden"
    client.get("/v1/incidents", params={**BOX, "limit": 3})
    log = (sample_store.root / "access" / "audit.log").read_text().splitlines()
    last = json.loads(log[-1])
    key_id = analyst_key.split("_")[1]
    assert last["key"] == key_id and last["role"] == "analyst"
    assert "limit=3" in last["query"] and last["at"].startswith("20")


def test_csv_cells_cannot_become_formulas() -> None:
    cells = ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "\ry", "ROBO", 3, None]
    assert [csv_safe(c) for c in cells] == [
        "'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\ry", "ROBO", 3, None,
    ]  # fmt: skip
