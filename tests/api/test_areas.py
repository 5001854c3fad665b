"""Drawn areas: a polygon posted to the analysis routes, circles, and /v1/area.

Counts are checked against geopandas on the same records, cells against h3-py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import duckdb
import geopandas as gpd
import h3
import pytest
import shapely
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from store import Store

YEAR = {"start": "2023-01-01", "end": "2024-01-01"}
# Around the Zócalo, across several colonias and cuadrantes, with a hole over the square.
OUTER = [(-99.145, 19.425), (-99.120, 19.425), (-99.120, 19.440), (-99.145, 19.440)]
HOLE = [(-99.136, 19.430), (-99.130, 19.430), (-99.130, 19.435), (-99.136, 19.435)]
HOLED = shapely.Polygon(OUTER, [HOLE])
# Two pieces far apart: Coyoacán's centre and Tacubaya.
PIECES = shapely.MultiPolygon(
    [
        shapely.box(-99.170, 19.340, -99.155, 19.355),
        shapely.Polygon([(-99.195, 19.400), (-99.180, 19.398), (-99.185, 19.412)]),
    ]
)


@pytest.fixture(scope="module")
def client(sample_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as c:
        yield c


@pytest.fixture(scope="module")
def records(sample_store: Store) -> gpd.GeoDataFrame:
    """The sample's 2023 records as points (read with DuckDB, tested with geopandas)."""
    files = [str(p) for p in sample_store.data_files(sample_store.require_manifest())]
    frame = (
        duckdb.connect()
        .execute(
            "SELECT lon, lat, colonia::VARCHAR AS colonia, category::VARCHAR AS category, "
            "offense::VARCHAR AS offense, date_trunc('month', local_date)::DATE AS month "
            "FROM read_parquet(?) WHERE local_date >= DATE '2023-01-01' "
            "AND local_date < DATE '2024-01-01'",
            [files],
        )
        .df()
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.lon, frame.lat), crs=4326)


def _inside(records: gpd.GeoDataFrame, shape: Any) -> gpd.GeoDataFrame:
    """The oracle: records whose point intersects the shape (edges included)."""
    area = gpd.GeoDataFrame(geometry=[shape], crs=4326)
    return gpd.sjoin(records, area, predicate="intersects", how="inner")


