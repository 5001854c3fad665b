"""Public work is bounded: empty years cost nothing, large tables are built off the request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from publication import tables
from store import Store

H3_YEAR = {"unit": "h3:9", "start": "2023-01-01", "end": "2024-01-01"}


@pytest.fixture
def client(sample_store: Store) -> Iterator[TestClient]:
    tables.clear()
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as c:
        yield c
    tables.clear()


def test_years_without_records_evict_nothing(client: TestClient) -> None:
    real = client.get("/v1/aggregate", params=H3_YEAR)
    assert real.status_code == 200
    kept = set(tables._tables.keys())
    for year in range(1900, 1966):
        started = time.perf_counter()
        response = client.get("/v1/timeseries", params={"start": f"{year}-01-01",
                                                        "end": f"{year + 1}-01-01"})  # fmt: skip
        assert response.status_code == 200, response.text
        assert time.perf_counter() - started < 2
        assert all(p["count"] is None for p in response.json()["rows"])
    assert kept <= set(tables._tables.keys())  # the real tables are all still there
    assert tables._tables.currsize < 1 << 30


def test_a_large_table_is_built_off_the_request(
    client: TestClient, sample_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = client.get("/v1/aggregate", params=H3_YEAR).json()
    tables.clear(sample_store)  # neither in memory nor kept in the store
    monkeypatch.setattr(tables, "INLINE_COUNTS", 10)
    started = time.perf_counter()
    first = client.get("/v1/aggregate", params=H3_YEAR)
    assert first.status_code == 503, first.text
    assert first.json()["error"] == "release_building"
    assert int(first.headers["Retry-After"]) >= 5
    assert time.perf_counter() - started < 2
    later = first
    for _ in range(600):  # a client that follows Retry-After (faster here)
        time.sleep(0.1)
        started = time.perf_counter()
        later = client.get("/v1/aggregate", params=H3_YEAR)
        assert time.perf_counter() - started < 2
        if later.status_code != 503:
            break
    assert later.status_code == 200
    assert later.json()["rows"] == inline["rows"]


def test_a_build_under_way_ends_with_the_server(
    sample_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables.clear(sample_store)
    monkeypatch.setattr(tables, "INLINE_COUNTS", 10)
    settings = ServerSettings(store=sample_store.root, warm_release=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/aggregate", params=H3_YEAR).status_code == 503
        assert tables._worker is not None
        processes = list(tables._worker._processes.values())  # type: ignore[attr-defined]
        assert processes and all(p.is_alive() for p in processes)
    # The app's shutdown ended the build: no process is left building for no one.
    for process in processes:
        process.join(timeout=2)
        assert not process.is_alive()
    assert tables._worker is None and not tables._pending
    tables.clear()
