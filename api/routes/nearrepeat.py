"""Near repeats: /v1/near-repeat, the Knox test over distance and time bands."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.context import AskDep
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.responses import json_response
from geo.crs import WGS84, transform_xy, utm_crs_for
from geo.errors import GeoError
from geo.nearrepeat import Knox, date_precision, knox
from store.filters import FilterError
from store.records import points

router = APIRouter(prefix="/v1", tags=["hotspots"], responses=ERROR_RESPONSES)
MAX_EVENTS = 200_000
MAX_DISTANCE = 5_000.0  # metres
MAX_DAYS = 3_650.0
MAX_EDGES = 21
MAX_WORK = 500_000_000  # pairs × permutations: a few seconds at most
BANDS = r"^\d+(\.\d+)?(,\d+(\.\d+)?){1,20}$"


class KnoxCell(BaseModel):
    """Pairs of events in one distance band and one time band."""

    model_config = ConfigDict(extra="forbid")
    distance: list[float] = Field(description="[from, to) metres.")
    days: list[float] = Field(description="[from, to) days apart.")
    observed: int
    expected: float = Field(description="Mean over the permutations.")
    ratio: float | None = Field(description="observed / expected (null when expected is 0).")
    p: float = Field(description="Monte Carlo p of an excess of pairs (one-sided).")


class KnoxResponse(BaseModel):
    """The Knox table, band by band, with every parameter echoed."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    method: str
    intervals: str = Field(description="Bands are half-open: from <= value < to.")
    distance_bands: list[float]
    time_bands: list[float]
    crs: str | None = Field(description="The metric CRS distances were measured in.")
    events: int
    pairs: int = Field(description="Pairs closer than the last distance edge.")
    permutations: int
    seed: int
    time_precision: str = Field(description="What the dates were known to: `day`.")
    filters: dict[str, Any]
    table: list[KnoxCell]


def _bands(name: str, text: str, top: float) -> list[float]:
    edges = [float(v) for v in text.split(",")]
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise FilterError(name, text, "edges must increase")
    if edges[-1] > top:
        raise FilterError(name, text, f"the last edge may be at most {top:g}")
    return edges


@router.get(
    "/near-repeat",
    response_model=KnoxResponse,
    summary="Near repeats: Knox test by distance and time band (analyst or admin key)",
    responses={403: {"model": ErrorResponse, "description": "Needs an analyst or admin key."}},
    openapi_extra={"x-key-required": True},
)
def get_near_repeat(
    ask: AskDep,
    distance_bands: Annotated[
        str,
        Query(
            pattern=BANDS,
            max_length=200,
            description="Edges in metres, increasing: `0,100,200` makes [0,100) and [100,200).",
            examples=["0,100,200,300,400"],
        ),
    ] = "0,100,200,300,400",
    time_bands: Annotated[
        str,
        Query(
            pattern=BANDS,
            max_length=200,
            description="Edges in days apart, increasing: `0,7,14` makes [0,7) and [7,14).",
            examples=["0,7,14,21,28"],
        ),
    ] = "0,7,14,21,28",
    permutations: Annotated[
        int, Query(ge=19, le=999, description="Date shuffles for the p-values.")
    ] = 99,
    seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="Seed of the shuffles.")] = 0,
) -> Any:
    """Knox table: pairs of incidents close in space and in time, against shuffled dates.

    Example: do street robberies of 2023 repeat within 200 m and a week? —
    `/v1/near-repeat?offense=ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA&start=2023-01-01&end=2024-01-01&distance_bands=0,100,200&time_bands=0,7,14`.
    Days are whole local dates; distances are between the recorded points.
    """
    ask.principal.require_key("near-repeat analysis reads points: it needs an analyst or admin key")
    d_edges = _bands("distance_bands", distance_bands, MAX_DISTANCE)
    t_edges = _bands("time_bands", time_bands, MAX_DAYS)
    flt, _ = ask.answering(None)
    table = points(ask.snap, flt, ask.cursor, MAX_EVENTS)
    lon, lat = table.column("lon").to_numpy(), table.column("lat").to_numpy()
    crs = utm_crs_for(float(np.median(lon)), float(np.median(lat))) if lon.size else None
    x, y = transform_xy(lon, lat, WGS84, crs) if crs else (lon, lat)
    days = table.column("local_date").cast("int32").to_numpy().astype(np.float64)
    monthly = sorted(ask.snap.manifest.month_sources & set(table.column("source").to_pylist()))
    if monthly or date_precision(days) == "month":
        why = (
            f"the dates of {', '.join(monthly)} are months only (its profile says so)"
            if monthly
            else "the records' dates are months only (each is the 1st of its month)"
        )
        raise FilterError(
            "time_bands",
            time_bands,
            f"{why}: how many days apart two incidents were is unknown, and a Knox table of "
            "them would show nothing; near repeats need day-precise dates",
        )
    precision = "day"
    try:
        result = knox(x, y, days, d_edges, t_edges, permutations, seed, max_work=MAX_WORK)
    except GeoError as exc:
        raise FilterError("distance_bands", distance_bands, str(exc)) from None
    body = {
        "snapshot": ask.snap.id,
        "method": "knox",
        "intervals": "[from, to)",
        "distance_bands": d_edges,
        "time_bands": t_edges,
        "crs": crs,
        "events": result.events,
        "pairs": result.pairs,
        "permutations": permutations,
        "seed": seed,
        "time_precision": precision,
        "filters": ask.echo(flt),
        "table": _table(result, d_edges, t_edges),
    }
    return json_response(body, ask.headers)


def _table(result: Knox, d_edges: list[float], t_edges: list[float]) -> list[dict[str, Any]]:
    """One cell per (distance band, time band): observed, expected, ratio and p."""
    cells = []
    for r in range(len(d_edges) - 1):
        for c in range(len(t_edges) - 1):
            obs, exp = int(result.observed[r, c]), float(result.expected[r, c])
            cells.append(
                {
                    "distance": [d_edges[r], d_edges[r + 1]],
                    "days": [t_edges[c], t_edges[c + 1]],
                    "observed": obs,
                    "expected": exp,
                    "ratio": obs / exp if exp > 0 else None,
                    "p": float(result.p[r, c]),
                }
            )
    return cells
