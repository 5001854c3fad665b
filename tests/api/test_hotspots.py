"""/v1/hotspots against esda on counts and neighbours built independently."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator

import duckdb
import h3
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from store import Store
from tests.geo.test_hotspots import bh_reference

YEARS = {"start": "2021-01-01", "end": "2024-01-01"}


@pytest.fixture(scope="module")
def client(sample_store: Store, analyst_key: str) -> Iterator[TestClient]:
    headers = {"Authorization": f"Bearer {analyst_key}"}
    with TestClient(create_app(ServerSettings(store=sample_store.root)), headers=headers) as c:
        yield c


def test_gistar_route_equals_esda(client: TestClient, sample_store: Store) -> None:
    from esda.getisord import G_Local
    from libpysal.weights import W

    body = client.get("/v1/hotspots", params={"unit": "h3:7", "k": 1, **YEARS}).json()
    assert body["method"] == "gistar" and body["area"] == "colonia" and body["fdr"] is True
    rows = {r["unit_id"]: r for r in body["rows"]}
    assert len(rows) == body["n"] > 100 and sum(r["count"] == 0 for r in rows.values()) > 0
    # Counts: every record's own res-15 cell, parent by h3-py, over the snapshot's files.
    files = [str(sample_store.root / f.path) for f in sample_store.require_manifest().files]
    cells = duckdb.sql(
        "SELECT h3 FROM read_parquet(?) WHERE local_date >= DATE '2021-01-01' "
        "AND local_date < DATE '2024-01-01'",
        params=[files],
    ).fetchall()
    per_parent = Counter(h3.cell_to_parent(h3.int_to_str(c), 7) for (c,) in cells)
    ids = list(rows)
    y = np.array([per_parent.get(i, 0) for i in ids], dtype=float)
    assert [rows[i]["count"] for i in ids] == y.astype(int).tolist()
    assert body["total"] + body["outside"] == len(cells)
    position = {c: i for i, c in enumerate(ids)}
    neighbors = {i: [position[d] for d in h3.grid_disk(c, 1) if d in position and d != c]
                 for c, i in position.items()}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oracle = G_Local(y, W(neighbors, silence_warnings=True), transform="B", star=True,
                         permutations=0)  # fmt: skip
    z = np.array([rows[i]["z"] for i in ids])
    assert np.max(np.abs(z - oracle.Zs)) < 1e-9
    p = [rows[i]["p"] for i in ids]
    assert np.allclose([rows[i]["p_fdr"] for i in ids], bh_reference(p), rtol=1e-12)
    assert body["significant"] == sum(rows[i]["p_fdr"] <= 0.05 for i in ids)
    zs = [r["z"] for r in body["rows"]]
    assert zs == sorted(zs, reverse=True)


def test_hotspots_warn_and_refuse(client: TestClient) -> None:
    rare = {"unit": "h3:9", "offense": "ROBO A TRANSEUNTE EN NEGOCIO CON VIOLENCIA", **YEARS}
    body = client.get("/v1/hotspots", params=rare).json()
    assert any("sparse" in w for w in body["warnings"])
    assert client.get("/v1/hotspots", params={"unit": "h3:11"}).status_code == 422
    assert client.get("/v1/hotspots", params={"unit": "h3:7", "area": "barrio"}).status_code == 400
    public = client.get("/v1/hotspots", params={"unit": "h3:7"}, headers={"Authorization": ""})
    assert public.status_code == 403


def test_rows_carry_the_units_display_names(client: TestClient) -> None:
    """As aggregate rows do: the colonia's name from the IECM file (read here by GDAL)."""
    import pyogrio

    from tests.conftest import COLONIAS

    frame = pyogrio.read_dataframe(COLONIAS, columns=["CVEUT", "NOMUT"], read_geometry=False)
    names = dict(zip(frame["CVEUT"].astype(str), frame["NOMUT"], strict=True))
    for path, extra in (("/v1/hotspots", {}), ("/v1/hotspots/emerging", {"interval": "month"})):
        body = client.get(path, params={"unit": "colonia", **YEARS, **extra}).json()
        assert len(body["rows"]) > 1000
        assert all(r["name"] == names[r["unit_id"]] for r in body["rows"])
    cells = client.get("/v1/hotspots", params={"unit": "h3:7", **YEARS}).json()["rows"]
    assert cells and all(r["name"] is None for r in cells)
