"""/map and /embed: the HTML a person gets, then the page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ServerSettings
from store import Store

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"  # kept after the run, to look at


@pytest.fixture(scope="module")
def client(sample_store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(ServerSettings(store=sample_store.root))) as c:
        yield c


def _config(html: str) -> dict[str, object]:
    found = re.search(
        r'<script id="cuadra-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "the page carries its settings"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_map_page_is_offline_and_spanish(client: TestClient) -> None:
    response = client.get("/map", params={"offense": "ROBO A NEGOCIO CON VIOLENCIA"})
    assert response.status_code == 200 and response.headers["x-frame-options"] == "SAMEORIGIN"
    html = response.text
    assert '<html lang="es">' in html and "mapa de incidencia delictiva" in html
    # Every script and stylesheet comes from Cuadra itself: no CDN.
    resources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert resources and all(r.startswith("/static/") for r in resources), resources
    for path in resources:
        assert client.get(path).status_code == 200, path
    config = _config(html)
    assert config["filters"] == [["offense", "ROBO A NEGOCIO CON VIOLENCIA"]]
    assert config["embed"] is False and "colonia" in config["boundaryLayers"]  # type: ignore[operator]
    english = client.get("/map", params={"lang": "en"}).text
    assert '<html lang="en">' in english and "crime map" in english


def test_embed_takes_its_filters_and_layers_from_the_query(client: TestClient) -> None:
    response = client.get("/embed", params={"layers": "hex,cuadrantes", "start": "2023-01-01"})
    assert response.status_code == 200 and "x-frame-options" not in response.headers
    config = _config(response.text)
    assert config["embed"] is True and config["layers"] == ["hex", "cuadrantes"]
    assert config["filters"] == [["start", "2023-01-01"]]
    bad = client.get("/embed", params={"layers": "heatmap,satellite"})
    assert bad.status_code == 400 and bad.json()["parameter"] == "layers"
    assert client.get("/map", params={"weekday": 8}).status_code == 400


def test_layer_outlines(client: TestClient, sample_store: Store) -> None:
    manifest = sample_store.require_manifest()
    body = client.get("/v1/layers/cuadrante").json()
    assert len(body["features"]) == manifest.layers["cuadrante"].features
    assert {"unit_id", "name", "population"} <= set(body["features"][0]["properties"])
    assert client.get("/v1/layers/barrio").status_code == 400


@contextmanager
def _serving(root: Path, env: dict[str, str]) -> Iterator[str]:
    """``cuadra serve`` over a store on a free port, with these settings; its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CUADRA_RATE_PUBLIC": "100000/minute",
           "CUADRA_RATE_TILES": "100000/minute", **env}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.entry", "serve", "--store", str(root), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            raise RuntimeError("the server did not start")
        # The public tables are built ahead on the server's worker: a page opened before
        # would meet 503s (which the map reports) instead of figures.
        for _ in range(600):
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if json.load(answer)["release"] in ("ready", "failed"):
                    break
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture(scope="module")
def server(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from api.basemap import build_store_basemap

    # The store's own basemap, named by the setting (the shared store stays as it is).
    archive = tmp_path_factory.mktemp("basemap") / "cdmx.pmtiles"
    build_store_basemap(sample_store, maxzoom=14, path=archive)
    with _serving(sample_store.root, {"CUADRA_BASEMAP": str(archive)}) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="cuadra-chromium-")
    # Headless, and quiet on a closed network: no background connections to refuse.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,860", "--lang=es-MX",
                 f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: object, script: str, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if driver.execute_script(f"return {script};"):  # type: ignore[attr-defined]
            return
        time.sleep(0.2)
    state = driver.execute_script("return JSON.stringify(document.body.dataset) + ' ' + (document.getElementById('cuadra-top-streets') || {}).outerHTML + ' zoom ' + (window.cuadra && window.cuadra.map.getZoom())")  # type: ignore[attr-defined]  # fmt: skip
    raise AssertionError(f"timed out waiting for {script}; the page's state: {state}")


