"""Offense and category names as typed: resolved to the real one, or refused with the closest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from store import Store

YEAR = {"start": "2023-01-01", "end": "2024-01-01"}


@pytest.fixture(scope="module")
def app(sample_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as client:
        yield client


def _closest(message: str) -> set[str]:
    """The names a refusal offers ("the closest are A, B, C (...)")."""
    if "the closest are " not in message:
        return set()
    listed = message.split("the closest are ", 1)[1].rsplit(" (", 1)[0]
    return set(listed.split(", "))


def _key(analyst_key: str) -> dict[str, str]:
    return {"X-API-Key": analyst_key}


def test_case_and_accents_resolve_to_the_real_name(app: TestClient, analyst_key: str) -> None:
    exact = app.get("/v1/aggregate", params={"unit": "cuadrante", "offense": "USURPACIÓN DE IDENTIDAD", **YEAR},
                    headers=_key(analyst_key))  # fmt: skip
    typed = app.get("/v1/aggregate", params={"unit": "cuadrante", "offense": " usurpacion  de identidad ", **YEAR},
                    headers=_key(analyst_key))  # fmt: skip
    assert exact.status_code == typed.status_code == 200, typed.text
    assert typed.json()["total"] == exact.json()["total"] > 0
    assert typed.json()["filters"]["offenses"] == [
        "USURPACIÓN DE IDENTIDAD"
    ]  # the name used, echoed


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/aggregate", {"unit": "colonia"}),
        ("/v1/timeseries", {}),
        ("/v1/compare", {"unit": "colonia", "a_start": "2022-01-01", "a_end": "2023-01-01",
                         "b_start": "2023-01-01", "b_end": "2024-01-01"}),
        ("/v1/hotspots", {"unit": "colonia"}),
        ("/v1/incidents", {}),
    ],
)  # fmt: skip
def test_an_unknown_offense_is_refused_with_the_closest(
    app: TestClient, analyst_key: str, path: str, params: dict[str, str]
) -> None:
    got = app.get(path, params={**params, "offense": "ROBO A TRANSEUNTE CON VIOLENCIA"},
                  headers=_key(analyst_key))  # fmt: skip
    assert got.status_code == 400, got.text
    body = got.json()
    assert body["parameter"] == "offense" and "unknown offense" in body["message"]
    every = set(app.get("/v1/meta", headers=_key(analyst_key)).json()["offenses"])
    offered = _closest(body["message"])
    assert offered and offered <= every
    assert all(name.startswith("ROBO A TRANSEUNTE") for name in offered)


def test_an_unknown_category_names_real_categories(app: TestClient, analyst_key: str) -> None:
    got = app.get("/v1/aggregate", params={"unit": "colonia", "category": "robo_transeunt"},
                  headers=_key(analyst_key))  # fmt: skip
    assert got.status_code == 400 and got.json()["parameter"] == "category"
    assert "robo_transeunte" in got.json()["message"]
    nothing = app.get("/v1/aggregate", params={"unit": "colonia", "category": "unicornios"},
                      headers=_key(analyst_key))  # fmt: skip
    assert nothing.status_code == 400 and "closest" not in nothing.json()["message"]


def test_the_public_is_offered_published_names_only(app: TestClient, analyst_key: str) -> None:
    published = set(app.get("/v1/meta").json()["offenses"])
    every = set(app.get("/v1/meta", headers=_key(analyst_key)).json()["offenses"])
    unpublished = sorted(every - published)
    assert unpublished, "the sample has offenses the release withholds everywhere"
    # An offense withheld everywhere is as unknown to the public as one that never
    # happened: the same answer, and no suggestion that names it.
    answers = []
    for name in (unpublished[0], "ROBO DE UNICORNIO"):
        got = app.get("/v1/aggregate", params={"unit": "cuadrante", "offense": name})
        assert got.status_code == 400 and got.json()["parameter"] == "offense"
        message = got.json()["message"].replace(name, "<name>")
        answers.append(message.split("unknown offense")[0] + "unknown offense")
        assert _closest(got.json()["message"]) <= published
    assert len(set(answers)) == 1
    name = sorted(published)[0]
    got = app.get("/v1/aggregate", params={"unit": "cuadrante", "offense": name.lower()})
    assert got.status_code == 200 and got.json()["filters"]["offenses"] == [name]
