"""Service health and dataset metadata."""

from __future__ import annotations

from datetime import date, timedelta
from importlib.metadata import version

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal, PrincipalDep
from api.deps import SnapshotDep
from api.errors import ERROR_RESPONSES
from disclosure.offenses import ALL
from publication import tables
from publication.figures import today, visible_names, whole_area_counts
from store import Store, warm
from store.engine import version as engine_version
from store.query import snapshot_summary
from store.snapshot import Kind, Snapshot

router = APIRouter(tags=["meta"], responses=ERROR_RESPONSES)


class Health(BaseModel):
    """Liveness, the snapshot being served, and versions."""

    model_config = ConfigDict(extra="forbid")
    status: str = Field(description="`ok` when the service answers.")
    snapshot: int | None = Field(description="Current snapshot id; null for an empty store.")
    version: str = Field(description="Cuadra version.")
    release: str = Field(
        description="The public release's background build: `none` (not started: built on "
        "demand), `warming`, `ready` or `failed`."
    )
    cubes: str = Field(
        description="The current snapshot prepared for first asks (offense list, summary, span "
        "cubes): `none`, `preparing`, `ready` or `failed`."
    )
    duckdb: str = Field(description="DuckDB version.")


class Meta(BaseModel):
    """What the current (or requested) snapshot holds."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int = Field(description="Snapshot these figures come from.")
    records: int | None = Field(
        description="Incident records (of the key's sources); for the public, the release's "
        "whole-area count of the default period (`public.default`; sensitive offenses apart), "
        "null if withheld."
    )
    date_min: str | None = Field(description="First local date (inclusive).")
    date_max: str | None = Field(description="Last local date (inclusive).")
    sources: list[str] = Field(description="Source profiles present.")
    categories: dict[str, int | None] = Field(
        description="Records per category; for the public, the published categories and their "
        "whole-area counts of the default period (null where withheld)."
    )
    offenses: dict[str, int | None] = Field(
        description="Records per offense name; for the public, the published offenses and "
        "their whole-area counts of the default period (null where withheld)."
    )
    layers: list[str] = Field(description="Boundary layers (usable as `unit`).")
    street_layer: str | None = Field(description="The street network, if any.")
    units: list[str] = Field(description="Valid values of `unit` (for this role).")
    public: PublicRelease = Field(description="What the public release holds (docs/privacy.md).")


class PublicRelease(BaseModel):
    """The periods and cells public answers are made of."""

    model_config = ConfigDict(extra="forbid")
    default: list[str] = Field(
        description="The period a public request without start/end gets: [start, end)."
    )
    published_until: str = Field(description="The first day not published (whole months).")
    periods: list[str] = Field(description="Public periods: one calendar year, quarter or month.")
    finest_h3: int = Field(description="The finest H3 resolution the public sees.")
    k: int = Field(description="Public counts below k are withheld.")
    k_sensitive: int = Field(description="The threshold for sensitive offenses.")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/health", response_model=Health, summary="Liveness, snapshot and versions")
def health(request: Request) -> Health:
    """Answer whether the service is up and which snapshot it serves."""
    manifest = _store(request).manifest()
    return Health(
        status="ok",
        snapshot=manifest.snapshot if manifest else None,
        version=version("cuadra"),
        release=tables.status(_store(request).root),
        cubes=warm.prepared(_store(request).root),
        duckdb=engine_version(),
    )


@router.get("/v1/meta", response_model=Meta, summary="What the dataset holds")
def meta(request: Request, principal: PrincipalDep, snap: SnapshotDep) -> Response:
    """Snapshot id, date range, record count, categories, offenses, layers and units."""
    rules = request.app.state.rules
    until = tables.cutoff(rules, today())
    # The page's first call, and the one other clients make while a crowd is served: its
    # answer is encoded once per snapshot, role and publication day.
    key = (principal.public, principal.scopes, rules, until)
    return Response(
        snap.memo(
            META, key, lambda: orjson.dumps(_meta(request, principal, snap, until).model_dump())
        ),
        media_type="application/json",
    )


META = Kind("/v1/meta bodies", items=64)


def _meta(request: Request, principal: Principal, snap: Snapshot, until: date) -> Meta:
    manifest = snap.manifest
    summary = snapshot_summary(snap, principal.scopes)
    records: int | None = sum(summary.offenses.values())
    date_max = summary.date_max
    categories: dict[str, int | None] = dict(summary.categories)
    offenses: dict[str, int | None] = dict(summary.offenses)
    rules = request.app.state.rules  # ``until`` comes with the cache key: one day, one answer
    default = tables.default_period(manifest, until)
    if principal.public:
        # The release's own figures: the whole area's published counts of the default
        # period (null where withheld), of the published names only (a name alone can say
        # that a rare case happened), and no date inside the publication delay.
        cursor = request.app.state.engine.cursor()
        try:
            visible = visible_names(snap, rules, cursor)
            shown = whole_area_counts(snap, rules, cursor, default, until)
        finally:
            cursor.close()
        records = shown.get(ALL)
        categories = {c: shown.get("c:" + c) for c in categories if c in visible.categories}
        offenses = {o: shown.get("o:" + o) for o in offenses if o in visible.offenses}
        last = until - timedelta(days=1)
        if date_max is not None and date_max > last.isoformat():
            date_max = last.isoformat()
    layers = manifest.boundary_layers
    finest = rules.finest_h3 if principal.public else 12
    units = [f"h3:{r}" for r in range(5, finest + 1)] + layers
    if manifest.street_layer:
        units.append("street")
    return Meta(
        snapshot=manifest.snapshot,
        records=records,
        date_min=summary.date_min,
        date_max=date_max,
        sources=summary.sources,
        categories=categories,
        offenses=offenses,
        layers=layers,
        street_layer=manifest.street_layer,
        units=units,
        public=PublicRelease(
            default=[default.start.isoformat(), default.end.isoformat()],
            published_until=until.isoformat(),
            periods=["year", "quarter", "month"],
            finest_h3=rules.finest_h3,
            k=rules.k,
            k_sensitive=rules.k_sensitive,
        ),
    )
