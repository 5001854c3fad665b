"""Where the parts of an ingest run: in this process, or as Dask tasks on a cluster.

Both engines run the same three steps per part — prepare (validate, normalise, enrich),
decide (drop what earlier parts or the store already hold, in input order, here in the
driver), write (year files and cubes, through the store transaction's writer) — so they
write the same files; only where the steps run differs. With Dask, prepared records wait
in the transaction's staging folder (a shared filesystem on a real cluster) between the
first and the last step.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from ingest import process
from ingest.parts import PartResult, SeenIds, Written, decide, finalize
from ingest.profiles import Profile
from ingest.readers import SourceTable
from store.transaction import IncidentWriter


@dataclass(frozen=True)
class PartContext:
    """What a part needs besides its rows; small and picklable, for remote workers."""

    root: str
    snapshot: int | None  # the parent snapshot (layers, jurisdiction)
    profile: Profile
    now: datetime
    batch_id: str
    writer: IncidentWriter


Prepare = Callable[[PartContext, SourceTable, int], tuple[PartResult, pa.Table]]


def _write_part(ctx: PartContext, records: pa.Table, keep: npt.NDArray[np.bool_]) -> Written:
    return finalize(ctx.writer, records, keep, ctx.batch_id)


def _settle(result: PartResult, written: Written) -> None:
    result.files = written.files
    result.assigned = written.assigned
    result.time_imputed = written.time_imputed


def run_local(
    prepare: Prepare, ctx: PartContext, parts: Iterator[SourceTable], stored: object | None
) -> list[PartResult]:
    """Every part in turn, in this process: one part's rows in memory at a time."""
    seen = SeenIds()
    results = []
    for index, src in enumerate(parts):
        if index == 1:
            process.for_many_parts()
        result, records = prepare(ctx, src, index)
        del src  # the part's source rows are no longer needed
        keep, result.across, result.stored = decide(records.column("incident_id"), seen, stored)
        result.accepted = int(keep.sum())
        _settle(result, _write_part(ctx, records, keep))
        del records, keep  # before the next part is read, not after
        process.trim_heap()
        results.append(result)
    del seen
    process.trim_heap()  # the seen ids too, before the commit's rollups
    return results


def stage_part(
    prepare: Prepare, ctx: PartContext, src: SourceTable, index: int, folder: str
) -> tuple[PartResult, str]:
    """A Dask task: prepare a part and leave its records in the staging folder."""
    result, records = prepare(ctx, src, index)
    path = Path(folder) / f"part-{index:06d}-{uuid.uuid4().hex[:8]}.parquet"
    pq.write_table(records, path, compression="lz4")
    return result, str(path)


def write_staged(ctx: PartContext, path: str, keep: npt.NDArray[np.bool_]) -> Written:
    """A Dask task: write a staged part's kept records as year files, then drop it."""
    written = _write_part(ctx, pq.read_table(path), keep)
    Path(path).unlink()
    return written


def run_dask(
    prepare: Prepare,
    ctx: PartContext,
    parts: Iterator[SourceTable],
    stored: object | None,
    staging: Path,
    scheduler: str | None = None,
) -> list[PartResult]:
    """The parts as Dask tasks: on a LocalCluster, or on the scheduler at ``scheduler``.

    Parts are read here and sent to the workers, at most two per worker in flight, so
    this process holds a bounded number of parts; each part's decision waits for the
    parts before it (input order), its writing does not.
    """
    from dask.distributed import Client, LocalCluster

    cluster: Any = None
    if scheduler is None:
        # Every port chosen by the system: the scheduler's HTTP server binds 8787 even with
        # no dashboard, and another program may hold it.
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    client = Client(scheduler or cluster)
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        staged: deque[Any] = deque()
        writes: list[Any] = []
        results: list[PartResult] = []
        seen = SeenIds()

        def settle_oldest() -> None:
            result, path = staged.popleft().result()
            ids = pq.read_table(path, columns=["incident_id"]).column(0)
            keep, result.across, result.stored = decide(ids, seen, stored)
            result.accepted = int(keep.sum())
            writes.append(client.submit(write_staged, ctx, path, keep, pure=False))
            results.append(result)

        for index, src in enumerate(parts):
            staged.append(
                client.submit(stage_part, prepare, ctx, src, index, str(staging), pure=False)
            )
            del src
            while len(staged) >= 2 * workers:
                settle_oldest()
        while staged:
            settle_oldest()
        for result, future in zip(results, writes, strict=True):
            _settle(result, future.result())
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