def test_map_in_chromium(server: str, browser: object) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(f"{server}/map?start=2023-01-01&end=2024-01-01")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.heatLoaded === '1' && document.body.dataset.layersReady === '1' && Number(document.body.dataset.chartPoints) > 0")  # fmt: skip
    find = driver.find_elements  # type: ignore[attr-defined]
    tiles = [e.get_attribute("src") for e in find(By.CSS_SELECTOR, "img.leaflet-tile")]
    assert any("/v1/tiles/heatmap/" in (s or "") and "start=2023-01-01" in (s or "") for s in tiles)
    assert int(driver.execute_script("return document.body.dataset.coloniasLoaded")) > 100  # type: ignore[attr-defined]
    assert len(find(By.CSS_SELECTOR, "path.leaflet-interactive")) > 100  # colonia polygons
    legend = find(By.ID, "cuadra-legend")[0].text
    assert "Leyenda" in legend and "Colonias" in legend
    assert find(By.ID, "cuadra-filters") and find(By.ID, "cuadra-chart")
    assert "Mapa de calor" in find(By.CSS_SELECTOR, ".leaflet-control-layers")[0].text
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / "map.png"))  # type: ignore[attr-defined]
    # Colonia classes follow the view: zoomed into the Centro they are those colonias'.
    city = driver.execute_script("return document.body.dataset.coloniaBreaks")  # type: ignore[attr-defined]
    driver.execute_script("window.cuadra.map.setView([19.4326, -99.1332], 15)")  # type: ignore[attr-defined]
    _wait(driver, f"document.body.dataset.coloniaBreaks !== {json.dumps(city)}")
    driver.execute_script("window.cuadra.map.fitBounds(window.cuadra.map.options.maxBounds || [[19.05, -99.37], [19.59, -98.94]], {animate: false})")  # type: ignore[attr-defined]  # fmt: skip
    _wait(driver, f"document.body.dataset.coloniaBreaks === {json.dumps(city)}")
    # Mexico's number format (Spain's would read 105.597,3), in the legend too.
    assert driver.execute_script("return window.cuadra.fmt(105597.25)") == "105,597.3"  # type: ignore[attr-defined]
    assert not re.search(r"\d\.\d{3}(?!\d)|\d,\d{1,2}(?!\d)", legend), legend
    # Filters reload the layers in place: same page, new tile URLs.
    driver.execute_script("window.cuadraMarker = 42;")  # type: ignore[attr-defined]
    select = find(By.ID, "f-category")[0]
    select.find_element(By.CSS_SELECTOR, "option[value='robo_transeunte']").click()
    find(By.ID, "f-apply")[0].click()
    _wait(driver, "document.body.dataset.layersReady === '1' && [...document.querySelectorAll('img.leaflet-tile')].some(i => i.src.includes('category=robo_transeunte'))")  # fmt: skip
    assert driver.execute_script("return window.cuadraMarker") == 42  # type: ignore[attr-defined]
    assert "category=robo_transeunte" in driver.current_url  # type: ignore[attr-defined]
    # A click on a colonia shows its figures and charts its months.
    name = driver.execute_script(  # type: ignore[attr-defined]
        "const l = window.cuadra.layers.colonias.getLayers().find(x => x.feature.properties.name);"
        "l.fire('click', {latlng: l.getBounds().getCenter()}); return l.feature.properties.name;"
    )
    _wait(driver, "document.querySelector('.leaflet-popup-content') !== null && document.body.dataset.layersReady === '1'")  # fmt: skip
    # textContent, not .text: WebDriver's .text is empty while the map pans to the popup.
    popup = driver.execute_script(
        "return document.querySelector('.leaflet-popup-content').textContent"
    )  # type: ignore[attr-defined]
    shown = " ".join(name.split())  # HTML folds runs of spaces
    assert shown in " ".join(popup.split()) and (
        "incidentes" in popup or "sin dato publicado" in popup
    ), popup
    _wait(
        driver, f"document.getElementById('cuadra-chart').textContent.includes({json.dumps(name)})"
    )


