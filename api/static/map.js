/* Cuadra's map: layers from our own API, filters that reload them in place, a legend
   and a monthly chart. Reads its settings from the #cuadra-config JSON the server wrote. */
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  /* folium creates the Leaflet map in a script after the page's body: wait for it. */
  var config = JSON.parse(document.getElementById("cuadra-config").textContent);
  var map = window[config.map];
  var T = {
    es: {
      filters: "Filtros", start: "Desde", end: "Hasta (sin incluir)", category: "Categoría",
      offense: "Delito", all: "Todos", hours: "Horas (de – a)", apply: "Aplicar",
      metric: "Colonias por", count: "número de incidentes", rate: "tasa por 100 mil hab.",
      heatmap: "Mapa de calor", hex: "Hexágonos H3", colonias: "Colonias", cuadrantes: "Cuadrantes",
      hotspots: "Puntos calientes (Gi*)", legend: "Leyenda", incidents: "incidentes",
      rateShort: "por 100 mil", population: "población", chart: "Incidentes por mes",
      whole: "toda la selección", withheld: "sin dato publicado", density: "densidad (relativa)",
      hot: "caliente", cold: "frío", none: "sin patrón", key: "Clave de analista (opcional)",
      keyNeeded: "Los puntos calientes necesitan una clave de analista.", loading: "Cargando…",
      ready: "Listo", error: "Error", lang: "English", noData: "Sin datos",
      nothingHere: "Ninguna unidad aquí.",
      place: "Buscar lugar", placeHint: "colonia, calle, cuadrante…", noPlace: "Sin resultados",
      byMonth: "Mes a mes (misma escala de color)", play: "Reproducir", pause: "Pausa",
      period: "Periodo publicado", other: "— otro (con clave) —",
      withheldMonths: "Sin meses publicados: cada mes queda por debajo del umbral de privacidad.",
      streets: "Calles", topStreets: "Calles con más incidentes en la vista", zoomIn: "Acerque el mapa para ver calles.",
      area: "Área dibujada", areaHint: "Dibuje un círculo o polígono (herramientas a la izquierda).",
      total: "Total", topCategories: "Categorías principales", topColonias: "Colonias principales",
      nearMe: "Cerca de mí (500 m)", noLocation: "El navegador no compartió su ubicación.",
      wholeUnits: "Sin clave: cifras publicadas de las colonias completas que toca el área",
      exact: "Con clave: los incidentes dentro del área", exportCsv: "CSV", exportGeojson: "GeoJSON",
      clear: "Quitar", unknownTotal: "no publicado (alguna colonia sin dato)",
      publishedOf: function (n, m, sum) { return n + " de " + m + " colonias con cifra publicada suman " + sum; }
    },
    en: {
      filters: "Filters", start: "From", end: "Until (exclusive)", category: "Category",
      offense: "Offense", all: "All", hours: "Hours (from – to)", apply: "Apply",
      metric: "Colonias by", count: "number of incidents", rate: "rate per 100k residents",
      heatmap: "Heatmap", hex: "H3 hexagons", colonias: "Colonias", cuadrantes: "Cuadrantes",
      hotspots: "Hot spots (Gi*)", legend: "Legend", incidents: "incidents",
      rateShort: "per 100k", population: "population", chart: "Incidents per month",
      whole: "whole selection", withheld: "not published", density: "density (relative)",
      hot: "hot", cold: "cold", none: "no pattern", key: "Analyst key (optional)",
      keyNeeded: "Hot spots need an analyst key.", loading: "Loading…", ready: "Ready",
      error: "Error", lang: "Español", noData: "No data",
      nothingHere: "No unit here.",
      place: "Find a place", placeHint: "colonia, street, cuadrante…", noPlace: "No match",
      byMonth: "Month by month (one colour scale)", play: "Play", pause: "Pause",
      period: "Published period", other: "— other (with a key) —",
      withheldMonths: "No month published: each falls below the privacy threshold.",
      streets: "Streets", topStreets: "Streets with most incidents in view", zoomIn: "Zoom in to see streets.",
      area: "Drawn area", areaHint: "Draw a circle or polygon (tools on the left).",
      total: "Total", topCategories: "Top categories", topColonias: "Top colonias",
      nearMe: "Near me (500 m)", noLocation: "The browser did not share your location.",
      wholeUnits: "Without a key: published figures of the whole colonias the area touches",
      exact: "With a key: the incidents inside the area", exportCsv: "CSV", exportGeojson: "GeoJSON",
      clear: "Clear", unknownTotal: "not published (a colonia without a figure)",
      publishedOf: function (n, m, sum) { return n + " of " + m + " colonias with a published figure add up to " + sum; }
    }
  };
  var t = T[config.lang] || T.es;
  var state = { filters: config.filters.slice(), metric: config.metric, key: "", selected: null };
  var pending = 0;
  var RAMP = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"];
  var HEX_BREAKS = [1, 5, 10, 25, 50, 100, 250];  // until the cells in view are counted
  var HEX_COLOURS = ["#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"];

  function query(extra) {
    var params = new URLSearchParams();
    state.filters.forEach(function (kv) { if (kv[1] !== "") { params.append(kv[0], kv[1]); } });
    (extra || []).forEach(function (kv) { params.append(kv[0], kv[1]); });
    return params.toString();
  }
  function headers() { return state.key ? { Authorization: "Bearer " + state.key } : {}; }
  function status(text) {
    var el = document.getElementById("cuadra-status");
    if (el) { el.textContent = text; }
  }
  /* The first error of a load stays on screen: a request ending after it must not say "ready". */
  var failed = null;
  function fail(e) {
    failed = failed || e.message;
    document.body.dataset.error = failed;
    status(t.error + ": " + failed);
  }
  function busy(delta) {
    pending += delta;
    document.body.dataset.pending = String(pending);
    if (pending === 0) {
      document.body.dataset.layersReady = "1";
      // When the first view was whole: benchmarks/map.py reads it off the page.
      if (!document.body.dataset.readyMs) { document.body.dataset.readyMs = String(Math.round(performance.now())); }
      status(failed ? t.error + ": " + failed : t.ready);
    }
    else if (!failed) { status(t.loading); }
  }
  function getJSON(path) {
    busy(1);
    return fetch(path, { headers: headers() }).then(function (r) {
      busy(-1);
      if (!r.ok) { return r.json().then(function (b) { throw new Error(b.message || r.status); }); }
      return r.json();
    }, function (e) { busy(-1); throw e; });
  }
  /* Mexico's formats (1,234.5), not Spain's (1.234,5): "es" alone reads as Spain's. */
  var numbers = new Intl.NumberFormat(config.lang === "es" ? "es-MX" : "en", { maximumFractionDigits: 1 });
  function fmt(n) { return n === null || n === undefined ? "–" : numbers.format(Number(n)); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* The basemap beneath the data: the store's own archive (outlines and names of its
     layers, its streets) or a Protomaps extract, drawn by protomaps-leaflet from
     /v1/tiles/basemap; names on a pane above the choropleth so that they stay readable. */
  function addBasemap() {
    var b = config.basemap;
    if (!b || (b.kind !== "cuadra" && b.kind !== "protomaps") || !window.protomapsL) { return; }
    var P = window.protomapsL;
    map.createPane("basemap").style.zIndex = 150;
    var names = map.createPane("basemap-names");
    names.style.zIndex = 450;
    names.style.pointerEvents = "none";
    var common = { url: b.url, maxDataZoom: b.maxZoom, attribution: "" };
    if (b.kind === "protomaps") {
      P.leafletLayer(Object.assign({ flavor: "light", lang: config.lang, pane: "basemap" }, common)).addTo(map);
      return;
    }
    function of(layer) { return function (z, f) { return f.props.layer === layer; }; }
    function notOf(layers) { return function (z, f) { return layers.indexOf(f.props.layer) < 0; }; }
    var halo = { fill: "#333", stroke: "#fff", width: 2.5 };
    P.leafletLayer(Object.assign({
      pane: "basemap",
      backgroundColor: "#f4f1ea",
      paintRules: [
        { dataLayer: "boundaries", symbolizer: new P.PolygonSymbolizer({ fill: "#ebe6da" }), filter: of("alcaldia") },
        { dataLayer: "streets", symbolizer: new P.LineSymbolizer({ color: "#c9c2b3", width: P.exp(1.6, [[13, 1.5], [18, 9]]) }) },
        { dataLayer: "streets", symbolizer: new P.LineSymbolizer({ color: "#ffffff", width: P.exp(1.6, [[13, 0.8], [18, 7]]) }) },
        { dataLayer: "boundaries", symbolizer: new P.LineSymbolizer({ color: "#b7ae9c", width: 0.6 }), filter: notOf(["alcaldia"]) },
        { dataLayer: "boundaries", symbolizer: new P.LineSymbolizer({ color: "#8c8271", width: 1.6 }), filter: of("alcaldia") }
      ],
      labelRules: []
    }, common)).addTo(map);
    P.leafletLayer(Object.assign({
      pane: "basemap-names",
      paintRules: [],
      labelRules: [
        { dataLayer: "labels", maxzoom: 12, filter: of("alcaldia"),
          symbolizer: new P.CenteredTextSymbolizer(Object.assign({ labelProps: ["name"], font: "600 13px sans-serif", textTransform: "uppercase" }, halo)) },
        { dataLayer: "labels", minzoom: 13, filter: of("colonia"),
          symbolizer: new P.CenteredTextSymbolizer(Object.assign({ labelProps: ["name"], font: "500 11px sans-serif" }, halo)) },
        { dataLayer: "streets", minzoom: 15,
          symbolizer: new P.LineLabelSymbolizer(Object.assign({ labelProps: ["name"], font: "italic 10px sans-serif" }, halo)) }
      ]
    }, common)).addTo(map);
  }
  addBasemap();

  /* What is here (/v1/locate): a click where no layer answers shows the units holding the
     point (colonia, alcaldía, cuadrante, street) and their counts for the filters. A click
     on a colonia, street or hexagon is theirs: they mark its event first. */
  var lastFeatureEvent = null;
  function featureClicked(e) { lastFeatureEvent = e.originalEvent || e; }
  map.on("click", function (e) {
    if (e.originalEvent && e.originalEvent === lastFeatureEvent) { return; }
    if (map.pm && map.pm.globalDrawModeEnabled()) { return; }  // a vertex of a drawing
    var params = new URLSearchParams(query([["lon", e.latlng.lng.toFixed(6)], ["lat", e.latlng.lat.toFixed(6)]]));
    getJSON("/v1/locate?" + params.toString()).then(function (b) {
      var rows = b.units.filter(function (u) { return u.id !== null && u.unit.indexOf("h3:") !== 0; });
      var html = rows.length ? rows.map(function (u) {
        return "<div><b>" + esc(u.unit) + ":</b> " + esc(u.name || u.id) + " — " +
          (u.count === null ? esc(t.withheld) : fmt(u.count) + " " + t.incidents) + "</div>";
      }).join("") : esc(t.nothingHere);
      L.popup().setLatLng(e.latlng).setContent('<div class="cuadra-here">' + html + "</div>").openOn(map);
      document.body.dataset.located = String(rows.length);
    }).catch(fail);
  });

  /* Heatmap and hexagon tiles: their URLs carry the filters; setUrl reloads in place. */
  var tileOpts = { minZoom: config.minZoom, maxZoom: config.maxZoom, attribution: config.attribution };
  var heat = L.tileLayer("", Object.assign({ opacity: 0.85 }, tileOpts));
  heat.on("loading", function () { busy(1); });
  heat.on("load", function () { busy(-1); document.body.dataset.heatLoaded = "1"; });
  function hexColour(n) {
    var i = 0;
    while (i < HEX_BREAKS.length - 1 && n >= HEX_BREAKS[i + 1]) { i++; }
    return HEX_COLOURS[i];
  }
  var hex = L.vectorGrid.protobuf("", Object.assign({
    interactive: true,
    vectorTileLayerStyles: {
      hex: function (p) {
        return { fill: true, fillColor: hexColour(p.count), fillOpacity: 0.6, color: "#666", weight: 0.5 };
      }
    }
  }, tileOpts));
  /* Hexagon classes from the cells in view (quintiles of their published counts), so that
     a city view is not all top class; recomputed as the view or the filters change. */
  function loadHexClasses() {
    if (!map.hasLayer(hex)) { return Promise.resolve(); }
    var res = config.hexRes[Math.round(map.getZoom())] || 9;
    if (!state.key) { res = Math.min(res, config.finestH3); }
    var b = map.getBounds();
    var box = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(",");
    return getJSON("/v1/aggregate?" + query([["unit", "h3:" + res], ["bbox", box]])).then(function (body) {
      var cuts = quantiles(body.rows.map(function (r) { return r.count; }));
      HEX_BREAKS = [body.rows.length ? Math.min.apply(null, body.rows.map(function (r) { return r.count; })) : 1].concat(cuts.map(function (c) { return c + 1; }));
      HEX_COLOURS = HEX_BREAKS.map(function (_, i) { return RAMP[i]; });
      hex.redraw();
      document.body.dataset.hexBreaks = HEX_BREAKS.join(",");
      legend.update();
    }).catch(fail);
  }
  hex.on("click", function (e) {
    featureClicked(e);
    var p = e.layer.properties;
    L.popup().setLatLng(e.latlng).setContent(
      "<b>H3 " + esc(p.h3) + "</b><br>" + fmt(p.count) + " " + t.incidents).openOn(map);
  });
  function tileUrls() {
    var q = query();
    heat.setUrl("/v1/tiles/heatmap/{z}/{x}/{y}.png" + (q ? "?" + q : ""));
    hex.setUrl("/v1/tiles/hex/{z}/{x}/{y}.mvt" + (q ? "?" + q : ""));
    if (streets) { streets.setUrl("/v1/tiles/streets/{z}/{x}/{y}.mvt" + (q ? "?" + q : "")); }
  }

  /* Colonias: every outline, coloured by its published count or rate. */
  var outlines = {};
  var colonias = L.geoJSON(null, { style: function () { return { weight: 0.6, color: "#555", fillOpacity: 0 }; } });
  var cuadrantes = L.geoJSON(null, { style: function () { return { weight: 0.8, color: "#1f4e79", fill: false, dashArray: "3" }; } });
  var hotspots = L.geoJSON(null);
  var breaks = [];
  function classify(v) {
    if (v === null || v === undefined) { return null; }
    var i = 0;
    while (i < breaks.length && v > breaks[i]) { i++; }
    return RAMP[Math.min(i, RAMP.length - 1)];
  }
  /* Class breaks at the quintiles, each once: a class that would repeat a break (6 – 6)
     is merged into its neighbour. */
  function quantiles(values) {
    var s = values.filter(function (v) { return v !== null && v !== undefined; }).sort(function (a, b) { return a - b; });
    if (!s.length) { return []; }
    var out = [];
    [0.2, 0.4, 0.6, 0.8].forEach(function (q) {
      var v = s[Math.floor(q * (s.length - 1))];
      if (!out.length || v > out[out.length - 1]) { out.push(v); }
    });
    if (out[out.length - 1] >= s[s.length - 1]) { out.pop(); }  // no empty top class
    return out;
  }
  /* Legend rows of a classed layer: one per class actually drawn. */
  function classRows(cuts) {
    if (!cuts) { return ""; }
    var html = "", lo = 0;
    for (var i = 0; i <= cuts.length; i++) {
      var hi = cuts[i];
      html += "<div><i style=\"background:" + RAMP[i] + "\"></i>" +
        (hi === undefined ? "> " + fmt(lo) : fmt(lo) + " – " + fmt(hi)) + "</div>";
      lo = hi;
    }
    return html;
  }
  function loadOutlines(layer) {
    if (outlines[layer]) { return Promise.resolve(outlines[layer]); }
    return getJSON("/v1/layers/" + layer).then(function (g) { outlines[layer] = g; return g; });
  }
  function loadColonias() {
    if (config.boundaryLayers.indexOf("colonia") < 0) { return Promise.resolve(); }
    return Promise.all([loadOutlines("colonia"), getJSON("/v1/aggregate?" + query([["unit", "colonia"]]))])
      .then(function (res) {
        adoptResolved(res[1].filters || {});
        var byId = {};
        res[1].rows.forEach(function (r) { byId[r.unit_id] = r; });
        var key = state.metric === "rate" ? "rate_per_100k" : "count";
        colonias.clearLayers();
        colonias.options.style = function (f) {
          var r = byId[f.properties.unit_id];
          var c = r ? classify(r[key]) : null;
          return { weight: 0.6, color: "#555", fillColor: c || "#cccccc", fillOpacity: c ? 0.55 : 0.15 };
        };
        colonias.options.onEachFeature = function (f, lyr) {
          lyr.on("click", function (e) {
            featureClicked(e);
            var r = byId[f.properties.unit_id];
            lyr.bindPopup("<b>" + esc(f.properties.name || f.properties.unit_id) + "</b><br>" +
              (r ? fmt(r.count) + " " + t.incidents + "<br>" + fmt(r.rate_per_100k) + " " + t.rateShort
                 : t.withheld) +
              "<br>" + t.population + ": " + fmt(f.properties.population)).openPopup();
            state.selected = { unit: "colonia", id: f.properties.unit_id, name: f.properties.name };
            loadChart();
          });
        };
        colonias.addData(res[0]);
        coloniaValues = function (lyr) { var r = byId[lyr.feature.properties.unit_id]; return r ? r[key] : null; };
        document.body.dataset.coloniasLoaded = String(res[1].rows.length);
        classColonias();
      }).catch(fail);
  }
  /* Colonia classes from the colonias in view, as for hexagons: zoomed into a few
     colonias, their differences show instead of one class for all. */
  var coloniaValues = null;
  function classColonias() {
    if (!coloniaValues || !map.hasLayer(colonias)) { return; }
    var view = map.getBounds(), values = [];
    colonias.eachLayer(function (lyr) {
      if (view.intersects(lyr.getBounds())) { values.push(coloniaValues(lyr)); }
    });
    breaks = quantiles(values);
    colonias.setStyle(colonias.options.style);
    document.body.dataset.coloniaBreaks = breaks.join(",");
    legend.update();
  }
  function loadCuadrantes() {
    if (config.boundaryLayers.indexOf("cuadrante") < 0) { return Promise.resolve(); }
    return loadOutlines("cuadrante").then(function (g) { cuadrantes.clearLayers(); cuadrantes.addData(g); });
  }
  var HOT = { hot_99: "#b2182b", hot_95: "#ef8a62", hot_90: "#fddbc7", cold_90: "#d1e5f0", cold_95: "#67a9cf", cold_99: "#2166ac" };
  function loadHotspots() {
    if (!state.key) {
      status(t.keyNeeded);
      L.popup().setLatLng(map.getCenter()).setContent(esc(t.keyNeeded)).openOn(map);
      return Promise.resolve();
    }
    return Promise.all([loadOutlines("colonia"), getJSON("/v1/hotspots?" + query([["unit", "colonia"]]))])
      .then(function (res) {
        var cls = {};
        res[1].rows.forEach(function (r) { cls[r.unit_id] = r["class"]; });
        hotspots.clearLayers();
        hotspots.options.style = function (f) {
          var c = HOT[cls[f.properties.unit_id]];
          return { weight: 0.4, color: "#777", fillColor: c || "#ffffff", fillOpacity: c ? 0.7 : 0 };
        };
        hotspots.addData(res[0]);
      }).catch(fail);
  }

  /* The monthly chart of the selection (or of the clicked colonia). */
  var chart = L.control({ position: "bottomleft" });
  chart.onAdd = function () {
    var div = L.DomUtil.create("div", "cuadra-panel cuadra-chart");
    div.id = "cuadra-chart";
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  function drawChart(rows, title) {
    var el = document.getElementById("cuadra-chart");
    if (!el) { return; }
    var w = 280, h = 110, pad = 22;
    if (rows.length && rows.every(function (r) { return r.count === null; })) {
      // Every month withheld (a street's months fall below k): say so, not a line at zero.
      el.innerHTML = '<div class="title">' + esc(t.chart) + " — " + esc(title) + "</div><div>" + esc(t.withheldMonths) + "</div>";
      document.body.dataset.chartPoints = "0";
      return;
    }
    var max = Math.max.apply(null, rows.map(function (r) { return r.count || 0; }).concat([1]));
    var pts = rows.map(function (r, i) {
      var x = pad + (rows.length > 1 ? i * (w - 2 * pad) / (rows.length - 1) : 0);
      var y = h - pad - (r.count || 0) * (h - 2 * pad) / max;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" ");
    var first = rows.length ? rows[0].period.slice(0, 7) : "", last = rows.length ? rows[rows.length - 1].period.slice(0, 7) : "";
    el.innerHTML = '<div class="title">' + esc(t.chart) + " — " + esc(title) + "</div>" +
      '<svg width="' + w + '" height="' + h + '" role="img" aria-label="' + esc(t.chart) + '">' +
      '<line x1="' + pad + '" y1="' + (h - pad) + '" x2="' + (w - pad) + '" y2="' + (h - pad) + '" stroke="#999"/>' +
      '<polyline fill="none" stroke="#bd0026" stroke-width="1.8" points="' + pts + '"/>' +
      '<text x="' + pad + '" y="12" font-size="10">' + fmt(max) + "</text>" +
      '<text x="' + pad + '" y="' + (h - 6) + '" font-size="10">' + esc(first) + "</text>" +
      '<text x="' + (w - pad) + '" y="' + (h - 6) + '" font-size="10" text-anchor="end">' + esc(last) + "</text></svg>";
    document.body.dataset.chartPoints = String(rows.length);
  }
  function loadChart() {
    var extra = [["interval", "month"]];
    var title = t.whole;
    if (state.selected) {
      extra.push(["unit", state.selected.unit], ["id", state.selected.id]);
      title = state.selected.name || state.selected.id;
    }
    return getJSON("/v1/timeseries?" + query(extra))
      .then(function (b) { drawChart(b.rows, title); })
      .catch(fail);
  }

  /* Streets: /v1/tiles/streets, each segment with the count /v1/aggregate?unit=street
     publishes (the same numbers); classes from all the streets' counts; a click gives the
     street's count and months, a panel the top streets in view. */
  var STREET_ZOOM = 13;
  var streetBreaks = [];
  function streetColour(n) {
    var i = 0;
    while (i < streetBreaks.length && n > streetBreaks[i]) { i++; }
    return RAMP[Math.min(i, RAMP.length - 1)];
  }
  var streets = config.streetLayer ?
    L.vectorGrid.protobuf("", {
      minZoom: STREET_ZOOM, maxZoom: config.maxZoom, interactive: true,
      getFeatureId: function (f) { return f.properties.street_id; },
      vectorTileLayerStyles: {
        streets: function (p, z) {
          return { weight: z >= 16 ? 7 : 4, color: streetColour(p.count), opacity: 0.95 };
        }
      }
    }) : null;
  function loadStreets() {
    if (!streets || !map.hasLayer(streets)) { return Promise.resolve(); }
    return getJSON("/v1/aggregate?" + query([["unit", "street"]])).then(function (b) {
      streetBreaks = quantiles(b.rows.map(function (r) { return r.count; }));
      streets.redraw();  // the classes arrived after the first tiles
      document.body.dataset.streetsLoaded = String(b.rows.length);
      legend.update();
      return loadTopStreets();
    }).catch(fail);
  }
  if (streets) {
    streets.on("click", function (e) {
      featureClicked(e);
      var p = e.layer.properties;
      L.popup().setLatLng(e.latlng).setContent("<b>" + esc(p.name || p.street_id) + "</b><br>" +
        fmt(p.count) + " " + t.incidents).openOn(map);
      state.selected = { unit: "street", id: p.street_id, name: p.name };
      document.body.dataset.streetClicked = p.street_id;
      loadChart();
    });
  }
  var topStreets = L.control({ position: "bottomleft" });
  topStreets.onAdd = function () {
    var div = L.DomUtil.create("div", "cuadra-panel cuadra-top");
    div.id = "cuadra-top-streets";
    div.style.display = "none";
    return div;
  };
  function loadTopStreets() {
    var el = document.getElementById("cuadra-top-streets");
    if (!el) { return Promise.resolve(); }
    if (!streets || !map.hasLayer(streets)) { el.style.display = "none"; return Promise.resolve(); }
    el.style.display = "";
    if (map.getZoom() < STREET_ZOOM) { el.innerHTML = esc(t.zoomIn); return Promise.resolve(); }
    var b = map.getBounds();
    var box = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(",");
    return getJSON("/v1/aggregate?" + query([["unit", "street"], ["bbox", box]])).then(function (body) {
      el.innerHTML = '<div class="title">' + esc(t.topStreets) + "</div><ol>" + body.rows.slice(0, 8).map(function (r) {
        return "<li>" + esc(r.name || r.unit_id) + " — " + fmt(r.count) + "</li>";
      }).join("") + "</ol>";
    }).catch(fail);
  }

  /* Legend: the colonia classes, the heatmap ramp, the hot spot classes. */
  var legend = L.control({ position: "bottomright" });
  legend.onAdd = function () {
    this._div = L.DomUtil.create("div", "cuadra-panel cuadra-legend");
    this._div.id = "cuadra-legend";
    this.update();
    return this._div;
  };
  /* Only the layers the map draws: an embed of hexagons lists hexagons, a store without
     colonias no colonia classes. */
  legend.update = function () {
    if (!this._div) { return; }
    var label = state.metric === "rate" ? t.rate : t.count;
    var html = "<h2>" + esc(t.legend) + "</h2>";
    if (map.hasLayer(colonias) && config.boundaryLayers.indexOf("colonia") >= 0) {
      html += "<div>" + esc(t.colonias) + " — " + esc(label) + "</div>" + classRows(breaks) +
        "<div><i style=\"background:#cccccc\"></i>" + esc(t.withheld) + "</div>";
    }
    if (map.hasLayer(heat)) {
      html += "<div>" + esc(t.heatmap) + " — " + esc(t.density) + '</div><div class="ramp"></div>';
    }
    if (map.hasLayer(hex)) {
      html += "<div>" + esc(t.hex) + " — " + esc(t.count) + "</div><div>" + HEX_BREAKS.map(function (b, i) {
        return '<i style="background:' + HEX_COLOURS[i] + '"></i>' + fmt(b) + (i === HEX_BREAKS.length - 1 ? "+" : "");
      }).join(" ") + "</div>";  // each class from its break up to the next
    }
    if (streets && map.hasLayer(streets) && streetBreaks.length) {
      html += "<div>" + esc(t.streets) + " — " + esc(t.count) + "</div>" + classRows(streetBreaks);
    }
    if (map.hasLayer(hotspots)) {
      html += "<div>" + esc(t.hotspots) + ': <i style="background:#b2182b"></i>' + esc(t.hot) +
        ' <i style="background:#2166ac"></i>' + esc(t.cold) + "</div>";
    }
    this._div.innerHTML = html;
  };
  map.on("overlayadd overlayremove", function () { legend.update(); });

  /* The filter panel (not on /embed): dates, category, offense, hours, metric, key. */
  function filterValue(name) {
    for (var i = 0; i < state.filters.length; i++) { if (state.filters[i][0] === name) { return state.filters[i][1]; } }
    return "";
  }
  var panel = L.control({ position: "topright" });
  panel.onAdd = function () {
    var div = L.DomUtil.create("div", "cuadra-panel");
    div.id = "cuadra-filters";
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.disableScrollPropagation(div);
    var cats = Object.keys(config.categories).sort(function (a, b) {
      return config.categories[a][config.lang].localeCompare(config.categories[b][config.lang]);
    });
    var other = config.lang === "es" ? "en" : "es";
    var params = new URLSearchParams(window.location.search);
    params.set("lang", other);
    div.innerHTML = '<form id="cuadra-form" autocomplete="off" onsubmit="return false">' + "<h2>" + esc(t.filters) + '<span class="cuadra-lang"><a id="cuadra-lang" href="?' +
      esc(params.toString()) + '">' + esc(t.lang) + "</a></span></h2>" +
      '<label for="f-place">' + esc(t.place) + '</label><input id="f-place" type="search" placeholder="' + esc(t.placeHint) + '" autocomplete="off"><ul id="f-places" class="cuadra-places"></ul>' +
      '<label for="f-period">' + esc(t.period) + '</label><select id="f-period"><option value="">' + esc(t.other) + "</option></select>" +
      '<div class="row"><div><label for="f-start">' + esc(t.start) + '</label><input id="f-start" type="date" value="' + esc(filterValue("start")) + '"></div>' +
      '<div><label for="f-end">' + esc(t.end) + '</label><input id="f-end" type="date" value="' + esc(filterValue("end")) + '"></div></div>' +
      '<label for="f-category">' + esc(t.category) + '</label><select id="f-category"><option value="">' + esc(t.all) + "</option>" +
      cats.map(function (c) { return '<option value="' + esc(c) + '"' + (filterValue("category") === c ? " selected" : "") + ">" + esc(config.categories[c][config.lang]) + "</option>"; }).join("") +
      "</select>" +
      '<label for="f-offense">' + esc(t.offense) + '</label><select id="f-offense"><option value="">' + esc(t.all) + "</option></select>" +
      '<label>' + esc(t.hours) + '</label><div class="row"><div><input id="f-hour-from" type="number" min="0" max="23" value="' + esc(filterValue("hour_from")) + '"></div>' +
      '<div><input id="f-hour-to" type="number" min="0" max="23" value="' + esc(filterValue("hour_to")) + '"></div></div>' +
      // The colour metric of colonias: only where the store has them.
      (config.boundaryLayers.indexOf("colonia") < 0 ? "" :
        '<label for="f-metric">' + esc(t.metric) + '</label><select id="f-metric"><option value="count">' + esc(t.count) + '</option><option value="rate"' + (state.metric === "rate" ? " selected" : "") + ">" + esc(t.rate) + "</option></select>") +
      '<label for="f-key">' + esc(t.key) + '</label><input id="f-key" type="password" autocomplete="off">' +
      '<button id="f-apply" type="button">' + esc(t.apply) + "</button>" +
      '<label for="f-month">' + esc(t.byMonth) + '</label><div class="cuadra-anim"><button id="f-play" type="button" aria-label="' + esc(t.play) + '">▶</button>' +
      '<input id="f-month" type="range" min="0" max="0" value="0"><span id="f-month-label"></span></div>' +
      '<div id="cuadra-status" class="cuadra-status"></div></form>';
    return div;
  };
  /* A name typed in the URL (other case, no accents) is answered as the real one: the
     answer's filters say which, and the inputs show it. */
  function adoptResolved(filters) {
    [["offense", "offenses", "f-offense"], ["category", "categories", "f-category"]].forEach(function (p) {
      var real = filters[p[1]];
      if (!real || real.length !== 1 || filterValue(p[0]) === real[0]) { return; }
      state.filters = state.filters.map(function (kv) { return kv[0] === p[0] ? [p[0], real[0]] : kv; });
      var input = document.getElementById(p[2]);
      if (input) { input.value = real[0]; }
    });
  }
  /* The public's periods: whole years, quarters and months of the release, newest first;
     picking one fills the dates (any other window earns a 400 without a key). */
  function periodChoices(meta) {
    var until = meta.public.published_until, first = (meta.date_min || until).slice(0, 4);
    var out = [], months = new Intl.DateTimeFormat(config.lang === "es" ? "es-MX" : "en", { month: "long", year: "numeric", timeZone: "UTC" });
    function iso(y, m) { return y + "-" + String(m).padStart(2, "0") + "-01"; }
    function next(y, m, n) { var k = y * 12 + (m - 1) + n; return iso(Math.floor(k / 12), k % 12 + 1); }
    for (var y = Number(until.slice(0, 4)); y >= Number(first); y--) {
      if (next(y, 1, 12) <= until) { out.push([String(y), iso(y, 1), next(y, 1, 12)]); }
      for (var q = 4; q >= 1; q--) {
        if (next(y, 3 * q - 2, 3) <= until) { out.push([(config.lang === "es" ? "T" : "Q") + q + " " + y, iso(y, 3 * q - 2), next(y, 3 * q - 2, 3)]); }
      }
      for (var m = 12; m >= 1; m--) {
        if (next(y, m, 1) <= until) { out.push([months.format(new Date(iso(y, m) + "T00:00:00Z")), iso(y, m), next(y, m, 1)]); }
      }
    }
    return out;
  }
  function fillPeriods(meta) {
    var select = document.getElementById("f-period");
    if (!select || !meta.public) { return; }
    periodChoices(meta).forEach(function (p) {
      var opt = document.createElement("option");
      opt.value = p[1] + "/" + p[2]; opt.textContent = p[0];
      opt.selected = filterValue("start") === p[1] && filterValue("end") === p[2];
      select.appendChild(opt);
    });
    select.addEventListener("change", function () {
      if (!select.value) { return; }
      var se = select.value.split("/");
      document.getElementById("f-start").value = se[0];
      document.getElementById("f-end").value = se[1];
    });
    // The dates drawn: without start and end the public sees the release's default period.
    if (!filterValue("start") && !filterValue("end") && !state.key && meta.public.default) {
      document.getElementById("f-start").value = meta.public.default[0];
      document.getElementById("f-end").value = meta.public.default[1];
      select.value = meta.public.default[0] + "/" + meta.public.default[1];
    }
  }
  function loadOffenses() {
    return getJSON("/v1/meta").then(function (meta) {
      fillPeriods(meta);
      var select = document.getElementById("f-offense");
      if (!select) { return; }
      Object.keys(meta.offenses).sort().forEach(function (o) {
        var opt = document.createElement("option");
        opt.value = o; opt.textContent = o; opt.selected = filterValue("offense") === o;
        select.appendChild(opt);
      });
    }).catch(fail);
  }
  function readPanel() {
    var keep = state.filters.filter(function (kv) {
      return ["start", "end", "category", "offense", "hour_from", "hour_to"].indexOf(kv[0]) < 0;
    });
    [["start", "f-start"], ["end", "f-end"], ["category", "f-category"], ["offense", "f-offense"],
     ["hour_from", "f-hour-from"], ["hour_to", "f-hour-to"]].forEach(function (p) {
      var v = document.getElementById(p[1]).value;
      if (v !== "") { keep.push([p[0], v]); }
    });
    state.filters = keep;
    var metric = document.getElementById("f-metric");
    state.metric = metric ? metric.value : state.metric;
    state.key = document.getElementById("f-key").value.trim();
    var params = new URLSearchParams(query());
    params.set("lang", config.lang);
    params.set("metric", state.metric);
    history.replaceState(null, "", "?" + params.toString());
  }
  function reload() {
    stopAnimation();
    if (drawn.getLayers().length) { askArea(drawn.getLayers()[0]); }
    anim.months = [];
    var label = document.getElementById("f-month-label");
    if (label) { label.textContent = ""; }
    failed = null;
    delete document.body.dataset.error;
    document.body.dataset.layersReady = "0";
    tileUrls();
    var jobs = [loadColonias(), drawn.getLayers().length ? Promise.resolve() : loadChart(), loadStreets(), loadHexClasses()];
    if (map.hasLayer(hotspots)) { jobs.push(loadHotspots()); }
    return Promise.all(jobs);
  }

  /* Month by month: heatmap and hexagons step through the months of the period drawn,
     the heatmap with one colour scale for all of them (scale_start/scale_end) and the
     hexagons with classes from every month's cells in view; each month's tiles have URLs of
     their own, so they stay cached. Apply (or a new period) ends the animation. */
  var anim = { months: [], timer: null, hexBreaks: null };
  function periodMonths() {
    var start = (document.getElementById("f-start") || {}).value || filterValue("start");
    var end = (document.getElementById("f-end") || {}).value || filterValue("end");
    if (!start || !end) { return []; }
    var out = [], y = Number(start.slice(0, 4)), m = Number(start.slice(5, 7));
    while (out.length < 36) {
      var a = y + "-" + String(m).padStart(2, "0") + "-01";
      m += 1; if (m > 12) { m = 1; y += 1; }
      var b = y + "-" + String(m).padStart(2, "0") + "-01";
      if (b > end) { break; }
      out.push([a, b]);
    }
    return out;
  }
  function monthQuery(month) {
    var params = new URLSearchParams();
    state.filters.forEach(function (kv) { if (kv[0] !== "start" && kv[0] !== "end") { params.append(kv[0], kv[1]); } });
    params.set("start", month[0]);
    params.set("end", month[1]);
    return params;
  }
  var monthNames = new Intl.DateTimeFormat(config.lang === "es" ? "es-MX" : "en", { month: "long", year: "numeric", timeZone: "UTC" });
  function showMonth(i) {
    var month = anim.months[i], params = monthQuery(month);
    hex.setUrl("/v1/tiles/hex/{z}/{x}/{y}.mvt?" + params.toString());
    params.set("scale_start", anim.months[0][0]);
    params.set("scale_end", anim.months[anim.months.length - 1][1]);
    heat.setUrl("/v1/tiles/heatmap/{z}/{x}/{y}.png?" + params.toString());
    if (anim.hexBreaks) { HEX_BREAKS = anim.hexBreaks; HEX_COLOURS = HEX_BREAKS.map(function (_, k) { return RAMP[k]; }); legend.update(); }
    document.getElementById("f-month").value = String(i);
    document.getElementById("f-month-label").textContent = monthNames.format(new Date(month[0] + "T00:00:00Z"));
    document.body.dataset.animMonth = month[0];
  }
  function animHexBreaks() {
    // Every month's published cells in view, one after another (the public's in-flight cap).
    if (!map.hasLayer(hex)) { return Promise.resolve(); }
    var res = config.hexRes[Math.round(map.getZoom())] || 9;
    if (!state.key) { res = Math.min(res, config.finestH3); }
    var b = map.getBounds(), all = [];
    var box = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(",");
    return anim.months.reduce(function (chain, month) {
      return chain.then(function () {
        var params = monthQuery(month);
        params.set("unit", "h3:" + res);
        params.set("bbox", box);
        return getJSON("/v1/aggregate?" + params.toString()).then(function (body) {
          body.rows.forEach(function (r) { all.push(r.count); });
        });
      });
    }, Promise.resolve()).then(function () {
      if (!all.length) { return; }
      anim.hexBreaks = [Math.min.apply(null, all)].concat(quantiles(all).map(function (c) { return c + 1; }));
    });
  }
  function stopAnimation() {
    if (anim.timer) { clearInterval(anim.timer); anim.timer = null; }
    var play = document.getElementById("f-play");
    if (play) { play.textContent = "▶"; play.setAttribute("aria-label", t.play); }
  }
  function prepareAnimation() {
    anim.months = periodMonths();
    anim.hexBreaks = null;
    var slider = document.getElementById("f-month");
    slider.max = String(Math.max(anim.months.length - 1, 0));
    return anim.months.length < 2 ? Promise.resolve(false) : animHexBreaks().then(function () { return true; }).catch(function (e) { fail(e); return false; });
  }
  /* Find a place by name (/v1/places: the store's own names, no geocoder): the hits as a
     list under the box, a click goes there. */
  function wirePlaces() {
    var input = document.getElementById("f-place"), list = document.getElementById("f-places");
    var asked = 0;
    function show(hits) {
      list.innerHTML = hits.length ? "" : "<li>" + esc(t.noPlace) + "</li>";
      hits.forEach(function (h) {
        var li = document.createElement("li");
        li.innerHTML = "<b>" + esc(h.name) + "</b> <span>" + esc(h.layer) + "</span>";
        li.addEventListener("click", function () {
          map.fitBounds([[h.bbox[1], h.bbox[0]], [h.bbox[3], h.bbox[2]]], { maxZoom: 16, animate: false });
          list.innerHTML = "";
          document.body.dataset.placeShown = h.name;
        });
        list.appendChild(li);
      });
    }
    var timer = null;
    input.addEventListener("input", function () {
      // One request when typing pauses, not one a keystroke (the public's in-flight cap).
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = input.value.trim(), mine = ++asked;
        if (q.length < 2) { list.innerHTML = ""; return; }
        getJSON("/v1/places?" + new URLSearchParams({ q: q, limit: "8" }).toString()).then(function (b) {
          if (mine === asked) { show(b.hits); }  // an older answer arriving late is dropped
        }).catch(fail);
      }, 250);
    });
  }
  function wireAnimation() {
    var play = document.getElementById("f-play"), slider = document.getElementById("f-month");
    play.addEventListener("click", function () {
      if (anim.timer) { stopAnimation(); return; }
      prepareAnimation().then(function (ok) {
        if (!ok) { return; }
        var i = 0;
        showMonth(i);
        play.textContent = "❚❚";
        play.setAttribute("aria-label", t.pause);
        anim.timer = setInterval(function () {
          i = (i + 1) % anim.months.length;
          showMonth(i);
        }, 1500);
      });
    });
    slider.addEventListener("input", function () {
      stopAnimation();
      var i = Number(slider.value);
      (anim.months.length ? Promise.resolve(true) : prepareAnimation()).then(function (ok) { if (ok) { showMonth(i); } });
    });
  }

  /* A drawn area (Leaflet-Geoman): a circle, rectangle or polygon asks /v1/area (a circle
     by GET, a polygon posted as GeoJSON) and the panel shows its total, categories,
     colonias and streets, with the months on the chart and the answer to export. The
     public's answer is the whole colonias the area touches (named, outlined). */
  var drawn = L.featureGroup();
  var areaUnits = L.geoJSON(null, { interactive: false, style: function () { return { weight: 1.5, color: "#6a3d9a", dashArray: "4", fill: false }; } });
  var areaAnswer = null;
  function postJSON(path, body) {
    busy(1);
    var h = Object.assign({ "Content-Type": "application/json" }, headers());
    return fetch(path, { method: "POST", headers: h, body: JSON.stringify(body) }).then(function (r) {
      busy(-1);
      if (!r.ok) { return r.json().then(function (b) { throw new Error(b.message || r.status); }); }
      return r.json();
    }, function (e) { busy(-1); throw e; });
  }
  var areaPanel = L.control({ position: "bottomleft" });
  areaPanel.onAdd = function () {
    var div = L.DomUtil.create("div", "cuadra-panel cuadra-area");
    div.id = "cuadra-area";
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.disableScrollPropagation(div);
    div.innerHTML = '<div class="title">' + esc(t.area) + "</div><div>" + esc(t.areaHint) + "</div>" +
      '<button id="f-near" type="button">' + esc(t.nearMe) + "</button>";
    return div;
  };
  function categoryLabel(c) { return (config.categories[c] || {})[config.lang] || c; }
  function listRows(title, rows, label) {
    if (!rows.length) { return ""; }
    return "<div class=\"sub\">" + esc(title) + "</div><ol>" + rows.slice(0, 5).map(function (r) {
      return "<li>" + esc(label(r)) + " — " + fmt(r.count) + "</li>";
    }).join("") + "</ol>";
  }
  function showArea(b) {
    areaAnswer = b;
    var el = document.getElementById("cuadra-area");
    var units = b.area ? b.area.units : null;
    var total = b.total === null ? esc(t.unknownTotal) : fmt(b.total) + " " + esc(t.incidents);
    var partial = units && b.total === null && b.area.published ? '<div class="note">' + esc(t.publishedOf(fmt(b.area.published), fmt(units.length), fmt(b.area.published_total))) + "</div>" : "";
    el.innerHTML = '<div class="title">' + esc(t.area) + "</div>" +
      "<div><b>" + esc(t.total) + ":</b> " + total + "</div>" + partial +
      '<div class="note">' + esc(units ? t.wholeUnits + " (" + units.length + ")" : t.exact) + "</div>" +
      '<div class="cols"><div>' + listRows(t.topCategories, b.categories, function (r) { return categoryLabel(r.category); }) + "</div><div>" +
      listRows(t.topColonias, b.top_units, function (r) { return r.name || r.unit_id; }) + "</div><div>" +
      listRows(t.streets, b.top_streets, function (r) { return r.name || r.unit_id; }) + "</div></div>" +
      '<div class="row"><button id="f-area-csv" type="button">' + esc(t.exportCsv) + '</button><button id="f-area-geojson" type="button">' +
      esc(t.exportGeojson) + '</button><button id="f-area-clear" type="button">' + esc(t.clear) + "</button>" +
      '<button id="f-near" type="button">' + esc(t.nearMe) + "</button></div>";
    document.getElementById("f-area-csv").addEventListener("click", function () { download("area.csv", areaCsv(b), "text/csv"); });
    document.getElementById("f-area-geojson").addEventListener("click", function () { download("area.geojson", JSON.stringify(areaFeature(b)), "application/geo+json"); });
    document.getElementById("f-area-clear").addEventListener("click", clearArea);
    wireNear();
    drawChart(b.series, t.area);
    areaUnits.clearLayers();
    if (units && outlines.colonia) {
      var set = {};
      units.forEach(function (u) { set[u] = true; });
      areaUnits.addData({ type: "FeatureCollection", features: outlines.colonia.features.filter(function (f) { return set[f.properties.unit_id]; }) });
    }
    document.body.dataset.areaTotal = b.total === null ? "null" : String(b.total);
  }
  function areaCsv(b) {
    var lines = ["kind,name,count"];
    function cell(v) { v = String(v === null || v === undefined ? "" : v); return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
    lines.push(["total", "", b.total].map(cell).join(","));
    b.categories.forEach(function (r) { lines.push(["category", r.category, r.count].map(cell).join(",")); });
    b.offenses.forEach(function (r) { lines.push(["offense", r.offense, r.count].map(cell).join(",")); });
    b.series.forEach(function (r) { lines.push(["month", r.period, r.count].map(cell).join(",")); });
    b.top_units.forEach(function (r) { lines.push([b.top_unit, r.name || r.unit_id, r.count].map(cell).join(",")); });
    b.top_streets.forEach(function (r) { lines.push(["street", r.name || r.unit_id, r.count].map(cell).join(",")); });
    return lines.join("\n") + "\n";
  }
  function areaFeature(b) {
    var layer = drawn.getLayers()[0];
    var geometry = layer ? (layer.getRadius ? circleGeometry(layer) : layer.toGeoJSON().geometry) : null;
    return { type: "Feature", geometry: geometry, properties: b };
  }
  function circleGeometry(c) {
    // A circle as the polygon GeoJSON can hold (64 sides, on a local tangent plane).
    var ll = c.getLatLng(), r = c.getRadius(), ring = [];
    for (var i = 0; i <= 64; i++) {
      var a = 2 * Math.PI * i / 64;
      ring.push([ll.lng + r * Math.sin(a) / (111320 * Math.cos(ll.lat * Math.PI / 180)), ll.lat + r * Math.cos(a) / 110574]);
    }
    return { type: "Polygon", coordinates: [ring] };
  }
  function download(name, text, type) {
    var a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([text], { type: type }));
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
    document.body.dataset.exported = name;
  }
  function askArea(layer) {
    drawn.clearLayers();
    drawn.addLayer(layer);
    var asked;
    if (layer.getRadius) {
      var c = layer.getLatLng();
      var circle = "circle:" + c.lng.toFixed(6) + "," + c.lat.toFixed(6) + "," + Math.round(layer.getRadius());
      asked = getJSON("/v1/area?" + query([["within", circle]]));
    } else {
      asked = postJSON("/v1/area?" + query(), layer.toGeoJSON().geometry);
    }
    return (outlines.colonia ? Promise.resolve() : loadOutlines("colonia").catch(function () {}))
      .then(function () { return asked; }).then(showArea).catch(fail);
  }
  function clearArea() {
    drawn.clearLayers();
    areaUnits.clearLayers();
    areaAnswer = null;
    delete document.body.dataset.areaTotal;
    document.getElementById("cuadra-area").innerHTML = '<div class="title">' + esc(t.area) + "</div><div>" + esc(t.areaHint) + "</div>" +
      '<button id="f-near" type="button">' + esc(t.nearMe) + "</button>";
    wireNear();
    loadChart();
  }
  function wireNear() {
    document.getElementById("f-near").addEventListener("click", function () {
      if (!navigator.geolocation) { fail(new Error(t.noLocation)); return; }
      navigator.geolocation.getCurrentPosition(function (pos) {
        var here = L.latLng(pos.coords.latitude, pos.coords.longitude);
        map.setView(here, 15, { animate: false });
        askArea(L.circle(here, { radius: 500, color: "#3f007d", weight: 3, fillOpacity: 0.06 }));
      }, function () { fail(new Error(t.noLocation)); }, { timeout: 10000 });
    });
  }
  /* Leaflet-Geoman is twice Leaflet's size and the first view does not need it: it is
     fetched (from this server) once the map is up. */
  function loadDrawing() {
    var css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/static/vendor/geoman/leaflet-geoman.css";
    document.head.appendChild(css);
    var script = document.createElement("script");
    script.src = "/static/vendor/geoman/leaflet-geoman.min.js";
    script.onload = function () {
      // Geoman hooks maps made after it loads: this one gets its manager by hand.
      if (!map.pm && L.PM && L.PM.Map) { map.pm = new L.PM.Map(map); }
      wireDrawing();
      placeDrawingTools();
      document.body.dataset.drawingReady = "1";
    };
    document.head.appendChild(script);
  }
  function wireDrawing() {
    if (!map.pm) { return; }
    map.pm.setLang(config.lang === "es" ? "es" : "en");
    map.pm.addControls({
      position: "topleft", drawMarker: false, drawCircleMarker: false, drawPolyline: false,
      drawText: false, editMode: false, dragMode: false, cutPolygon: false, rotateMode: false,
      removalMode: false
    });
    map.on("pm:create", function (e) {
      e.layer.setStyle({ color: "#3f007d", weight: 3, fillOpacity: 0.06 });
      map.removeLayer(e.layer);
      askArea(e.layer);
    });
    drawn.addTo(map);
    areaUnits.addTo(map);
    areaPanel.addTo(map);
    wireNear();
  }
  // The drawing tools sit right under the zoom buttons, above the layer list.
  function placeDrawingTools() {
    var bar = document.querySelector(".leaflet-pm-toolbar");
    var zoom = document.querySelector(".leaflet-control-zoom");
    if (bar && zoom && zoom.parentNode === bar.parentNode) { zoom.parentNode.insertBefore(bar, zoom.nextSibling); }
  }

  /* Put it together. */
  var overlays = {};
  overlays[t.heatmap] = heat;
  overlays[t.hex] = hex;
  if (config.boundaryLayers.indexOf("colonia") >= 0) { overlays[t.colonias] = colonias; overlays[t.hotspots] = hotspots; }
  if (config.boundaryLayers.indexOf("cuadrante") >= 0) { overlays[t.cuadrantes] = cuadrantes; }
  if (streets) { overlays[t.streets] = streets; }
  var byName = { heatmap: heat, hex: hex, colonias: colonias, cuadrantes: cuadrantes, hotspots: hotspots, streets: streets, areaUnits: areaUnits };
  map.fitBounds(config.bounds, { animate: false });  // a first view, not a flight: nothing may land after it
  tileUrls();
  config.layers.forEach(function (name) { if (byName[name]) { byName[name].addTo(map); } });
  if (!config.embed) {
    L.control.layers(null, overlays, { collapsed: false, position: "topleft" }).addTo(map);
    panel.addTo(map);
    chart.addTo(map);
    loadOffenses();
    document.getElementById("f-apply").addEventListener("click", function () { readPanel(); reload(); });
    wireAnimation();
    wirePlaces();
    topStreets.addTo(map);
    map.on("overlayadd", function (e) {
      if (e.layer === hotspots) { loadHotspots(); }
      if (e.layer === cuadrantes) { loadCuadrantes(); }
      if (e.layer === streets) { loadStreets(); }
      if (e.layer === hex) { loadHexClasses(); }
    });
    map.on("overlayremove", function (e) { if (e.layer === streets) { loadTopStreets(); legend.update(); } });
  }
  // Classes follow the view, on the map and in an embed alike.
  map.on("moveend", function () {
    if (streets && map.hasLayer(streets)) { loadTopStreets(); }
    loadHexClasses();
    classColonias();
  });
  legend.addTo(map);
  document.body.dataset.layersReady = "0";
  Promise.all([loadColonias(), config.embed ? Promise.resolve() : loadChart(),
               config.layers.indexOf("cuadrantes") >= 0 ? loadCuadrantes() : Promise.resolve(),
               config.layers.indexOf("hotspots") >= 0 ? loadHotspots() : Promise.resolve(),
               loadStreets(), loadHexClasses()]).then(function () {
    if (!config.embed) { loadDrawing(); }
  });
  window.cuadra = { map: map, state: state, reload: reload, layers: byName, fmt: fmt, askArea: askArea,
    area: function () { return areaAnswer; }, drawnGeometry: function () { return areaFeature(null).geometry; } };
});
