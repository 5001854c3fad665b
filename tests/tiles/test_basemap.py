"""The basemap archive cut from the store's layers, read back with the PMTiles reader and
decoded with mapbox-vector-tile; tiles placed by mercantile."""

from __future__ import annotations

import gzip
from pathlib import Path

import mapbox_vector_tile
import mercantile
import pytest
import shapely
from pmtiles.reader import MmapSource, Reader

from api.basemap import build_store_basemap
from store import Store
from store.aggregate import Unit, unit_attributes

CENTRO = (-99.1332, 19.4326)  # the Zócalo


@pytest.fixture(scope="module")
def archive(layers_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Reader:
    import shutil

    root = tmp_path_factory.mktemp("basemap") / "store"
    shutil.copytree(layers_store_template, root)
    path, tiles = build_store_basemap(Store(root), maxzoom=14)
    assert tiles > 100
    with path.open("rb") as handle:
        return Reader(MmapSource(handle))


def _decode(reader: Reader, z: int, lon: float, lat: float) -> dict:  # type: ignore[type-arg]
    tile = mercantile.tile(lon, lat, z)
    data = reader.get(z, tile.x, tile.y)
    assert data, (z, tile)
    return mapbox_vector_tile.decode(gzip.decompress(data))  # type: ignore[no-any-return]


def test_header_covers_the_layers(archive: Reader, layers_store_template: Path) -> None:
    header = archive.header()
    assert (header["min_zoom"], header["max_zoom"]) == (8, 14)
    snap = Store(layers_store_template).snapshot()
    geoms = shapely.from_wkb(
        unit_attributes(snap, Unit("layer", layer="colonia"), geometry=True)
        .column("geometry")
        .to_numpy(zero_copy_only=False)
    )
    west, south, east, north = shapely.total_bounds(geoms)
    assert header["min_lon_e7"] <= west * 1e7 and header["max_lon_e7"] >= east * 1e7
    assert header["min_lat_e7"] <= south * 1e7 and header["max_lat_e7"] >= north * 1e7
    assert archive.metadata()["name"] == "cuadra-basemap"


def test_the_colonia_under_a_point_is_named_in_its_tile(
    archive: Reader, layers_store_template: Path
) -> None:
    snap = Store(layers_store_template).snapshot()
    attrs = unit_attributes(snap, Unit("layer", layer="colonia"), geometry=True)
    geoms = shapely.from_wkb(attrs.column("geometry").to_numpy(zero_copy_only=False))
    names = attrs.column("name").to_pylist()
    (inside,) = [n for g, n in zip(geoms, names, strict=True) if g.contains(shapely.Point(CENTRO))]
    layers = _decode(archive, 14, *CENTRO)
    outlines = {f["properties"]["name"] for f in layers["boundaries"]["features"]
                if f["properties"]["layer"] == "colonia"}  # fmt: skip
    assert inside in outlines
    # Streets at street zooms, with their names; none at city zoom.
    assert any(f["properties"]["name"] for f in layers["streets"]["features"])
    assert "streets" not in _decode(archive, 11, *CENTRO)
    # Only outlines, unit ids, names and areas: no count or record anywhere.
    for layer in layers.values():
        for feature in layer["features"]:
            assert set(feature["properties"]) <= {"layer", "id", "name", "area"}
    street_ids = {f["properties"]["id"] for f in layers["streets"]["features"]}
    stored = set(Store(layers_store_template).layer_ids(snap.manifest, "calles").to_pylist())
    assert street_ids and street_ids <= stored


def test_few_large_units_first(archive: Reader) -> None:
    """The coarsest layer (here cuadrantes, 847) from the first zoom; colonias (1,814) later."""
    coarse = _decode(archive, 9, *CENTRO)
    assert {f["properties"]["layer"] for f in coarse["boundaries"]["features"]} == {"cuadrante"}
    fine = _decode(archive, 13, *CENTRO)
    assert "colonia" in {f["properties"]["layer"] for f in fine["boundaries"]["features"]}


def test_served_as_stored_and_nothing_outside(layers_store_template: Path, tmp_path: Path) -> None:
    """/v1/tiles/basemap: the archive's tiles (gzip on the wire), 204 where it has none."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.settings import ServerSettings

    archive, _ = build_store_basemap(
        Store(layers_store_template), maxzoom=12, path=tmp_path / "b.pmtiles"
    )
    tile = mercantile.tile(*CENTRO, 12)
    with TestClient(
        create_app(ServerSettings(store=layers_store_template, basemap=str(archive)))
    ) as c:
        got = c.get(f"/v1/tiles/basemap/12/{tile.x}/{tile.y}.mvt")
        assert got.status_code == 200 and got.headers["content-encoding"] == "gzip"
        names = mapbox_vector_tile.decode(got.content)["labels"]["features"]  # httpx unzipped it
        assert names and all(f["properties"]["name"] for f in names)
        assert c.get("/v1/tiles/basemap/12/0/0.mvt").status_code == 204  # mid-Pacific
        assert c.get("/v1/tiles/basemap/12/9999/0.mvt").status_code == 400
    with TestClient(create_app(ServerSettings(store=layers_store_template))) as c:
        # No archive built and none named: nothing to serve, and the map draws no basemap.
        assert c.get(f"/v1/tiles/basemap/12/{tile.x}/{tile.y}.mvt").status_code == 204
        assert '"kind": "none"' in c.get("/map").text