def test_basemap_is_drawn_beneath_the_layers_offline(server: str, browser: object) -> None:
    """At zoom 14 over the Centro: outlines and streets of the store's layers, all from here."""
    driver = browser
    driver.get(f"{server}/map?layers=colonias&start=2023-01-01&end=2024-01-01")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1'")
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")  # type: ignore[attr-defined]  # fmt: skip
    assert all(u.startswith(server) or u.startswith("data:") for u in urls), urls
    # The browser keeps 250 entries by default: room for the tiles of the next view.
    driver.execute_script("performance.clearResourceTimings(); performance.setResourceTimingBufferSize(5000)")  # type: ignore[attr-defined]  # fmt: skip
    driver.execute_script("window.cuadra.map.setView([19.4326, -99.1332], 14)")  # type: ignore[attr-defined]
    _wait(driver, "document.querySelectorAll('.leaflet-basemap-pane canvas').length >= 4 && document.body.dataset.layersReady === '1'")  # fmt: skip
    time.sleep(1.5)  # protomaps-leaflet paints after the tiles arrive
    # Pixels unlike the background colour: outlines and streets were painted.
    painted = driver.execute_script(  # type: ignore[attr-defined]
        "return [...document.querySelectorAll('.leaflet-basemap-pane canvas')].map(c => {"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) { if (Math.abs(d[i] - 244) + Math.abs(d[i+1] - 241) + Math.abs(d[i+2] - 234) > 40) n++; }"
        " return n; }).reduce((a, b) => a + b, 0)"
    )
    assert painted > 2000, painted
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")  # type: ignore[attr-defined]  # fmt: skip
    assert any("/v1/tiles/basemap/" in u for u in urls), urls
    assert all(u.startswith(server) or u.startswith("data:") for u in urls), urls
    driver.save_screenshot(str(SHOTS / "map-basemap.png"))  # type: ignore[attr-defined]


def test_streets_street_by_street(server: str, browser: object) -> None:
    """The Calles layer: segments coloured by the published street counts, a click gives the
    street's count as /v1/aggregate?unit=street does, a panel lists the top streets in view."""
    driver = browser
    period = "start=2023-01-01&end=2024-01-01"
    driver.get(f"{server}/map?{period}")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1'")
    driver.execute_script(  # type: ignore[attr-defined]
        "const c = window.cuadra; c.map.setView([19.4326, -99.1332], 15); c.map.addLayer(c.layers.streets);"
    )
    _wait(driver, "Number(document.body.dataset.streetsLoaded) > 0 && document.querySelectorAll('#cuadra-top-streets li').length > 0 && document.body.dataset.layersReady === '1'")  # fmt: skip
    with urllib.request.urlopen(f"{server}/v1/aggregate?unit=street&{period}") as answer:
        rows = json.load(answer)["rows"]
    # A real segment of a street tile on screen, clicked where it is drawn.
    _wait(driver, "document.querySelectorAll('.leaflet-tile path.leaflet-interactive').length > 0")
    clicked = driver.execute_script(  # type: ignore[attr-defined]
        "const layer = window.cuadra.layers.streets; let found = null;"
        "for (const tile of Object.values(layer._vectorTiles)) {"
        "  for (const [id, f] of Object.entries(tile._features)) { found = f.feature; break; }"
        "  if (found) break; }"
        "layer.fire('click', {latlng: window.cuadra.map.getCenter(), layer: found});"
        "return found.properties;"
    )
    top = {"unit_id": clicked["street_id"], "name": clicked["name"]}
    top["count"] = {r["unit_id"]: r["count"] for r in rows}[top["unit_id"]]
    _wait(driver, "document.querySelector('.leaflet-popup-content') !== null")
    popup = driver.execute_script("return document.querySelector('.leaflet-popup-content').textContent")  # type: ignore[attr-defined]  # fmt: skip
    shown = driver.execute_script("return window.cuadra.fmt(arguments[0])", top["count"])  # type: ignore[attr-defined]
    assert top["name"] in popup and f"{shown} incidentes" in popup, popup
    _wait(
        driver,
        f"document.getElementById('cuadra-chart').textContent.includes({json.dumps(top['name'])})",
    )
    legend = driver.execute_script("return document.getElementById('cuadra-legend').textContent")  # type: ignore[attr-defined]
    assert "Calles" in legend
    # The picture: streets alone over the basemap (colonias and heatmap switched off).
    driver.execute_script(  # type: ignore[attr-defined]
        "const c = window.cuadra; c.map.closePopup(); c.map.removeLayer(c.layers.colonias);"
        " c.map.removeLayer(c.layers.heatmap);"
    )
    time.sleep(1.5)
    driver.save_screenshot(str(SHOTS / "map-streets.png"))  # type: ignore[attr-defined]


