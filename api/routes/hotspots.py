"""Hot spot statistics: /v1/hotspots, Getis-Ord Gi* with FDR, or a quartic kernel density."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.areas import area_route
from api.context import Ask, AskDep
from api.deps import query_group
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.responses import json_response
from geo.errors import ParameterError
from geo.hotspots import hot_spots
from geo.kde import MIN_CELL, density_surface
from store.aggregate import aggregate, unit_names
from store.filters import FilterError
from store.records import points
from store.study_area import StudyArea, drawn_study_area, study_area

router = APIRouter(prefix="/v1", tags=["hotspots"], responses=ERROR_RESPONSES)
MIN_UNITS = 30
SPARSE_SHARE = 0.9
MAX_POINTS = 500_000  # kernel density reads points: bounded memory and time
MAX_DRAWS = 50_000_000  # permutations × units: a few seconds
AREA_UNITS = r"^(h3:([5-9]|10)|[a-z][a-z0-9_]*)$"


class HotspotRow(BaseModel):
    """One unit of the study area."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str
    name: str | None = Field(description="The unit's display name (none for H3 cells).")
    count: int
    z: float = Field(description="Gi* z-score.")
    p: float = Field(
        description="Two-sided p-value: of z (normal approximation), or by permutation."
    )
    p_fdr: float = Field(description="Benjamini-Hochberg adjusted p-value.")
    hotspot_class: str = Field(
        alias="class", description="hot_99/95/90, cold_99/95/90 (from p_fdr) or none."
    )


class HotspotResponse(BaseModel):
    """Gi* per unit, every unit of the study area included, largest z first."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    method: Literal["gistar"]
    unit: str
    neighbours: str = Field(description="`k-ring` (H3, the cell itself included) or `queen`.")
    k: int = Field(description="k-ring of the neighbourhood (1 for polygons).")
    area: str = Field(
        description="The boundary layer that makes the study area, or `drawn area` (a circle "
        "or posted polygon: the units it touches)."
    )
    n: int = Field(description="Units in the study area, zeros included.")
    total: int = Field(description="Incidents inside the study area.")
    outside: int = Field(description="Incidents in units outside it (not in the statistic).")
    alpha: float
    significant: int = Field(description="Units with p_fdr <= alpha.")
    fdr: bool
    inference: str = Field(description="`analytic` (normal z) or `permutation`.")
    permutations: int
    seed: int | None
    warnings: list[str]
    filters: dict[str, Any]
    rows: list[HotspotRow]


class DensityResponse(BaseModel):
    """Quartic kernel density on a square grid in a UTM projection (cells above zero)."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    method: Literal["kde"]
    kernel: Literal["quartic"]
    crs: str | None = Field(description="The metric CRS of the grid (null: no incident).")
    bandwidth: float | None = Field(description="Search radius h, metres.")
    bandwidth_rule: str = Field(
        description="`given`, `silverman` (ArcGIS's rule for points) or `none` (no incident)."
    )
    cell_size: float | None = Field(description="Side of a cell, metres.")
    origin: list[float] | None = Field(description="x, y of the centre of cell (0, 0) in `crs`.")
    rows: int
    cols: int
    events: int
    units: str = Field(description="Of `density`: incidents per km².")
    filters: dict[str, Any]
    cells: list[list[float]] = Field(
        description="[row, col, lon, lat, density] of every cell with a density above 0."
    )


@dataclass
class HotspotParams:
    """The parameters of /v1/hotspots besides the common filters."""

    unit: Annotated[
        str | None,
        Query(
            pattern=AREA_UNITS,
            max_length=64,
            description="Gi*: H3 cells `h3:5` … `h3:10`, or a boundary layer (queen "
            "neighbours). Not used by `kde`.",
            examples=["h3:8", "colonia"],
        ),
    ] = None
    method: Annotated[Literal["gistar", "kde"], Query(description="The statistic.")] = "gistar"
    k: Annotated[int, Query(ge=1, le=5, description="Gi* on H3: the k-ring.")] = 1
    alpha: Annotated[
        float, Query(gt=0, lt=0.5, description="FDR level for the `significant` count.")
    ] = 0.05
    area: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z][a-z0-9_]*$",
            description="Gi* on H3: the boundary layer whose cells are the study area "
            "[default: the first].",
        ),
    ] = None
    permutations: Annotated[
        int,
        Query(
            ge=0,
            le=9999,
            description="Gi*: 0 for the analytic p, else conditional "
            "permutations for a pseudo p (99 … 9999).",
        ),
    ] = 0
    seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="Seed of the permutations.")] = 0
    bandwidth_m: Annotated[
        float | None,
        Query(
            alias="bandwidth",
            gt=0,
            le=20_000,
            description="KDE search radius in metres [default: Silverman's rule].",
        ),
    ] = None
    cell_size: Annotated[
        float | None,
        Query(
            ge=MIN_CELL,
            le=10_000,
            description="KDE cell side in metres [default: the shorter side of the extent / 250].",
        ),
    ] = None


