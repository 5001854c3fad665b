"""The ingest pipeline: read → validate → enrich → to records (ingest/prepare.py) → commit.

Every input row ends in exactly one of three places: accepted, rejected (with one reason,
in the rejects file) or duplicate, so ``input_rows == accepted + sum(rejected) +
duplicates`` always holds, and the report says so.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest import process
from ingest.engines import PartContext, run_dask, run_local
from ingest.errors import IngestError
from ingest.parts import PartResult
from ingest.prepare import preload_layers, prepare_part, worker_pool
from ingest.profiles import Profile
from ingest.readers import file_sha256, iter_source
from store import SnapshotConflict, Store
from store.snapshots import Batch, Manifest
from store.transaction import Transaction

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
# A part's peak memory follows its rows: parts of a million rows keep an ingest's memory
# flat however large its input (benchmarks/RESULTS.md, "Scale").
DEFAULT_BATCH_ROWS = 1_000_000
ENGINES = ("local", "dask")
# Commits refused because another writer (on another machine) published first.
COMMIT_ATTEMPTS = 3


@dataclass
class IngestReport:
    """What an ingest did (written as JSON by ``--report``)."""

    status: str
    source: str
    inputs: list[str]
    batch: str
    snapshot: int | None
    input_rows: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicates_within_input: int = 0
    duplicates_already_stored: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    time_imputed: int = 0
    unknown_offenses: dict[str, int] = field(default_factory=dict)
    assigned: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    parts: int = 0  # the input was read and written in this many parts
    replaced: list[str] = field(default_factory=list)  # batches an --replace release replaced
    date_precision: str = "day"  # the profile's: "day" or "month"
    engine: str = "local"
    commit_attempts: int = 1  # more when another writer committed first (a remote store)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        """Sum of rejected rows over reasons."""
        return sum(self.rejected.values())

    def balanced(self) -> bool:
        """The invariant: every input row is accepted, rejected or a duplicate."""
        return self.input_rows == self.accepted + self.rejected_total + self.duplicates

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the invariant's check."""
        out = dict(self.__dict__)
        out["rejected_total"] = self.rejected_total
        out["balanced"] = self.balanced()
        return out


def ingest(
    store: Store,
    paths: list[str],
    profile: Profile,
    *,
    expect_rows: int | None = None,
    sha256: str | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    engine: str = "local",
    scheduler: str | None = None,
    replace: bool = False,
) -> IngestReport:
    """Ingest input files through a profile and commit them as one snapshot.

    Parameters
    ----------
    store
        The store to commit to.
    paths
        Input files (CSV, CSV.gz, Parquet/GeoParquet, GeoJSON, GeoPackage, Shapefile).
    profile
        The source profile.
    expect_rows, sha256
        Integrity checks of the whole input (override the profile's ``[expect]``); a
        mismatch aborts before anything is written.
    now
        The reference time for "future" dates (default: the current time).
    progress
        Called with a short message at each stage.
    batch_rows
        Rows read, validated and written at a time (memory follows this, not the input).
    engine, scheduler
        ``local`` (this process) or ``dask`` (tasks on a Dask LocalCluster, or on the
        scheduler at ``scheduler``); both commit the same snapshot.
    replace
        The inputs are the source's whole new release (a revised file): the snapshot holds
        the source's records from them only (reclassified ones with their new values, dropped
        ones gone). Without it, records whose id the store holds are duplicates.

    Returns
    -------
    IngestReport
    """
    stages = _Stages(progress)
    if not paths:
        raise IngestError("give at least one input file")
    now = now or datetime.now(UTC)
    expect_rows = expect_rows if expect_rows is not None else profile.expect.rows
    stages.begin("reading")
    batch_id = _check_inputs(paths, profile, sha256 or profile.expect.sha256)
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            with store.transaction(batch_id) as txn:
                parent = txn.parent
                if parent is not None and batch_id in parent.batches:
                    return _already(parent, batch_id, profile, paths, stages.started)
                job = _Job(paths, profile, now, batch_id, batch_rows, engine, scheduler, replace)
                report = _write_and_commit(store, txn, job, expect_rows, stages)
            report.commit_attempts = attempt
            break
        except SnapshotConflict:
            # Another machine's writer published first: its records may hold some of
            # ours, so the whole input is checked again against the new snapshot.
            if attempt == COMMIT_ATTEMPTS:
                raise
            stages.begin(f"another writer committed first; again ({attempt + 1})")
    report.stage_seconds = stages.end()
    report.seconds = round(time.perf_counter() - stages.started, 3)
    return report


@dataclass(frozen=True)
class _Job:
    """One ingest's inputs and choices, as the stages after reading need them."""

    paths: list[str]
    profile: Profile
    now: datetime
    batch_id: str
    batch_rows: int
    engine: str
    scheduler: str | None
    replace: bool


def _write_and_commit(
    store: Store, txn: Transaction, job: _Job, expect_rows: int | None, stages: _Stages
) -> IngestReport:
    """Validate, enrich and write the inputs in a transaction, then commit them."""
    parent = txn.parent
    paths, profile, batch_id, engine = job.paths, job.profile, job.batch_id, job.engine
    stages.begin("validating, enriching and writing")
    results = _run_parts(store, txn, job)
    input_rows = sum(r.input_rows for r in results)
    if expect_rows is not None and input_rows != expect_rows:
        raise IngestError(
            f"expected {expect_rows} data rows, the input has {input_rows}: the file may be "
            "truncated or not the one declared; nothing was ingested"
        )
    stages.begin("committing")
    report = _report(results, parent, profile, paths, batch_id, engine)
    rejects = [r.rejects for r in results if r.rejects.num_rows]
    if rejects:
        report.rejects_file = txn.write_rejects(batch_id[:16], rejects)
    if not report.balanced():  # a bug, never the input's fault
        raise IngestError(f"row accounting does not balance: {report.to_dict()}")
    files = [f for r in results for f in r.files]
    committed = txn.commit(files, _batch(report), job.replace)
    report.snapshot = committed.snapshot
    report.replaced = committed.batches[batch_id].replaced
    return report