def test_public_periods_and_the_hot_spot_key(server: str, browser: object) -> None:
    """The panel shows the period drawn, offers the release's periods, and hot spots say
    they need a key instead of staying empty."""
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(f"{server}/map")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1' && document.getElementById('f-period').options.length > 10")  # fmt: skip
    with urllib.request.urlopen(f"{server}/v1/meta") as answer:
        default = json.load(answer)["public"]["default"]
    value = driver.execute_script("return [document.getElementById('f-start').value, document.getElementById('f-end').value]")  # type: ignore[attr-defined]  # fmt: skip
    assert value == default
    period = Select(driver.find_element("id", "f-period"))  # type: ignore[attr-defined]
    labels = [o.text for o in period.options]
    assert "2023" in labels and "T1 2023" in labels and "enero de 2023" in labels, labels[:20]
    period.select_by_visible_text("T2 2023")
    driver.find_element("id", "f-apply").click()  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1' && [...document.querySelectorAll('img.leaflet-tile')].some(i => i.src.includes('start=2023-04-01') && i.src.includes('end=2023-07-01'))")  # fmt: skip
    assert not driver.execute_script("return document.body.dataset.error || ''")  # type: ignore[attr-defined]
    driver.execute_script("window.cuadra.map.addLayer(window.cuadra.layers.hotspots)")  # type: ignore[attr-defined]
    _wait(driver, "document.querySelector('.leaflet-popup-content') !== null")
    popup = driver.execute_script("return document.querySelector('.leaflet-popup-content').textContent")  # type: ignore[attr-defined]  # fmt: skip
    assert "clave de analista" in popup


def test_month_by_month_with_one_colour_scale(server: str, browser: object) -> None:
    """Play steps heatmap and hexagons through the months of the period drawn; every month's
    heatmap tiles carry the same scale window, the slider picks a month."""
    driver = browser
    driver.get(f"{server}/map?start=2023-01-01&end=2024-01-01")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1'")
    driver.find_element("id", "f-play").click()  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.animMonth === '2023-02-01'", seconds=40)
    tiles = driver.execute_script("return [...document.querySelectorAll('img.leaflet-tile')].map(i => i.src)")  # type: ignore[attr-defined]  # fmt: skip
    month = [u for u in tiles if "start=2023-02-01" in u]
    assert month and all(
        "scale_start=2023-01-01" in u and "scale_end=2024-01-01" in u for u in month
    ), tiles
    label = driver.execute_script("return document.getElementById('f-month-label').textContent")  # type: ignore[attr-defined]
    assert label == "febrero de 2023", label
    driver.find_element("id", "f-play").click()  # type: ignore[attr-defined]  # pause
    driver.execute_script("const s = document.getElementById('f-month'); s.value = '5'; s.dispatchEvent(new Event('input'));")  # type: ignore[attr-defined]  # fmt: skip
    _wait(
        driver,
        "document.body.dataset.animMonth === '2023-06-01' && document.body.dataset.layersReady === '1'",
    )
    assert not driver.execute_script("return document.body.dataset.error || ''")  # type: ignore[attr-defined]
    time.sleep(1)
    driver.save_screenshot(str(SHOTS / "map-months.png"))  # type: ignore[attr-defined]


