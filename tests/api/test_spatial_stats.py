"""Polygon Gi*, emerging hot spots, near repeats and kernel density over HTTP.

Each route is checked against an answer built without it: counts straight from the
snapshot's files with DuckDB, neighbours from h3-py or libpysal, distances by brute force.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import geopandas as gpd
import h3
import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient
from pyproj import Transformer

from api.main import create_app
from api.settings import ServerSettings
from geo.emerging import emerging
from geo.kde import bandwidth
from store import Store

YEARS = {"start": "2021-01-01", "end": "2024-01-01"}
ROBBERY = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"


@pytest.fixture(scope="module")
def client(sample_store: Store, analyst_key: str) -> Iterator[TestClient]:
    headers = {"Authorization": f"Bearer {analyst_key}"}
    with TestClient(create_app(ServerSettings(store=sample_store.root)), headers=headers) as c:
        yield c


def _files(store: Store) -> list[str]:
    return [str(store.root / f.path) for f in store.require_manifest().files]


def test_gistar_by_colonia_equals_esda_with_libpysal_contiguity(
    client: TestClient, sample_store: Store
) -> None:
    from esda.getisord import G_Local
    from libpysal.weights import fuzzy_contiguity

    body = client.get("/v1/hotspots", params={"unit": "colonia", **YEARS}).json()
    assert body["neighbours"] == "queen" and body["area"] == "colonia" and body["k"] == 1
    manifest = sample_store.require_manifest()
    polygons = gpd.read_parquet(sample_store.root / manifest.layers["colonia"].path)
    assert body["n"] == len(polygons) == manifest.layers["colonia"].features
    per_colonia = dict(duckdb.sql(
        "SELECT colonia, count(*) FROM read_parquet(?) WHERE colonia IS NOT NULL "
        "AND local_date >= DATE '2021-01-01' AND local_date < DATE '2024-01-01' GROUP BY 1",
        params=[_files(sample_store)]).fetchall())  # fmt: skip
    ids = [str(i) for i in polygons["id"]]
    y = np.array([per_colonia.get(i, 0) for i in ids], dtype=float)
    rows = {r["unit_id"]: r for r in body["rows"]}
    assert [rows[i]["count"] for i in ids] == y.astype(int).tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Queen contiguity as "shares at least a point" (slivers included), by libpysal.
        w = fuzzy_contiguity(polygons, tolerance=0, buffering=False, predicate="intersects",
                             silence_warnings=True)  # fmt: skip
        oracle = G_Local(y, w, transform="B", star=True, permutations=0)
    z = np.array([rows[i]["z"] for i in ids])
    assert np.max(np.abs(z - oracle.Zs)) < 1e-9
    assert body["total"] == y.sum() and body["significant"] > 0


def test_gistar_permutations_are_echoed_and_seeded(client: TestClient) -> None:
    params = {"unit": "h3:7", "permutations": 199, "seed": 42, **YEARS}
    first = client.get("/v1/hotspots", params=params).json()
    assert first["inference"] == "permutation" and first["seed"] == 42
    assert first["permutations"] == 199
    assert first["rows"] == client.get("/v1/hotspots", params=params).json()["rows"]
    ps = [r["p"] for r in first["rows"]]
    assert min(ps) >= 2 / 200 and max(ps) <= 1
    other = client.get("/v1/hotspots", params={**params, "seed": 43}).json()
    assert [r["p"] for r in other["rows"]] != ps  # another seed, other draws
    bad = client.get("/v1/hotspots", params={**params, "permutations": 10})
    assert bad.status_code == 400 and bad.json()["parameter"] == "permutations"
    assert client.get("/v1/hotspots", params={"unit": "colonia", "k": 2}).status_code == 400
    assert client.get("/v1/hotspots", params={"unit": "calles"}).status_code == 400


def test_emerging_cube_and_categories(client: TestClient, sample_store: Store) -> None:
    params = {"unit": "h3:6", "interval": "month", "window": 1, **YEARS}
    body = client.get("/v1/hotspots/emerging", params=params).json()
    assert body["periods"][0] == "2021-01-01" and len(body["periods"]) == 36
    assert sum(body["summary"].values()) == body["n"] == len(body["rows"])
    # The cube, independently: each record's res-15 cell's parent by h3-py, by month.
    records = duckdb.sql(
        "SELECT h3, date_trunc('month', local_date)::DATE FROM read_parquet(?) "
        "WHERE local_date >= DATE '2021-01-01' AND local_date < DATE '2024-01-01'",
        params=[_files(sample_store)]).fetchall()  # fmt: skip
    ids = [r["unit_id"] for r in body["rows"]]
    position = {c: i for i, c in enumerate(ids)}
    months = [date(2021 + m // 12, m % 12 + 1, 1) for m in range(36)]
    cube = np.zeros((len(ids), 36))
    for cell, month in records:
        parent = h3.cell_to_parent(h3.int_to_str(cell), 6)
        if parent in position:
            cube[position[parent], months.index(month)] += 1
    assert [r["count"] for r in body["rows"]] == cube.sum(axis=1).astype(int).tolist()
    rows, cols = zip(*[(position[c], position[d]) for c in ids for d in h3.grid_disk(c, 1)
                       if d in position], strict=True)  # fmt: skip
    w = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(ids), len(ids)))
    expected = emerging(cube, w, window=1, alpha=0.05)
    assert [r["category"] for r in body["rows"]] == expected.labels.tolist()
    assert np.allclose([r["z_last"] for r in body["rows"]], expected.z[:, -1], atol=1e-9)
    assert Counter(expected.labels.tolist()) == Counter(body["summary"])
    assert body["warnings"] == []


def test_emerging_needs_steps_and_a_key(client: TestClient) -> None:
    short = {"unit": "h3:6", "interval": "month", "start": "2023-01-01", "end": "2023-03-01"}
    response = client.get("/v1/hotspots/emerging", params=short)
    assert response.status_code == 400 and response.json()["parameter"] == "interval"
    weekly = {"unit": "colonia", "interval": "week", "start": "2023-01-02", "end": "2023-02-13"}
    body = client.get("/v1/hotspots/emerging", params=weekly).json()
    assert len(body["periods"]) == 6 and body["neighbours"] == "queen"
    assert any("6 time steps" in w for w in body["warnings"])
    public = client.get("/v1/hotspots/emerging", params={"unit": "h3:6"},
                        headers={"Authorization": ""})  # fmt: skip
    assert public.status_code == 403
    # Work bounded before it is done: k-rings of fine cells, long look-backs.
    wide = client.get("/v1/hotspots/emerging", params={"unit": "h3:10", "k": 4})
    assert wide.status_code == 400 and wide.json()["parameter"] == "k"
    assert "neighbour pairs" in wide.json()["message"]
    long = client.get("/v1/hotspots/emerging", params={"unit": "h3:10", "window": 12,
                      "start": "2023-01-01", "end": "2025-01-01"})  # fmt: skip
    assert long.status_code == 400 and "look-back" in long.json()["message"]


def _projected(sample_store: Store, where: str, params: list[object]) -> tuple[np.ndarray, ...]:
    rows = duckdb.sql(
        f"SELECT lon, lat, local_date FROM read_parquet(?) WHERE {where}",
        params=[_files(sample_store), *params],
    ).fetchall()
    lon, lat = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32614", always_xy=True).transform(lon, lat)
    days = np.array([(r[2] - date(1970, 1, 1)).days for r in rows], dtype=float)
    return np.asarray(x), np.asarray(y), days


def test_near_repeat_table_equals_brute_force(client: TestClient, sample_store: Store) -> None:
    params = {"offense": ROBBERY, **YEARS, "distance_bands": "0,200,400,800",
              "time_bands": "0,7,14,28", "permutations": 49, "seed": 9}  # fmt: skip
    body = client.get("/v1/near-repeat", params=params).json()
    assert body["crs"] == "EPSG:32614" and body["intervals"] == "[from, to)"
    assert body["time_precision"] == "day"
    x, y, t = _projected(sample_store, "offense = ? AND local_date >= ? AND local_date < ?",
                         [ROBBERY, date(2021, 1, 1), date(2024, 1, 1)])  # fmt: skip
    assert body["events"] == x.size > 500
    d_edges, t_edges = [0, 200, 400, 800], [0, 7, 14, 28]
    i, j = np.triu_indices(x.size, 1)
    d = np.hypot(x[i] - x[j], y[i] - y[j])
    gap = np.abs(t[i] - t[j])
    for cell in body["table"]:
        (d0, d1), (t0, t1) = cell["distance"], cell["days"]
        assert [d0, d1] in [[a, b] for a, b in zip(d_edges, d_edges[1:], strict=False)]
        assert [t0, t1] in [[a, b] for a, b in zip(t_edges, t_edges[1:], strict=False)]
        brute = int(((d >= d0) & (d < d1) & (gap >= t0) & (gap < t1)).sum())
        assert cell["observed"] == brute, cell
        assert cell["ratio"] == pytest.approx(cell["observed"] / cell["expected"])
    assert body == client.get("/v1/near-repeat", params=params).json()  # seeded
    bad = client.get("/v1/near-repeat", params={**params, "distance_bands": "0,400,200"})
    assert bad.status_code == 400 and bad.json()["parameter"] == "distance_bands"
    assert (
        client.get("/v1/near-repeat", params={**params, "distance_bands": "0,9000"}).status_code
        == 400
    )


def test_kernel_density_surface(client: TestClient, sample_store: Store) -> None:
    params = {"method": "kde", "offense": ROBBERY, **YEARS}
    body = client.get("/v1/hotspots", params=params).json()
    x, y, _ = _projected(sample_store, "offense = ? AND local_date >= ? AND local_date < ?",
                         [ROBBERY, date(2021, 1, 1), date(2024, 1, 1)])  # fmt: skip
    assert body["events"] == x.size and body["bandwidth_rule"] == "silverman"
    assert body["bandwidth"] == pytest.approx(bandwidth(x, y), rel=1e-9)
    # The grid's margin holds every kernel whole: the surface integrates to the events.
    cell_km2 = (body["cell_size"] / 1000) ** 2
    assert sum(c[4] for c in body["cells"]) * cell_km2 == pytest.approx(x.size, rel=5e-3)
    lon = [c[2] for c in body["cells"]]
    assert -99.4 < min(lon) < max(lon) < -98.9
    given = client.get("/v1/hotspots", params={**params, "bandwidth": 500, "cell_size": 250}).json()
    assert given["bandwidth"] == 500 and given["bandwidth_rule"] == "given"
    response = client.get("/v1/hotspots", params={**params, "bbox": "-98.2,20.5,-98.1,20.6"})
    assert response.status_code == 200, response.text
    nothing = response.json()
    assert nothing["events"] == 0 and nothing["cells"] == []
    tiny = client.get("/v1/hotspots", params={**params, "cell_size": 10})
    assert tiny.status_code == 400 and tiny.json()["parameter"] == "cell_size"
    # A city-wide bandwidth over fine cells: refused before the kernel sums, with the way out.
    wide = client.get("/v1/hotspots", params={"method": "kde", "bandwidth": 19024})
    assert wide.status_code == 400 and wide.json()["parameter"] == "bandwidth"
    assert "use cells of at least" in wide.json()["message"]


def test_near_repeat_refuses_month_only_dates(empty_store: Store, tmp_path: Path) -> None:
    """police.uk dates are months: a Knox table of them would show observed = expected."""
    from ingest.pipeline import ingest
    from ingest.profiles import load_profile
    from store.keys import KeyRing, Role
    from tests.conftest import DATA

    path = DATA / "west_yorkshire" / "2018-07-west-yorkshire-street.csv.gz"
    ingest(empty_store, [str(path)], load_profile("police-uk"))
    _, key = KeyRing(empty_store.root).create(Role.analyst)
    with TestClient(create_app(ServerSettings(store=empty_store.root))) as c:
        got = c.get("/v1/near-repeat", params={"offense": "Burglary"}, headers={"X-API-Key": key})
    assert got.status_code == 400 and got.json()["parameter"] == "time_bands"
    assert "police-uk are months only (its profile says so)" in got.json()["message"]


def test_a_profile_declares_its_date_precision(empty_store: Store, tmp_path: Path) -> None:
    """Day-shaped dates of a source that says they are months (a monthly export) are months."""
    from ingest.pipeline import ingest
    from ingest.profiles import PROFILES_DIR, load_profile
    from store.keys import KeyRing, Role
    from tests.conftest import sample_head

    assert load_profile("police-uk").date_precision == "month"  # "%Y-%m": no day to read
    assert load_profile("fgj-cdmx").date_precision == "day"
    text = (PROFILES_DIR / "fgj-cdmx.toml").read_text(encoding="utf-8")
    text = text.replace('name = "fgj-cdmx"', 'name = "fgj-monthly"')
    text = text.replace("[parse]\n", '[parse]\ndate_precision = "month"\n')
    profile_path = tmp_path / "fgj-monthly.toml"
    profile_path.write_text(text, encoding="utf-8")
    profile = load_profile(str(profile_path))
    assert profile.date_precision == "month"
    ingest(empty_store, [str(sample_head(tmp_path / "head.csv.gz", 3000))], profile)
    _, key = KeyRing(empty_store.root).create(Role.analyst)
    with TestClient(create_app(ServerSettings(store=empty_store.root))) as c:
        got = c.get("/v1/near-repeat", headers={"X-API-Key": key})
    assert got.status_code == 400, got.text
    assert "fgj-monthly are months only" in got.json()["message"]


def test_date_precision() -> None:
    from geo.nearrepeat import date_precision

    firsts = np.array(["2018-07-01", "2018-08-01", "2019-01-01"], "datetime64[D]").astype(np.int64)
    assert date_precision(firsts) == "month"
    assert date_precision(firsts + 1) == "day"
    assert date_precision(np.append(firsts, firsts[0] + 3)) == "day"
    assert date_precision(firsts[:2]) == "day"  # too few to tell
