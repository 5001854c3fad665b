"""The store's snapshots, and what changed between two of them: /v1/snapshots, /v1/snapshots/diff."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.context import Ask, AskDep
from api.errors import ERROR_RESPONSES
from api.responses import json_response
from api.routes.aggregates import UNIT_DESCRIPTION, UNIT_PATTERN
from publication.revisions import released_diff
from store.aggregate import Unit
from store.diff import diff
from store.errors import StoreError
from store.filters import FilterError
from store.snapshot import Snapshot
from store.snapshots import Manifest

router = APIRouter(prefix="/v1", tags=["meta"], responses=ERROR_RESPONSES)


class BatchInfo(BaseModel):
    """An ingested input of a snapshot (keys only)."""

    model_config = ConfigDict(extra="forbid")
    batch: str = Field(description="Content hash of the input.")
    source: str
    inputs: list[str] = Field(description="File names read.")
    input_rows: int
    accepted: int
    rejected: int
    duplicates: int
    replaced: list[str] = Field(description="Earlier batches of the source it replaced.")


class SnapshotInfo(BaseModel):
    """One published snapshot."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int
    parent: int | None
    created_at: str = Field(description="When it was published (UTC, ISO 8601).")
    operation: str = Field(
        description="`ingest`, `replace <source>` (a revised release) or a layer version."
    )
    records: int | None = Field(
        description="Incident records (of the key's sources); null for the public."
    )
    batches: list[BatchInfo] | None = Field(
        description="The inputs whose records it holds (of the key's sources); null for the public."
    )


class SnapshotList(BaseModel):
    """Every published snapshot, newest first."""

    model_config = ConfigDict(extra="forbid")
    current: int
    snapshots: list[SnapshotInfo]


@router.get(
    "/snapshots", response_model=SnapshotList, summary="Published snapshots and their batches"
)
def get_snapshots(ask: AskDep) -> Any:
    """Every snapshot of the store, newest first, with the batches it holds (for a key).

    `as_of=<snapshot>` on any route reads one of them; `/v1/snapshots/diff` says what
    changed between two.
    """
    store = ask.snap.store
    out = []
    for seq in reversed(store.snapshots()):
        manifest = store.require_manifest(seq)
        out.append(_info(ask, manifest))
    current = store.snapshots()[-1]
    return json_response({"current": current, "snapshots": out}, ask.headers)


def _info(ask: Ask, manifest: Manifest) -> dict[str, Any]:
    info: dict[str, Any] = {
        "snapshot": manifest.snapshot,
        "parent": manifest.parent,
        "created_at": manifest.created_at,
        "operation": manifest.operation,
        "records": None,
        "batches": None,
    }
    if ask.principal.public:
        return info  # record totals of consecutive snapshots would tell what each added
    scopes = set(ask.principal.scopes)
    store = ask.snap.store
    files = [f for f in manifest.files if not scopes or store.file_sources(f) <= scopes]
    info["records"] = sum(f.rows for f in files)
    info["batches"] = [
        {
            "batch": b.batch,
            "source": b.source,
            "inputs": [name.rsplit("/", 1)[-1] for name in b.inputs],
            "input_rows": b.input_rows,
            "accepted": b.accepted,
            "rejected": b.rejected,
            "duplicates": b.duplicates,
            "replaced": b.replaced,
        }
        for b in manifest.batches.values()
        if not scopes or b.source in scopes
    ]
    return info


class DiffRow(BaseModel):
    """A cell (unit, offense, month) whose count changed, and why (keys)."""

    model_config = ConfigDict(extra="forbid")
    unit_id: str | None = Field(description="Null: records outside every unit.")
    name: str | None
    offense: str
    category: str
    month: str = Field(description="YYYY-MM, local.")
    new: int = Field(description="Records in `to` only (late cases).")
    revised_in: int = Field(
        description="Records moved into this cell (reclassified, relocated, redated)."
    )
    deleted: int = Field(description="Records in `from` only.")
    revised_out: int = Field(description="Records moved out of this cell.")
    added: int
    removed: int
    net: int = Field(description="The cell's count in `to` minus its count in `from`.")