def test_find_a_place_by_name(server: str, browser: object) -> None:
    """Typing in the search box lists the store's places; a click goes there."""
    driver = browser
    driver.get(f"{server}/map")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1'")
    box = driver.find_element("id", "f-place")  # type: ignore[attr-defined]
    box.send_keys("doctores")
    _wait(driver, "document.querySelectorAll('#f-places li').length >= 5")
    first = driver.find_elements("css selector", "#f-places li")[0]  # type: ignore[attr-defined]
    assert first.text.startswith("DOCTORES")
    first.click()
    _wait(driver, "!!document.body.dataset.placeShown")
    with urllib.request.urlopen(f"{server}/v1/places?q=doctores&limit=8") as answer:
        hit = json.load(answer)["hits"][0]
    lon, lat = hit["centroid"]
    inside = driver.execute_script("return window.cuadra.map.getBounds().contains([arguments[0], arguments[1]]) && window.cuadra.map.getZoom()", lat, lon)  # type: ignore[attr-defined]  # fmt: skip
    assert inside and inside >= 14, inside


def test_what_is_here_on_a_click(server: str, browser: object) -> None:
    """A click where no layer answers shows the units holding the point, as /v1/locate."""
    driver = browser
    period = "start=2023-01-01&end=2024-01-01"
    driver.get(f"{server}/map?{period}")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1'")
    driver.execute_script(  # type: ignore[attr-defined]
        "const c = window.cuadra; c.map.removeLayer(c.layers.colonias);"
        "c.map.fire('click', {latlng: L.latLng(19.4326, -99.1332), originalEvent: new MouseEvent('click')});"
    )
    _wait(
        driver,
        "Number(document.body.dataset.located) > 0 && !!document.querySelector('.cuadra-here')",
    )
    popup = driver.execute_script("return document.querySelector('.cuadra-here').textContent")  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"{server}/v1/locate?lon=-99.1332&lat=19.4326&{period}") as answer:
        units = {u["unit"]: u for u in json.load(answer)["units"]}
    assert units["colonia"]["name"] in popup and units["cuadrante"]["id"] in popup, popup


def _post_area(server: str, query: str, geometry: object, key: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        f"{server}/v1/area?{query}", data=json.dumps(geometry).encode(), headers=headers
    )
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)  # type: ignore[no-any-return]