def _post(client: TestClient, path: str, shape: Any, key: str | None, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = shapely.geometry.mapping(shape)
    response = client.post(path, params={**YEAR, **params}, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("shape", [HOLED, PIECES], ids=["with-hole", "multipolygon"])
def test_a_polygon_counts_what_geopandas_finds_inside(
    client: TestClient, records: gpd.GeoDataFrame, analyst_key: str, shape: Any
) -> None:
    inside = _inside(records, shape)
    assert len(inside) > 50 and inside.colonia.nunique() > 2  # crosses colonias
    got = _post(client, "/v1/aggregate", shape, analyst_key, unit="colonia")
    assert {r["unit_id"]: r["count"] for r in got["rows"]} == dict(Counter(inside.colonia.dropna()))
    assert got["total"] == len(inside) and got["filters"]["polygon"]["vertices"] > 4
    cells = _post(client, "/v1/aggregate", shape, analyst_key, unit="h3:9")
    # A record's cell at 9 is the parent of its cell at 15 (h3:9 sums its children).
    expected = Counter(
        h3.cell_to_parent(h3.latlng_to_cell(y, x, 15), 9)
        for x, y in zip(inside.lon, inside.lat, strict=True)
    )
    assert {r["unit_id"]: r["count"] for r in cells["rows"]} == dict(expected)
    months = _post(client, "/v1/timeseries", shape, analyst_key)
    by_month = Counter(str(m)[:10] for m in inside.month)
    assert {r["period"]: r["count"] for r in months["rows"] if r["count"]} == dict(by_month)
    exported = client.post(
        "/v1/incidents",
        params={**YEAR, "format": "csv"},
        json=shapely.geometry.mapping(shape),
        headers={"Authorization": f"Bearer {analyst_key}"},
    )
    assert exported.status_code == 200 and exported.text.count("\n") - 1 == len(inside)


def test_the_hole_is_left_out(
    client: TestClient, records: gpd.GeoDataFrame, analyst_key: str
) -> None:
    whole = _post(client, "/v1/area", shapely.Polygon(OUTER), analyst_key)["total"]
    holed = _post(client, "/v1/area", HOLED, analyst_key)["total"]
    in_hole = len(_inside(records, shapely.Polygon(HOLE)))
    assert in_hole > 10 and whole - holed == in_hole


def test_what_happened_in_a_place(
    client: TestClient, records: gpd.GeoDataFrame, analyst_key: str
) -> None:
    """/v1/area by key: categories, offenses, months and the busiest colonias inside."""
    inside = _inside(records, HOLED)
    got = _post(client, "/v1/area", HOLED, analyst_key)
    assert got["total"] == len(inside) and got["area"] is None
    assert {r["category"]: r["count"] for r in got["categories"]} == dict(Counter(inside.category))
    assert {(r["category"], r["offense"]): r["count"] for r in got["offenses"]} == dict(
        Counter(zip(inside.category, inside.offense, strict=True))
    )
    assert sum(r["count"] for r in got["series"]) == len(inside) and len(got["series"]) == 12
    top = Counter(inside.colonia.dropna()).most_common(3)
    assert [(r["unit_id"], r["count"]) for r in got["top_units"][:3]] == top
    assert got["top_unit"] == "colonia" and got["top_streets"]
    assert got["top_streets"][0]["count"] >= got["top_streets"][-1]["count"]


def test_a_drawn_study_area_is_the_cells_it_touches(
    client: TestClient, records: gpd.GeoDataFrame, analyst_key: str
) -> None:
    """Gi* over a polygon: the h3:9 cells it overlaps (h3-py), the records inside."""
    got = _post(client, "/v1/hotspots", HOLED, analyst_key, unit="h3:9")
    ring = [[(y, x) for x, y in OUTER]]
    hole = [(y, x) for x, y in HOLE]
    cells = h3.polygon_to_cells_experimental(h3.LatLngPoly(ring[0], hole), 9, contain="overlap")
    assert {r["unit_id"] for r in got["rows"]} == set(cells)
    assert got["area"] == "drawn area" and got["total"] == len(_inside(records, HOLED))


def test_unfit_polygons_are_refused_by_name(client: TestClient, analyst_key: str) -> None:
    key = {"Authorization": f"Bearer {analyst_key}"}
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    many = shapely.Point(-99.13, 19.43).buffer(0.01, quad_segs=600)
    huge = shapely.box(-99.5, 19.0, -98.8, 19.8)
    for body in (bowtie, shapely.geometry.mapping(many), shapely.geometry.mapping(huge)):
        got = client.post("/v1/aggregate", params={"unit": "colonia"}, json=body, headers=key)
        assert got.status_code == 400 and got.json()["parameter"] == "area", got.text
    point = {"type": "Point", "coordinates": [-99.13, 19.43]}
    got = client.post("/v1/area", json=point, headers=key)
    assert got.status_code == 400 and got.json()["parameter"] == "area"
    both = client.post(
        "/v1/area",
        params={"within": "circle:-99.13,19.43,300"},
        json=shapely.geometry.mapping(HOLED),
        headers=key,
    )
    assert both.status_code == 400 and both.json()["parameter"] == "within"
    feature = {
        "type": "Feature",
        "properties": {"name": "x"},
        "geometry": shapely.geometry.mapping(HOLED),
    }
    assert client.post("/v1/area", params=YEAR, json=feature, headers=key).status_code == 200


def test_the_public_gets_whole_units_by_post_too(client: TestClient) -> None:
    """A posted polygon, without a key: the colonias it touches (shapely), their cells."""
    from store.aggregate import Unit, unit_attributes

    got = _post(client, "/v1/aggregate", HOLED, None, unit="colonia")
    snap = client.app.state.store.snapshot()  # type: ignore[attr-defined]
    attrs = unit_attributes(snap, Unit("layer", layer="colonia"), geometry=True)
    shapes = shapely.from_wkb(attrs.column("geometry").to_numpy(zero_copy_only=False))
    touched = {str(i) for i, g in zip(attrs.column("unit_id").to_pylist(), shapes, strict=True)
               if g.intersects(HOLED)}  # fmt: skip
    assert set(got["area"]["units"]) == touched and {r["unit_id"] for r in got["rows"]} <= touched
    compared = client.post(
        "/v1/compare",
        params={"unit": "colonia", "a_start": "2022-01-01", "a_end": "2023-01-01",
                "b_start": "2023-01-01", "b_end": "2024-01-01"},
        json=shapely.geometry.mapping(HOLED),
    )  # fmt: skip
    assert compared.status_code == 200, compared.text
    assert set(compared.json()["area"]["units"]) == touched
    assert {r["unit_id"] for r in compared.json()["rows"]} <= touched
    refused = client.post("/v1/concentration", json=shapely.geometry.mapping(HOLED))
    assert refused.status_code == 405  # routes without a drawn area take no body


def test_a_public_series_is_of_one_whole_unit(client: TestClient) -> None:
    """within=layer:id is the unit's published series (not the whole area's); a box is not
    a unit of the release."""
    year = {"start": "2023-01-01", "end": "2024-01-01"}
    by_id = client.get("/v1/timeseries", params={"unit": "colonia", "id": "15-040", **year})
    within = client.get("/v1/timeseries", params={"within": "colonia:15-040", **year})
    whole = client.get("/v1/timeseries", params=year)
    assert within.status_code == 200 and within.json()["rows"] == by_id.json()["rows"]
    assert within.json()["rows"] != whole.json()["rows"]
    boxed = client.get("/v1/timeseries", params={"bbox": "-99.14,19.42,-99.12,19.44", **year})
    assert boxed.status_code == 400 and boxed.json()["parameter"] == "bbox"


def test_a_public_area_lists_at_most_5000_units(client: TestClient) -> None:
    """Half the city at h3:9 is tens of thousands of cells: refused, naming `within`."""
    big = shapely.box(-99.30, 19.25, -99.00, 19.55)
    got = client.post("/v1/aggregate", params={"unit": "h3:9", **YEAR},
                      json=shapely.geometry.mapping(big))  # fmt: skip
    assert got.status_code == 400 and got.json()["parameter"] == "within", got.text
    fine = client.post("/v1/aggregate", params={"unit": "h3:7", **YEAR},
                       json=shapely.geometry.mapping(big))  # fmt: skip
    assert fine.status_code == 200 and len(fine.json()["area"]["units"]) > 100