class DiffResponse(BaseModel):
    """What changed between two snapshots (docs/api.md, "What changed between releases")."""

    model_config = ConfigDict(extra="forbid")
    snapshot: int = Field(description="The `to` snapshot.")
    from_: int = Field(alias="from")
    to: int
    unit: str
    released: bool = Field(
        description="true: the public's answer, made of release cells (rows hold before/after)."
    )
    totals: dict[str, int | None]
    largest: list[dict[str, Any]] = Field(
        description="The biggest moves (keys: per unit and offense)."
    )
    rows: list[dict[str, Any]]
    rows_total: int
    filters: dict[str, Any]
    privacy: dict[str, Any] | None = None


@router.get(
    "/snapshots/diff",
    response_model=DiffResponse,
    summary="What changed between two snapshots, per unit, offense and month",
)
def get_snapshot_diff(
    ask: AskDep,
    to: Annotated[
        int | None,
        Query(ge=1, description="The later snapshot (default: `as_of`, else the current one)."),
    ] = None,
    from_: Annotated[
        int | None,
        Query(alias="from", ge=1, description="The earlier snapshot (default: `to`'s parent)."),
    ] = None,
    unit: Annotated[
        str, Query(pattern=UNIT_PATTERN, max_length=64, description=UNIT_DESCRIPTION)
    ] = "colonia",
    limit: Annotated[int, Query(ge=1, le=10_000, description="Rows returned at most.")] = 500,
) -> Any:
    """Records added and removed between two snapshots, per unit, offense and month.

    Example: why last month's figure moved after a revised release was ingested with
    `cuadra ingest --replace` — `/v1/snapshots/diff?from=4&to=5&unit=colonia`. Each row
    says how many records are new (late cases), deleted, or moved in or out of the cell
    (reclassified, relocated, redated); `net` is the change of the cell's count. `start`,
    `end`, `offense` and `category` select the rows. The public sees the release cells
    both snapshots publish for one period instead (docs/privacy.md).
    """
    after = ask.snap if to is None else _snapshot(ask, "to", to)
    if from_ is None and after.manifest.parent is None:
        raise FilterError("from", None, f"snapshot {after.id} is the first: give from")
    before = _snapshot(ask, "from", from_ if from_ is not None else after.manifest.parent)
    if before.id > after.id:
        raise FilterError("from", before.id, f"must not be later than to={after.id}")
    parsed = Unit.parse(unit, after.manifest)
    if ask.principal.public:
        return _released(ask, before, after, parsed, unit)
    flt = ask.filters()
    if ask.principal.scopes:
        flt = replace(flt, sources=ask.principal.scopes)
    result = diff(before, after, parsed, flt, ask.cursor)
    rows = result.rows.slice(0, limit).to_pylist()
    for row in rows:
        row["month"] = row["month"].strftime("%Y-%m")
    body = {
        "snapshot": after.id,
        "from": before.id,
        "to": after.id,
        "unit": unit,
        "released": False,
        "totals": result.totals,
        "largest": result.largest(),
        "rows": rows,
        "rows_total": result.rows.num_rows,
        "filters": ask.echo(flt),
    }
    return json_response(body, {"X-Cuadra-Snapshot": str(after.id)})


def _released(ask: Ask, before: Snapshot, after: Snapshot, parsed: Unit, unit: str) -> Any:
    result = released_diff(before, after, parsed, ask.filters(), ask.rules, ask.cursor)
    body = {
        "snapshot": after.id,
        "from": before.id,
        "to": after.id,
        "unit": unit,
        "released": True,
        "totals": {
            "before": result.totals[0],
            "after": result.totals[1],
            "unchanged": result.unchanged,
            "withheld": result.withheld,
        },
        "largest": result.rows[:10],
        "rows": result.rows,
        "rows_total": len(result.rows),
        "filters": ask.echo(result.view.filters),
        "privacy": result.view.describe(result.withheld > 0),
    }
    return json_response(body, {"X-Cuadra-Snapshot": str(after.id)})


def _snapshot(ask: Ask, param: str, seq: int | None) -> Snapshot:
    store = ask.snap.store
    try:
        return store.snapshot(seq)
    except StoreError:
        raise FilterError(
            param, seq, f"no such snapshot (have 1..{store.snapshots()[-1]})"
        ) from None
