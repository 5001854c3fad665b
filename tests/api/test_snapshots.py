"""/v1/snapshots and /v1/snapshots/diff: what changed between two releases, by role."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from publication import tables
from store import Store
from store.aggregate import Unit
from store.diff import diff
from store.filters import Filters
from store.keys import KeyRing, Role
from store.query import offense_triples
from tests.conftest import DELETED, RECLASSIFIED, SAMPLE_CSV, ingest_two_releases


@pytest.fixture(scope="module")
def served(
    layers_store_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Store, dict[str, str], int]]:
    """A store holding release 1 (snapshot 4) and its revision (snapshot 5), served."""
    tmp = tmp_path_factory.mktemp("served-releases")
    shutil.copytree(layers_store_template, tmp / "store")
    store = Store(tmp / "store")
    columns = ("fecha_hecho", "delito", "latitud")
    _, _, late = ingest_two_releases(store, tmp, SAMPLE_CSV, 4000, columns, "fgj-cdmx")
    with store.writing():
        _, key = KeyRing(store.root).create(Role.analyst, note="tests")
    tables.clear()
    with TestClient(create_app(ServerSettings(store=store.root))) as client:
        yield client, store, {"X-API-Key": key}, late


def _get(client: TestClient, path: str, status: int = 200, **kw: Any) -> Any:
    response = client.get(path, **kw)
    assert response.status_code == status, response.text
    return response.json()


def test_snapshots_list_batches_for_a_key_and_nothing_countable_for_the_public(served) -> None:  # type: ignore[no-untyped-def]
    client, store, key, _ = served
    listed = _get(client, "/v1/snapshots", headers=key)
    assert listed["current"] == 5
    assert [s["snapshot"] for s in listed["snapshots"]] == [5, 4, 3, 2, 1]
    newest, release_1 = listed["snapshots"][0], listed["snapshots"][1]
    assert newest["operation"] == "replace fgj-cdmx"
    (batch,) = newest["batches"]
    assert batch["inputs"] == ["release-2.csv"]
    assert batch["replaced"] == [release_1["batches"][0]["batch"]]
    assert newest["records"] == store.require_manifest(5).rows
    public = _get(client, "/v1/snapshots")
    assert all(s["records"] is None and s["batches"] is None for s in public["snapshots"])
    assert [s["operation"] for s in public["snapshots"]] == [
        s["operation"] for s in listed["snapshots"]
    ]


def test_a_keys_diff_is_the_stores(served) -> None:  # type: ignore[no-untyped-def]
    client, store, key, late = served
    body = _get(client, "/v1/snapshots/diff", params={"unit": "colonia"}, headers=key)
    assert (body["from"], body["to"], body["released"]) == (4, 5, False)
    assert body["totals"]["new"] == late and body["totals"]["deleted"] == DELETED
    assert body["totals"]["revised_in"] == RECLASSIFIED
    before, after = store.snapshot(4), store.snapshot(5)
    with duckdb.connect() as con:
        expected = diff(before, after, Unit.parse("colonia", after.manifest), Filters(), con)
    assert body["rows_total"] == expected.rows.num_rows
    first = expected.rows.slice(0, 1).to_pylist()[0]
    assert body["rows"][0]["net"] == first["net"] and body["rows"][0]["month"] == (
        first["month"].strftime("%Y-%m")
    )
    assert body["largest"] == expected.largest()
    limited = _get(client, "/v1/snapshots/diff", params={"limit": 3}, headers=key)
    assert len(limited["rows"]) == 3 and limited["rows_total"] == body["rows_total"]
    # A real offense typed in lower case resolves, and selects its cells.
    offense = body["rows"][0]["offense"]
    one = _get(client, "/v1/snapshots/diff", params={"offense": offense.lower()}, headers=key)
    assert {r["offense"] for r in one["rows"]} == {offense}
    assert one["filters"]["offenses"] == [offense]


def test_bad_diff_requests_name_the_parameter(served) -> None:  # type: ignore[no-untyped-def]
    client, _, key, _ = served
    for params, param in (
        ({"from": 9}, "from"),
        ({"to": 99}, "to"),
        ({"from": 5, "to": 4}, "from"),
        ({"to": 1}, "from"),  # the first snapshot has no parent
        ({"hour_from": 22, "hour_to": 6}, "hour_from"),
        ({"unit": "barrio"}, "unit"),
    ):
        body = _get(client, "/v1/snapshots/diff", 400, params=params, headers=key)
        assert body["parameter"] == param, body


def test_the_public_sees_release_cells_that_do_not_move(served) -> None:  # type: ignore[no-untyped-def]
    """A revision changes the analyst's figures of a published month, and none of the public's."""
    client, _, key, _ = served
    year = {"start": "2024-01-01", "end": "2025-01-01", "unit": "colonia"}
    exact = _get(client, "/v1/snapshots/diff", params=year, headers=key)
    assert exact["rows_total"] > 0
    public = _get(client, "/v1/snapshots/diff", params=year)
    assert public["released"] is True and public["rows"] == []
    assert public["totals"]["unchanged"] > 0
    # Its cells are the public's /v1/aggregate answers of each snapshot, nothing finer.
    for seq in (4, 5):
        agg = _get(client, "/v1/aggregate", params={**year, "as_of": seq})
        assert public["totals"]["before" if seq == 4 else "after"] == agg["total"]
    assert "new" not in public["totals"] and "privacy" in public


def test_an_offense_a_revision_dropped_stays_in_the_published_months(
    layers_store_template: Path, tmp_path: Path
) -> None:
    """Release 2 deletes every record of one offense: the public release, which reads 2023
    from release 1, still knows the offense (it failed with a KeyError before)."""
    import pandas as pd

    from ingest.pipeline import ingest
    from ingest.profiles import load_profile
    from tests.conftest import sample_head

    shutil.copytree(layers_store_template, tmp_path / "store")
    store = Store(tmp_path / "store")
    first = sample_head(tmp_path / "release-1.csv.gz", 3000)
    frame = pd.read_csv(first, dtype=str, keep_default_na=False)
    gone = frame["delito"].value_counts().index[-1]  # the rarest offense of the release
    frame[frame["delito"] != gone].to_csv(tmp_path / "release-2.csv", index=False)
    profile = load_profile("fgj-cdmx")
    ingest(store, [str(first)], profile)
    ingest(store, [str(tmp_path / "release-2.csv")], profile, replace=True)
    assert gone not in {o for o, _, _ in offense_triples(store.snapshot())}
    tables.clear()
    with TestClient(create_app(ServerSettings(store=store.root))) as client:
        year = {"start": "2019-01-01", "end": "2020-01-01"}
        assert client.get("/v1/meta").status_code == 200
        assert client.get("/v1/aggregate", params={"unit": "colonia", **year}).status_code == 200
        diff_body = client.get("/v1/snapshots/diff", params=year).json()
        assert diff_body["released"] is True and diff_body["rows"] == []
