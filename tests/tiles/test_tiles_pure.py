"""Tile math against mercantile; the heatmap renderer's seams; MVT round trips."""

from __future__ import annotations

import io

import h3
import mapbox_vector_tile
import mercantile
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from geo.cells import cells_to_latlng, cells_to_parents, points_to_cells
from geo.crs import WGS84, transform_xy
from tests.conftest import POINTS
from tiles import heatmap, hexagons
from tiles.grid import HEX_RES, MAX_ZOOM, MIN_ZOOM, Bounds, hex_res, lonlat_bounds, mercator_bounds


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 19).flatmap(lambda z: st.tuples(st.just(z), st.integers(0, 2**z - 1),
                                                      st.integers(0, 2**z - 1))))  # fmt: skip
def test_tile_bounds_equal_mercantile(tile: tuple[int, int, int]) -> None:
    z, x, y = tile
    ours, theirs = mercator_bounds(z, x, y), mercantile.xy_bounds(x, y, z)
    assert ours == pytest.approx(tuple(theirs), abs=1e-6)
    assert lonlat_bounds(z, x, y) == pytest.approx(tuple(mercantile.bounds(x, y, z)), abs=1e-9)


def test_zoom_table_covers_the_served_zooms() -> None:
    assert sorted(HEX_RES) == list(range(MIN_ZOOM, MAX_ZOOM + 1))
    res = [hex_res(z) for z in range(MIN_ZOOM, MAX_ZOOM + 1)]
    assert res == sorted(res) and 5 <= min(res) and max(res) <= 10
    with pytest.raises(ValueError):
        mercator_bounds(3, 8, 0)