def test_draw_an_area_and_read_its_panel(server: str, browser: object, analyst_key: str) -> None:
    """A polygon drawn with Leaflet-Geoman's own tool, vertex by vertex: the panel shows what
    /v1/area answers for it, to the public (whole colonias, outlined) and to a key."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver = browser
    period = "start=2023-01-01&end=2024-01-01"
    driver.get(f"{server}/map?{period}")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1'")
    driver.execute_script("window.cuadra.map.setView([19.4326, -99.1332], 15, {animate: false})")  # type: ignore[attr-defined]  # fmt: skip
    # Leaflet-Geoman arrives after the first view (it is not needed for it).
    _wait(driver, "document.body.dataset.layersReady === '1' && document.body.dataset.drawingReady === '1'")  # fmt: skip
    driver.find_element("css selector", ".leaflet-pm-icon-polygon").click()  # type: ignore[attr-defined]
    surface = driver.find_element("id", driver.execute_script("return window.cuadra.map.getContainer().id"))  # type: ignore[attr-defined]  # fmt: skip
    # Five vertices around the Zócalo (offsets from the map's centre, in pixels), then the
    # first again to close the ring.
    ring = [(-160, -120), (140, -140), (200, 60), (0, 170), (-180, 90), (-160, -120)]
    for dx, dy in ring:
        ActionChains(driver).move_to_element_with_offset(surface, dx, dy).click().perform()
        time.sleep(0.2)
    _wait(driver, "document.body.dataset.areaTotal !== undefined && document.body.dataset.layersReady === '1'")  # fmt: skip
    geometry = driver.execute_script("return window.cuadra.drawnGeometry()")  # type: ignore[attr-defined]
    assert geometry["type"] == "Polygon" and len(geometry["coordinates"][0]) == 6
    public = _post_area(server, period, geometry)
    panel = driver.execute_script("return document.getElementById('cuadra-area').textContent")  # type: ignore[attr-defined]
    assert public["area"]["units"] and "colonias completas" in panel
    shown = driver.execute_script("return window.cuadra.area()")  # type: ignore[attr-defined]
    assert shown["total"] == public["total"] and shown["area"] == public["area"]
    assert int(driver.execute_script("return window.cuadra.layers.areaUnits.getLayers().length")) == len(public["area"]["units"])  # type: ignore[attr-defined]  # fmt: skip
    top = public["top_units"][0]
    assert (top["name"] or top["unit_id"]) in panel
    time.sleep(1.0)
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / "map-area-public.png"))  # type: ignore[attr-defined]
    # With a key: the records inside the polygon itself.
    driver.find_element("id", "f-key").send_keys(analyst_key)  # type: ignore[attr-defined]
    driver.find_element("id", "f-apply").click()  # type: ignore[attr-defined]
    exact = _post_area(server, period, geometry, analyst_key)
    _wait(driver, f"document.body.dataset.areaTotal === '{exact['total']}' && document.body.dataset.layersReady === '1'")  # fmt: skip
    panel = driver.execute_script("return document.getElementById('cuadra-area').textContent")  # type: ignore[attr-defined]
    total = driver.execute_script("return window.cuadra.fmt(arguments[0])", exact["total"])  # type: ignore[attr-defined]
    assert f"{total} incidentes" in panel and "dentro del área" in panel, panel
    assert exact["area"] is None and exact["total"] != public["total"]
    chart = driver.execute_script("return document.getElementById('cuadra-chart').textContent")  # type: ignore[attr-defined]
    assert "Área dibujada" in chart
    driver.find_element("id", "f-area-csv").click()  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.exported === 'area.csv'")
    time.sleep(1.0)
    driver.save_screenshot(str(SHOTS / "map-area.png"))  # type: ignore[attr-defined]
    # Near me: the browser's location (granted, and set to the Zócalo), 500 m around it.
    driver.execute_cdp_cmd("Browser.grantPermissions", {"permissions": ["geolocation"], "origin": server})  # type: ignore[attr-defined]  # fmt: skip
    driver.execute_cdp_cmd("Emulation.setGeolocationOverride", {"latitude": 19.4326, "longitude": -99.1332, "accuracy": 10})  # type: ignore[attr-defined]  # fmt: skip
    near = f"{server}/v1/area?{period}&within=circle:-99.133200,19.432600,500"
    request = urllib.request.Request(near, headers={"Authorization": f"Bearer {analyst_key}"})
    with urllib.request.urlopen(request) as answer:
        around = json.load(answer)
    driver.find_element("id", "f-near").click()  # type: ignore[attr-defined]
    _wait(driver, f"document.body.dataset.areaTotal === '{around['total']}'")
    assert around["total"] != exact["total"]


def test_compstat_page_in_chromium(
    server: str, browser: object, analyst_key: str, tmp_path: Path
) -> None:
    """The printable CompStat pack renders: Spanish headings, es-MX numbers, its map."""
    driver = browser
    url = f"{server}/v1/reports/compstat?unit=colonia&id=15-040&week=2024-W20&format=html"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {analyst_key}"})
    with urllib.request.urlopen(request) as answer:
        page = tmp_path / "compstat.html"
        page.write_bytes(answer.read())
    driver.set_window_size(1280, 2200)  # type: ignore[attr-defined]
    try:
        driver.get(page.as_uri())  # type: ignore[attr-defined]
        _wait(
            driver,
            "document.querySelector('img.map') && document.querySelector('img.map').complete",
        )
        width = driver.execute_script("return document.querySelector('img.map').naturalWidth")  # type: ignore[attr-defined]
        assert width == 900
        text = driver.execute_script("return document.body.innerText")  # type: ignore[attr-defined]
        for heading in ("Informe CompStat", "Por categoría de delito", "Año a la fecha",
                        "Mayores aumentos", "Mapa de calor"):  # fmt: skip
            assert heading in text, heading
        # Mexico's decimal point (p 0.024, change +7.1), never Spain's decimal comma.
        assert re.search(r"\b0\.\d{3}\b", text) and not re.search(r"\b\d+,\d{1,2}\b", text)
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "compstat.png"))  # type: ignore[attr-defined]
    finally:
        driver.set_window_size(1280, 860)  # type: ignore[attr-defined]


def test_map_inputs_resolve_names(server: str, browser: object) -> None:
    """A name typed in the URL shows as the real one; an unknown one says the closest."""
    driver = browser
    real = "ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA"
    typed = urllib.parse.quote(real.lower())
    driver.get(f"{server}/map?start=2023-01-01&end=2024-01-01&offense={typed}")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1' && document.getElementById('f-offense').options.length > 1 && document.getElementById('f-offense').value !== ''")  # fmt: skip
    assert driver.execute_script("return document.getElementById('f-offense').value") == real  # type: ignore[attr-defined]
    assert int(driver.execute_script("return document.body.dataset.coloniasLoaded")) > 0  # type: ignore[attr-defined]
    driver.get(f"{server}/map?start=2023-01-01&end=2024-01-01&offense=ROBO%20DE%20UNICORNIO")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1' && !!document.body.dataset.error")
    shown = driver.execute_script("return document.getElementById('cuadra-status').textContent")  # type: ignore[attr-defined]
    assert "unknown offense" in shown and "closest" in shown, shown


def test_api_reference_offline(server: str, browser: object) -> None:
    """/docs and /redoc list the routes with nothing fetched from outside 127.0.0.1."""
    driver = browser
    driver.get(f"{server}/docs")  # type: ignore[attr-defined]
    _wait(driver, "document.querySelectorAll('.opblock').length > 10")
    paths = driver.execute_script("return [...document.querySelectorAll('.opblock-summary-path')].map(e => e.textContent)")  # type: ignore[attr-defined]  # fmt: skip
    assert "/v1/aggregate" in paths and "/v1/snapshots/diff" in paths
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / "docs.png"))  # type: ignore[attr-defined]
    driver.get(f"{server}/redoc")  # type: ignore[attr-defined]
    _wait(driver, "document.body.textContent.includes('/v1/snapshots/diff')")
    for page in ("/docs", "/redoc"):
        driver.get(f"{server}{page}")  # type: ignore[attr-defined]
        _wait(driver, "document.readyState === 'complete'")
        urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")  # type: ignore[attr-defined]  # fmt: skip
        outside = [u for u in urls if not u.startswith(server) and not u.startswith("data:")]
        assert not outside, outside


def test_embed_in_chromium(server: str, browser: object) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(f"{server}/embed?layers=hex,colonias&start=2023-01-01&end=2024-01-01&lang=en")  # type: ignore[attr-defined]
    _wait(driver, "document.body.dataset.layersReady === '1' && document.querySelectorAll('.leaflet-tile-container svg path, .leaflet-tile path').length > 0")  # fmt: skip
    find = driver.find_elements  # type: ignore[attr-defined]
    assert not find(By.ID, "cuadra-filters")  # minimal chrome
    legend = find(By.ID, "cuadra-legend")[0].text
    assert "Legend" in legend and "H3 hexagons" in legend and "Colonias" in legend
    assert "Heatmap" not in legend and "Hot spots" not in legend  # not drawn here
    # Hexagon classes from the cells in view: increasing breaks, several classes drawn.
    _wait(driver, "!!document.body.dataset.hexBreaks && document.body.dataset.layersReady === '1'")
    breaks = [int(b) for b in driver.execute_script("return document.body.dataset.hexBreaks").split(",")]  # type: ignore[attr-defined]  # fmt: skip
    assert len(breaks) >= 3 and breaks == sorted(set(breaks)), breaks
    fills = driver.execute_script("return new Set([...document.querySelectorAll('.leaflet-tile path')].map(p => p.getAttribute('fill'))).size")  # type: ignore[attr-defined]  # fmt: skip
    assert fills >= 3, fills
    driver.save_screenshot(str(SHOTS / "embed.png"))  # type: ignore[attr-defined]


def test_a_store_of_another_city_opens_over_it(empty_store: Store, browser: object) -> None:
    """police.uk West Yorkshire, no boundary layer: the map opens over Leeds with its
    records' hexagons, credits police.uk and shows no colonia legend."""
    from ingest.pipeline import ingest
    from ingest.profiles import load_profile
    from tests.conftest import DATA

    path = DATA / "west_yorkshire" / "2018-07-west-yorkshire-street.csv.gz"
    ingest(empty_store, [str(path)], load_profile("police-uk"))
    with TestClient(create_app(ServerSettings(store=empty_store.root))) as c:
        config = _config(c.get("/map?lang=en").text)
        tilejson = c.get("/v1/tiles/hex.json").json()
    (south, west), (north, east) = config["bounds"]  # type: ignore[misc]
    # Leeds and Bradford, not Mexico City.
    assert -2.3 < west < east < -1.1 and 53.4 < south < north < 54.1, config["bounds"]
    assert tilejson["bounds"] == [west, south, east, north]
    assert config["boundaryLayers"] == []
    credit = "police.uk, Open Government Licence v3.0 · Cuadra"
    assert config["attribution"] == "Data: " + credit  # the page is in English
    assert tilejson["attribution"] == "Datos: " + credit
    driver = browser
    with _serving(empty_store.root, {}) as url:
        driver.get(f"{url}/map?lang=en&start=2018-07-01&end=2018-08-01")  # type: ignore[attr-defined]
        _wait(driver, "document.body.dataset.layersReady === '1'")
        driver.execute_script("window.cuadra.map.addLayer(window.cuadra.layers.hex)")  # type: ignore[attr-defined]
        _wait(driver, "document.body.dataset.layersReady === '1' && document.querySelectorAll('.leaflet-tile path').length > 0")  # fmt: skip
        centre = driver.execute_script("const c = window.cuadra.map.getCenter(); return [c.lat, c.lng]")  # type: ignore[attr-defined]  # fmt: skip
        assert 53.5 < centre[0] < 54.0 and -2.2 < centre[1] < -1.2, centre
        legend = driver.execute_script("return document.getElementById('cuadra-legend').textContent")  # type: ignore[attr-defined]  # fmt: skip
        assert "Colonias" not in legend and "H3 hexagons" in legend, legend
        assert not driver.find_elements("id", "f-metric")  # type: ignore[attr-defined]  # no colonias to colour
        shown = driver.execute_script("return document.querySelector('.leaflet-control-attribution').textContent")  # type: ignore[attr-defined]  # fmt: skip
        assert "police.uk" in shown and "FGJ" not in shown, shown
        driver.save_screenshot(str(SHOTS / "map-leeds.png"))  # type: ignore[attr-defined]