HotspotParamsDep = Annotated[HotspotParams, Depends(query_group(HotspotParams))]


@area_route(
    router,
    "/hotspots",
    response_model=HotspotResponse | DensityResponse,
    summary="Hot and cold spots: Gi* with FDR, or kernel density (analyst or admin key)",
    responses={403: {"model": ErrorResponse, "description": "Needs an analyst or admin key."}},
    openapi_extra={"x-key-required": True},
)
def get_hotspots(ask: AskDep, params: HotspotParamsDep) -> Any:
    """Gi* z, p and adjusted p per unit of the study area (zeros in), or a kernel density.

    Gi* covers every unit of the study area; `kde` is a quartic kernel density surface of
    the matching incidents.

    Examples: street robberies of 2023 on resolution-8 cells —
    `/v1/hotspots?unit=h3:8&offense=ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA&start=2023-01-01&end=2024-01-01`;
    by colonia with 999 permutations — `/v1/hotspots?unit=colonia&permutations=999&seed=7&…`;
    their density — `/v1/hotspots?method=kde&…`.
    Public access waits for privacy rules that cover z-scores (they can give counts back).
    """
    ask.principal.require_key("hotspot statistics need an analyst or admin API key for now")
    if params.method == "kde":
        return _density(ask, params)
    if params.unit is None:
        raise FilterError("unit", None, "Gi* needs a unit: h3:5 … h3:10 or a boundary layer")
    if 0 < params.permutations < 99:
        raise FilterError("permutations", params.permutations, "use 0 (analytic) or at least 99")
    unit = ask.unit(params.unit)
    flt, _ = ask.answering(unit)
    drawn = flt.drawn()
    if drawn is None:
        sa = study_area(ask.snap, unit, params.area, params.k)
    elif params.area is not None:
        raise FilterError("area", params.area, "a drawn area is its own study area")
    else:
        sa = drawn_study_area(ask.snap, unit, drawn, params.k)
    counts = aggregate(ask.snap, unit, flt, ask.cursor)
    values = counts.table.column("count").to_numpy()
    y, inside = sa.place(counts.table.column("unit_id").to_pylist(), values)
    if params.permutations * sa.n > MAX_DRAWS:
        raise FilterError(
            "permutations", params.permutations, f"at most {MAX_DRAWS // sa.n} for {sa.n} units"
        )
    gi = hot_spots(y, sa.weights, sa.prepared, params.permutations, params.seed)
    names = unit_names(ask.snap, unit)
    rows = [
        {
            "unit_id": sa.unit_ids[i],
            "name": names.get(sa.unit_ids[i]),
            "count": int(y[i]),
            "z": float(gi.z[i]),
            "p": float(gi.p[i]),
            "p_fdr": float(gi.p_fdr[i]),
            "class": str(gi.classes[i]),
        }
        for i in np.argsort(-gi.z, kind="stable")
    ]
    body = {
        "snapshot": ask.snap.id,
        "method": params.method,
        "unit": params.unit,
        "neighbours": sa.neighbours,
        "k": params.k,
        "area": sa.area,
        "n": sa.n,
        "total": int(y.sum()),
        "outside": int(values[~inside].sum()),
        "alpha": params.alpha,
        "significant": gi.significant(params.alpha),
        "fdr": True,
        "inference": gi.inference,
        "permutations": params.permutations,
        "seed": params.seed if params.permutations else None,
        "warnings": warnings(sa, y),
        "filters": ask.echo(flt),
        "rows": rows,
    }
    return json_response(body, ask.headers)


def _density(ask: Ask, params: HotspotParams) -> Any:
    """The quartic kernel density surface of the matching incidents."""
    flt, _ = ask.answering(None)
    table = points(ask.snap, flt, ask.cursor, MAX_POINTS)
    try:
        surface = density_surface(
            table.column("lon").to_numpy(),
            table.column("lat").to_numpy(),
            params.bandwidth_m,
            params.cell_size,
        )
    except ParameterError as exc:
        raise FilterError(exc.parameter, exc.value, str(exc)) from None
    body = {
        "snapshot": ask.snap.id,
        "method": params.method,
        **vars(surface),
        "filters": ask.echo(flt),
    }
    return json_response(body, ask.headers)


def warnings(sa: StudyArea, y: np.ndarray) -> list[str]:
    """What makes a Gi* answer weak: too few units, or too many empty ones."""
    out = []
    if sa.n < MIN_UNITS:
        out.append(f"only {sa.n} units: Gi* needs more (30 or so) to mean much")
    empty = float((y == 0).mean()) if y.size else 1.0
    if empty > SPARSE_SHARE:
        out.append(
            f"{empty:.0%} of units have no incident: too sparse for the normal approximation; use coarser units, a longer period or permutations"
        )
    return out
