"""SPEC §6: public responses try to leak, and must not; keys open exactly their scope."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import h3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.main import create_app
from api.settings import ServerSettings
from disclosure.suppression import Group, suppress
from geo.types import BBox
from store import Store
from store.filters import Filters
from store.keys import KeyRing, Role
from tests.conftest import ROOT

COMMON = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"
# Rare but real: a few cases a year in the 50k sample (published for the whole area).
RARE = "ROBO A TRANSEUNTE EN NEGOCIO CON VIOLENCIA"
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
COARSE = {"colonia", "h3:5", "h3:7"}
PERIODS = [
    ("2021-01-01", "2022-01-01"), ("2023-01-01", "2024-01-01"), ("2022-04-01", "2022-07-01"),
    ("2023-10-01", "2024-01-01"), ("2022-03-01", "2022-04-01"), ("2024-12-01", "2025-01-01"),
]  # fmt: skip
CRIMES: list[dict[str, str]] = [
    {}, {"offense": COMMON}, {"offense": RARE}, {"offense": SENSITIVE}, {"offense": FAMILY},
    {"category": "robo_transeunte"}, {"category": "violacion"},
    {"category": "otros_vida_integridad"},  # mixed: sensitive and other offenses
]  # fmt: skip
TAXONOMY = ROOT / "data" / "taxonomy" / "offenses.csv"


def sensitive_taxonomy() -> tuple[set[str], set[str]]:
    """Sensitive offenses, and categories all of whose offenses are sensitive (taxonomy)."""
    flags: dict[str, set[bool]] = {}
    offenses = set()
    with TAXONOMY.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            flag = row["sensitive"] == "true"
            flags.setdefault(row["category"], set()).add(flag)
            if flag:
                offenses.add(row["offense"])
    return offenses, {c for c, f in flags.items() if f == {True}}


def truth(
    store: Store, unit: str, start: str, end: str, crime: dict[str, str]
) -> tuple[dict[str | None, int], int]:
    """True counts per unit (None: outside every unit) and in all, straight from the files.

    What a public figure counts: non-sensitive offenses for no filter and for a category's
    other offenses; a wholly sensitive category or an offense as it is.
    """
    files = [str(p) for p in store.data_files(store.require_manifest())]
    sensitive, wholly = sensitive_taxonomy()
    where, params = "local_date >= ? AND local_date < ?", [start, end]
    if "offense" in crime:
        where += " AND offense = ?"
        params.append(crime["offense"])
    elif "category" in crime:
        where += " AND category = ?"
        params.append(crime["category"])
        if crime["category"] not in wholly:
            where += " AND NOT list_contains(?, offense)"
            params.append(sorted(sensitive))
    else:
        where += " AND NOT list_contains(?, offense)"
        params.append(sorted(sensitive))
    column = "h3" if unit.startswith("h3:") else "street_id" if unit == "street" else unit
    rows = duckdb.sql(
        f"SELECT {column} AS u, count(*) FROM read_parquet(?) WHERE {where} GROUP BY ALL",
        params=[files, *params],
    ).fetchall()
    counts: dict[str | None, int] = {}
    for u, n in rows:
        key = u
        if unit.startswith("h3:"):
            key = h3.cell_to_parent(h3.int_to_str(u), int(unit[3:]))  # h3-py as the oracle
        counts[key] = counts.get(key, 0) + n
    return counts, sum(counts.values())


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    unit=st.sampled_from(UNITS),
    period=st.sampled_from(PERIODS),
    crime=st.sampled_from(CRIMES),
    place=st.sampled_from(
        [None, ("bbox", "-99.20,19.38,-99.12,19.45"), ("within", "colonia:15-017")]
    ),  # fmt: skip
)
def test_public_aggregates_never_leak(
    public: TestClient,
    sample_store: Store,
    unit: str,
    period: tuple[str, str],
    crime: dict[str, str],
    place: tuple[str, str] | None,
) -> None:
    params: dict[str, Any] = {"unit": unit, "start": period[0], "end": period[1], **crime}
    if place:
        params[place[0]] = place[1]
    response = public.get("/v1/aggregate", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    privacy = body["privacy"]
    k = privacy["k"]
    # No coordinates or ids; no count in (0, k).
    keys = {key for key, _ in walk(body)}
    assert not keys & {"lat", "lon", "latitude", "longitude", "incident_id", "coordinates"}
    for row in body["rows"]:
        assert row["count"] >= k
    for figure in (body["total"], body["unassigned"]):
        assert figure is None or figure == 0 and unit.startswith("h3") or figure >= k
    # Sensitive offenses: only on coarse units, with the higher k; never inside "all".
    sensitive, wholly = sensitive_taxonomy()
    names_sensitive = crime.get("offense") in sensitive or crime.get("category") in wholly
    assert k == (10 if names_sensitive else 5)
    if names_sensitive and unit not in COARSE:
        assert privacy["sensitive_excluded"] and not body["rows"]
    if not crime or crime.get("category") == "otros_vida_integridad":
        assert privacy["sensitive_excluded"] and not body["filters"]["include_sensitive"]
    # Every published count is the true count of its whole unit; withheld ones stay unknown.
    counts, total = truth(sample_store, unit, *period, crime)
    shown = {r["unit_id"]: r["count"] for r in body["rows"]}
    if not (names_sensitive and unit not in COARSE):
        assert all(counts.get(u) == c for u, c in shown.items())
        assert body["total"] in (None, total)
    if place is None and shown and not unit.startswith("h3"):
        manifest = sample_store.require_manifest()
        layer = manifest.street_layer if unit == "street" else unit
        withheld = [c for u, c in counts.items() if u not in shown and u is not None]
        if body["unassigned"] is None:
            withheld.append(counts.get(None, 0))
        units = manifest.layers[str(layer)].features
        assert not pinned(withheld, units - len([u for u in counts if u is not None]), k)
    if place is not None:
        # A place picks whole units: the same counts as without it, fewer rows.
        whole = public.get("/v1/aggregate", params={p: v for p, v in params.items()
                                                    if p != place[0]}).json()  # fmt: skip
        everywhere = {r["unit_id"]: r["count"] for r in whole["rows"]}
        assert all(everywhere[u] == c for u, c in shown.items())
        assert body["total"] == whole["total"]


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


def test_sensitive_offenses_only_on_coarse_units(public: TestClient) -> None:
    year = {"start": "2023-01-01", "end": "2024-01-01", "offense": SENSITIVE}
    coarse = public.get("/v1/aggregate", params={"unit": "h3:5", **year}).json()
    assert coarse["privacy"]["k"] == 10 and not coarse["privacy"]["sensitive_excluded"]
    assert coarse["rows"] and coarse["filters"]["include_sensitive"]
    for fine in (
        {"unit": "street", **year},
        {"unit": "h3:9", **year},
        {"unit": "cuadrante", **year},
    ):
        body = public.get("/v1/aggregate", params=fine).json()
        assert body["privacy"]["sensitive_excluded"] and not body["rows"]
    # The whole area is coarse: its monthly series of the offense is published.
    months = public.get("/v1/timeseries", params=year).json()
    assert not months["privacy"]["sensitive_excluded"]
    assert all(r["count"] is None or r["count"] >= 10 for r in months["rows"])


def test_outside_the_release_is_refused(public: TestClient) -> None:
    """Ad hoc windows, hours, weekdays and offense sets would make new, unprotected cells."""
    cases = [
        ("/v1/aggregate", {"unit": "colonia", "start": "2023-01-01", "end": "2023-12-01"}, "end"),
        ("/v1/aggregate", {"unit": "colonia", "start": "2023-02-01", "end": "2023-05-01"}, "end"),
        ("/v1/aggregate", {"unit": "colonia", "start": "2023-01-01"}, "end"),
        ("/v1/aggregate", {"unit": "colonia", "hour_from": 22, "hour_to": 6}, "hour_from"),
        ("/v1/aggregate", {"unit": "colonia", "weekday": 5}, "weekday"),
        ("/v1/aggregate", {"unit": "colonia", "offense": [COMMON, RARE]}, "offense"),
        ("/v1/aggregate", {"unit": "colonia", "category": ["robo_transeunte", "robo_negocio"]},
         "category"),
        ("/v1/aggregate", {"unit": "h3:10"}, "unit"),
        ("/v1/timeseries", {"interval": "day"}, "interval"),
        ("/v1/timeseries", {"start": "2023-01-15"}, "start"),
        ("/v1/compare", {"unit": "colonia", "a_start": "2023-01-01", "a_end": "2023-06-15",
                         "b_start": "2024-01-01", "b_end": "2024-07-01"}, "a_end"),
        ("/v1/tiles/hex/12/919/1833.mvt", {"start": "2023-01-01", "end": "2023-03-01"}, "end"),
    ]  # fmt: skip
    for path, params, parameter in cases:
        response = public.get(path, params=params)
        assert response.status_code == 400, (path, params, response.text)
        assert response.json()["parameter"] == parameter, response.json()


def test_every_route_publishes_the_same_cells(public: TestClient) -> None:
    """A month in a series, a quarter in a comparison, a cell in a tile: one table."""
    offense = {"offense": COMMON}
    series = public.get("/v1/timeseries", params={"unit": "colonia", "id": "15-017",
                        "start": "2023-01-01", "end": "2024-01-01", **offense}).json()  # fmt: skip
    assert len(series["rows"]) == 12
    for row in series["rows"]:
        start = date.fromisoformat(row["period"])
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        month = public.get("/v1/aggregate", params={"unit": "colonia", "start": row["period"],
                           "end": end.isoformat(), **offense}).json()  # fmt: skip
        shown = {r["unit_id"]: r["count"] for r in month["rows"]}
        assert shown.get("15-017") == row["count"]
    params = {"unit": "cuadrante", "a_start": "2022-01-01", "a_end": "2023-01-01",
              "b_start": "2023-07-01", "b_end": "2023-10-01"}  # fmt: skip
    body = public.get("/v1/compare", params=params).json()
    assert body["rows"] and body["privacy"]["withheld"]
    a = public.get("/v1/aggregate", params={"unit": "cuadrante", "start": "2022-01-01",
                                            "end": "2023-01-01"}).json()  # fmt: skip
    b = public.get("/v1/aggregate", params={"unit": "cuadrante", "start": "2023-07-01",
                                            "end": "2023-10-01"}).json()  # fmt: skip
    in_a = {r["unit_id"]: r["count"] for r in a["rows"]}
    in_b = {r["unit_id"]: r["count"] for r in b["rows"]}
    assert {r["unit_id"] for r in body["rows"]} == in_a.keys() & in_b.keys()
    for r in body["rows"]:
        assert (r["count_a"], r["count_b"]) == (in_a[r["unit_id"]], in_b[r["unit_id"]])


def test_publication_delay(sample_store: Store) -> None:
    # A delay long enough to reach into the sample (which ends in January 2025).
    cutoff = date(2024, 6, 1)
    delay = (datetime.now(UTC).date() - cutoff).days
    app = create_app(ServerSettings(store=sample_store.root, privacy_delay_days=delay))
    with TestClient(app) as client:
        body = client.get("/v1/aggregate", params={"unit": "colonia", "offense": COMMON}).json()
        # The default is the last whole year that is published.
        assert body["filters"]["end"] == "2024-01-01"
        assert body["privacy"]["published_until"] == "2024-06-01"
        late = client.get("/v1/aggregate", params={"unit": "colonia", "start": "2024-06-01",
                                                   "end": "2024-07-01"})  # fmt: skip
        assert late.status_code == 400 and late.json()["parameter"] == "end"
        spring = client.get("/v1/aggregate", params={"unit": "colonia", "start": "2024-04-01",
                                                     "end": "2024-07-01"})  # fmt: skip
        assert spring.status_code == 400
        quarter = client.get("/v1/aggregate", params={"unit": "colonia", "start": "2024-01-01",
                                                      "end": "2024-04-01"})  # fmt: skip
        assert quarter.status_code == 200
        compare = client.get("/v1/compare", params={"unit": "colonia", "a_start": "2023-01-01",
                             "a_end": "2024-01-01", "b_start": "2024-01-01", "b_end": "2025-01-01"})  # fmt: skip
        assert compare.status_code == 400 and compare.json()["parameter"] == "end"
        meta = client.get("/v1/meta").json()
        assert meta["date_max"] <= "2024-05-31"
        assert meta["public"]["published_until"] == "2024-06-01"
        assert meta["public"]["default"] == ["2023-01-01", "2024-01-01"]
        assert "h3:10" not in meta["units"] and "h3:9" in meta["units"]
        series = client.get("/v1/timeseries", params={"start": "2024-01-01",
                                                      "offense": SENSITIVE}).json()  # fmt: skip
        assert series["rows"][-1]["period"] == "2024-05-01"  # whole months only


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
    ("/v1/snapshots", {}),
    ("/v1/locate", {"lon": -99.1332, "lat": 19.4326, "start": "2023-01-01", "end": "2024-01-01"}),
    ("/v1/snapshots/diff", {"unit": "colonia"}),
    ("/v1/area", {"within": "circle:-99.1332,19.4326,800", "start": "2023-01-01", "end": "2024-01-01"}),
    ("/v1/reports/compstat", {"unit": "colonia", "id": "15-040", "week": "2023-W20"}),
    ("/v1/maps/static.png", {"bbox": "-99.16,19.41,-99.11,19.45", "start": "2023-01-01", "end": "2024-01-01"}),
]  # fmt: skip
ANALYST_ONLY = ("/v1/incidents", "/v1/hotspots", "/v1/concentration", "/v1/hotspots/emerging",
                "/v1/near-repeat", "/v1/reports/compstat")  # fmt: skip


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
    if path.endswith(".png"):  # a picture of the heatmap this role sees (test_maps.py)
        assert response.headers["content-type"] == "image/png"
        return
    body = response.json()
    if path == "/v1/area":  # the public: whole colonias; keys: their sources' records inside
        assert (body["area"] is not None) == (principal == "public")
        if principal == "analyst-ssp":
            assert body["total"] == 0
        elif principal != "public":
            assert body["total"] > 0
    if path == "/v1/reports/compstat":
        assert (body["total"]["ytd"]["current"] == 0) == (principal == "analyst-ssp")
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
        elif principal == "public":  # the release's whole-area figure, or withheld
            assert body["records"] is None or body["records"] >= 5
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
    if path == "/v1/snapshots":  # counts and batches for keys, of their sources only
        newest = body["snapshots"][0]
        expected = {"public": None, "analyst-ssp": 0}.get(principal, 50_000)
        assert newest["records"] == expected
        assert (newest["batches"] is None) == (principal == "public")
    if path == "/v1/locate":  # the colonia's count as /v1/aggregate gives it to this role
        colonia = next(u for u in body["units"] if u["unit"] == "colonia")
        if principal == "analyst-ssp":
            assert colonia["count"] == 0
        elif principal == "public":
            assert colonia["count"] is None or colonia["count"] >= 5
        else:
            assert colonia["count"] > 0
    if path == "/v1/snapshots/diff":  # the ingest of the sample, seen by role
        assert body["released"] == (principal == "public")
        if principal == "public":
            assert "new" not in body["totals"] and body["privacy"]["k"] >= 5
        else:
            assert body["totals"]["new"] == (0 if principal == "analyst-ssp" else 50_000)


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


def test_the_basemap_reveals_no_record(
    sample_store: Store, layers_store_template: Path, tmp_path: Path
) -> None:
    """The basemap of a store with 50,000 records is byte for byte the one of the same layers
    without any: its tiles cannot be differenced against the records."""
    from pmtiles.reader import MmapSource, all_tiles

    from api.basemap import build_store_basemap

    tiles = []
    for name, store in (("with", sample_store), ("without", Store(layers_store_template))):
        path, _ = build_store_basemap(store, maxzoom=13, path=tmp_path / f"{name}.pmtiles")
        with path.open("rb") as handle:
            tiles.append(dict(all_tiles(MmapSource(handle))))
    assert tiles[0] and tiles[0] == tiles[1]


def _numbers(body: Any) -> list[int]:
    """Every count of an answer (totals, rows, months, categories), withheld ones left out."""
    return [v for k, v in walk(body) if k in ("count", "total") and isinstance(v, int)]


def test_drawn_areas_are_whole_units_to_the_public(public: TestClient, sample_store: Store) -> None:
    """Two public circles a building apart (5 m) around real records: each answer is the
    published cells of the whole colonias it touches, named; where the two differ, they
    differ by whole published cells (at least k), never by the building's records."""
    files = [str(p) for p in sample_store.data_files(sample_store.require_manifest())]
    points = duckdb.execute(
        "SELECT lon, lat FROM read_parquet(?) WHERE local_date >= DATE '2023-01-01' "
        "AND local_date < DATE '2024-01-01' AND colonia IS NOT NULL "
        "ORDER BY hash(incident_id) LIMIT 12",
        [files],
    ).fetchall()
    year = {"start": "2023-01-01", "end": "2024-01-01"}
    whole = public.get("/v1/aggregate", params={"unit": "colonia", **year}).json()
    k = whole["privacy"]["k"]
    published = {r["unit_id"]: r["count"] for r in whole["rows"]}
    differed = 0
    for (lon, lat), metres in zip(points, [40, 80, 150, 300, 600, 1200] * 2, strict=True):
        answers = []
        # The centre (metres - 2.5) east of the record: inside the first circle, outside
        # the second, 5 m smaller.
        east = lon + (metres - 2.5) / (111_320 * np.cos(np.radians(lat)))
        for r in (metres, metres - 5):
            centre = f"circle:{east:.7f},{lat},{r}"
            for path in ("/v1/aggregate", "/v1/timeseries", "/v1/area"):
                got = public.get(path, params={"unit": "colonia", "within": centre, **year})
                if path != "/v1/aggregate":
                    got = public.get(path, params={"within": centre, **year})
                assert got.status_code == 200, got.text
                body = got.json()
                units = body["area"]["units"]
                assert units and all(n >= k for n in _numbers(body)), (path, centre)
                if path == "/v1/aggregate":
                    rows = {r["unit_id"]: r["count"] for r in body["rows"]}
                    assert rows == {u: published[u] for u in units if u in published}
                    if all(u in published for u in units):
                        assert body["total"] == sum(published[u] for u in units)
                    else:
                        assert body["total"] is None
            answers.append(body)
        a, b = ({k: v for k, v in x.items() if k != "filters"} for x in answers)
        if a["area"]["units"] == b["area"]["units"]:
            assert a == b
        else:
            differed += 1
            # /v1/area's: every category, offense and month is a sum over whole units.
            pairs = [(a["total"], b["total"])]
            pairs += [
                (x["count"], y["count"]) for x, y in zip(a["series"], b["series"], strict=True)
            ]
            for x, y in pairs:
                assert x is None or y is None or x == y or abs(x - y) >= k
    assert differed >= 1  # some pairs cross a colonia's edge
    # With an API key the same circles are exact; the public's never are points.
    records = public.get("/v1/incidents", params={"within": "circle:-99.13,19.43,300"})
    assert records.status_code in (401, 403)
