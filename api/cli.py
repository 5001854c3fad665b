"""The `cuadra` command line: a thin layer over the library."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest.errors import IngestError
from store import Store, StoreError

app = typer.Typer(
    name="cuadra",
    help="Cuadra: georeferenced crime mapping. Ingest incident files into an H3-indexed "
    "GeoParquet store and serve aggregates, hotspots and tiles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
boundaries_app = typer.Typer(
    help="Boundary layers (colonias, alcaldías, cuadrantes, ...).", no_args_is_help=True
)
streets_app = typer.Typer(help="Street networks for street-level counts.", no_args_is_help=True)
app.add_typer(boundaries_app, name="boundaries")
app.add_typer(streets_app, name="streets")
keys_app = typer.Typer(
    help="API keys for analysts and administrators (stored hashed in the store).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

console = Console(stderr=True, soft_wrap=True)
out = Console()

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store folder, or s3://bucket/prefix \\[default: $CUADRA_STORE or data/store].",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _store(path: str | None) -> Store:
    if path is not None:
        return Store(path)
    # Imported here: pydantic-settings costs a tenth of a second at every start.
    from api.settings import StoreSettings

    return Store(StoreSettings().store)


@contextmanager
def _stages(enabled: bool, title: str) -> Iterator[Any]:
    """A progress display of named stages (on stderr; silent with --json)."""
    if not enabled:
        yield lambda _msg: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(title, total=None)
        yield lambda msg: progress.update(task, description=f"{title}: {msg}")


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(2)


class EngineName(StrEnum):
    """Where ingest runs its parts."""

    local = "local"
    dask = "dask"


# The options of `cuadra ingest`, declared apart so that the command reads at a glance.
FilesArg = Annotated[
    list[Path],
    typer.Argument(help="Input files: CSV (.gz), Parquet, GeoJSON, GeoPackage, Shapefile."),
]
ProfileOpt = Annotated[
    str, typer.Option("--profile", "-p", help="Built-in profile name or path to a .toml profile.")
]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")]
ExpectRowsOpt = Annotated[
    int | None,
    typer.Option("--expect-rows", min=0, help="Abort unless the input has exactly N data rows."),
]
Sha256Opt = Annotated[
    str | None,
    typer.Option("--sha256", help="Abort unless the file's SHA-256 is this hex digest."),
]
EngineOpt = Annotated[
    EngineName,
    typer.Option("--engine", help="local: this process; dask: tasks on a Dask cluster."),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask scheduler address (tcp://host:8786); none: a local cluster of 2 workers.",
    ),
]
ReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="The files are the source's whole new release (a revised file): its records "
        "replace the source's records in the store (reclassified ones take their new "
        "values, dropped ones are gone). Older snapshots keep the old ones; see cuadra diff.",
    ),
]
BatchRowsOpt = Annotated[
    int,
    typer.Option(
        "--batch-rows",
        min=10_000,
        help="Rows read, validated and written at a time: memory follows this.",
    ),
]


@app.command()
def ingest(
    files: FilesArg,
    profile: ProfileOpt,
    store: StoreOpt = None,
    report: ReportOpt = None,
    expect_rows: ExpectRowsOpt = None,
    sha256: Sha256Opt = None,
    engine: EngineOpt = EngineName.local,
    scheduler: SchedulerOpt = None,
    batch_rows: BatchRowsOpt = 1_000_000,
    replace: ReplaceOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate, enrich and commit incident files as one new snapshot.

    Inputs of any size are read in parts of --batch-rows rows and committed as one
    snapshot; --engine dask runs the parts on a Dask cluster and commits the same one.
    """
    from ingest import process
    from ingest.pipeline import ingest as run
    from ingest.profiles import load_profile

    if engine.value == "local":
        process.for_console_ingest()  # only when the process ends with the command
    try:
        prof = load_profile(profile)
        with _stages(not as_json, "ingest") as say:
            result = run(
                _store(store),
                [str(f) for f in files],
                prof,
                expect_rows=expect_rows,
                sha256=sha256,
                progress=say,
                batch_rows=batch_rows,
                engine=engine.value,
                scheduler=scheduler,
                replace=replace,
            )
    except (IngestError, StoreError) as exc:
        _fail(exc)
        return
    data = result.to_dict()
    if data.get("status") == "committed":
        data["alerts"] = _alerts_after_ingest(_store(store))
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    if as_json:
        out.print_json(json.dumps(data, ensure_ascii=False))
        return
    _print_report(data)


