"""The analyst map (/map), the dashboard embed (/embed) and the API reference (/docs, /redoc).

Every page is served offline: its scripts and styles come from /static.

Leaflet, Leaflet.VectorGrid and our script are served by Cuadra itself under /static (no
CDN); the basemap is the store's own archive (api/basemap.py) or the setting's.
"""

from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from api import basemap
from api.deps import FiltersDep, SnapshotDep
from api.errors import ERROR_RESPONSES
from api.tile_data import area_bounds, attribution
from ingest.taxonomy import TAXONOMY_DIR
from store.filters import FilterError
from store.snapshot import Snapshot
from tiles.grid import MAX_ZOOM, MIN_ZOOM, hex_res

router = APIRouter(tags=["pages"], responses=ERROR_RESPONSES)
STATIC = Path(__file__).resolve().parent.parent / "static"
VENDOR = STATIC / "vendor"
SCRIPTS = [
    ("leaflet", "/static/vendor/leaflet/leaflet.js"),
    ("vectorgrid", "/static/vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js"),
    ("protomaps", "/static/vendor/protomaps/protomaps-leaflet.js"),
]
# Leaflet-Geoman (drawing an area) is loaded by map.js once the first view is up: it is
# twice Leaflet's size, and the first view does not need it.
STYLES = [("leaflet_css", "/static/vendor/leaflet/leaflet.css"), ("cuadra_css", "/static/map.css")]
TITLES = {"es": "Cuadra — mapa de incidencia delictiva", "en": "Cuadra — crime map"}
LAYERS = ("heatmap", "hex", "colonias", "cuadrantes", "hotspots", "streets")
FILTER_KEYS = (
    "as_of",
    "start",
    "end",
    "category",
    "offense",
    "hour_from",
    "hour_to",
    "weekday",
    "bbox",
    "within",
)


@lru_cache(maxsize=1)
def category_labels() -> dict[str, dict[str, str]]:
    """Each category's label in Spanish and English (the taxonomy's table)."""
    with open(TAXONOMY_DIR / "categories.csv", encoding="utf-8", newline="") as fh:
        return {
            r["category"]: {"es": r["label_es"], "en": r["label_en"]} for r in csv.DictReader(fh)
        }


def _page(
    request: Request, snap: Snapshot, embed: bool, lang: str, layers: tuple[str, ...], metric: str
) -> HTMLResponse:
    import folium  # here: its import (with pandas) is a tenth of a server's start

    settings = request.app.state.settings
    bounds = area_bounds(snap) or (-99.37, 19.05, -98.94, 19.59)
    centre = [(bounds[1] + bounds[3]) / 2, (bounds[0] + bounds[2]) / 2]
    fmap = folium.Map(
        location=centre,
        zoom_start=11,
        tiles=None,
        min_zoom=MIN_ZOOM,
        max_zoom=MAX_ZOOM,
        control_scale=not embed,
    )
    # Our copies, not folium's CDN links: the page works on closed networks.
    fmap.default_js = SCRIPTS
    fmap.default_css = STYLES
    base = basemap.choose(settings.basemap, settings.basemap_url, snap.store)
    credit = attribution(settings.attribution, snap, lang)
    if base.kind == "xyz":
        folium.TileLayer(tiles=base.url, attr=credit, name="basemap", max_zoom=MAX_ZOOM).add_to(
            fmap
        )
    filters = [[k, v] for k, v in request.query_params.multi_items() if k in FILTER_KEYS]
    config = {
        "map": fmap.get_name(),
        "lang": lang,
        "embed": embed,
        "layers": list(layers),
        "metric": metric,
        "filters": filters,
        "boundaryLayers": snap.boundary_layers,
        "streetLayer": snap.manifest.street_layer,
        "categories": category_labels(),
        "attribution": credit,
        "minZoom": MIN_ZOOM,
        # The H3 resolution of hexagon tiles by zoom, and the finest the public sees: the
        # map asks /v1/aggregate for the cells in view to class them.
        "hexRes": {z: hex_res(z) for z in range(MIN_ZOOM, MAX_ZOOM + 1)},
        "finestH3": request.app.state.rules.finest_h3,
        "maxZoom": MAX_ZOOM,
        # "cuadra" (the store's own archive), "protomaps" (an extract), "xyz" or "none".
        "basemap": {"kind": base.kind, "url": base.url, "maxZoom": base.max_zoom},
        "bounds": [[bounds[1], bounds[0]], [bounds[3], bounds[2]]],
    }
    # JSON inside <script>: "</" must not close the element.
    payload = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    root = fmap.get_root()
    assert isinstance(root, folium.Figure)  # a Map's root is its Figure (header, html, script)
    root.header.add_child(folium.Element(f"<title>{TITLES[lang]}</title>"))
    root.html.add_child(
        folium.Element(
            f'<script id="cuadra-config" type="application/json">{payload}</script>'
            '<script src="/static/map.js"></script>'
        )
    )
    html = root.render().replace("<html>", f'<html lang="{lang}">', 1)
    headers = {"Cache-Control": "no-cache", "X-Cuadra-Snapshot": str(snap.id)}
    if not embed:
        headers["X-Frame-Options"] = "SAMEORIGIN"  # the analyst map is not for framing
    return HTMLResponse(html, headers=headers)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """No icon: an empty answer rather than a 404 in every browser console."""
    return Response(status_code=204)