@pytest.fixture(scope="module")
def robbery_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Res-11 cells of 2023 street robberies (real): Mercator x, y of centres and counts."""
    t = pq.read_table(POINTS, columns=["latitud", "longitud", "delito", "fecha_hecho"])
    t = t.filter(pc.and_(pc.equal(t["delito"], "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"),
                         pc.equal(pc.year(pc.cast(t["fecha_hecho"], "timestamp[s]")), 2023)))  # fmt: skip
    lat = t["latitud"].to_numpy(zero_copy_only=False)
    lon = t["longitud"].to_numpy(zero_copy_only=False)
    ok = np.isfinite(lat) & np.isfinite(lon) & (lon > -99.4)
    cells, counts = np.unique(cells_to_parents(points_to_cells(lon[ok], lat[ok]), 11),
                              return_counts=True)  # fmt: skip
    clat, clon = cells_to_latlng(cells)
    x, y = transform_xy(clon, clat, WGS84, "EPSG:3857")
    return x, y, counts.astype(float)


CENTRO = mercantile.tile(-99.1332, 19.4326, 14)  # the Zócalo


def test_heatmap_tiles_join_without_seams(robbery_cells: tuple[np.ndarray, ...]) -> None:
    x, y, w = robbery_cells
    z, tx, ty = CENTRO.z, CENTRO.x, CENTRO.y
    radius = 150.0
    left = heatmap.density(x, y, w, mercator_bounds(z, tx, ty), radius)
    right = heatmap.density(x, y, w, mercator_bounds(z, tx + 1, ty), radius)
    below = heatmap.density(x, y, w, mercator_bounds(z, tx, ty + 1), radius)
    assert left.max() > 0 and right.max() > 0
    # A window straddling the edge (same pixel grid) sees the same field: its middle
    # columns are the left tile's last and the right tile's first.
    a, b = mercator_bounds(z, tx, ty), mercator_bounds(z, tx + 1, ty)
    half = (a.east - a.west) / 2
    middle = heatmap.density(
        x, y, w, Bounds(a.west + half, a.south, b.west + half, a.north), radius
    )
    assert np.allclose(middle[:, :128], left[:, 128:], rtol=1e-9, atol=1e-18)
    assert np.allclose(middle[:, 128:], right[:, :128], rtol=1e-9, atol=1e-18)
    # Across the edge the field moves as little as inside a tile.
    step_inside = np.abs(np.diff(left, axis=1)).max()
    assert np.abs(right[:, 0] - left[:, -1]).max() <= step_inside + 1e-18
    assert np.abs(below[0, :] - left[-1, :]).max() <= np.abs(np.diff(left, axis=0)).max() + 1e-18


def test_heatmap_density_integrates_to_the_weights(robbery_cells: tuple[np.ndarray, ...]) -> None:
    x, y, w = robbery_cells
    b = mercator_bounds(12, *mercantile.tile(-99.1332, 19.4326, 12)[:2])
    inner = (x > b.west + 500) & (x < b.east - 500) & (y > b.south + 500) & (y < b.north - 500)
    # Only the points whose kernels lie wholly inside: their mass is all on the tile.
    grid = heatmap.density(x[inner], y[inner], w[inner], b, 300.0)
    pixel = (b.east - b.west) / 256
    assert grid.sum() * pixel**2 == pytest.approx(w[inner].sum(), rel=1e-6)


@pytest.mark.parametrize("zoom", [11, 14, 17])
def test_heatmap_density_is_the_direct_kernel_sum(
    robbery_cells: tuple[np.ndarray, ...], zoom: int
) -> None:
    """Every density cell equals the kernel summed over the points, without any FFT."""
    x, y, w = robbery_cells
    tx, ty = mercantile.tile(-99.1332, 19.4326, zoom)[:2]
    b = mercator_bounds(zoom, tx, ty)
    radius = 300.0
    grid = heatmap.density(x, y, w, b, radius)[:: heatmap.STEP, :: heatmap.STEP]
    cells = grid.shape[0]
    cell = (b.east - b.west) / cells
    kernel = heatmap._kernel(radius / cell)
    half = kernel.shape[0] // 2
    # Each point sits at the centre of its cell; a cell's value is its neighbours' kernels.
    col = np.floor((x - b.west) / cell).astype(np.int64)
    row = np.floor((b.north - y) / cell).astype(np.int64)
    near = (col > -half - 1) & (col < cells + half) & (row > -half - 1) & (row < cells + half)
    assert near.sum() > 0
    expected = np.zeros((cells + 4 * half, cells + 4 * half))  # the tile and two radii
    for r, c, weight in zip(row[near] + half, col[near] + half, w[near], strict=True):
        expected[r : r + 2 * half + 1, c : c + 2 * half + 1] += weight * kernel
    expected = expected[2 * half : 2 * half + cells, 2 * half : 2 * half + cells] / cell**2
    assert grid == pytest.approx(expected, rel=1e-9, abs=1e-12 * expected.max())


def test_png_is_a_transparent_palette_image() -> None:
    values = np.zeros((256, 256))
    values[100:140, 100:140] = 5.0
    values[120, 120] = 50.0
    png = heatmap.encode_png(heatmap.levels(values, scale=10.0))
    image = Image.open(io.BytesIO(png))
    assert image.size == (256, 256) and image.mode == "P"
    rgba = np.asarray(image.convert("RGBA"))
    assert rgba[0, 0, 3] == 0 and rgba[120, 120, 3] > rgba[100, 100, 3] > 0
    assert heatmap.levels(values, 10.0)[120, 120] == 255  # clipped at the scale


def test_hexagon_tile_round_trips() -> None:
    tile = mercantile.tile(-99.1332, 19.4326, 11)  # about 19 km across
    box = mercantile.bounds(tile)
    middle = ((box.south + box.north) / 2, (box.west + box.east) / 2)
    centre = h3.latlng_to_cell(*middle, 9)
    cells = np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(centre, 3)), dtype=np.uint64)
    counts = np.arange(1, cells.size + 1, dtype=np.int64)
    for c in cells:  # the disk (about 2.5 km) lies inside the tile
        lat, lon = h3.cell_to_latlng(h3.int_to_str(int(c)))
        assert box.west + 0.02 < lon < box.east - 0.02 and box.south + 0.02 < lat < box.north - 0.02
    data = hexagons.encode(cells, counts, mercator_bounds(tile.z, tile.x, tile.y))
    decoded = mapbox_vector_tile.decode(data)
    features = decoded["hex"]["features"]
    assert decoded["hex"]["extent"] == 4096
    got = {f["properties"]["h3"]: f["properties"]["count"] for f in features}
    expected = {format(int(c), "x"): int(n) for c, n in zip(cells, counts, strict=True)}
    assert got == expected
    far = mercantile.tile(middle[1], middle[0], 15)  # a smaller tile: only some cells reach it
    part = mapbox_vector_tile.decode(
        hexagons.encode(cells, counts, mercator_bounds(far.z, far.x, far.y))
    )
    assert 0 < len(part["hex"]["features"]) < cells.size
    for f in features:
        xs = [p[0] for ring in f["geometry"]["coordinates"] for p in ring]
        assert -hexagons.BUFFER <= min(xs) and max(xs) <= 4096 + hexagons.BUFFER
    assert hexagons.encode(cells[:0], counts[:0], mercator_bounds(13, 0, 0)) == b""
