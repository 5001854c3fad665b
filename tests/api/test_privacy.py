"""SPEC §6: public responses try to leak, and must not; keys open exactly their scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import h3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.main import create_app
from api.privacy import Group, suppress
from api.settings import ServerSettings
from geo.types import BBox
from store import Store
from store.aggregate import Unit, aggregate
from store.filters import Filters
from store.keys import KeyRing, Role

COMMON = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"
RARE = "ROBO A TRANSEUNTE EN CINE CON VIOLENCIA"
SENSITIVE = "ABUSO SEXUAL"
FAMILY = "VIOLENCIA FAMILIAR"


@pytest.fixture(scope="module")
def public(sample_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as client:
        yield client


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def effective(echo: dict[str, Any]) -> Filters:
    """The Filters a response says it applied (its `filters` echo)."""
    args: dict[str, Any] = {}
    for key, value in echo.items():
        if key in ("start", "end"):
            args[key] = date.fromisoformat(value)
        elif key in ("categories", "offenses", "weekdays", "sources"):
            args[key] = tuple(value)
        elif key == "bbox":
            args[key] = BBox(*value)
        elif key == "within":
            args[key] = tuple(value)
        else:
            args[key] = value
    return Filters(**args)


def pinned(withheld: list[int], unlisted: int, k: int) -> bool:
    """Whether a reader who knows the sum of a group's withheld cells can tell one of them.

    Each withheld cell lies in [0, k - 1] as far as the reader knows (in [0, inf) once a
    complement, k or more, is among them); with m cells and sum R, a cell ranges over
    [max(0, R - (m - 1) B), min(B, R)], a single value only if m = 1 or R = m B (R = 0
    pins zeros, which are not protected).
    """
    m = len(withheld) + unlisted
    total = sum(withheld)
    if total == 0:
        return False
    if m == 1:
        return True
    return max(withheld) < k and total == m * (k - 1)


UNITS = ["colonia", "cuadrante", "street", "h3:5", "h3:7", "h3:8", "h3:9"]
DATES = [None, "2021-01-01", "2022-03-01", "2022-03-15", "2023-01-01", "2023-07-04", "2024-01-01"]
OFFENSES = [None, COMMON, RARE, SENSITIVE, FAMILY]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    unit=st.sampled_from(UNITS),
    start=st.sampled_from(DATES),
    end=st.sampled_from(DATES),
    offense=st.sampled_from(OFFENSES),
    hours=st.sampled_from([None, (22, 6), (8, 12)]),
    weekday=st.sampled_from([None, 5]),
)
def test_public_aggregates_never_leak(
    public: TestClient,
    sample_store: Store,
    unit: str,
    start: str | None,
    end: str | None,
    offense: str | None,
    hours: tuple[int, int] | None,
    weekday: int | None,
) -> None:
    params: dict[str, Any] = {"unit": unit}
    for name, value in (("start", start), ("end", end), ("offense", offense), ("weekday", weekday)):
        if value is not None:
            params[name] = value
    if hours:
        params["hour_from"], params["hour_to"] = hours
    response = public.get("/v1/aggregate", params=params)
    if response.status_code == 400:
        return  # e.g. end before start: nothing published
    assert response.status_code == 200, response.text
    body = response.json()
    privacy = body["privacy"]
    k = privacy["k"]
    # No coordinates or ids; no count in (0, k); no rate beside a hidden count.
    keys = {key for key, _ in walk(body)}
    assert not keys & {"lat", "lon", "latitude", "longitude", "incident_id", "coordinates"}
    for row in body["rows"]:
        assert row["count"] >= k
    for figure in (body["total"], body["unassigned"]):
        assert figure is None or figure >= k
    # Sensitive offenses: only on coarse units, over whole months, with the higher k.
    flt = effective(body["filters"])
    fine_time = bool(hours or weekday) or any(
        d is not None and not d.endswith("-01") for d in (start, end)
    )
    coarse = unit in ("colonia", "h3:5", "h3:7")
    selects_sensitive = offense in (None, SENSITIVE, FAMILY)  # the taxonomy's flags
    assert flt.include_sensitive == (selects_sensitive and coarse and not fine_time)
    assert privacy["sensitive_excluded"] == (selects_sensitive and not flt.include_sensitive)
    # The higher threshold exactly where sensitive offenses are counted.
    assert k == (10 if flt.include_sensitive else 5)
    # Withheld values cannot be recovered: checked against the true counts.
    manifest = sample_store.require_manifest()
    parsed = Unit.parse(unit, manifest)
    truth = aggregate(sample_store, manifest, parsed, flt)
    true_counts = dict(zip(truth.table.column("unit_id").to_pylist(),
                           truth.table.column("count").to_pylist(), strict=True))  # fmt: skip
    shown = {r["unit_id"]: r["count"] for r in body["rows"]}
    assert all(true_counts[u] == c for u, c in shown.items())
    withheld = [c for u, c in true_counts.items() if u not in shown]
    if body["unassigned"] is None:
        withheld.append(truth.unassigned)
    if parsed.kind == "h3":
        assert parsed.res is not None
        for res in range(5, parsed.res):
            children: dict[str, list[str]] = {}
            for cell in true_counts:
                children.setdefault(h3.cell_to_parent(cell, res), []).append(cell)
            for parent, cells in children.items():
                if sum(true_counts[c] for c in cells) < k:
                    continue  # the parent is withheld wherever it is asked for
                hidden = [true_counts[c] for c in cells if c not in shown]
                size = h3.cell_to_children_size(parent, parsed.res)
                assert not pinned(hidden, size - len(cells), k), (parent, hidden)
    else:
        layer = manifest.street_layer if parsed.kind == "street" else parsed.layer
        assert layer is not None
        features = manifest.layers[layer].features
        assert not pinned(withheld, features - len(true_counts), k)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    k=st.integers(3, 12),
    cuts=st.lists(st.integers(0, 29), max_size=5),
    unlisted=st.integers(0, 3),
)
def test_suppression_rule(values: list[int], k: int, cuts: list[int], unlisted: int) -> None:
    n = len(values)
    bounds = sorted({c for c in cuts if 0 < c < n})
    parts = [g for g in np.split(np.arange(n), bounds) if g.size]
    groups = [Group(np.arange(n), unlisted)] + [Group(g) for g in parts]
    hidden = suppress(values, k, groups)
    assert all(h for v, h in zip(values, hidden, strict=True) if v < k)  # zeros included
    for group in groups:
        withheld = [values[i] for i in group.cells if hidden[i]]
        shown = [values[i] for i in group.cells if not hidden[i]]
        # Pinned only where nothing of the group is shown (no sum to subtract from).
        assert not pinned(withheld, group.unlisted, k) or not shown


def test_sensitive_offenses_need_coarse_units_and_months(public: TestClient) -> None:
    year = {"start": "2023-01-01", "end": "2024-01-01", "offense": SENSITIVE}
    coarse = public.get("/v1/aggregate", params={"unit": "h3:5", **year}).json()
    assert coarse["privacy"]["k"] == 10 and not coarse["privacy"]["sensitive_excluded"]
    assert coarse["rows"] and coarse["filters"]["include_sensitive"]
    for fine in ({"unit": "street", **year}, {"unit": "h3:9", **year},
                 {"unit": "colonia", **year, "hour_from": 22, "hour_to": 6},
                 {"unit": "colonia", **year, "start": "2023-01-02"}):  # fmt: skip
        body = public.get("/v1/aggregate", params=fine).json()
        assert body["privacy"]["sensitive_excluded"] and not body["filters"]["include_sensitive"]
        assert body["total"] is None and not body["rows"]  # only abuse: nothing else counted
    days = public.get("/v1/timeseries", params={"interval": "day", **year}).json()
    assert days["privacy"]["sensitive_excluded"] and not days["filters"]["include_sensitive"]
    months = public.get("/v1/timeseries", params={"interval": "month", **year}).json()
    assert not months["privacy"]["sensitive_excluded"]
    assert all(r["count"] is None or r["count"] >= 10 for r in months["rows"])


def test_public_series_and_comparisons_hide_small_counts(public: TestClient) -> None:
    for interval in ("day", "week", "month"):
        body = public.get("/v1/timeseries", params={"interval": interval, "offense": RARE}).json()
        k = body["privacy"]["k"]
        assert all(r["count"] is None or r["count"] >= k for r in body["rows"])
        assert body["privacy"]["withheld"] == any(r["count"] is None for r in body["rows"])
    params = {"unit": "cuadrante", "a_start": "2022-01-01", "a_end": "2023-01-01",
              "b_start": "2023-01-01", "b_end": "2024-01-01"}  # fmt: skip
    body = public.get("/v1/compare", params=params).json()
    assert body["rows"] and body["privacy"]["withheld"]
    assert all(r["count_a"] >= 5 and r["count_b"] >= 5 for r in body["rows"])


def test_publication_delay(sample_store: Store) -> None:
    # A delay long enough to reach into the sample (which ends in January 2025).
    cutoff = date(2024, 6, 1)
    delay = (datetime.now(UTC).date() - cutoff).days
    app = create_app(ServerSettings(store=sample_store.root, privacy_delay_days=delay))
    with TestClient(app) as client:
        body = client.get("/v1/aggregate", params={"unit": "colonia", "offense": COMMON}).json()
        assert body["filters"]["end"] == body["privacy"]["published_until"] == "2024-06-01"
        series = client.get("/v1/timeseries", params={"interval": "day", "offense": COMMON})
        assert series.json()["rows"][-1]["period"] == "2024-05-31"
        late = client.get("/v1/aggregate", params={"unit": "colonia", "start": "2024-06-01"})
        assert late.status_code == 400 and late.json()["parameter"] == "start"
        compare = client.get("/v1/compare", params={"unit": "colonia", "a_start": "2023-01-01",
                             "a_end": "2023-07-01", "b_start": "2024-01-01", "b_end": "2024-07-01"})  # fmt: skip
        assert compare.status_code == 400 and compare.json()["parameter"] == "b_end"
        meta = client.get("/v1/meta").json()
        assert meta["date_max"] <= "2024-05-31"
        sensitive = client.get("/v1/timeseries", params={"interval": "month",
                                                         "offense": SENSITIVE}).json()  # fmt: skip
        assert sensitive["rows"][-1]["period"] == "2024-05-01"  # whole months only


PRINCIPALS = ["public", "analyst", "analyst-fgj", "analyst-ssp", "admin", "revoked", "garbage"]
ROUTES = [
    ("/health", {}),
    ("/v1/meta", {}),
    ("/v1/aggregate", {"unit": "colonia", "start": "2023-01-01", "end": "2024-01-01"}),
    ("/v1/timeseries", {"interval": "month", "start": "2023-01-01", "end": "2024-01-01"}),
    ("/v1/compare", {"unit": "colonia", "a_start": "2022-01-01", "a_end": "2023-01-01",
                     "b_start": "2023-01-01", "b_end": "2024-01-01"}),
    ("/v1/incidents", {"start": "2023-01-01", "end": "2023-02-01", "limit": 10}),
    ("/v1/hotspots", {"unit": "h3:6", "start": "2023-01-01", "end": "2024-01-01"}),
    ("/v1/concentration", {"unit": "colonia", "start": "2023-01-01", "end": "2024-01-01"}),
    ("/v1/hotspots/emerging", {"unit": "h3:6", "start": "2023-01-01", "end": "2024-01-01"}),
    ("/v1/near-repeat", {"start": "2023-01-01", "end": "2023-04-01"}),
    ("/v1/hotspots", {"method": "kde", "start": "2023-01-01", "end": "2023-04-01"}),
]  # fmt: skip
ANALYST_ONLY = ("/v1/incidents", "/v1/hotspots", "/v1/concentration", "/v1/hotspots/emerging",
                "/v1/near-repeat")  # fmt: skip


@pytest.fixture(scope="module")
def keys(sample_store: Store) -> dict[str, dict[str, str]]:
    ring = KeyRing(sample_store.root)
    with sample_store.writing():
        made = {
            "analyst": ring.create(Role.analyst)[1],
            "analyst-fgj": ring.create(Role.analyst, ("fgj-cdmx",))[1],
            "analyst-ssp": ring.create(Role.analyst, ("ssp-cdmx",))[1],
            "admin": ring.create(Role.admin)[1],
        }
        revoked, text = ring.create(Role.analyst)
        ring.revoke(revoked.id)
    made["revoked"] = text
    made["garbage"] = "cdr_00000000_not-a-key"
    headers = {name: {"Authorization": f"Bearer {text}"} for name, text in made.items()}
    headers["analyst-fgj"] = {"X-API-Key": made["analyst-fgj"]}  # the other header works too
    headers["public"] = {}
    return headers


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("route", range(len(ROUTES)))
def test_authorization_matrix(
    public: TestClient, keys: dict[str, dict[str, str]], principal: str, route: int
) -> None:
    path, params = ROUTES[route]
    response = public.get(path, params=params, headers=keys[principal])
    if principal in ("revoked", "garbage") and path != "/health":
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
        return
    if path in ANALYST_ONLY and principal == "public":
        assert response.status_code == 403 and response.json()["error"] == "forbidden"
        return
    assert response.status_code == 200, response.text
    body = response.json()
    if path == "/v1/aggregate":
        # Public: protected; analysts: exact, within their sources (the sample is FGJ's).
        assert (body["privacy"] is None) == (principal != "public")
        if principal == "analyst-ssp":
            assert body["total"] == 0 and body["rows"] == []
        elif principal != "public":
            assert body["total"] > 0 and body["rows"]
    if path == "/v1/meta":
        if principal == "analyst-ssp":
            assert body["records"] == 0 and body["offenses"] == {}
        elif principal == "public":
            assert body["records"] is None
        else:
            assert body["records"] == 50_000
    if path == "/v1/timeseries" and principal == "analyst-ssp":
        assert all(r["count"] == 0 for r in body["rows"])
    if path == "/v1/compare" and principal == "analyst-ssp":
        assert body["rows"] == []
    if path == "/v1/incidents":
        assert len(body["rows"]) == (0 if principal == "analyst-ssp" else 10)
    if path in ("/v1/hotspots", "/v1/concentration") and "method" not in params:
        assert body["total"] == 0 if principal == "analyst-ssp" else body["total"] > 0
    if path == "/v1/hotspots/emerging":
        none = body["summary"] == {"no_pattern": body["n"]}
        assert none if principal == "analyst-ssp" else not none
    if path == "/v1/near-repeat" or "method" in params:
        assert body["events"] == 0 if principal == "analyst-ssp" else body["events"] > 0


def test_rate_limits_per_address_and_per_key(
    sample_store: Store, keys: dict[str, dict[str, str]]
) -> None:
    settings = ServerSettings(
        store=sample_store.root, rate_public="3/minute", rate_keyed="5/minute"
    )
    with TestClient(create_app(settings)) as client:
        statuses = [client.get("/v1/meta").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = client.get("/v1/meta")
        assert refused.json()["error"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert client.get("/health").status_code == 200  # liveness is never limited
        # A forged key does not escape the address's limit; a real key has its own.
        assert client.get("/v1/meta", headers=keys["garbage"]).status_code == 429
        keyed = [client.get("/v1/meta", headers=keys["analyst"]).status_code for _ in range(6)]
        assert keyed == [200] * 5 + [429]
        assert client.get("/v1/meta", headers=keys["admin"]).status_code == 200
