"""The peer of benchmarks/workers.py: the same public questions, DuckDB + Flask, one process.

What one would write without Cuadra: Flask's threaded server, DuckDB over the source
Parquet file for each request (no cubes, no suppression), and heatmap tiles drawn from the
points of the tile (a 2-D histogram, a Gaussian blur, a PNG). Routes mirror Cuadra's:

    GET /v1/aggregate?unit=colonia&start=&end=&offense=
    GET /v1/tiles/heatmap/{z}/{x}/{y}.png?start=&end=

    python benchmarks/peer_flask.py PORT
"""

from __future__ import annotations

import io
import sys
import threading

import duckdb
import mercantile
import numpy as np
from flask import Flask, Response, jsonify, request
from harness import POINTS
from PIL import Image
from pyproj import Transformer
from scipy.ndimage import gaussian_filter

app = Flask(__name__)
_local = threading.local()
_db = duckdb.connect()
_mercator = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)


def _cursor() -> duckdb.DuckDBPyConnection:
    if not hasattr(_local, "cur"):
        _local.cur = _db.cursor()
    return _local.cur  # type: ignore[no-any-return]


@app.get("/health")
def health() -> Response:
    """Up."""
    return jsonify(status="ok")


@app.get("/v1/aggregate")
def aggregate() -> Response:
    """Counts per colonia of one offense (or all) between two dates."""
    where, params = (
        "fecha_hecho >= ? AND fecha_hecho < ?",
        [request.args["start"], request.args["end"]],
    )
    if "offense" in request.args:
        where += " AND delito = ?"
        params.append(request.args["offense"])
    rows = (
        _cursor()
        .execute(
            f"SELECT colonia, count(*) AS n FROM read_parquet(?) WHERE {where} GROUP BY 1 ORDER BY 2 DESC",
            [str(POINTS), *params],
        )
        .fetchall()
    )
    return jsonify(rows=[{"unit_id": r[0], "count": r[1]} for r in rows])


@app.get("/v1/tiles/heatmap/<int:z>/<int:x>/<int:y>.png")
def heatmap(z: int, x: int, y: int) -> Response:
    """A heatmap tile of the points inside it."""
    b = mercantile.bounds(x, y, z)
    pts = (
        _cursor()
        .execute(
            "SELECT longitud, latitud FROM read_parquet(?) WHERE fecha_hecho >= ? AND fecha_hecho < ? "
            "AND longitud BETWEEN ? AND ? AND latitud BETWEEN ? AND ?",
            [
                str(POINTS),
                request.args["start"],
                request.args["end"],
                b.west,
                b.east,
                b.south,
                b.north,
            ],
        )
        .fetchnumpy()
    )
    xs, ys = _mercator.transform(pts["longitud"], pts["latitud"])
    box = mercantile.xy_bounds(x, y, z)
    grid, _, _ = np.histogram2d(
        ys, xs, bins=256, range=[[box.bottom, box.top], [box.left, box.right]]
    )
    smooth = gaussian_filter(grid[::-1], 6)
    level = (
        (255 * smooth / smooth.max()).astype(np.uint8)
        if smooth.max() > 0
        else smooth.astype(np.uint8)
    )
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, level
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG")
    return Response(out.getvalue(), mimetype="image/png")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
