"""The CompStat pack and the static map, checked against DuckDB, scipy and the tiles."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import duckdb
import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from scipy.stats import binomtest

from api.main import create_app
from api.settings import ServerSettings
from store import Store
from tests.conftest import ROOT

WEEK = "2024-W20"  # 13–19 May 2024


@pytest.fixture(scope="module")
def client(sample_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as c:
        yield c


def _key(analyst_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {analyst_key}"}


def _count(
    files: list[str], lo: date, hi: date, where: str, args: list[Any], by: str
) -> dict[str, int]:
    rows = duckdb.execute(
        f"SELECT {by}::VARCHAR, count(*) FROM read_parquet(?) WHERE local_date >= ? "
        f"AND local_date < ? AND {where} GROUP BY 1",
        [files, lo, hi, *args],
    ).fetchall()
    return {k: n for k, n in rows if k is not None}


def test_compstat_figures_equal_duckdb(
    client: TestClient, sample_store: Store, analyst_key: str
) -> None:
    """Week, 28 days and year to date against a year before (52 weeks; the same calendar
    days for the year to date), per category, with scipy's exact binomial test."""
    files = [str(p) for p in sample_store.data_files(sample_store.require_manifest())]
    (busiest,) = duckdb.execute(
        "SELECT colonia::VARCHAR FROM read_parquet(?) WHERE year(local_date) = 2024 "
        "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1", [files]
    ).fetchall()[0]  # fmt: skip
    got = client.get(
        "/v1/reports/compstat",
        params={"unit": "colonia", "id": busiest, "week": WEEK},
        headers=_key(analyst_key),
    )
    assert got.status_code == 200, got.text
    pack = got.json()
    monday = date(2024, 5, 13)
    end = monday + timedelta(days=7)
    year = timedelta(days=364)
    spans = {
        "week": ((monday, end), (monday - year, end - year)),
        "28d": ((end - timedelta(days=28), end), (end - timedelta(days=28) - year, end - year)),
        "ytd": ((date(2024, 1, 1), end), (date(2023, 1, 1), date(2023, 5, 20))),
    }
    assert [w["current"] for w in pack["windows"]] == [
        [a.isoformat(), b.isoformat()] for (a, b), _ in spans.values()
    ]
    rows = {r["category"]: r for r in pack["categories"]}
    assert sum(r["ytd"]["current"] for r in rows.values()) > 20
    for name, (now, before) in spans.items():
        cur = _count(files, *now, "colonia = ?", [busiest], "category")
        old = _count(files, *before, "colonia = ?", [busiest], "category")
        shown = {c: r[name]["current"] for c, r in rows.items() if r[name]["current"]}
        assert shown == cur, name
        assert {c: r[name]["prior"] for c, r in rows.items() if r[name]["prior"]} == old
        assert pack["total"][name]["current"] == sum(cur.values())
        for c, r in rows.items():
            s = r[name]
            days, prior_days = (now[1] - now[0]).days, (before[1] - before[0]).days
            if s["current"] + s["prior"]:
                p = binomtest(s["current"], s["current"] + s["prior"], days / (days + prior_days))
                assert s["p"] == pytest.approx(p.pvalue, rel=1e-9), (name, c)
    # The cuadrantes inside that rose most in the 28 days.
    (now, before) = spans["28d"]
    cur = _count(files, *now, "colonia = ?", [busiest], "cuadrante")
    old = _count(files, *before, "colonia = ?", [busiest], "cuadrante")
    rising = sorted(((u, n - old.get(u, 0)) for u, n in cur.items() if n > old.get(u, 0)),
                    key=lambda t: -t[1])  # fmt: skip
    assert [r["change"] for r in pack["rising"]["cuadrante"]] == [c for _, c in rising][:10]


def test_compstat_formats_and_refusals(client: TestClient, analyst_key: str) -> None:
    params = {"unit": "colonia", "week": WEEK}
    whole = client.get("/v1/reports/compstat", params=params, headers=_key(analyst_key)).json()
    assert len(whole["units"]) > 100 and whole["id"] is None
    assert sum(u["ytd"]["current"] for u in whole["units"]) <= whole["total"]["ytd"]["current"]
    text = client.get(
        "/v1/reports/compstat", params={**params, "format": "csv"}, headers=_key(analyst_key)
    ).text
    table = list(csv.DictReader(io.StringIO(text)))
    total = [r for r in table if r["key"] == "*" and r["window"] == "ytd"]
    assert int(total[0]["current"]) == whole["total"]["ytd"]["current"]
    assert client.get("/v1/reports/compstat", params=params).status_code == 403
    for bad, param in (({"week": "2024-W54"}, "week"), ({"unit": "h3:8"}, "unit"),
                       ({"id": "no-such"}, "id")):  # fmt: skip
        got = client.get(
            "/v1/reports/compstat", params={**params, **bad}, headers=_key(analyst_key)
        )
        assert got.status_code in (400, 422) and got.json()["parameter"] == param, got.text


def test_the_static_map_is_the_heatmap_tiles(client: TestClient, analyst_key: str) -> None:
    """A box one tile wide at zoom 14: the image's heatmap pixels are the tile's (composited
    over the page's background), by role; outlines and names cover the rest."""
    tile = morecantile.Tile(3679, 7293, 14)  # Portales
    b = morecantile.tms.get("WebMercatorQuad").bounds(tile)
    year = {"start": "2023-01-01", "end": "2024-01-01"}
    box = {"bbox": f"{b.left},{b.bottom},{b.right},{b.top}", "width": 260, "height": 260}
    for headers in ({}, _key(analyst_key)):
        got = client.get("/v1/maps/static.png", params={**box, **year}, headers=headers)
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        image = np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB")).astype(int)
        assert image.shape == (260, 260, 3)
        png = client.get(
            f"/v1/tiles/heatmap/14/{tile.x}/{tile.y}.png", params=year, headers=headers
        )
        assert png.status_code == 200
        expected = Image.new("RGBA", (256, 256), (238, 240, 242, 255))
        expected.alpha_composite(Image.open(io.BytesIO(png.content)).convert("RGBA"))
        want = np.asarray(expected.convert("RGB")).astype(int)
        # The tile sits 2 pixels in: the 260-pixel window is centred on it.
        same = np.all(np.abs(image[2:258, 2:258] - want) <= 1, axis=2)
        assert same.mean() > 0.8, same.mean()  # the rest: outlines, names, the credit
        assert (np.abs(want - [238, 240, 242]).sum(axis=2) > 30).mean() > 0.2  # heat drawn
    bad = client.get("/v1/maps/static.png", params={"width": 300})
    assert bad.status_code == 400 and bad.json()["parameter"] == "bbox"


def test_report_on_the_command_line(sample_store: Store, tmp_path: Any) -> None:
    out = tmp_path / "pack.html"
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "report", "compstat", "--unit", "colonia", "--id",
         "15-040", "--week", WEEK, "--out", str(out), "--store", str(sample_store.root)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert "Informe CompStat" in page and "data:image/png;base64," in page
    assert "Año a la fecha" in page and "CENTRO IV" in page
