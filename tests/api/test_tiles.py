"""Tile routes: numbers before pixels. Hex tiles carry /v1/aggregate's counts; public
heatmaps are drawn from the published (suppressed) counts; caching and TileJSON."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import jsonschema
import mapbox_vector_tile
import mercantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from scipy.spatial import cKDTree
from scipy.stats import spearmanr

from api.main import create_app
from api.settings import ServerSettings
from geo.cells import cells_to_latlng, hex_to_cells
from geo.crs import WGS84, transform_xy
from store import Store
from tiles.grid import hex_res
from tiles.layer import CellLayer

YEAR = {"start": "2023-01-01", "end": "2024-01-01"}
ZOCALO = (-99.1332, 19.4326)

# TileJSON 3.0.0, written from the specification's field list (github: mapbox/tilejson-spec,
# 3.0.0/README.md): types, ranges and the fields a vector tileset must have.
TILEJSON_3 = {
    "type": "object",
    "required": ["tilejson", "tiles"],
    "properties": {
        "tilejson": {"type": "string", "pattern": r"^3\.0\.0$"},
        "tiles": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "name": {"type": "string"}, "description": {"type": "string"},
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+"},
        "attribution": {"type": "string"},
        "scheme": {"enum": ["xyz", "tms"]},
        "minzoom": {"type": "integer", "minimum": 0, "maximum": 30},
        "maxzoom": {"type": "integer", "minimum": 0, "maximum": 30},
        "bounds": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
        "center": {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "number"}},
        "vector_layers": {"type": "array", "items": {
            "type": "object", "required": ["id", "fields"],
            "properties": {"id": {"type": "string"},
                           "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                           "minzoom": {"type": "integer"}, "maxzoom": {"type": "integer"}}}},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def app(sample_store: Store) -> Any:
    return create_app(ServerSettings(store=sample_store.root, cors_origins=("https://tablero.example",)))  # fmt: skip


@pytest.fixture(scope="module")
def analyst(app: Any, analyst_key: str) -> Iterator[TestClient]:
    with TestClient(app, headers={"Authorization": f"Bearer {analyst_key}"}) as c:
        yield c


@pytest.fixture(scope="module")
def public(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def _hex_counts(
    client: TestClient, z: int, x: int, y: int, params: dict[str, str]
) -> dict[str, int]:
    response = client.get(f"/v1/tiles/hex/{z}/{x}/{y}.mvt", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    features = mapbox_vector_tile.decode(response.content)["hex"]["features"]
    return {f["properties"]["h3"]: f["properties"]["count"] for f in features}


@pytest.mark.parametrize("role", ["analyst", "public"])
@pytest.mark.parametrize("z", [10, 12, 14])
def test_hex_tile_counts_equal_aggregate(request: pytest.FixtureRequest, role: str, z: int) -> None:
    client: TestClient = request.getfixturevalue(role)
    tile = mercantile.tile(*ZOCALO, z)
    res = hex_res(z)
    tiled = _hex_counts(client, z, tile.x, tile.y, YEAR)
    rows = client.get("/v1/aggregate", params={"unit": f"h3:{res}", **YEAR}).json()["rows"]
    published = {r["unit_id"]: r["count"] for r in rows}
    assert tiled and all(published[c] == n for c, n in tiled.items())
    # Every published cell whose centre is inside the tile is in it.
    box = mercantile.bounds(tile)
    lat, lon = cells_to_latlng(hex_to_cells(list(published)))
    inside = {c for c, a, b in zip(published, lon, lat, strict=True)
              if box.west < a < box.east and box.south < b < box.north}  # fmt: skip
    assert inside <= set(tiled)
    if role == "public":
        assert min(tiled.values()) >= 5  # suppressed cells are not in public tiles


def test_public_heatmap_is_drawn_from_published_counts(public: TestClient) -> None:
    tile = mercantile.tile(*ZOCALO, 13)
    response = public.get(f"/v1/tiles/heatmap/13/{tile.x}/{tile.y}.png", params=YEAR)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    # The same picture from what /v1/aggregate publishes at resolution 9 (never points).
    rows = public.get("/v1/aggregate", params={"unit": "h3:9", **YEAR}).json()["rows"]
    cells = hex_to_cells([r["unit_id"] for r in rows])
    lat, lon = cells_to_latlng(cells)
    x, y = transform_xy(lon, lat, WGS84, "EPSG:3857")
    order = np.argsort(x, kind="stable")
    counts = np.array([r["count"] for r in rows], dtype=float)
    layer = CellLayer(9, cells[order], counts[order], x[order], y[order], "oracle")
    radius = layer.radius(13)
    # Independent of the renderer: the continuous quartic kernel summed exactly over the
    # published cells at each 2 × 2 block's centre (the renderer bins and uses an FFT).
    bounds = mercantile.xy_bounds(tile)  # tile math from mercantile, not ours
    step = (bounds.right - bounds.left) / 128
    centres = np.arange(128) * step + step / 2
    gx, gy = np.meshgrid(bounds.left + centres, bounds.top - centres)
    tree = cKDTree(np.column_stack([x, y]))
    exact = np.zeros(gx.size)
    for i, near in enumerate(
        tree.query_ball_point(np.column_stack([gx.ravel(), gy.ravel()]), radius)
    ):
        if near:
            d2 = ((x[near] - gx.flat[i]) ** 2 + (y[near] - gy.flat[i]) ** 2) / radius**2
            exact[i] = (counts[near] * (1 - d2) ** 2).sum()
    index = np.asarray(Image.open(io.BytesIO(response.content)))[::2, ::2].ravel()  # palette
    drawn = index > 0
    # Colour only where published cells are within reach (a binned point moves ≤ one block).
    reach = tree.query(np.column_stack([gx.ravel(), gy.ravel()]))[0] <= radius + 2 * step
    assert drawn.any() and not (drawn & ~reach).any()
    assert (exact[drawn] > 0).mean() > 0.99
    rho = spearmanr(index[drawn], exact[drawn]).statistic
    assert rho > 0.98  # brighter where denser
    image = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))
    assert image.shape == (256, 256, 4) and (image[..., 3] > 0).mean() > 0.2


def test_heatmap_caching_and_headers(analyst: TestClient, public: TestClient) -> None:
    tile = mercantile.tile(*ZOCALO, 14)
    path = f"/v1/tiles/heatmap/14/{tile.x}/{tile.y}.png"
    first = analyst.get(path, params=YEAR)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"].startswith("private")
    again = analyst.get(path, params=YEAR, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other = analyst.get(path, params={**YEAR, "offense": "ROBO A NEGOCIO CON VIOLENCIA"})
    assert other.headers["etag"] != etag  # filters are part of the tag
    shown = public.get(path, params=YEAR)
    assert shown.headers["etag"] != etag and shown.headers["cache-control"].startswith("public")
    big = analyst.get(f"/v1/tiles/heatmap/14/{tile.x}/{tile.y}@2x.png", params=YEAR)
    assert Image.open(io.BytesIO(big.content)).size == (512, 512)
    ocean = mercantile.tile(-120.0, 10.0, 14)  # the Pacific: nothing
    assert analyst.get(f"/v1/tiles/heatmap/14/{ocean.x}/{ocean.y}.png").status_code == 204
    assert analyst.get(f"/v1/tiles/hex/14/{ocean.x}/{ocean.y}.mvt").status_code == 204
    assert analyst.get("/v1/tiles/heatmap/4/1/1.png").status_code == 422  # below the zooms
    bad = analyst.get(f"/v1/tiles/heatmap/5/{2**5}/0.png")
    assert bad.status_code == 400 and bad.json()["parameter"] == "x"


def test_neighbouring_heatmap_tiles_agree_at_the_edge(analyst: TestClient) -> None:
    tile = mercantile.tile(*ZOCALO, 14)
    images = [np.asarray(Image.open(io.BytesIO(analyst.get(
        f"/v1/tiles/heatmap/14/{tile.x + dx}/{tile.y}.png", params=YEAR).content)))
        for dx in (0, 1)]  # fmt: skip
    # Palette levels (one scale per zoom and filters): across the edge they change no
    # more than between neighbouring columns inside a tile.
    left, right = (i.astype(int) for i in images)
    inside = np.abs(np.diff(left, axis=1)).max()
    assert np.abs(right[:, 0] - left[:, -1]).max() <= inside


def test_tilejson_validates_and_carries_filters(public: TestClient) -> None:
    for kind, suffix in (("heatmap", "png"), ("hex", "mvt")):
        body = public.get(f"/v1/tiles/{kind}.json",
                          params={"offense": "ROBO A NEGOCIO CON VIOLENCIA", **YEAR}).json()  # fmt: skip
        jsonschema.validate(body, TILEJSON_3)
        url = body["tiles"][0]
        assert f"/v1/tiles/{kind}/{{z}}/{{x}}/{{y}}.{suffix}?" in url
        assert "offense=ROBO+A+NEGOCIO+CON+VIOLENCIA" in url and "start=2023-01-01" in url
        west, south, east, north = body["bounds"]
        assert -99.4 < west < east < -98.9 and 19.0 < south < north < 19.7
    hexes = public.get("/v1/tiles/hex.json").json()
    assert hexes["vector_layers"][0]["id"] == "hex"
    assert public.get("/v1/tiles/hex.json", params={"weekday": 9}).status_code == 400


def test_cors_allow_list(public: TestClient) -> None:
    tile = mercantile.tile(*ZOCALO, 12)
    path = f"/v1/tiles/hex/12/{tile.x}/{tile.y}.mvt"
    ok = public.get(path, headers={"Origin": "https://tablero.example"})
    assert ok.headers["access-control-allow-origin"] == "https://tablero.example"
    assert "etag" in ok.headers["access-control-expose-headers"].lower()
    other = public.get(path, headers={"Origin": "https://otro.example"})
    assert "access-control-allow-origin" not in other.headers


def _top_level(client: TestClient, tile: Any, params: dict[str, str]) -> int:
    """The highest palette index of a heatmap tile (255: the top colour)."""
    import io

    import numpy as np
    from PIL import Image

    response = client.get(f"/v1/tiles/heatmap/{tile.z}/{tile.x}/{tile.y}.png", params=params)
    assert response.status_code in (200, 204), response.text
    if response.status_code == 204:
        return 0
    return int(np.asarray(Image.open(io.BytesIO(response.content))).max())


def test_the_months_of_an_animation_share_one_colour_scale(
    analyst: TestClient, public: TestClient
) -> None:
    """Alone, each month's tile has its own colour scale; with scale_start and scale_end the
    months share the highest of them: the month it comes from looks as alone, the others
    lower (no month brighter than alone)."""
    import mercantile

    client = analyst
    tile = mercantile.tile(-99.1332, 19.4326, 11)
    months = [
        ("2023-01-01", "2023-02-01"),
        ("2023-02-01", "2023-03-01"),
        ("2023-03-01", "2023-04-01"),
    ]
    window = {"scale_start": "2023-01-01", "scale_end": "2023-04-01"}
    own = [_top_level(client, tile, {"start": s, "end": e}) for s, e in months]
    shared = [_top_level(client, tile, {"start": s, "end": e, **window}) for s, e in months]
    pairs = list(zip(shared, own, strict=True))
    assert all(s <= o for s, o in pairs), pairs
    assert any(s == o for s, o in pairs) and any(s < o for s, o in pairs), pairs
    for bad, param in (
        ({"scale_start": "2023-01-15", "scale_end": "2023-04-01"}, "scale_start"),
        ({"scale_start": "2023-01-01"}, "scale_end"),
        ({"scale_start": "2020-01-01", "scale_end": "2024-01-01"}, "scale_end"),
    ):
        got = client.get(f"/v1/tiles/heatmap/{tile.z}/{tile.x}/{tile.y}.png",
                         params={"start": "2023-01-01", "end": "2023-02-01", **bad})  # fmt: skip
        assert got.status_code == 400 and got.json()["parameter"] == param, got.text
    # The public's months are the release's: a window past what is published is refused.
    path = f"/v1/tiles/heatmap/{tile.z}/{tile.x}/{tile.y}.png"
    month = {"start": "2023-01-01", "end": "2023-02-01"}
    assert public.get(path, params={**month, **window}).status_code in (200, 204)
    late = public.get(
        path, params={**month, "scale_start": "2099-01-01", "scale_end": "2099-02-01"}
    )
    assert late.status_code == 400, late.text


@pytest.mark.parametrize("role", ["analyst", "public"])
def test_street_tiles_carry_the_published_street_counts(
    request: pytest.FixtureRequest, role: str
) -> None:
    """Every segment in a street tile carries the count /v1/aggregate?unit=street gives its
    street for the same filters and role (decoded with mapbox-vector-tile)."""
    import mapbox_vector_tile
    import mercantile

    client: TestClient = request.getfixturevalue(role)
    tile = mercantile.tile(-99.1332, 19.4326, 15)
    got = client.get(f"/v1/tiles/streets/{tile.z}/{tile.x}/{tile.y}.mvt", params=YEAR)
    assert got.status_code == 200, got.text
    features = mapbox_vector_tile.decode(got.content)["streets"]["features"]
    rows = client.get("/v1/aggregate", params={"unit": "street", **YEAR}).json()["rows"]
    published = {r["unit_id"]: r["count"] for r in rows}
    assert features
    for feature in features:
        props = feature["properties"]
        assert props["count"] == published[props["street_id"]], props
        if role == "public":
            assert props["count"] >= 5
    low = client.get("/v1/tiles/streets/10/229/458.mvt", params=YEAR)
    assert low.status_code == 400 and low.json()["parameter"] == "z"
