"""Reports: /v1/reports/compstat, the weekly CompStat pack (JSON, CSV, printable HTML)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from api.context import AskDep
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.reports import compstat_text
from api.tile_data import attribution
from store.compstat import WEEK_PATTERN

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=ERROR_RESPONSES)


class ReportFormat(StrEnum):
    """Formats of a report."""

    json = "json"
    csv = "csv"
    html = "html"


@router.get(
    "/compstat",
    summary="The weekly CompStat pack of a unit or a whole layer (analyst or admin key)",
    responses={
        200: {"content": {"text/csv": {}, "text/html": {}}},
        403: {"model": ErrorResponse, "description": "Needs an analyst or admin key."},
    },
    openapi_extra={"x-key-required": True},
)
def get_compstat(
    ask: AskDep,
    unit: Annotated[
        str,
        Query(
            max_length=64,
            pattern=r"^[a-z][a-z0-9_]*$",
            description="A boundary layer.",
            examples=["alcaldia"],
        ),
    ],
    week: Annotated[
        str, Query(pattern=WEEK_PATTERN, description="ISO week, YYYY-Www.", examples=["2024-W20"])
    ],
    id: Annotated[
        str | None,
        Query(
            max_length=100,
            description="The unit; without it, every unit of the layer.",
            examples=["COYOACAN"],
        ),
    ] = None,
    format: Annotated[ReportFormat, Query(description="json, csv or html.")] = ReportFormat.json,
) -> Any:
    """A unit's week, 28 days and year to date, each against the same period a year before.

    A year before is 52 weeks earlier (the same calendar days for the year to date).
    Per category: counts, change and an exact Poisson p; the colonias and cuadrantes inside
    that rose most in the 28 days; the 28 days' Gi* hot spots inside; a map (HTML). The
    `category` or `offense` filter narrows what is counted. Example: Coyoacán, week 20 of
    2024, printable — `/v1/reports/compstat?unit=alcaldia&id=COYOACAN&week=2024-W20&format=html`.
    """
    ask.principal.require_key(
        "CompStat packs need an analyst or admin key: weeks and 28-day windows are not "
        "periods of the public release"
    )
    flt, _ = ask.answering(None)
    credit = attribution(ask.request.app.state.settings.attribution, ask.snap)
    text = compstat_text(ask.snap, ask.cursor, flt, ask.unit(unit), id, week, format.value, credit)
    if format is ReportFormat.html:
        return HTMLResponse(text, headers={**ask.headers, "Cache-Control": "private"})
    if format is ReportFormat.csv:
        return Response(text, media_type="text/csv; charset=utf-8", headers=ask.headers)
    return Response(text, media_type="application/json", headers=ask.headers)
