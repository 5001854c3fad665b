"""Alert subscriptions: /v1/subscriptions (a key's own; admin sees all) and their Atom feeds."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from alerts.book import Book, Subscription
from alerts.feed import atom
from api.auth import Principal, PrincipalDep
from api.deps import CursorDep
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.responses import json_response
from publication.figures import visible_names
from store.aggregate import Unit, unit_names
from store.errors import StoreError
from store.filters import Circle, FilterError, Filters
from store.keys import Role
from store.names import resolve, snapshot_names
from store.shapes import ShapeError, shape_of
from store.snapshot import Snapshot

KEY_ONLY: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "Needs an analyst or admin key."}
}
router = APIRouter(prefix="/v1", tags=["alerts"], responses=ERROR_RESPONSES)
MAX_PER_KEY = 1000
MAX_PUBLIC = 10_000  # subscriptions without a key, in all
TokenHeader = Annotated[
    str | None,
    Header(
        alias="X-Subscription-Token",
        max_length=64,
        description="Without a key: the subscription's manage_token.",
    ),
]


class SubscriptionIn(BaseModel):
    """What to watch and where to say so."""

    model_config = ConfigDict(extra="forbid")
    place: dict[str, Any] = Field(
        description='`{"unit": "colonia", "id": "03-045"}` (a unit of a boundary layer), '
        '`{"circle": [lon, lat, metres]}` or `{"polygon": <GeoJSON Polygon>}`.',
        examples=[{"unit": "colonia", "id": "15-040"}],
    )
    categories: list[str] = Field(default=[], max_length=50)
    offenses: list[str] = Field(default=[], max_length=50)
    rule: Literal["surge", "hotspot", "any_new"] = Field(
        "surge",
        description="`surge`: the last complete month or week is above what the place's own "
        "history predicts (docs/alerts.md); `hotspot`: the unit becomes a new or "
        "intensifying hot spot (monthly emerging hot spot analysis; units only); "
        "`any_new`: any new record of the selection in the place after an ingest.",
    )
    interval: Literal["month", "week"] = "month"
    alpha: float = Field(
        0.01, ge=0.0001, le=0.1, description="The surge rule's false-alarm rate per period."
    )
    webhook_url: str | None = Field(
        None, max_length=2000, pattern=r"^https?://", description="POSTed the alert as JSON."
    )
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")


def _book(request: Request) -> Book:
    book: Book = request.app.state.alerts
    return book


def _owned(request: Request, principal: Principal, sub_id: str, token: str | None) -> Subscription:
    """The subscription if the requester holds it.

    Its key or an admin key; without a key, its management token.
    """
    sub = _book(request).get(sub_id)
    if sub is not None and principal.public:
        if sub.manage_token and token and hmac.compare_digest(sub.manage_token, token):
            return sub
    elif sub is not None and (principal.role is Role.admin or sub.owner == principal.key_id):
        return sub
    raise StoreError(f"no subscription {sub_id}")


def _shown(request: Request, sub: Subscription, secret: bool = False) -> dict[str, Any]:
    out = sub.public_view()
    if secret:
        out["webhook_secret"] = sub.webhook_secret
        out["manage_token"] = sub.manage_token
    base = request.app.state.settings.public_url.rstrip("/")
    out["feed"] = f"{base}/v1/feeds/{sub.feed_token}.atom"
    return out


def checked_place(snap: Snapshot, place: dict[str, Any]) -> dict[str, Any]:
    """The place as stored; FilterError naming ``place`` if it is none of the three."""
    try:
        if set(place) == {"unit", "id"}:
            unit = Unit.parse(str(place["unit"]), snap.manifest)
            if unit.kind != "layer" or str(place["id"]) not in unit_names(snap, unit):
                raise FilterError("place", place, "no such unit of a boundary layer")
            return {"unit": unit.layer, "id": str(place["id"])}
        if set(place) == {"circle"}:
            c = Circle(*(float(v) for v in place["circle"]))
            Filters(circle=c).check(snap.boundary_layers)
            return {"circle": list(c)}
        if set(place) == {"polygon"}:
            shape_of(place["polygon"])
            return {"polygon": place["polygon"]}
    except (TypeError, ValueError, ShapeError) as exc:
        raise FilterError("place", None, f"not a place: {exc}") from None
    raise FilterError("place", None, "give {unit, id}, {circle} or {polygon}")


@router.post("/subscriptions", status_code=201, summary="Subscribe to alerts", responses=KEY_ONLY)
def post_subscription(
    request: Request, principal: PrincipalDep, cursor: CursorDep, body: SubscriptionIn
) -> Any:
    """Watch a place and a selection; alerts go to the webhook, the email and the feed.

    The answer holds the webhook's signing secret (shown this once) and the Atom feed's
    address. Rules are evaluated after every ingest and by `cuadra alerts run`. Without a
    key: a unit of a boundary layer, the monthly `surge` rule, judged on the public
    release's cells only; the answer's `manage_token` (header `X-Subscription-Token`)
    reads and removes it.
    """
    snap = request.app.state.store.snapshot()
    place = checked_place(snap, body.place)
    if body.rule == "hotspot" and "unit" not in place:
        raise FilterError("rule", body.rule, "hot spots are of units: give {unit, id}")
    chosen = Filters(categories=tuple(body.categories), offenses=tuple(body.offenses))
    if principal.public:
        _check_public(body, place)
        names = visible_names(snap, request.app.state.rules, cursor)
    else:
        names = snapshot_names(snap)
    flt = resolve(chosen, names, names)
    book = _book(request)
    owner = "public" if principal.public else str(principal.key_id)
    if len(book.subscriptions(owner)) >= (MAX_PUBLIC if principal.public else MAX_PER_KEY):
        raise FilterError("place", None, "too many subscriptions; remove some first")
    sub = Subscription(
        id=secrets.token_hex(8),
        owner=owner,
        place=place,
        categories=flt.categories,
        offenses=flt.offenses,
        rule=body.rule,
        interval=body.interval,
        alpha=body.alpha,
        sources=principal.scopes,
        webhook_url=body.webhook_url,
        webhook_secret=secrets.token_urlsafe(32) if body.webhook_url else None,
        email=body.email,
        public=principal.public,
        manage_token=secrets.token_urlsafe(24) if principal.public else None,
    )
    book.add(sub)
    answer = json_response(_shown(request, sub, secret=True), {})
    answer.status_code = 201
    return answer


def _check_public(body: SubscriptionIn, place: dict[str, Any]) -> None:
    """Without a key: whole units, the monthly surge rule (cells of the release)."""
    if "unit" not in place:
        raise FilterError(
            "place",
            None,
            "without a key, alerts are for a unit of a boundary layer (the release "
            "publishes whole units); an API key opens circles and polygons",
        )
    if body.rule != "surge" or body.interval != "month":
        raise FilterError(
            "rule",
            body.rule,
            "without a key, alerts are monthly surges on the release's cells; an API key "
            "opens weeks, hot spots and new records",
        )


@router.get(
    "/subscriptions", summary="A key's subscriptions (admin: every one)", responses=KEY_ONLY
)
def get_subscriptions(request: Request, principal: PrincipalDep) -> Any:
    """The subscriptions of the key (every key's for an admin), oldest first."""
    principal.require_key("alert subscriptions need an analyst or admin key")
    owner = None if principal.role is Role.admin else principal.key_id
    subs = _book(request).subscriptions(owner)
    return json_response({"subscriptions": [_shown(request, s) for s in subs]}, {})


@router.get(
    "/subscriptions/{sub_id}", summary="One subscription and its latest alerts", responses=KEY_ONLY
)
def get_subscription(
    request: Request,
    principal: PrincipalDep,
    sub_id: Annotated[str, Path(max_length=64)],
    token: TokenHeader = None,
) -> Any:
    """The subscription and its 50 latest alerts (each with the snapshot it came from)."""
    sub = _owned(request, principal, sub_id, token)
    alerts = _book(request).alerts(sub.id)
    return json_response({**_shown(request, sub), "alerts": alerts}, {})


@router.delete(
    "/subscriptions/{sub_id}", status_code=204, summary="Unsubscribe", responses=KEY_ONLY
)
def delete_subscription(
    request: Request,
    principal: PrincipalDep,
    sub_id: Annotated[str, Path(max_length=64)],
    token: TokenHeader = None,
) -> Response:
    """Stop the subscription (its alerts stay in the book)."""
    sub = _owned(request, principal, sub_id, token)
    _book(request).remove(sub.id)
    return Response(status_code=204)


@router.get(
    "/feeds/{token}.atom",
    summary="A subscription's alerts as an Atom feed",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}},
)
def get_feed(request: Request, token: Annotated[str, Path(max_length=64)]) -> Response:
    """The subscription's alerts, newest first, for a feed reader.

    The feed's address is its own secret (feed readers send no keys): anyone holding it
    reads the subscription's alerts.
    """
    sub = _book(request).by_feed(token)
    if sub is None:
        raise StoreError("no such feed")
    url = f"{request.app.state.settings.public_url.rstrip('/')}/v1/feeds/{token}.atom"
    body = atom(sub, _book(request).alerts(sub.id), url)
    return Response(body, media_type="application/atom+xml; charset=utf-8")
