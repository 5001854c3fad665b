"""/v1/concentration against counts taken straight from the snapshot's files."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from store import Store


@pytest.fixture(scope="module")
def client(sample_store: Store, analyst_key: str) -> Iterator[TestClient]:
    headers = {"Authorization": f"Bearer {analyst_key}"}
    with TestClient(create_app(ServerSettings(store=sample_store.root)), headers=headers) as c:
        yield c


@pytest.mark.parametrize("unit", ["street", "colonia"])
def test_concentration_of_real_counts(client: TestClient, sample_store: Store, unit: str) -> None:
    manifest = sample_store.require_manifest()
    column = "street_id" if unit == "street" else unit
    layer = manifest.street_layer if unit == "street" else unit
    assert layer is not None
    files = [str(sample_store.root / f.path) for f in manifest.files]
    counts = [c for (c,) in duckdb.sql(
        f"SELECT count(*) FROM read_parquet(?) WHERE {column} IS NOT NULL GROUP BY {column}",
        params=[files]).fetchall()]  # fmt: skip
    n = manifest.layers[layer].features
    y = np.sort(np.array(counts + [0] * (n - len(counts)), dtype=float))
    body = client.get("/v1/concentration", params={"unit": unit, "top": 50}).json()
    assert body["n"] == n and body["total"] == y.sum()
    # Gini by the closed form over sorted values: 2 sum(i y_i) / (n sum y) - (n + 1) / n.
    ranks = np.arange(1, n + 1)
    assert body["gini"] == pytest.approx(2 * (ranks * y).sum() / (n * y.sum()) - (n + 1) / n)
    desc = y[::-1]
    assert body["units_for_half"] == int(np.argmax(np.cumsum(desc) * 2 >= desc.sum())) + 1
    assert body["top_share"] == pytest.approx(desc[:50].sum() / desc.sum())
    curve = body["lorenz"]
    assert curve[0] == [0.0, 0.0] and curve[-1] == [1.0, pytest.approx(1.0)]
    assert len(curve) <= 101


def test_concentration_needs_a_key(client: TestClient) -> None:
    public = client.get(
        "/v1/concentration", params={"unit": "colonia"}, headers={"Authorization": ""}
    )
    assert public.status_code == 403
    assert client.get("/v1/concentration", params={"unit": "h3:12"}).status_code == 400
    hexes = client.get("/v1/concentration", params={"unit": "h3:8"}).json()
    assert hexes["n"] > 500 and 0 < hexes["gini"] < 1
