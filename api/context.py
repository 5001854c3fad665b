"""What every analysis route shares: the filters a request is answered with, and their echo."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import date
from typing import Any

from fastapi import Request

from api.auth import Principal
from publication.figures import PublicView, public_view
from store.aggregate import Unit
from store.filters import Filters
from store.snapshot import Snapshot


def answering(
    request: Request,
    principal: Principal,
    snap: Snapshot,
    flt: Filters,
    unit: Unit | None,
) -> tuple[Filters, PublicView | None]:
    """The filters a request is answered with: a key's source scope, or the public view.

    The public view is None for a key; for the public it names the release's period and
    offense set, and its filters are what the figures count.
    """
    if principal.public:
        pub = public_view(snap, request.app.state.rules, flt, unit)
        return pub.filters, pub
    return (replace(flt, sources=principal.scopes) if principal.scopes else flt), None


def echo(flt: Filters) -> dict[str, Any]:
    """The filters as a response's ``filters`` field: the ones set, as JSON values."""
    out = {k: v for k, v in asdict(flt).items() if v not in (None, ())}
    return {
        k: str(v) if isinstance(v, date) else list(v) if isinstance(v, tuple) else v
        for k, v in out.items()
    }
