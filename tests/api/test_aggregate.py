"""/v1/aggregate against an independent count (pandas + h3-py) over the snapshot's files."""

from __future__ import annotations

import json
from collections.abc import Iterator

import h3
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from api.main import create_app
from api.settings import ServerSettings
from store import Store

OFFENSE = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"


@pytest.fixture(scope="module")
def served(sample_store: Store, analyst_key: str) -> Iterator[tuple[TestClient, pd.DataFrame]]:
    root = sample_store.root
    # The oracle reads exactly the files `cuadra info --json` names.
    info = json.loads(CliRunner().invoke(cli, ["info", "--store", str(root), "--json"]).output)
    frame = pd.concat(
        [pq.read_table(f, columns=["local_date", "local_hour", "time_imputed", "offense",
                                     "category", "lon", "lat", "h3", "colonia", "cuadrante",
                                     "street_id"]).to_pandas()
         for f in info["files"]]
    )  # fmt: skip
    for col in ("offense", "category", "colonia", "cuadrante", "street_id"):
        frame[col] = frame[col].astype(object)
    frame["local_date"] = pd.to_datetime(frame["local_date"])
    # Exact figures are an analyst's: public responses are checked in test_privacy.py.
    headers = {"Authorization": f"Bearer {analyst_key}"}
    with TestClient(create_app(ServerSettings(store=root)), headers=headers) as client:
        yield client, frame


def oracle(frame: pd.DataFrame, unit: str, **f: object) -> dict[str, int]:
    sel = matching(frame, **f)
    if unit.startswith("h3:"):
        res = int(unit[3:])
        keys = [h3.cell_to_parent(h3.int_to_str(int(c)), res) for c in sel.h3]
    else:
        keys = sel["street_id" if unit == "street" else unit].tolist()
    counts = pd.Series(keys, dtype=object).dropna().value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def matching(frame: pd.DataFrame, **f: object) -> pd.DataFrame:
    """The records the filters select, by the documented rules (docs/api.md)."""
    sel = frame
    if "start" in f:
        sel = sel[sel.local_date >= pd.Timestamp(str(f["start"]))]
    if "end" in f:
        sel = sel[sel.local_date < pd.Timestamp(str(f["end"]))]
    if "offense" in f:
        sel = sel[sel.offense == f["offense"]]
    if "hour_from" in f:
        a, b = int(f["hour_from"]), int(f["hour_to"])  # type: ignore[call-overload]
        sel = sel[~sel.time_imputed]  # an hour window counts records with a real time only
        sel = (
            sel[(sel.local_hour >= a) & (sel.local_hour < b)]
            if a < b
            else sel[(sel.local_hour >= a) | (sel.local_hour < b)]
        )
    if "weekday" in f:
        sel = sel[sel.local_date.dt.day_of_week == f["weekday"]]
    if "bbox" in f:
        x0, y0, x1, y1 = (float(v) for v in str(f["bbox"]).split(","))
        sel = sel[sel.lon.between(x0, x1) & sel.lat.between(y0, y1)]
    if "within" in f:
        layer, ident = str(f["within"]).split(":", 1)
        sel = sel[sel[layer] == ident]
    return sel


CASES = [
    {"start": "2023-01-01", "end": "2024-01-01"},
    {"offense": OFFENSE, "hour_from": 22, "hour_to": 6},
    {"start": "2021-01-01", "end": "2023-01-01", "weekday": 4},
    {"bbox": "-99.20,19.38,-99.12,19.45", "hour_from": 8, "hour_to": 12},
    {"within": "cuadrante:C-1.2.10"},
]


