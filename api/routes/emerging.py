"""Emerging hot spots: /v1/hotspots/emerging (space-time Gi*, Mann-Kendall, Esri's categories)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.context import AskDep
from api.deps import query_group
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.responses import json_response
from api.routes.hotspots import AREA_UNITS
from geo.emerging import LABELS, emerging
from store.aggregate import unit_names, unit_series
from store.filters import FilterError
from store.study_area import StudyArea, study_area

router = APIRouter(prefix="/v1", tags=["hotspots"], responses=ERROR_RESPONSES)
MIN_STEPS = 3
FEW_STEPS = 10  # Esri asks for ten steps before a trend means much
MAX_BINS = 2_000_000
# Bins × neighbours × look-back steps: the space-time weights' size, about what a request
# costs (benchmarks/RESULTS.md, "Figures behind settings").
MAX_WORK = 15_000_000


class EmergingRow(BaseModel):
    """One unit of the study area."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str
    name: str | None = Field(description="The unit's display name (none for H3 cells).")
    category: str = Field(description="One of `categories`: e.g. `intensifying_hot`.")
    count: int = Field(description="Incidents over all steps.")
    hot_steps: int = Field(description="Steps with a significant hot bin.")
    cold_steps: int = Field(description="Steps with a significant cold bin.")
    z_last: float = Field(description="Gi* z of the final step.")
    p_fdr_last: float = Field(description="Its Benjamini-Hochberg adjusted p.")
    trend_tau: float = Field(description="Mann-Kendall tau of the unit's z-scores.")
    trend_p: float = Field(description="Two-sided p of the trend.")


class EmergingResponse(BaseModel):
    """Category per unit, every unit of the study area included."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    method: Literal["emerging"]
    unit: str
    interval: str
    periods: list[str] = Field(description="Start of each time step, oldest first.")
    window: int = Field(description="Earlier steps in a bin's neighbourhood.")
    neighbours: str
    k: int
    area: str
    n: int
    alpha: float
    fdr: bool
    summary: dict[str, int] = Field(description="Units per category (non-empty ones).")
    categories: list[str]
    warnings: list[str]
    filters: dict[str, Any]
    rows: list[EmergingRow]


@dataclass
class EmergingParams:
    """The parameters of /v1/hotspots/emerging besides the common filters."""

    unit: Annotated[
        str,
        Query(
            pattern=AREA_UNITS,
            max_length=64,
            description="H3 cells `h3:5` … `h3:10` or a boundary layer.",
            examples=["h3:7", "colonia"],
        ),
    ]
    interval: Annotated[
        Literal["week", "month"], Query(description="The time step of the cube.")
    ] = "month"
    window: Annotated[
        int, Query(ge=0, le=12, description="Earlier steps in each bin's neighbourhood.")
    ] = 1
    k: Annotated[int, Query(ge=1, le=5, description="H3 units: the k-ring.")] = 1
    alpha: Annotated[
        float, Query(gt=0, lt=0.5, description="FDR level of a significant bin and trend.")
    ] = 0.05
    area: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z][a-z0-9_]*$",
            description="H3 units: the boundary layer whose cells are the study area.",
        ),
    ] = None


EmergingParamsDep = Annotated[EmergingParams, Depends(query_group(EmergingParams))]


@router.get(
    "/hotspots/emerging",
    response_model=EmergingResponse,
    summary="Emerging hot spots: new, intensifying, persistent … (analyst or admin key)",
    responses={403: {"model": ErrorResponse, "description": "Needs an analyst or admin key."}},
    openapi_extra={"x-key-required": True},
)
def get_emerging(ask: AskDep, params: EmergingParamsDep) -> Any:
    """Space-time Gi* per (unit, step), a Mann-Kendall trend per unit and its category.

    Example: street robberies by month over 2022–2023 on resolution-7 cells —
    `/v1/hotspots/emerging?unit=h3:7&interval=month&start=2022-01-01&end=2024-01-01&offense=ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA`.
    The rules are in docs/hotspots.md.
    """
    ask.principal.require_key("hotspot statistics need an analyst or admin API key for now")
    unit = ask.unit(params.unit)
    sa = study_area(ask.snap, unit, params.area, params.k)
    flt, _ = ask.answering(unit)
    series = unit_series(ask.snap, unit, params.interval, flt, ask.cursor)
    steps = len(series.periods)
    _check_size(steps, sa, params)
    cube = sa.cube(series.unit_ids, series.period_index, series.counts, steps)
    result = emerging(cube, sa.weights, params.window, params.alpha)
    significant = result.p_fdr <= params.alpha
    hot = (significant & (result.z > 0)).sum(axis=1)
    cold = (significant & (result.z < 0)).sum(axis=1)
    totals = cube.sum(axis=1)
    names = unit_names(ask.snap, unit)
    rows = [
        {
            "unit_id": sa.unit_ids[i],
            "name": names.get(sa.unit_ids[i]),
            "category": str(result.labels[i]),
            "count": int(totals[i]),
            "hot_steps": int(hot[i]),
            "cold_steps": int(cold[i]),
            "z_last": float(result.z[i, -1]),
            "p_fdr_last": float(result.p_fdr[i, -1]),
            "trend_tau": float(result.trend.tau[i]),
            "trend_p": float(result.trend.p[i]),
        }
        for i in np.argsort(-result.z[:, -1], kind="stable")
    ]
    body = {
        "snapshot": ask.snap.id,
        "method": "emerging",
        "unit": params.unit,
        "interval": params.interval,
        "periods": [p.isoformat() for p in series.periods],
        "window": params.window,
        "neighbours": sa.neighbours,
        "k": params.k,
        "area": sa.area,
        "n": sa.n,
        "alpha": params.alpha,
        "fdr": True,
        "summary": dict(sorted(Counter(str(c) for c in result.labels).items())),
        "categories": list(LABELS),
        "warnings": _warnings(steps, cube),
        "filters": ask.echo(flt),
        "rows": rows,
    }
    return json_response(body, ask.headers)


def _check_size(steps: int, sa: StudyArea, params: EmergingParams) -> None:
    """Refuse cubes too short for a trend, or too large to answer within a request."""
    if steps < MIN_STEPS:
        raise FilterError(
            "interval",
            params.interval,
            f"{steps} time steps in the window: need at least {MIN_STEPS}",
        )
    if steps * sa.n > MAX_BINS:
        raise FilterError(
            "interval",
            params.interval,
            f"{steps} steps × {sa.n} units is more than {MAX_BINS} bins",
        )
    work = steps * sa.weights.nnz * (params.window + 1)
    if work > MAX_WORK:
        raise FilterError(
            "k" if params.k > 1 else "unit",
            params.k if params.k > 1 else params.unit,
            f"{steps} steps × {sa.weights.nnz:,} neighbour pairs × {params.window + 1} "
            f"look-back steps is more than {MAX_WORK:,}: use coarser units, a "
            "smaller k or window, or a shorter period",
        )


def _warnings(steps: int, cube: np.ndarray) -> list[str]:
    """What makes an answer weak: too few steps for a trend, too many empty bins."""
    warnings = []
    if steps < FEW_STEPS:
        warnings.append(f"only {steps} time steps: trends need about {FEW_STEPS} to mean much")
    if (cube == 0).mean() > 0.9:
        warnings.append(f"{(cube == 0).mean():.0%} of bins are empty: use coarser units or steps")
    return warnings
