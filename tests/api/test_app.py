"""The HTTP service: health and metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from ingest.pipeline import ingest
from ingest.profiles import load_profile
from publication import tables
from store import Store
from store.keys import KeyRing, Role
from tests.conftest import SAMPLE_CSV, sample_head


def test_health_and_meta(
    empty_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(ServerSettings(store=empty_store.root))) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["snapshot"] is None
        empty = client.get("/v1/meta")
        assert empty.status_code == 404 and empty.json()["error"] == "not_found"
    ingest(empty_store, [str(sample_head(tmp_path / "head.csv.gz", 20_000))],
           load_profile("fgj-cdmx"))  # fmt: skip
    ingest(empty_store, [str(SAMPLE_CSV)], load_profile("fgj-cdmx"))
    _, key = KeyRing(empty_store.root).create(Role.analyst)
    monkeypatch.setattr(tables, "INLINE_COUNTS", 10**9)  # the H3 table in the request
    with TestClient(create_app(ServerSettings(store=empty_store.root))) as client:
        meta = client.get("/v1/meta", headers={"X-API-Key": key}).json()
        assert meta["snapshot"] == 2 and meta["records"] == 50_000
        assert meta["sources"] == ["fgj-cdmx"]
        assert sum(meta["categories"].values()) == 50_000
        assert "h3:8" in meta["units"]
        # The public gets the release's figures: the whole area's published counts of the
        # default period, the very totals /v1/aggregate publishes, and only offenses the
        # release publishes (issue #20; test_limits checks which).
        public = client.get("/v1/meta").json()
        assert set(public["offenses"]) < set(meta["offenses"])
        whole = client.get("/v1/aggregate", params={"unit": "h3:5"}).json()
        assert "total" in whole, whole
        assert public["records"] == whole["total"] is not None and public["records"] >= 5
        for name, count in list(public["offenses"].items())[:5]:
            total = client.get("/v1/aggregate", params={"unit": "h3:5", "offense": name})
            assert count == total.json()["total"] and (count is None or count >= 5)
        robbery = client.get("/v1/aggregate", params={"unit": "h3:5",
                                                      "category": "robo_transeunte"})  # fmt: skip
        assert public["categories"]["robo_transeunte"] == robbery.json()["total"]
        old = client.get("/v1/meta", params={"as_of": 1}, headers={"X-API-Key": key}).json()
        assert old["snapshot"] == 1 and old["records"] == 20_000
        missing = client.get("/v1/meta", params={"as_of": 9})
        assert missing.status_code == 404 and "no snapshot 9" in missing.json()["message"]
        bad = client.get("/v1/meta", params={"as_of": "x"})
        assert bad.status_code == 422


def test_one_structured_log_record_per_request(empty_store: Store, caplog) -> None:  # type: ignore[no-untyped-def]
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="cuadra.api"):
        with TestClient(create_app(ServerSettings(store=empty_store.root))) as client:
            client.get("/health")
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cuadra.api"]
    assert len(records) == 1
    assert records[0]["path"] == "/health" and records[0]["status"] == 200 and records[0]["ms"] >= 0


def test_queries_stop_at_the_request_time_limit(sample_store: Store) -> None:
    import asyncio
    from types import SimpleNamespace

    import duckdb
    import pytest

    from api.deps import get_cursor

    app = create_app(ServerSettings(store=sample_store.root, request_timeout=0.2))

    async def run() -> float:
        cursors = get_cursor(SimpleNamespace(app=app))  # type: ignore[arg-type]
        cursor = await anext(cursors)
        started = asyncio.get_running_loop().time()
        with pytest.raises(duckdb.InterruptException):
            # Minutes of work: only the request's time limit stops it.
            sql = "SELECT count(*) FROM range(10000000000) t(i) WHERE i % 7 = 3"
            await asyncio.to_thread(lambda: cursor.execute(sql).fetchall())
        await cursors.aclose()
        return asyncio.get_running_loop().time() - started

    with TestClient(app):  # the lifespan opens the app's DuckDB connection
        assert asyncio.run(run()) < 5