@pytest.mark.parametrize("unit", ["colonia", "cuadrante", "street", "h3:5", "h3:8", "h3:12"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_counts_equal_the_oracle(
    served: tuple[TestClient, pd.DataFrame], unit: str, case: int
) -> None:
    client, frame = served
    params = {"unit": unit, **CASES[case]}
    body = client.get("/v1/aggregate", params=params).json()
    got = {r["unit_id"]: r["count"] for r in body["rows"]}
    assert got == oracle(frame, unit, **CASES[case])
    assert body["total"] == sum(got.values()) + body["unassigned"]
    assert body["snapshot"] == 4  # 3 layer snapshots, then the ingest
    if "hour_from" in CASES[case]:  # the answer says what the window left out
        rest = {k: v for k, v in CASES[case].items() if k not in ("hour_from", "hour_to")}
        unknown = int(matching(frame, **rest).time_imputed.sum())
        assert body["filters"]["time_unknown_left_out"] == unknown > 0
    else:
        assert "time_unknown_left_out" not in body["filters"]


def test_records_and_tiles_say_what_an_hour_window_left_out(
    served: tuple[TestClient, pd.DataFrame],
) -> None:
    """Answers without a filters field carry the count in a header (the whole selection's)."""
    import mercantile

    client, frame = served
    case = CASES[1]
    rest = {k: v for k, v in case.items() if k not in ("hour_from", "hour_to")}
    unknown = str(int(matching(frame, **rest).time_imputed.sum()))
    tile = mercantile.tile(-99.14, 19.43, 11)
    paths = [
        "/v1/incidents",
        f"/v1/tiles/heatmap/{tile.z}/{tile.x}/{tile.y}.png",
        f"/v1/tiles/hex/{tile.z}/{tile.x}/{tile.y}.mvt",
    ]
    for path in paths:
        for fmt in ("json", "csv") if path == "/v1/incidents" else (None,):
            params = {**case, **({"format": fmt} if fmt else {})}
            response = client.get(path, params=params)
            assert response.status_code in (200, 204), response.text
            assert response.headers["x-cuadra-time-unknown-left-out"] == unknown, path
            plain = client.get(path, params={**rest, **({"format": fmt} if fmt else {})})
            assert "x-cuadra-time-unknown-left-out" not in plain.headers


def test_h3_levels_nest_and_layers_balance(served: tuple[TestClient, pd.DataFrame]) -> None:
    client, frame = served
    for res in range(6, 13):
        child = client.get("/v1/aggregate", params={"unit": f"h3:{res}"}).json()["rows"]
        parent = client.get("/v1/aggregate", params={"unit": f"h3:{res - 1}"}).json()["rows"]
        summed: dict[str, int] = {}
        for r in child:
            p = h3.cell_to_parent(r["unit_id"], res - 1)
            summed[p] = summed.get(p, 0) + r["count"]
        assert summed == {r["unit_id"]: r["count"] for r in parent}
    for unit in ("colonia", "cuadrante", "street"):
        body = client.get("/v1/aggregate", params={"unit": unit}).json()
        assert (
            sum(r["count"] for r in body["rows"]) + body["unassigned"]
            == body["total"]
            == len(frame)
        )


def test_formats_and_rates(served: tuple[TestClient, pd.DataFrame]) -> None:
    client, _ = served
    js = client.get("/v1/aggregate", params={"unit": "colonia"})
    assert js.headers["x-cuadra-snapshot"] == "4"
    top = js.json()["rows"][0]
    assert top["name"] and top["rate_per_100k"] and top["rate_per_100k"] > 0
    geo = client.get("/v1/aggregate", params={"unit": "h3:7", "format": "geojson"})
    assert geo.headers["content-type"].startswith("application/geo+json")
    feature = geo.json()["features"][0]
    assert feature["geometry"]["type"] == "Polygon"
    assert h3.latlng_to_cell(feature["geometry"]["coordinates"][0][0][1],
                             feature["geometry"]["coordinates"][0][0][0], 7)  # fmt: skip
    streets = client.get("/v1/aggregate", params={"unit": "street", "format": "geojson"}).json()
    assert streets["features"][0]["geometry"]["type"] in ("LineString", "MultiLineString")
    csv_text = client.get("/v1/aggregate", params={"unit": "cuadrante", "format": "csv"}).text
    assert csv_text.splitlines()[0] == "unit_id,name,count,rate_per_100k"


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"unit": "h3:4"}, 422, ""),  # outside the schema pattern: FastAPI rejects it
        ({"unit": "barrio"}, 400, "unknown unit"),
        ({"unit": "colonia", "start": "2024-01-01", "end": "2023-01-01"}, 400, "after start"),
        ({"unit": "colonia", "within": "barrio:1"}, 400, "no boundary layer"),
        ({"unit": "colonia", "hour_from": 5, "hour_to": 5}, 400, "empty window"),
        ({"unit": "colonia", "hour_from": 5}, 400, "both"),
        ({"unit": "colonia", "weekday": 9}, 400, "Monday"),
        ({"unit": "colonia", "bbox": "1,2,3"}, 422, ""),
        ({"unit": "colonia", "start": "yesterday"}, 422, ""),
        ({"unit": "colonia' OR 1=1 --"}, 422, ""),
        ({"unit": "colonia", "offense": "x' OR '1'='1"}, 400, "unknown offense"),  # data, not SQL
        ({"unit": "colonia", "within": "colonia:x' OR '1'='1"}, 200, ""),
    ],
)
def test_hostile_parameters(
    served: tuple[TestClient, pd.DataFrame], params: dict[str, object], status: int, needle: str
) -> None:
    client, _ = served
    response = client.get("/v1/aggregate", params=params)
    assert response.status_code == status, response.text
    if status in (400, 422):  # one shape for both: code, message, the parameter at fault
        body = response.json()
        assert needle in body["message"] and body["error"] == "invalid_parameter"
        assert body["parameter"] in params if status == 422 else isinstance(body["parameter"], str)
    if status == 200:
        assert response.json()["total"] == 0  # a quote is data, never SQL