# Errors stay JSON: the pages' 200 alone is HTML (a response_class would relabel them).
HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The page."}
}
Lang = Annotated[
    Literal["es", "en"], Query(description="Language of the page: es (default) or en.")
]
Metric = Annotated[
    Literal["count", "rate"], Query(description="Colonia colours: counts or rates per 100k.")
]


@router.get(
    "/map",
    response_class=Response,
    responses=HTML,
    summary="The analyst map (Leaflet, Spanish by default)",
)
def get_map(
    request: Request,
    snap: SnapshotDep,
    filters: FiltersDep,
    lang: Lang = "es",
    metric: Metric = "count",
) -> HTMLResponse:
    """The analyst map: choropleth, heatmap, hexagons, hot spots and outlines, with filters.

    Colonia choropleth (counts or rates), heatmap and hexagon tiles, Gi* hot spots (with
    an analyst key typed into the panel) and cuadrante outlines; filters reload the layers
    in place; a legend; a monthly chart of the selection or of the clicked colonia.

    The query string sets the first filters: `/map?offense=ROBO A NEGOCIO CON VIOLENCIA&lang=en`.
    """
    filters.to_filters()  # a bad filter is a 400 here, not a broken page
    return _page(request, snap, False, lang, ("heatmap", "colonias"), metric)


@router.get(
    "/embed",
    response_class=Response,
    responses=HTML,
    summary="The map for iframes: minimal chrome",
)
def get_embed(
    request: Request,
    snap: SnapshotDep,
    filters: FiltersDep,
    lang: Lang = "es",
    metric: Metric = "count",
    layers: Annotated[
        str,
        Query(
            pattern=r"^[a-z]+(,[a-z]+)*$",
            max_length=100,
            description=f"Comma-separated, of: {', '.join(LAYERS)}.",
        ),
    ] = "heatmap,colonias",
) -> HTMLResponse:
    """The map for dashboards: filters fixed by the query string, no filter panel.

    `<iframe src="https://cuadra.example/embed?offense=…&start=2024-01-01&layers=hex">`.
    """
    filters.to_filters()
    chosen = tuple(dict.fromkeys(layers.split(",")))
    unknown = [name for name in chosen if name not in LAYERS]
    if unknown:
        raise FilterError(
            "layers", layers, f"unknown layer {unknown[0]!r}; use {', '.join(LAYERS)}"
        )
    return _page(request, snap, True, lang, chosen, metric)


# The reference pages may load nothing from outside this server: ReDoc's sidebar asks a CDN
# for its logo, which this policy refuses in the browser (the page hides the broken image).
OWN_ONLY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; font-src 'self' data:"
)


def _own_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = OWN_ONLY
    return page


@router.get("/docs", include_in_schema=False)
def swagger_ui() -> HTMLResponse:
    """The interactive API reference (Swagger UI), its script and styles served from /static."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Cuadra — API",
        swagger_js_url="/static/vendor/swagger/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger/swagger-ui.css",
        swagger_favicon_url="/static/vendor/swagger/favicon-32x32.png",
        # No validator badge: it would ask a server outside this network about the schema.
        swagger_ui_parameters={"validatorUrl": None},
    )
    return _own_only(page)


@router.get("/redoc", include_in_schema=False)
def redoc() -> HTMLResponse:
    """The API reference as one page (ReDoc), served from /static without web fonts."""
    page = get_redoc_html(
        openapi_url="/openapi.json",
        title="Cuadra — API",
        redoc_js_url="/static/vendor/redoc/redoc.standalone.js",
        redoc_favicon_url="/static/vendor/swagger/favicon-32x32.png",
        with_google_fonts=False,
    )
    return _own_only(page)
