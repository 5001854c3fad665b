"""Drawn areas posted as GeoJSON: the body of the analysis routes' POST twins.

Every analysis route that answers for an area (aggregate, timeseries, compare, hotspots,
incidents, area) takes ``within=circle:lon,lat,metres`` by GET, and a polygon by POST to
the same path: the same query parameters, the polygon in the body.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from geojson_pydantic import Feature, MultiPolygon, Polygon
from pydantic import TypeAdapter, ValidationError

from api.auth import PrincipalDep
from api.context import Ask, AskDep
from api.deps import CursorDep, FiltersDep, SnapshotDep
from store.filters import FilterError
from store.shapes import MAX_AREA_KM2, MAX_VERTICES, ShapeError, shape_of

Drawn = Polygon | MultiPolygon | Feature[Polygon | MultiPolygon, dict[str, Any]]
_DRAWN: TypeAdapter[Drawn] = TypeAdapter(Drawn)

BODY_DESCRIPTION = (
    "The area: a GeoJSON Polygon or MultiPolygon (holes allowed), or a Feature holding "
    f"one; WGS84 lon/lat; at most {MAX_VERTICES:,} vertices and {MAX_AREA_KM2:,.0f} km². "
    "Points on its edge count as inside. With an API key the figures are the records "
    "inside; the public gets the whole units the area touches, named in `area`."
)
EXAMPLE = {
    "type": "Polygon",
    "coordinates": [
        [
            [-99.140, 19.428],
            [-99.126, 19.428],
            [-99.126, 19.438],
            [-99.140, 19.438],
            [-99.140, 19.428],
        ]
    ],
}


async def get_drawn_ask(
    request: Request,
    principal: PrincipalDep,
    snap: SnapshotDep,
    cursor: CursorDep,
    common: FiltersDep,
    area: Annotated[dict[str, Any], Body(description=BODY_DESCRIPTION, examples=[EXAMPLE])],
) -> Ask:
    """The request's :class:`Ask` with the posted polygon; a 400 naming ``area`` if unfit.

    The body is declared a JSON object and read by geojson-pydantic here, so that every
    unfit body is one 400 that says what is wrong with it.
    """
    try:
        parsed = _DRAWN.validate_python(area)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FilterError(
            "area",
            area.get("type"),
            f"not a GeoJSON Polygon, MultiPolygon or Feature of one ({where}: {first['msg']})",
        ) from None
    geometry = parsed.geometry if isinstance(parsed, Feature) else parsed
    if geometry is None:
        raise FilterError("area", None, "the Feature has no geometry")
    try:
        shape = shape_of(geometry.model_dump(exclude_none=True))
    except ShapeError as exc:
        raise FilterError("area", geometry.type, exc.message) from None
    return Ask(request, principal, snap, cursor, common, shape)


DrawnAskDep = Annotated[Ask, Depends(get_drawn_ask)]


def area_route(
    router: APIRouter, path: str, **route: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a route by GET and, with its ``ask`` from a posted polygon, by POST.

    The POST twin has the GET's parameters; its ``ask`` dependency reads the body.
    """

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        router.add_api_route(path, endpoint, methods=["GET"], **route)
        signature = inspect.signature(endpoint, eval_str=True)
        params = [
            p.replace(annotation=DrawnAskDep) if p.annotation is AskDep else p
            for p in signature.parameters.values()
        ]

        def posted(**kwargs: Any) -> Any:
            return endpoint(**kwargs)

        posted.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        posted.__name__ = f"{endpoint.__name__}_in_polygon"
        posted.__doc__ = endpoint.__doc__
        summary = route.get("summary", "")
        twin = {**route, "summary": f"{summary}, in a posted polygon".lstrip(", ")}
        router.add_api_route(path, posted, methods=["POST"], **twin)
        return endpoint

    return register