def test_timeseries_equals_oracle(served: tuple[TestClient, pd.DataFrame]) -> None:
    client, frame = served
    body = client.get("/v1/timeseries", params={"interval": "month", "start": "2022-01-01",
                                                "end": "2023-01-01", "offense": OFFENSE}).json()  # fmt: skip
    sel = frame[
        (frame.local_date >= "2022-01-01")
        & (frame.local_date < "2023-01-01")
        & (frame.offense == OFFENSE)
    ]
    expected = sel.groupby(sel.local_date.dt.to_period("M")).size()
    got = {r["period"]: r["count"] for r in body["rows"]}
    assert len(got) == 12  # zeros included
    assert got == {
        str(p.start_time.date()): int(expected.get(p, 0))
        for p in pd.period_range("2022-01", "2022-12", freq="M")
    }
    # One unit, by week: weeks start on Monday and sum to the unit's count.
    top = client.get(
        "/v1/aggregate", params={"unit": "colonia", "start": "2023-01-02", "end": "2023-04-03"}
    ).json()["rows"][0]
    weeks = client.get("/v1/timeseries", params={"interval": "week", "unit": "colonia", "id": top["unit_id"],
                                                 "start": "2023-01-02", "end": "2023-04-03"}).json()["rows"]  # fmt: skip
    assert len(weeks) == 13 and all(pd.Timestamp(w["period"]).day_of_week == 0 for w in weeks)
    assert sum(w["count"] for w in weeks) == top["count"]

    # Whole weeks say so; a window that starts or ends mid-week names the weeks it cuts.
    def partial(start: str, end: str) -> list[str]:
        params = {"interval": "week", "start": start, "end": end}
        return list(client.get("/v1/timeseries", params=params).json()["partial"])

    assert partial("2023-01-02", "2023-04-03") == []
    assert partial("2023-01-04", "2023-04-05") == ["2023-01-02", "2023-04-03"]
    months = client.get("/v1/timeseries", params={"start": "2023-01-01", "end": "2023-03-15"})
    assert months.json()["partial"] == ["2023-03-01"]
    assert client.get("/v1/timeseries", params={"id": "x"}).status_code == 400


def test_compare_counts_and_exact_test(served: tuple[TestClient, pd.DataFrame]) -> None:
    from scipy.stats import binom

    client, frame = served
    params = {"unit": "cuadrante", "a_start": "2022-01-01", "a_end": "2023-01-01",
              "b_start": "2023-01-01", "b_end": "2024-07-01"}  # fmt: skip
    body = client.get("/v1/compare", params=params).json()
    in_a = frame[(frame.local_date >= "2022-01-01") & (frame.local_date < "2023-01-01")]
    in_b = frame[(frame.local_date >= "2023-01-01") & (frame.local_date < "2024-07-01")]
    ca, cb = in_a.cuadrante.value_counts(), in_b.cuadrante.value_counts()
    rows = {r["unit_id"]: r for r in body["rows"]}
    assert set(rows) == set(ca.index) | set(cb.index)
    p0 = 547 / (365 + 547)  # B is 547 days, A 365
    for uid, r in list(rows.items())[:60]:
        a, b = int(ca.get(uid, 0)), int(cb.get(uid, 0))
        assert (r["count_a"], r["count_b"], r["change"]) == (a, b, b - a)
        # Two-sided exact p by its definition: outcomes no more likely than the observed.
        pmf = binom.pmf(range(a + b + 1), a + b, p0)
        assert r["p_value"] == pytest.approx(
            min(1.0, pmf[pmf <= pmf[b] * (1 + 1e-7)].sum()), rel=1e-6
        )
    ps = [r["p_value"] for r in body["rows"]]
    assert ps == sorted(ps)
    by_diff = client.get("/v1/compare", params={**params, "rank": "difference"}).json()["rows"]
    diffs = [abs(r["change"]) for r in by_diff]
    assert diffs == sorted(diffs, reverse=True)
    bad = client.get("/v1/compare", params={**params, "a_end": "2021-01-01"})
    assert bad.status_code == 400 and bad.json()["parameter"] == "a_end"
