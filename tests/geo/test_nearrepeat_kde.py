"""Knox near-repeat table and quartic kernel density against brute force on real points."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from geo.crs import WGS84, transform_xy
from geo.errors import GeoError, ParameterError
from geo.kde import Grid, bandwidth, density_surface, quartic_density
from geo.nearrepeat import knox
from tests.conftest import POINTS

UTM14 = "EPSG:32614"
Points = tuple[np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def burglaries() -> Points:
    """2,000 seeded 2023 home burglaries of Mexico City: x, y (UTM 14N metres), day."""
    t = pq.read_table(POINTS, columns=["latitud", "longitud", "delito", "fecha_hecho"])
    t = t.filter(pc.and_(pc.match_substring(t["delito"], "ROBO A CASA HABITACION"),
                         pc.equal(pc.year(pc.cast(t["fecha_hecho"], "timestamp[s]")), 2023)))  # fmt: skip
    lon = t["longitud"].to_numpy(zero_copy_only=False)
    lat = t["latitud"].to_numpy(zero_copy_only=False)
    day = pc.cast(pc.cast(t["fecha_hecho"], "timestamp[s]"), "date32")
    days = pc.cast(day, "int32").to_numpy(zero_copy_only=False).astype(float)
    ok = np.isfinite(lon) & np.isfinite(lat) & (lon > -99.4)
    pick = np.random.default_rng(2023).choice(np.flatnonzero(ok), 2_000, replace=False)
    x, y = transform_xy(lon[pick], lat[pick], WGS84, UTM14)
    return x, y, days[pick]


def _brute_knox(
    x: np.ndarray, y: np.ndarray, t: np.ndarray, d_edges: list[int], t_edges: list[int]
) -> np.ndarray:
    n = x.size
    table = np.zeros((len(d_edges) - 1, len(t_edges) - 1), dtype=int)
    for i in range(n):
        d = np.hypot(x[i + 1 :] - x[i], y[i + 1 :] - y[i])
        gap = np.abs(t[i + 1 :] - t[i])
        for r in range(len(d_edges) - 1):
            near = (d >= d_edges[r]) & (d < d_edges[r + 1])
            for c in range(len(t_edges) - 1):
                table[r, c] += int((near & (gap >= t_edges[c]) & (gap < t_edges[c + 1])).sum())
    return table


def test_knox_counts_equal_brute_force(burglaries: Points) -> None:
    x, y, t = burglaries
    d_edges, t_edges = [0, 250, 500, 1000], [0, 7, 14, 30]
    result = knox(x, y, t, d_edges, t_edges, permutations=49, seed=5)
    assert result.observed.tolist() == _brute_knox(x, y, t, d_edges, t_edges).tolist()
    assert result.observed.sum() > 100 and result.events == 2_000
    # Shuffled dates keep the places: each band's pairs are the same, only their gaps move.
    assert (result.expected > 0).all()
    assert ((result.p > 0) & (result.p <= 1)).all()
    again = knox(x, y, t, d_edges, t_edges, permutations=49, seed=5)
    assert np.array_equal(again.p, result.p) and np.array_equal(again.expected, result.expected)


def test_knox_bands_are_half_open() -> None:
    # Hand-written: three events on a line, 100 m and 7 days apart.
    x, y, t = np.array([0.0, 100.0, 200.0]), np.zeros(3), np.array([0.0, 7.0, 14.0])
    result = knox(x, y, t, [0, 100, 200, 300], [0, 7, 14, 21], permutations=19)
    # Pairs: (0,1) 100 m 7 d, (1,2) 100 m 7 d, (0,2) 200 m 14 d.
    assert result.observed.tolist() == [[0, 0, 0], [0, 2, 0], [0, 0, 1]]
    assert result.pairs == 3
    # Times of day (fractional days) take the general path: gaps 6.5, 7.4 and 13.9 days.
    hours = knox(x, y, np.array([0.0, 6.5, 13.9]), [0, 100, 200, 300], [0, 7, 14, 21], 19)
    assert hours.observed.tolist() == [[0, 0, 0], [1, 1, 0], [0, 1, 0]]


def test_knox_refuses_bad_bands() -> None:
    x = np.zeros(3)
    with pytest.raises(GeoError):
        knox(x, x, x, [100, 50], [0, 7])
    with pytest.raises(GeoError):
        knox(x, x, x, [0, 100], [0])


def test_quartic_density_equals_brute_force(burglaries: Points) -> None:
    x, y, _ = burglaries
    x, y = x[:300], y[:300]
    h = 800.0
    grid = Grid.covering(x, y, 400.0, h)
    ours = quartic_density(x, y, grid, h)
    gx, gy = grid.centres()
    d2 = (gx[:, None] - x[None, :]) ** 2 + (gy[:, None] - y[None, :]) ** 2
    kernel = np.where(d2 < h * h, 3 / (np.pi * h * h) * (1 - d2 / (h * h)) ** 2, 0.0)
    assert np.allclose(ours.ravel(), kernel.sum(axis=1), rtol=1e-12, atol=1e-20)


def test_quartic_density_integrates_to_the_events(burglaries: Points) -> None:
    x, y, _ = burglaries
    h = bandwidth(x, y)
    grid = Grid.covering(x, y, h / 20, h)  # the margin holds every kernel whole
    total = quartic_density(x, y, grid, h).sum() * grid.size**2
    assert total == pytest.approx(x.size, rel=2e-3)


def test_bandwidth_is_silvermans_rule_for_points() -> None:
    # Hand-written: four points on a 2 km square around (0, 0): every distance is sqrt 2 km.
    x, y = np.array([-1000.0, 1000, 1000, -1000]), np.array([-1000.0, -1000, 1000, 1000])
    r = np.sqrt(2) * 1000
    expected = 0.9 * min(r, np.sqrt(1 / np.log(2)) * r) * 4**-0.2
    assert bandwidth(x, y) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(GeoError):
        bandwidth(np.zeros(3), np.zeros(3))


def test_density_surface_of_one_point_holds_one_event() -> None:
    # The Zócalo: one incident, a 200 m search radius on 10 m cells.
    surface = density_surface(np.array([-99.1332]), np.array([19.4326]), 200.0, 10.0)
    assert surface.crs == "EPSG:32614" and surface.events == 1  # UTM zone 14N
    cells = np.array(surface.cells)
    assert cells[:, 4].sum() * (10 / 1000) ** 2 == pytest.approx(1, rel=0.02)  # per km²
    peak = cells[np.argmax(cells[:, 4])]
    assert peak[2] == pytest.approx(-99.1332, abs=1e-4) and peak[3] == pytest.approx(
        19.4326, abs=1e-4
    )
    assert peak[4] == pytest.approx(3 / (np.pi * 200**2) * 1e6, rel=0.01)  # K(0) = 3 / (π h²)


def test_density_surface_names_the_parameter_that_asks_too_much() -> None:
    lon, lat = np.full(1000, -99.1332), np.full(1000, 19.4326)
    with pytest.raises(ParameterError) as refused:
        density_surface(lon, lat, 5_000.0, None)
    assert refused.value.parameter == "bandwidth" and refused.value.value == 5_000.0
    empty = density_surface(np.zeros(0), np.zeros(0), None, None)
    assert empty.events == 0 and empty.cells == [] and empty.bandwidth_rule == "none"
