"""The CompStat pack as a printable Spanish page (es-MX numbers) and as CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.compstat import compstat_pack, map_data_uri
from api.responses import csv_safe
from api.routes.maps import draw
from api.routes.pages import category_labels
from api.tile_data import cell_layer
from disclosure.rules import PublicRules
from store.aggregate import Unit
from store.engine import Cursor
from store.filters import Filters
from store.snapshot import Snapshot

TEMPLATES = Path(__file__).resolve().parent / "templates"
MONTHS = ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"]
WINDOW_NAMES = [("week", "Semana"), ("28d", "28 días"), ("ytd", "Año a la fecha")]
HOT = {"hot_99": "caliente 99 %", "hot_95": "caliente 95 %", "hot_90": "caliente 90 %"}
_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False
)


def num(n: int | None) -> str:
    """Mexico's format: 1,234 (comma thousands)."""
    return "–" if n is None else f"{n:,}"


def span_text(span: list[str]) -> str:
    """[start, end) as the days it covers, in Spanish: 13–19 may 2024."""
    first = date.fromisoformat(span[0])
    last = date.fromisoformat(span[1]) - timedelta(days=1)
    if first.year == last.year and first.month == last.month:
        return f"{first.day}–{_day(last)}"
    return f"{_day(first)} – {_day(last)}"


def _day(d: date) -> str:
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


HEAT_RES = 11  # a pack is a key's: the fine cells, as the analyst's heatmap
MAP_SIZE = (900, 560)


def compstat_text(
    snap: Snapshot,
    cursor: Cursor,
    flt: Filters,
    unit: Unit,
    ident: str | None,
    week: str,
    fmt: str,
    credit: str,
) -> str:
    """The CompStat pack as ``json``, ``csv`` or ``html`` text (the route's and the CLI's).

    The HTML carries a map of the 28 days: the key's heatmap, the unit outlined.
    """

    def draw_map(bbox: tuple[float, float, float, float], highlight: Any, days: Filters) -> bytes:
        layer = cell_layer(snap, HEAT_RES, days, None, PublicRules(), cursor)
        return draw(snap, layer, bbox, MAP_SIZE, None, highlight, credit)

    pack = compstat_pack(snap, cursor, flt, unit, ident, week, draw_map if fmt == "html" else None)
    if fmt == "html":
        return html(pack, category_labels())
    if fmt == "csv":
        return csv_text(pack)
    pack.pop("map_png", None)
    return json.dumps(pack, ensure_ascii=False)


def html(pack: dict[str, Any], labels: dict[str, dict[str, str]]) -> str:
    """The printable page (the map embedded: it stands alone)."""
    spans = {w["name"]: span_text(w["current"]) for w in pack["windows"]}
    title = pack["name"] or pack["id"] or f"todas las unidades ({pack['unit']})"
    chosen = pack["filters"].get("categories", []) + pack["filters"].get("offenses", [])
    selection = f"Selección: {', '.join(chosen)}. " if chosen else ""
    return _ENV.get_template("compstat.html").render(
        pack=pack,
        title=title,
        spans=spans,
        selection=selection,
        names=WINDOW_NAMES,
        rows=[*pack["categories"], pack["total"]],
        map_uri=map_data_uri(pack),
        num=num,
        signed=lambda n: f"{n:+,}",
        pct=lambda v: "–" if v is None else f"{v:+,.1f}",
        pval=lambda p: "<0.001" if p < 0.001 else f"{p:.3f}",
        dec=lambda v: f"{v:.2f}",
        hot=lambda c: HOT.get(c, c),
        label=lambda c: "Total" if c == "*" else labels.get(c, {}).get("es", c),
    )


def csv_text(pack: dict[str, Any]) -> str:
    """One row per (section, key, window): current, prior, change, change_pct, p."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    sections = [("category", "category", [*pack["categories"], pack["total"]])]
    sections.append((pack["unit"], "unit_id", pack["units"]))
    for section, key, entries in sections:
        for e in entries:
            for window, _ in WINDOW_NAMES:
                _write(writer, section, e[key], e.get("name"), window, e[window])
    for layer, entries in pack["rising"].items():
        for e in entries:
            _write(writer, f"rising {layer}", e["unit_id"], e["name"], "28d", e)
    return buf.getvalue()


CSV_FIELDS = ["section", "key", "name", "window", "current", "prior", "change", "change_pct", "p"]


def _write(
    writer: csv.DictWriter[str],
    section: str,
    key: str,
    name: str | None,
    window: str,
    stats: dict[str, Any],
) -> None:
    row = {"section": section, "key": key, "name": name, "window": window}
    row.update({f: stats[f] for f in CSV_FIELDS[4:]})
    writer.writerow({k: csv_safe(v) for k, v in row.items()})
