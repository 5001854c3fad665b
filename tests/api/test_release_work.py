"""Public work is bounded: empty years cost nothing, large tables are built off the request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api import release
from api.main import create_app
from api.settings import ServerSettings
from store import Store

H3_YEAR = {"unit": "h3:9", "start": "2023-01-01", "end": "2024-01-01"}


@pytest.fixture
def client(sample_store: Store) -> Iterator[TestClient]:
    release.clear()
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as c:
        yield c
    release.clear()


def test_years_without_records_are_not_kept(client: TestClient) -> None:
    before = len(release._blocks)
    for year in range(1900, 1966):
        response = client.get("/v1/timeseries", params={"start": f"{year}-01-01",
                                                        "end": f"{year + 1}-01-01"})  # fmt: skip
        assert response.status_code == 200, response.text
        assert all(p["count"] is None for p in response.json()["rows"])
    assert len(release._blocks) == before


def test_a_large_table_is_built_off_the_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = client.get("/v1/aggregate", params=H3_YEAR).json()
    release.clear()
    monkeypatch.setattr(release, "INLINE_COUNTS", 10)
    started = time.perf_counter()
    first = client.get("/v1/aggregate", params=H3_YEAR)
    assert first.status_code == 503, first.text
    assert first.json()["error"] == "release_building"
    assert int(first.headers["Retry-After"]) >= 5
    assert time.perf_counter() - started < 2
    for _ in range(600):  # the worker finishes on its own
        if not release._pending:
            break
        time.sleep(0.1)
    later = client.get("/v1/aggregate", params=H3_YEAR)
    assert later.status_code == 200
    assert later.json()["rows"] == inline["rows"]