def _print_report(data: dict[str, Any]) -> None:
    verb = {"committed": "Committed", "already_ingested": "Already ingested"}.get(
        data["status"], data["status"]
    )
    out.print(
        f"[bold green]{verb}[/bold green] snapshot {data['snapshot']} — source {data['source']}, batch {data['batch'][:12]}"
    )
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_row("input rows", f"{data['input_rows']:,}")
    t.add_row("accepted", f"{data['accepted']:,}")
    t.add_row("rejected", f"{data['rejected_total']:,}")
    for reason, n in sorted(data["rejected"].items(), key=lambda kv: -kv[1]):
        t.add_row(f"  {reason}", f"{n:,}")
    t.add_row(
        "duplicates",
        f"{data['duplicates']:,} ({data['duplicates_within_input']:,} within input, {data['duplicates_already_stored']:,} already stored)",
    )
    for code, n in data["repairs"].items():
        t.add_row(f"repaired: {code}", f"{n:,}")
    t.add_row("time imputed", f"{data['time_imputed']:,}")
    if data["unknown_offenses"]:
        t.add_row(
            "unknown offenses",
            f"{sum(data['unknown_offenses'].values()):,} rows of {len(data['unknown_offenses'])} names",
        )
    for layer, n in data["assigned"].items():
        t.add_row(f"in {layer}", f"{n:,}")
    if data["rejects_file"]:
        t.add_row("rejects file", data["rejects_file"])
    if data["replaced"]:
        t.add_row("replaced batches", ", ".join(b[:12] for b in data["replaced"]))
    t.add_row("seconds", f"{data['seconds']:.2f}")
    out.print(t)