class _Stages:
    """Wall-clock seconds of each stage of an ingest, and a progress message as each begins."""

    def __init__(self, progress: Progress | None) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._inform = progress or (lambda _msg: None)
        self._current: str | None = None
        self._since = self.started

    def begin(self, stage: str) -> None:
        """End the current stage (if any) and begin ``stage``."""
        self._close()
        self._current = stage
        self.seconds[stage] = 0.0
        self._inform(stage)

    def end(self) -> dict[str, float]:
        """End the last stage; every stage's seconds."""
        self._close()
        self._inform("done")
        return self.seconds

    def _close(self) -> None:
        now = time.perf_counter()
        if self._current is not None:
            self.seconds[self._current] = round(now - self._since, 3)
        self._since = now


def _check_inputs(paths: list[str], profile: Profile, sha256: str | None) -> str:
    """Check that every input exists (and its digest, if declared); the batch id."""
    process.warm_pandas()
    for path in paths:
        _check_path(path)
    digests = [file_sha256(Path(p)) for p in paths]
    if sha256 is not None:
        _check_digest(paths, digests, sha256)
    return _batch_id(profile, digests)


def _run_parts(store: Store, txn: Transaction, job: _Job) -> list[PartResult]:
    """Every part of the inputs validated, enriched and written, on the chosen engine."""
    parent = txn.parent
    paths, profile, batch_rows, replace = job.paths, job.profile, job.batch_rows, job.replace
    ctx = PartContext(
        root=str(store.root),
        snapshot=parent.snapshot if parent else None,
        profile=profile,
        now=job.now,
        batch_id=job.batch_id,
        writer=txn.writer(),
    )
    if job.engine == "local" and parent is not None:
        # Load the layers on a worker while this thread reads the input.
        worker_pool().submit(preload_layers, store, parent)
    # A replacing release is compared with nothing stored: its records are the source's.
    existing = store.existing_ids(None if replace else parent, profile.name)
    stored = None
    if len(existing):
        import polars as pl

        stored = pl.Series("e", existing)
    parts = (part for path in paths for part in iter_source(path, profile, batch_rows))
    if job.engine == "dask":
        return run_dask(prepare_part, ctx, parts, stored, txn.staging(), job.scheduler)
    return run_local(prepare_part, ctx, parts, stored)


def _report(
    results: list[PartResult],
    parent: Manifest | None,
    profile: Profile,
    paths: list[str],
    batch_id: str,
    engine: str,
) -> IngestReport:
    """The parts' counts summed into the ingest's report."""
    within = sum(r.duplicates + r.across for r in results)
    stored_dups = sum(r.stored for r in results)
    columns = [*parent.boundary_layers, "street_id"] if parent else []
    assigned = {
        name: sum(r.assigned.get(name, 0) for r in results)
        for name in columns
        if name != "street_id" or parent.street_layer  # type: ignore[union-attr]
    }
    return IngestReport(
        status="committed",
        source=profile.name,
        inputs=[str(Path(p)) for p in paths],
        batch=batch_id,
        snapshot=None,
        input_rows=sum(r.input_rows for r in results),
        accepted=sum(r.accepted for r in results),
        rejected=dict(sum((r.rejected for r in results), Counter())),
        duplicates=within + stored_dups,
        duplicates_within_input=within,
        duplicates_already_stored=stored_dups,
        repairs=dict(sum((r.repairs for r in results), Counter())),
        time_imputed=sum(r.time_imputed for r in results),
        unknown_offenses=dict(sum((r.unknown for r in results), Counter())),
        assigned=assigned,
        parts=len(results),
        engine=engine,
        date_precision=profile.date_precision,
    )


def _batch(report: IngestReport) -> Batch:
    """The manifest's record of a committed ingest."""
    return Batch(
        batch=report.batch,
        source=report.source,
        inputs=report.inputs,
        input_rows=report.input_rows,
        accepted=report.accepted,
        rejected=report.rejected_total,
        duplicates=report.duplicates,
        report="",
        rejects=report.rejects_file,
        date_precision=report.date_precision,
    )


def _batch_id(profile: Profile, digests: list[str]) -> str:
    digest = hashlib.sha256(profile.name.encode())
    for d in sorted(digests):
        digest.update(d.encode())
    return digest.hexdigest()


def _check_path(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise IngestError(f"input file {str(p)!r} does not exist")
    if p.is_dir():
        raise IngestError(f"input {str(p)!r} is a folder; give files")


def _check_digest(paths: list[str], digests: list[str], sha256: str) -> None:
    if len(paths) != 1:
        raise IngestError("--sha256 checks a single input file; give one file")
    if digests[0].lower() != sha256.lower():
        raise IngestError(
            f"{Path(paths[0]).name!r} has SHA-256 {digests[0]}, expected "
            f"{sha256.lower()}: the file is not the one declared (truncated or altered)"
        )


def _already(
    parent: Manifest, batch_id: str, profile: Profile, paths: list[str], started: float
) -> IngestReport:
    old = parent.batches[batch_id]
    return IngestReport(
        status="already_ingested",
        source=profile.name,
        inputs=[str(Path(p)) for p in paths],
        batch=batch_id,
        snapshot=parent.snapshot,
        input_rows=old.input_rows,
        accepted=0,
        duplicates=old.input_rows,
        duplicates_already_stored=old.input_rows,
        seconds=round(time.perf_counter() - started, 3),
    )
