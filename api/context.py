"""What every analysis route shares: who asks, of which snapshot, with which filters.

A route takes one :class:`Ask` (``AskDep``) instead of the request, the principal, a
cursor, the snapshot and the common filters one by one; ``ask.answering(unit)`` gives the
filters it is answered with (a key's source scope, or the public view), ``echo`` their
JSON form.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Annotated, Any

import shapely
from fastapi import Depends, Request

from api.auth import Principal, PrincipalDep
from api.deps import CommonFilters, CursorDep, FiltersDep, SnapshotDep
from disclosure.rules import PublicRules
from publication.figures import PublicView, public_view, visible_names
from store.aggregate import Unit, time_unknown
from store.engine import Cursor
from store.filters import FilterError, Filters
from store.names import resolve, snapshot_names
from store.shapes import Shape
from store.snapshot import Kind, Snapshot

LEFT_OUT = Kind("records an hour window left out", items=1024)
LEFT_OUT_HEADER = "X-Cuadra-Time-Unknown-Left-Out"


@dataclass(frozen=True)
class Ask:
    """One analysis request: who asks, the snapshot read, its cursor and common filters."""

    request: Request
    principal: Principal
    snap: Snapshot
    cursor: Cursor
    common: CommonFilters
    shape: Shape | None = None  # a polygon posted in the body (api/areas.py)

    @property
    def rules(self) -> PublicRules:
        """The server's public release rules."""
        rules: PublicRules = self.request.app.state.rules
        return rules

    @property
    def headers(self) -> dict[str, str]:
        """The headers every answer carries (the snapshot it was read from)."""
        return {"X-Cuadra-Snapshot": str(self.snap.id)}

    def unit(self, text: str) -> Unit:
        """The request's unit, checked against the snapshot's layers."""
        return Unit.parse(text, self.snap.manifest)

    def filters(self) -> Filters:
        """The common filters, offense and category names resolved to the real ones.

        A name is compared with those the requester may see (for the public, the names
        the release publishes): a case or accent apart resolves to the real name, an
        unknown one is a 400 with the closest (store/names.py).
        """
        flt = self.common.to_filters()
        if self.shape is not None:
            if flt.circle is not None:
                raise FilterError(
                    "within", self.common.within, "give one drawn area: a circle or a polygon"
                )
            flt = replace(flt, shape=self.shape)
        if not (flt.offenses or flt.categories):
            return flt
        if self.principal.public:
            names = visible_names(self.snap, self.rules, self.cursor)
        else:
            names = snapshot_names(self.snap)
        return resolve(flt, names, names)

    def echo(self, flt: Filters) -> dict[str, Any]:
        """The filters as answered (``echo``), with what an hour window left out.

        ``time_unknown_left_out``: records matching every other filter whose time of day
        is unknown, which an hour window leaves out (present with an hour window only).
        """
        out = echo(flt)
        left_out = self.left_out(flt)
        if left_out is not None:
            out["time_unknown_left_out"] = left_out
        return out

    def left_out(self, flt: Filters) -> int | None:
        """Records an hour window leaves out for an unknown time of day; None without one.

        Counted once per snapshot and filters: every tile of a map asks the same.
        """
        if flt.hour_from is None:
            return None
        return self.snap.memo(LEFT_OUT, flt, lambda: time_unknown(self.snap, flt, self.cursor))

    def headers_for(self, flt: Filters) -> dict[str, str]:
        """``headers`` and, with an hour window, ``X-Cuadra-Time-Unknown-Left-Out``.

        For answers without a ``filters`` field: records, tiles (the whole selection's
        count, the same on every tile).
        """
        left_out = self.left_out(flt)
        if left_out is None:
            return self.headers
        return {**self.headers, LEFT_OUT_HEADER: str(left_out)}

    def answering(
        self, unit: Unit | None, drawn: bool = False
    ) -> tuple[Filters, PublicView | None]:
        """The filters the request is answered with, and the public view (None for a key).

        ``drawn``: the route answers the public's drawn area by the units it touches.
        """
        return answering(self.request, self.principal, self.snap, self.filters(), unit, drawn)


async def get_ask(
    request: Request,
    principal: PrincipalDep,
    snap: SnapshotDep,
    cursor: CursorDep,
    common: FiltersDep,
) -> Ask:
    """The request's :class:`Ask`."""
    return Ask(request, principal, snap, cursor, common)


AskDep = Annotated[Ask, Depends(get_ask)]


def answering(
    request: Request,
    principal: Principal,
    snap: Snapshot,
    flt: Filters,
    unit: Unit | None,
    drawn: bool = False,
) -> tuple[Filters, PublicView | None]:
    """The filters a request is answered with: a key's source scope, or the public view.

    The public view is None for a key; for the public it names the release's period and
    offense set, and its filters are what the figures count.
    """
    if principal.public:
        pub = public_view(snap, request.app.state.rules, flt, unit, drawn=drawn)
        return pub.filters, pub
    return (replace(flt, sources=principal.scopes) if principal.scopes else flt), None


def echo(flt: Filters) -> dict[str, Any]:
    """The filters as a response's ``filters`` field: the ones set, as JSON values."""
    out = {k: v for k, v in asdict(flt).items() if v not in (None, ()) and k != "shape"}
    if flt.shape is not None:
        out["polygon"] = {
            "vertices": int(shapely.get_num_coordinates(flt.shape.geometry)),
            "area_km2": round(flt.shape.area_km2(), 4),
        }
    return {
        k: str(v) if isinstance(v, date) else list(v) if isinstance(v, tuple) else v
        for k, v in out.items()
    }
