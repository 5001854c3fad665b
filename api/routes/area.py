"""What happened in a place: /v1/area, one answer for a circle, a polygon or a unit."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.areas import area_route
from api.context import Ask, AskDep
from api.errors import ERROR_RESPONSES
from api.responses import json_response
from api.routes.aggregates import AreaBlock, PrivacyBlock, named_rows, top_rows
from disclosure.periods import Period, add_months
from publication.areas import basis, covered
from publication.figures import area_breakdown, area_series, published_counts
from store.aggregate import Unit
from store.area import area_counts
from store.filters import FilterError

router = APIRouter(prefix="/v1", tags=["places"], responses=ERROR_RESPONSES)
TOP = 10


class NamedCount(BaseModel):
    """One category or offense inside the area."""

    model_config = ConfigDict(extra="forbid")
    category: str
    offense: str | None = Field(description="Null on category rows.")
    count: int


class TopUnit(BaseModel):
    """One of the busiest units inside the area."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str
    name: str | None
    count: int


class MonthCount(BaseModel):
    """Incidents in one month."""

    model_config = ConfigDict(extra="forbid")
    period: str
    count: int | None = Field(description="Null where withheld (public).")


class AreaResponse(BaseModel):
    """A place's figures: totals by category and offense, months, busiest streets and units."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    filters: dict[str, Any]
    privacy: PrivacyBlock | None
    area: AreaBlock | None = Field(
        description="Public answers: the whole units the area touches, whose published cells "
        "answer it; null for a key (the records inside the area itself)."
    )
    total: int | None = Field(description="Incidents inside; null where unknown (public).")
    categories: list[NamedCount]
    offenses: list[NamedCount]
    series: list[MonthCount]
    top_streets: list[TopUnit]
    top_units: list[TopUnit] = Field(description="The busiest units of `top_unit`'s layer.")
    top_unit: str | None = Field(description="The layer of `top_units` (the first boundary layer).")


@area_route(router, "/area", response_model=AreaResponse, summary="What happened in a place")
def get_area(ask: AskDep) -> Any:
    """Counts inside a place by category, offense and month; its busiest streets and colonias.

    The place is a drawn area — `within=circle:lon,lat,metres` here, or a polygon posted
    to the same path — or a unit (`within=colonia:…`) or a `bbox`. With an API key the
    figures are the records inside; the public gets the whole colonias the area touches
    (named in `area`), as the release publishes them. Example: 500 m around the Zócalo in
    2023 — `/v1/area?within=circle:-99.1332,19.4326,500&start=2023-01-01&end=2024-01-01`.
    """
    if ask.principal.public:
        body = _public(ask)
    else:
        body = _exact(ask)
    return json_response({"snapshot": ask.snap.id, **body}, ask.headers)


def _exact(ask: Ask) -> dict[str, Any]:
    """A key's answer: the records inside the area under the filters (one scan)."""
    flt, _ = ask.answering(None)
    manifest = ask.snap.manifest
    layer = manifest.boundary_layers[0] if manifest.boundary_layers else None
    counts = area_counts(ask.snap, flt, layer, ask.cursor)
    offenses = counts.offenses.to_pylist()
    by_category: dict[str, int] = {}
    for row in offenses:
        by_category[row["category"]] = by_category.get(row["category"], 0) + row["count"]
    top_streets, top_units = [], []
    if manifest.street_layer is not None:
        street = Unit("street", layer=manifest.street_layer)
        top_streets = named_rows(ask.snap, street, counts.streets.slice(0, TOP))
    if layer is not None:
        top_units = named_rows(ask.snap, Unit("layer", layer=layer), counts.units.slice(0, TOP))
    return {
        "filters": ask.echo(flt),
        "privacy": None,
        "area": None,
        "total": counts.total,
        "categories": _categories(by_category),
        "offenses": offenses,
        "series": [{"period": m.isoformat(), "count": n} for m, n in counts.months],
        "top_streets": top_streets,
        "top_units": top_units,
        "top_unit": layer,
    }


def _public(ask: Ask) -> dict[str, Any]:
    """The public's answer: the published cells of the whole units the area touches."""
    by = basis(ask.snap, ask.rules.finest_h3)
    flt, pub = ask.answering(by, drawn=True)
    assert pub is not None
    drawn = flt.drawn()
    if drawn is None:
        raise FilterError(
            "within",
            ask.common.within,
            "the public's /v1/area needs a drawn area: a circle (within=circle:lon,lat,metres) "
            "or a posted polygon",
        )
    units = covered(ask.snap, by, drawn)
    names = area_breakdown(ask.snap, pub, ask.rules, by, units, ask.cursor)
    months = _months(pub.period)
    _, counts = area_series(ask.snap, pub, ask.rules, by, months, ask.cursor)
    shown = published_counts(ask.snap, by, flt, pub, ask.rules, ask.cursor)
    categories = {n[2:]: v for n, v in names.items() if n.startswith("c:")}
    offenses = [
        {"category": None, "offense": n[2:], "count": v}
        for n, v in names.items()
        if n.startswith("o:")
    ]
    series = [{"period": m.isoformat(), "count": c} for m, c in zip(months, counts, strict=True)]
    return {
        "filters": ask.echo(flt),
        "privacy": pub.describe(shown.withheld),
        "area": {
            "unit": str(by.layer) if by.kind == "layer" else f"h3:{by.res}",
            "units": units,
            "published": shown.table.num_rows,
            "published_total": int(sum(shown.table.column("count").to_pylist())),
        },
        "total": shown.total,
        "categories": _categories(categories),
        "offenses": sorted(offenses, key=lambda r: (-r["count"], r["offense"])),
        "series": series,
        **_tops(ask),
    }


def _months(period: Period) -> list[date]:
    """The first day of every month of a release period."""
    out, day = [], period.start
    while day < period.end:
        out.append(day)
        day = add_months(day, 1)
    return out


def _categories(counts: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"category": c, "offense": None, "count": n}
        for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _tops(ask: Ask) -> dict[str, Any]:
    """The busiest streets and units of the first boundary layer inside the area."""
    out: dict[str, Any] = {"top_streets": [], "top_units": [], "top_unit": None}
    manifest = ask.snap.manifest
    if manifest.street_layer is not None:
        street = Unit("street", layer=manifest.street_layer)
        out["top_streets"] = top_rows(ask, street, TOP)
    if manifest.boundary_layers:
        layer = manifest.boundary_layers[0]
        out["top_units"] = top_rows(ask, Unit("layer", layer=layer), TOP)
        out["top_unit"] = layer
    return out
