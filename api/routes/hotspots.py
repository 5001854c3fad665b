"""Hot spot statistics: /v1/hotspots (Getis-Ord Gi* with FDR) over H3 cells."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import scipy.sparse as sp
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import PrincipalDep
from api.deps import CursorDep, FiltersDep, ManifestDep, StoreDep
from api.errors import ERROR_RESPONSES, ErrorResponse, ForbiddenError
from api.responses import json_response
from api.routes.aggregates import _echo, view
from geo.cells import cells_to_hex, hex_to_cells
from geo.hotspots import classify, fdr, gistar, h3_weights
from store.aggregate import Unit, aggregate
from store.filters import FilterError
from store.layers import layer_cells

router = APIRouter(prefix="/v1", tags=["hotspots"], responses=ERROR_RESPONSES)
MAX_RES = 10  # finer study areas have hundreds of thousands of cells
MIN_UNITS = 30
SPARSE_SHARE = 0.9


class HotspotRow(BaseModel):
    """One unit of the study area."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str
    count: int
    z: float = Field(description="Gi* z-score.")
    p: float = Field(description="Two-sided p-value of z (normal approximation).")
    p_fdr: float = Field(description="Benjamini-Hochberg adjusted p-value.")
    hotspot_class: str = Field(
        alias="class", description="hot_99/95/90, cold_99/95/90 (from p_fdr) or none."
    )


class HotspotResponse(BaseModel):
    """Gi* per unit, every unit of the study area included, largest z first."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    method: str
    unit: str
    k: int = Field(description="k-ring of the neighbourhood (the unit itself included).")
    area: str = Field(description="The boundary layer whose cells make the study area.")
    n: int = Field(description="Units in the study area, zeros included.")
    total: int = Field(description="Incidents inside the study area.")
    outside: int = Field(description="Incidents in cells outside it (not in the statistic).")
    alpha: float
    significant: int = Field(description="Units with p_fdr <= alpha.")
    fdr: bool
    seed: int | None
    warnings: list[str]
    filters: dict[str, Any]
    rows: list[HotspotRow]


@router.get(
    "/hotspots",
    response_model=HotspotResponse,
    summary="Hot and cold spots: Getis-Ord Gi* with FDR (analyst or admin key)",
    responses={403: {"model": ErrorResponse, "description": "Needs an analyst or admin key."}},
    openapi_extra={"x-key-required": True},
)
def get_hotspots(
    request: Request,
    principal: PrincipalDep,
    db: CursorDep,
    store: StoreDep,
    manifest: ManifestDep,
    filters: FiltersDep,
    unit: Annotated[
        str,
        Query(pattern=r"^h3:([5-9]|10)$", description="H3 cells, h3:5 … h3:10.", examples=["h3:8"]),
    ],
    method: Annotated[Literal["gistar"], Query(description="The statistic.")] = "gistar",
    k: Annotated[int, Query(ge=1, le=5, description="Neighbourhood: the k-ring.")] = 1,
    alpha: Annotated[
        float, Query(gt=0, lt=0.5, description="FDR level for the `significant` count.")
    ] = 0.05,
    area: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z][a-z0-9_]*$",
            description="Boundary layer whose cells are the study area [default: the first].",
        ),
    ] = None,  # fmt: skip
) -> Any:
    """Gi* z, p and Benjamini-Hochberg adjusted p per cell of the study area (zeros in).

    Example: street robberies of 2023 on resolution-8 cells —
    `/v1/hotspots?unit=h3:8&offense=ROBO A TRANSEUNTE EN VIA PUBLICA CON VIOLENCIA&start=2023-01-01&end=2024-01-01`.
    Public access waits for privacy rules that cover z-scores (they can give counts back).
    """
    if principal.public:
        raise ForbiddenError("hotspot statistics need an analyst or admin API key for now")
    parsed = Unit.parse(unit, manifest)
    layers = manifest.boundary_layers
    layer = area or (layers[0] if layers else None)
    if layer is None or layer not in layers:
        raise FilterError("area", area, f"no boundary layer to take the study area from (have: {', '.join(layers) or 'none'})")  # fmt: skip
    assert parsed.res is not None and parsed.res <= MAX_RES
    flt, _ = view(request, principal, manifest, filters.to_filters(), parsed)
    path = store.root / manifest.layers[layer].path
    cells_path = store.root / str(manifest.layers[layer].cells_path)
    universe = layer_cells(cells_path, parsed.res)
    counts = aggregate(store, manifest, parsed, flt, db)
    occupied = hex_to_cells(counts.table.column("unit_id").to_pylist())
    values = counts.table.column("count").to_numpy()
    at = np.searchsorted(universe, occupied)
    inside = (at < universe.size) & (universe[np.minimum(at, universe.size - 1)] == occupied)
    y = np.zeros(universe.size)
    y[at[inside]] = values[inside]
    weights = _weights(str(cells_path), path.stat().st_mtime_ns, parsed.res, k)
    z, p = gistar(y, weights)
    p_fdr = fdr(p)
    classes = classify(z, p_fdr)
    order = np.argsort(-z, kind="stable")
    ids = cells_to_hex(universe)
    rows = [{"unit_id": ids[i], "count": int(y[i]), "z": float(z[i]), "p": float(p[i]),
             "p_fdr": float(p_fdr[i]), "class": str(classes[i])} for i in order]  # fmt: skip
    warnings = []
    if universe.size < MIN_UNITS:
        warnings.append(f"only {universe.size} units: Gi* needs more (30 or so) to mean much")
    if (y == 0).mean() > SPARSE_SHARE:
        warnings.append(
            f"{(y == 0).mean():.0%} of units have no incident: too sparse for the normal approximation; use coarser cells or a longer period"
        )
    body = {"snapshot": manifest.snapshot, "method": method, "unit": unit, "k": k, "area": layer,
            "n": int(universe.size), "total": int(y.sum()),
            "outside": int(values[~inside].sum()), "alpha": alpha,
            "significant": int((p_fdr <= alpha).sum()), "fdr": True, "seed": None,
            "warnings": warnings, "filters": _echo(flt), "rows": rows}  # fmt: skip
    return json_response(body, {"X-Cuadra-Snapshot": str(manifest.snapshot)})


@lru_cache(maxsize=8)
def _weights(cells_path: str, mtime_ns: int, res: int, k: int) -> sp.csr_matrix:
    # The study area's weights depend only on the layer version, resolution and k.
    return h3_weights(layer_cells(Path(cells_path), res), k)