@boundaries_app.command("add")
def boundaries_add(
    name: Annotated[
        str,
        typer.Argument(help="Layer name, e.g. colonia, alcaldia, cuadrante (becomes a column)."),
    ],
    file: Annotated[Path, typer.Argument(help="Polygon file: GeoJSON, GeoPackage, Shapefile.")],
    id_field: Annotated[
        str | None,
        typer.Option("--id-field", help="Unique id attribute (default: feature position)."),
    ] = None,
    name_field: Annotated[
        str | None, typer.Option("--name-field", help="Display name attribute.")
    ] = None,
    population_field: Annotated[
        str | None, typer.Option("--population-field", help="Population, for rates per 100k.")
    ] = None,
    layer: Annotated[
        str | None, typer.Option("--layer", help="Layer of a multi-layer file.")
    ] = None,
    dissolve: Annotated[
        bool,
        typer.Option(
            "--dissolve", help="Merge features sharing an id (e.g. alcaldías from colonias)."
        ),
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a boundary layer (a new version if it exists) and assign incidents to it."""
    from ingest.layers import add_boundary_file

    st = _store(store)
    try:
        with _stages(not as_json, f"boundaries {name}") as say:
            manifest, notes = add_boundary_file(
                st,
                name,
                file,
                id_field=id_field,
                name_field=name_field,
                population_field=population_field,
                layer=layer,
                dissolve=dissolve,
                progress=say,
            )
    except (IngestError, StoreError) as exc:
        _fail(exc)
        return
    lay = manifest.layers[name]
    result = {
        "snapshot": manifest.snapshot,
        "layer": name,
        "version": lay.version,
        "features": lay.features,
        "notes": notes,
        "records": manifest.rows,
    }
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(
            f"[bold green]Added[/bold green] boundary layer {name} v{lay.version}: {lay.features:,} polygons; snapshot {manifest.snapshot}; {manifest.rows:,} incidents re-assigned"
        )
        for k, v in notes.items():
            out.print(f"  {k}: {v}")


@streets_app.command("add")
def streets_add(
    name: Annotated[str, typer.Argument(help="Network name, e.g. osm_2018.")],
    file: Annotated[Path, typer.Argument(help="Line file: GeoJSON, GeoPackage, Shapefile.")],
    name_field: Annotated[
        str | None, typer.Option("--name-field", help="Street name attribute.")
    ] = None,
    id_field: Annotated[
        str | None, typer.Option("--id-field", help="Source id attribute, kept for reference.")
    ] = None,
    layer: Annotated[
        str | None, typer.Option("--layer", help="Layer of a multi-layer file.")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a street network and snap incidents to their nearest segment (≤ 50 m)."""
    from ingest.layers import add_street_file

    st = _store(store)
    try:
        with _stages(not as_json, f"streets {name}") as say:
            manifest, notes = add_street_file(
                st, name, file, name_field=name_field, id_field=id_field, layer=layer, progress=say
            )
    except (IngestError, StoreError) as exc:
        _fail(exc)
        return
    lay = manifest.layers[name]
    result = {
        "snapshot": manifest.snapshot,
        "layer": name,
        "version": lay.version,
        "features": lay.features,
        "metric_crs": lay.metric_crs,
        "notes": notes,
    }
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(
            f"[bold green]Added[/bold green] street network {name} v{lay.version}: {lay.features:,} lines (metric CRS {lay.metric_crs}); snapshot {manifest.snapshot}"
        )


@app.command()
def vacuum(
    store: StoreOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")
    ] = False,
    grace_hours: Annotated[
        float,
        typer.Option(
            min=0,
            help="On a bucket, keep what was written less than this long ago: an ingest on "
            "another machine uploads its files before its manifest.",
        ),
    ] = 24,
    as_json: JsonOpt = False,
) -> None:
    """Delete data files no snapshot names (left by killed or refused writers).

    On a bucket (s3://...) its objects and this machine's cache folder; published
    snapshots are never touched.
    """
    from datetime import timedelta

    st = _store(store)
    try:
        gone = st.vacuum(dry_run=dry_run, grace=timedelta(hours=grace_hours))
    except StoreError as exc:
        _fail(exc)
        return
    names = [p.relative_to(st.root).as_posix() for p in gone]
    if as_json:
        out.print_json(json.dumps({"store": st.location, "dry_run": dry_run, "files": names}))
        return
    for name in names:
        out.print(name, highlight=False, soft_wrap=True)
    verb = "would delete" if dry_run else "deleted"
    out.print(
        f"{st.location}: {verb} {len(names)} file{'s' if len(names) != 1 else ''}", soft_wrap=True
    )


@app.command()
def info(
    store: StoreOpt = None,
    as_of: Annotated[
        int | None, typer.Option("--as-of", min=1, help="Describe an older snapshot.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Current snapshot, record count, date range, layers and data files."""
    from store.query import snapshot_summary

    st = _store(store)
    try:
        snap = st.snapshot(as_of)
    except StoreError as exc:
        _fail(exc)
        return
    manifest = snap.manifest
    summary = snapshot_summary(snap)
    data: dict[str, Any] = {
        "store": st.location,
        "snapshot": manifest.snapshot,
        "snapshots": st.snapshots(),
        "created_at": manifest.created_at,
        "operation": manifest.operation,
        "records": manifest.rows,
        "date_min": summary.date_min,
        "date_max": summary.date_max,
        "sources": summary.sources,
        "layers": {
            n: {"kind": lay.kind, "version": lay.version, "features": lay.features}
            for n, lay in manifest.layers.items()
        },
        "street_layer": manifest.street_layer,
        "batches": len(manifest.batches),
        "files": [str(p) for p in st.data_files(manifest)],
    }
    if as_json:
        out.print_json(json.dumps(data, ensure_ascii=False))
        return
    out.print(f"[bold]Store[/bold] {data['store']}")
    out.print(
        f"snapshot {manifest.snapshot} ({manifest.operation}, {manifest.created_at}); {len(data['snapshots'])} snapshots in all"
    )
    out.print(
        f"{manifest.rows:,} records from {summary.date_min} to {summary.date_max}; sources: {', '.join(summary.sources) or '-'}"
    )
    for n, lay in manifest.layers.items():
        out.print(f"layer {n}: {lay.kind} v{lay.version}, {lay.features:,} features")
    out.print(f"{len(manifest.files)} data files (use --json to list them)")


@app.command()
def diff(
    before: Annotated[
        int | None, typer.Argument(min=1, help="The earlier snapshot \\[default: AFTER's parent].")
    ] = None,
    after: Annotated[
        int | None, typer.Argument(min=1, help="The later snapshot \\[default: the current one].")
    ] = None,
    unit: Annotated[
        str, typer.Option("--unit", help="colonia, cuadrante, street, h3:5..12, ...")
    ] = "colonia",
    rows: Annotated[int, typer.Option("--rows", min=0, help="Cells listed (largest moves).")] = 20,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed between two snapshots, per unit, offense and month (cuadra diff 4 5).

    Records new in AFTER (late cases), deleted, or moved to another unit, offense or month
    (reclassified), and the net change of each cell's count; the largest moves first.
    """
    from store.aggregate import Unit
    from store.diff import diff as run
    from store.engine import open_engine
    from store.filters import Filters

    st = _store(store)
    try:
        new = st.snapshot(after)
        parent = before if before is not None else new.manifest.parent
        if parent is None:
            raise StoreError(f"snapshot {new.id} is the first: give the one to compare with")
        old = st.snapshot(parent)
        if old.id > new.id:
            raise StoreError(f"snapshot {old.id} is later than {new.id}: give the earlier first")
        con = open_engine()
        try:
            result = run(old, new, Unit.parse(unit, new.manifest), Filters(), con)
        finally:
            con.close()
    except StoreError as exc:
        _fail(exc)
        return
    listed = result.rows.slice(0, rows).to_pylist()
    for row in listed:
        row["month"] = row["month"].strftime("%Y-%m")
    if as_json:
        data = {
            "from": old.id,
            "to": new.id,
            "unit": unit,
            "totals": result.totals,
            "largest": result.largest(),
            "rows": listed,
            "rows_total": result.rows.num_rows,
        }
        out.print_json(json.dumps(data, ensure_ascii=False))
        return
    _print_diff(result.totals, listed, result.rows.num_rows, (old.id, new.id, unit))


def _print_diff(
    totals: dict[str, int], listed: list[dict[str, Any]], cells: int, what: tuple[int, int, str]
) -> None:
    old, new, unit = what
    t = totals
    out.print(
        f"[bold]Snapshot {old} → {new}[/bold] by {unit}: {t['net']:+,} records "
        f"({t['new']:,} new, {t['deleted']:,} deleted, {t['revised_out']:,} moved "
        f"to another {unit}, offense or month); {cells:,} cells changed"
    )
    if not listed:
        return
    table = Table(box=None, pad_edge=False)
    for name in ("unit", "offense", "month", "new", "moved in", "deleted", "moved out", "net"):
        table.add_column(name, justify="right" if name not in ("unit", "offense") else "left")
    for r in listed:
        label = r["name"] or r["unit_id"] or "(outside every unit)"
        counts = (r["new"], r["revised_in"], r["deleted"], r["revised_out"])
        table.add_row(
            label, r["offense"], r["month"], *(f"{n:,}" for n in counts), f"{r['net']:+,}"
        )
    out.print(table)


basemap_app = typer.Typer(
    help="The map's basemap, cut from the store's own layers.", no_args_is_help=True
)
app.add_typer(basemap_app, name="basemap")


@basemap_app.command("build")
def basemap_build(
    store: StoreOpt = None,
    maxzoom: Annotated[
        int, typer.Option("--maxzoom", min=12, max=17, help="Deepest zoom cut (the map overzooms).")
    ] = 15,
) -> None:
    """Write <store>/basemap/basemap.pmtiles from the current layers (outlines, names, streets).

    The map draws it beneath the data, served by Cuadra itself at /v1/tiles/basemap:
    no tile server or internet needed. Run it again after adding a layer.
    """
    from api.basemap import build_store_basemap

    try:
        path, tiles = build_store_basemap(_store(store), maxzoom=maxzoom)
    except (StoreError, ValueError) as exc:
        _fail(exc)
        return
    out.print(
        f"[bold green]Built[/bold green] {path}: {tiles:,} tiles, {path.stat().st_size:,} bytes"
    )


class KeyRole(StrEnum):
    """Roles a key can have (public access needs none)."""

    analyst = "analyst"
    admin = "admin"


@keys_app.command("create")
def keys_create(
    role: Annotated[KeyRole, typer.Option("--role", help="What the key may do.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="A source this key may read (repeatable); none: all."),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Who or what it is for.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once: it is stored only as a hash."""
    from store.keys import KEYS, KeyRing, Role

    st = _store(store)
    try:
        with st.editing(KEYS):
            record, text = KeyRing(st.root).create(Role(role.value), tuple(scope or ()), note)
    except StoreError as exc:
        _fail(exc)
        return
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "id": record.id,
                    "role": record.role.value,
                    "scopes": list(record.scopes),
                    "key": text,
                }
            )
        )
        return
    scopes = ", ".join(record.scopes) or "all sources"
    out.print(f"key {record.id} ({record.role.value}; {scopes}):")
    out.print(text, soft_wrap=True)
    console.print(
        "Store it now: it cannot be shown again. Send it as 'Authorization: Bearer <key>'."
    )


@keys_app.command("list")
def keys_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every key (active and revoked), without the keys themselves."""
    from store.keys import KeyRing

    st = _store(store)
    st.refresh(snapshots=False)  # a remote store's key ring, not its snapshot's files
    keys = KeyRing(st.root).keys()
    rows: list[dict[str, Any]] = [
        {
            "id": k.id,
            "role": k.role.value,
            "scopes": list(k.scopes),
            "created_at": k.created_at,
            "revoked_at": k.revoked_at,
            "note": k.note,
        }
        for k in keys
    ]
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("id", "role", "scopes", "created", "revoked", "note")
    for r in rows:
        table.add_row(
            r["id"],
            r["role"],
            ", ".join(r["scopes"]) or "all",
            r["created_at"],
            r["revoked_at"] or "",
            r["note"] or "",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `cuadra keys list`).")],
    store: StoreOpt = None,
) -> None:
    """Revoke a key: requests with it are refused from then on."""
    from store.keys import KEYS, KeyRing

    st = _store(store)
    try:
        with st.editing(KEYS):
            record = KeyRing(st.root).revoke(key_id)
    except StoreError as exc:
        _fail(exc)
        return
    out.print(f"key {record.id} revoked at {record.revoked_at}")


@app.command()
def serve(
    store: StoreOpt = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on \\[default: CUADRA_HOST or 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port \\[default: CUADRA_PORT or 8000].")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Server processes sharing the port, each answering from the same snapshot "
            "\\[default: CUADRA_WORKERS or 1].",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API and the map."""
    from api import processes
    from api.settings import ServerSettings, StoreSettings

    given: dict[str, Any] = {
        k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None
    }
    try:
        settings = ServerSettings(store=store or StoreSettings().store, **given)
    except ValueError as exc:  # pydantic's ValidationError names the setting and the rule
        _fail(ValueError(f"invalid setting: {exc}"))
        return
    busy = _port_in_use(settings.host, settings.port)
    if busy is not None:
        _fail(busy)
        return
    logging.getLogger("cuadra.api").setLevel(logging.INFO)
    console.print(
        f"Serving {settings.store} on http://{settings.host}:{settings.port} with "
        f"{settings.workers} process{'es' if settings.workers > 1 else ''} (Ctrl-C to stop)"
    )
    processes.run(settings)


def _port_in_use(host: str, port: int) -> Exception | None:
    """A one-line error when another program listens on the address, else None."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return OSError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): another server holds "
                "it; stop it, or choose another port with --port or CUADRA_PORT"
            )
    return None


@app.command()
def demo(
    store: StoreOpt = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Folder with the Mexico City files \\[default: ../shared/data/cdmx]."
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port \\[default: CUADRA_PORT or 8000].")
    ] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Load the data and stop.")] = False,
) -> None:
    """The main job: load Mexico City's incidents with colonias, cuadrantes and streets, then serve."""
    from api.demo import DemoError, prepare_demo

    st = _store(store)
    try:
        prepare_demo(st, data_dir, out)
    except (DemoError, IngestError, StoreError) as exc:
        _fail(exc)
        return
    if not no_serve:
        serve(store=st.location, port=port)


report_app = typer.Typer(help="Reports: the weekly CompStat pack.", no_args_is_help=True)
app.add_typer(report_app, name="report")


class ReportFormat(StrEnum):
    """Formats of a report file."""

    html = "html"
    json = "json"
    csv = "csv"


@report_app.command("compstat")
def report_compstat(
    unit: Annotated[str, typer.Option("--unit", help="A boundary layer: alcaldia, colonia, ...")],
    week: Annotated[str, typer.Option("--week", help="ISO week, e.g. 2024-W20.")],
    ident: Annotated[
        str | None, typer.Option("--id", help="The unit \\[default: every unit of the layer].")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here \\[default: standard output].")
    ] = None,
    fmt: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format", help="html, json or csv \\[default: from --out's suffix, else json]."
        ),
    ] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Count only this category (repeatable).")
    ] = None,
    offense: Annotated[
        list[str] | None, typer.Option("--offense", help="Count only this offense (repeatable).")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """The CompStat pack of a unit (or a whole layer) for an ISO week.

    The week, 28 days and year to date against a year before, by category, with rising
    colonias, hot spots and a map (HTML):
    cuadra report compstat --unit alcaldia --id COYOACAN --week 2024-W20 --out pack.html
    """
    from api.reports import compstat_text
    from api.tile_data import attribution
    from store.aggregate import Unit
    from store.engine import open_engine
    from store.filters import Filters

    chosen = fmt.value if fmt is not None else (out_file.suffix.lstrip(".") if out_file else "json")
    if chosen not in {f.value for f in ReportFormat}:
        _fail(StoreError(f"--format: html, json or csv (not {chosen!r})"))
        return
    st = _store(store)
    try:
        snap = st.snapshot()
        flt = Filters(categories=tuple(category or ()), offenses=tuple(offense or ()))
        con = open_engine()
        try:
            parsed = Unit.parse(unit, snap.manifest)
            text = compstat_text(
                snap, con, flt, parsed, ident, week, chosen, attribution(None, snap)
            )
        finally:
            con.close()
    except StoreError as exc:
        _fail(exc)
        return
    if out_file is None:
        sys.stdout.write(text)
        return
    out_file.write_text(text, encoding="utf-8")
    out.print(f"CompStat {week} of {ident or 'every ' + unit} → {out_file}")


alerts_app = typer.Typer(
    help="Alerts: subscriptions' rules evaluated, delivered, listed.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")


def _run_alerts(st: Store) -> dict[str, int]:
    """Evaluate every subscription on the current snapshot and deliver what fired."""
    from alerts.book import Book
    from alerts.deliver import deliver
    from alerts.evaluate import evaluate
    from api.alert_release import release_for
    from api.privacy import rules_from_settings
    from api.settings import ServerSettings
    from store.engine import open_engine

    settings = ServerSettings(store=st.location)
    book = Book.of(st)
    if not book.subscriptions():
        return {"fired": 0, "delivered": 0, "dead": 0}
    con = open_engine()
    try:
        snap = st.snapshot()
        release = release_for(snap, rules_from_settings(settings), con)
        fired = evaluate(book, snap, con, settings.public_url, release)
    finally:
        con.close()
    sent = deliver(book, settings.delivery())
    return {"fired": len(fired), "delivered": sent["delivered"], "dead": sent["dead"]}


def _alerts_after_ingest(st: Store) -> dict[str, int] | None:
    """Alerts after a committed ingest (None if evaluating them failed).

    A failure leaves the snapshot as it is: ``cuadra alerts run`` evaluates them again.
    """
    try:
        return _run_alerts(st)
    except Exception:  # the ingest has landed; alerts are retried by the next run
        logging.getLogger("cuadra.alerts").exception("evaluating alerts after ingest failed")
        console.print(
            "[yellow]warning:[/yellow] alerts were not evaluated; run `cuadra alerts run`"
        )
        return None


@alerts_app.command("run")
def alerts_run(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Evaluate every subscription on the current snapshot and deliver what fired.

    Each rule once per period; deliveries still pending are sent too (for a schedule, e.g.
    cron).
    """
    try:
        done = _run_alerts(_store(store))
    except StoreError as exc:
        _fail(exc)
        return
    if as_json:
        out.print_json(json.dumps(done))
        return
    out.print(f"{done['fired']} alerts fired; {done['delivered']} delivered, {done['dead']} dead")


@alerts_app.command("list")
def alerts_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every subscription with its latest alert and its deliveries not yet done."""
    from alerts.book import Book

    book = Book.of(_store(store))
    pending = book.deliveries("pending") + book.deliveries("dead")
    rows = []
    for sub in book.subscriptions():
        latest = book.alerts(sub.id, limit=1)
        undelivered = [
            {k: d[k] for k in ("alert", "channel", "status", "attempts", "last_error")}
            for d in pending
            if d["subscription"] == sub.id
        ]
        latest_id = latest[0]["id"] if latest else None
        rows.append({**sub.public_view(), "latest_alert": latest_id, "undelivered": undelivered})
    if as_json:
        out.print_json(json.dumps({"subscriptions": rows}, ensure_ascii=False))
        return
    for r in rows:
        where = r["place"].get("id") or ("circle" if "circle" in r["place"] else "polygon")
        out.print(
            f"{r['id']}  {r['rule']}/{r['interval']}  {where}  latest: {r['latest_alert'] or '-'}"
        )
        for d in r["undelivered"]:
            out.print(f"    {d['channel']} {d['status']} after {d['attempts']}: {d['last_error']}")


@alerts_app.command("test")
def alerts_test(
    sub_id: Annotated[str, typer.Argument(help="The subscription's id.")],
    store: StoreOpt = None,
) -> None:
    """Send a test message to a subscription's webhook and email (nothing is recorded)."""
    from alerts.book import Book
    from alerts.deliver import send_test
    from api.settings import AlertSettings

    st = _store(store)
    sub = Book.of(st).get(sub_id)
    if sub is None:
        _fail(StoreError(f"no subscription {sub_id}"))
        return
    settings = AlertSettings(store=st.location)
    for channel, error in send_test(sub, settings.delivery(), settings.public_url).items():
        out.print(f"{channel}: {'sent' if error is None else error}")


def main() -> None:
    """Console-script entry point."""
    level = os.environ.get("CUADRA_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        # Without standalone mode, typer returns a command's typer.Exit code.
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        _leave(130)
    except (click.exceptions.Exit, typer.Exit) as done:
        _leave(done.exit_code)
    except (click.ClickException, typer.TyperException) as exc:
        # typer >= 0.29 vendors click: its usage errors are not click's classes.
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            console.print(f"[red]error:[/red] {exc}")
        _leave(getattr(exc, "exit_code", 2))
    except (click.exceptions.Abort, typer.Abort):
        _leave(130)
    _leave(code if isinstance(code, int) else 0)


def _leave(code: int) -> None:
    from ingest import process

    process.leave(code)


if __name__ == "__main__":
    main()
