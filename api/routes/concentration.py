"""How concentrated incidents are: /v1/concentration (Lorenz, Gini, top-N share)."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.context import AskDep
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.responses import json_response
from api.routes.aggregates import UNIT_DESCRIPTION, UNIT_PATTERN
from geo.cells import hex_to_cells
from geo.concentration import concentration, top_share
from store.aggregate import aggregate
from store.filters import FilterError
from store.layers import layer_cells

router = APIRouter(prefix="/v1", tags=["hotspots"], responses=ERROR_RESPONSES)
CURVE_POINTS = 101
MAX_H3 = 11  # the resolution of the layers' stored cell tables


class ConcentrationResponse(BaseModel):
    """Concentration of the selection over every unit of the study area (zeros included)."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    unit: str
    n: int = Field(description="Units, zeros included.")
    total: int = Field(description="Incidents in those units.")
    gini: float = Field(description="0 = evenly spread, 1 = all in one unit.")
    top: int
    top_share: float = Field(description="Share of incidents in the `top` units with the most.")
    units_for_half: int = Field(description="Fewest units holding half of the incidents.")
    share_of_units_for_half: float = Field(description="units_for_half / n.")
    lorenz: list[list[float]] = Field(
        description="[share of units, share of incidents], units ascending by count."
    )
    filters: dict[str, Any]


@router.get(
    "/concentration",
    response_model=ConcentrationResponse,
    summary="Lorenz curve, Gini and top-N share (analyst or admin key)",
    responses={403: {"model": ErrorResponse, "description": "Needs an analyst or admin key."}},
    openapi_extra={"x-key-required": True},
)
def get_concentration(
    ask: AskDep,
    unit: Annotated[
        str,
        Query(
            pattern=UNIT_PATTERN,
            max_length=64,
            description=UNIT_DESCRIPTION,
            examples=["street", "colonia"],
        ),
    ],
    top: Annotated[int, Query(ge=1, le=10_000, description="N of the top-N share.")] = 50,
) -> Any:
    """Lorenz curve, Gini, the share of the top N units and how many units hold half.

    Example: the law of crime concentration on the street network —
    `/v1/concentration?unit=street&start=2023-01-01&end=2024-01-01` (units_for_half over n).
    H3 units take as study area the cells covering the first boundary layer.
    """
    ask.principal.require_key("concentration statistics need an analyst or admin API key for now")
    parsed = ask.unit(unit)
    flt, _ = ask.answering(parsed)
    counts = aggregate(ask.snap, parsed, flt, ask.cursor)
    values = counts.table.column("count").to_numpy()
    if parsed.kind == "h3":
        layers = ask.snap.manifest.boundary_layers
        assert parsed.res is not None
        if not layers or parsed.res > MAX_H3:
            raise FilterError(
                "unit",
                unit,
                f"H3 concentration needs a boundary layer as study area and h3:{MAX_H3} or coarser",
            )
        area = layer_cells(ask.snap.path(str(ask.snap.layer(layers[0]).cells_path)), parsed.res)
        occupied = hex_to_cells(counts.table.column("unit_id").to_pylist())
        # The study area's cells, and any occupied cell beyond it.
        n = int(np.union1d(area, occupied).size)
    else:
        assert parsed.layer is not None
        n = int(ask.snap.manifest.layers[parsed.layer].features)
    y = np.zeros(n)
    y[: values.size] = values  # units with no incident are the zeros after them
    c = concentration(y)
    pick = np.unique(np.linspace(0, n, min(CURVE_POINTS, n + 1)).round().astype(int))
    lorenz = [[float(c.lorenz_units[i]), float(c.lorenz_incidents[i])] for i in pick]
    body = {
        "snapshot": ask.snap.id,
        "unit": unit,
        "n": n,
        "total": int(c.total),
        "gini": c.gini,
        "top": top,
        "top_share": top_share(y, top),
        "units_for_half": c.units_for_half,
        "share_of_units_for_half": c.units_for_half / n if n else 0.0,
        "lorenz": lorenz,
        "filters": ask.echo(flt),
    }
    return json_response(body, ask.headers)
