"""Heatmap tiles: quartic kernel density of weighted points on the tile's pixels, as PNG.

Points are binned to the centres of a pixel grid (half the tile's resolution: the kernel
is smooth) over the tile plus a margin of one kernel radius, then convolved with the
quartic kernel by FFT. A pixel's value depends only on the points within the radius, and
every tile of a zoom shares one global pixel grid, so neighbouring tiles join without a
seam. Colours come from one scale per zoom and filter set (the caller's ``scale``).
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image
from scipy import fft

from geo.kde import quartic
from tiles.grid import TILE_SIZE, Bounds

STEP = 2  # pixels per density cell
# Transparent for nothing, then yellow → orange → red → dark red, more opaque as it grows.
_STOPS = np.array(
    [
        [0.00, 255, 255, 178, 0],
        [0.02, 255, 255, 178, 90],
        [0.25, 254, 204, 92, 170],
        [0.50, 253, 141, 60, 200],
        [0.75, 240, 59, 32, 220],
        [1.00, 189, 0, 38, 235],
    ]
)


@lru_cache(maxsize=1)
def palette() -> tuple[bytes, bytes]:
    """The 256 colours (RGB bytes) and their opacities (the PNG tRNS chunk)."""
    t = np.linspace(0, 1, 256)
    rgba = np.column_stack([np.interp(t, _STOPS[:, 0], _STOPS[:, c]) for c in range(1, 5)])
    rgba[0, 3] = 0
    rgba = np.round(rgba).astype(np.uint8)
    return rgba[:, :3].tobytes(), rgba[:, 3].tobytes()


@lru_cache(maxsize=32)
def _kernel(radius: float) -> npt.NDArray[np.float64]:
    """Quartic kernel weights on a grid of unit cells, radius in cells, summing to 1.

    The continuous kernel integrates to one; sampled on a coarse grid it sums to a little
    more or less, so it is normalised: each incident adds exactly one to the surface.
    """
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    k = quartic(np.hypot(xx, yy), radius)
    return k / k.sum()


@lru_cache(maxsize=32)
def _kernel_spectrum(radius: float, length: int) -> npt.NDArray[np.complex128]:
    return fft.rfft2(_kernel(radius), (length, length))


def _convolved_core(grid: npt.NDArray[np.float64], radius: float, pad: int) -> npt.NDArray[Any]:
    """The grid convolved with the kernel, without its ``pad`` margin, by FFT.

    scipy.fft rather than scipy.signal.fftconvolve: importing scipy.signal is half a second
    of every server process's start, for this one call. The transform is as long as the
    full convolution (no wrap-around); the kernel's spectrum is kept per radius and length.
    """
    n = grid.shape[0]
    length = fft.next_fast_len(n + 2 * pad, real=True)
    full = fft.irfft2(
        fft.rfft2(grid, (length, length)) * _kernel_spectrum(radius, length), (length, length)
    )
    # Full convolution index i is grid index i - pad; the core starts at grid index pad.
    return full[2 * pad : n, 2 * pad : n]


def density(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    w: npt.ArrayLike,
    bounds: Bounds,
    radius: float,
    size: int = TILE_SIZE,
) -> npt.NDArray[np.float64]:
    """Kernel density (weight per square unit of ``bounds``) on the tile, rows north first.

    ``x``, ``y`` and ``bounds`` share one metric CRS (Web Mercator metres for tiles);
    ``radius`` is the kernel's, in those units. Returns ``size`` × ``size`` values, each
    the density at the centre of its ``STEP`` × ``STEP`` block of pixels.
    """
    xs, ys, ws = (np.asarray(v, dtype=np.float64) for v in (x, y, w))
    cells = size // STEP
    cell = (bounds.east - bounds.west) / cells
    r = radius / cell
    pad = int(np.ceil(r))
    n = cells + 2 * pad
    # Cell (row, col) of the padded grid; row 0 is the north edge.
    col = np.floor((xs - bounds.west) / cell).astype(np.int64) + pad
    row = np.floor((bounds.north - ys) / cell).astype(np.int64) + pad
    inside = (col >= 0) & (col < n) & (row >= 0) & (row < n)
    if not inside.any():
        return np.zeros((size, size))
    binned = np.bincount(row[inside] * n + col[inside], weights=ws[inside], minlength=n * n)
    grid = binned.reshape(n, n).astype(np.float64, copy=False)  # float already: weights
    core = _convolved_core(grid, radius=r, pad=pad) / (cell * cell)
    # FFT leaves values of about 1e-16 where there is nothing: those are zero.
    core[core < 1e-12 * max(float(core.max()), 1e-300)] = 0.0
    return np.repeat(np.repeat(core, STEP, axis=0), STEP, axis=1)


def levels(values: npt.NDArray[np.float64], scale: float) -> npt.NDArray[np.uint8]:
    """Palette indices: 0 for nothing, 1…255 along sqrt(value / scale), clipped."""
    if scale <= 0:
        return np.zeros(values.shape, np.uint8)
    # sqrt: faint areas stay visible beside a bright centre.
    frac = np.sqrt(np.clip(values / scale, 0.0, 1.0))
    out = np.ceil(frac * 255).astype(np.uint8)
    out[values <= 0] = 0
    return out


def encode_png(index: npt.NDArray[np.uint8]) -> bytes:
    """A palette PNG of the indices (fast zlib level: tiles are small and served hot)."""
    colours, alphas = palette()
    image = Image.fromarray(np.ascontiguousarray(index), mode="P")
    image.putpalette(colours)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, transparency=alphas)
    return buffer.getvalue()
