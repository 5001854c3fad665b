"""Package errors mapped to HTTP statuses, in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from geo.errors import GeoError
from ingest.errors import IngestError
from publication.tables import NotReady
from store.engine import QueryInterrupted
from store.errors import EditConflict, StoreError
from store.filters import FilterError


class AuthError(Exception):
    """A request with a key that opens nothing (401)."""


class ForbiddenError(Exception):
    """A route the requester's role may not use (403)."""


STATUS_CODES: dict[type[Exception], tuple[int, str]] = {
    NotReady: (503, "release_building"),
    QueryInterrupted: (503, "query_timeout"),
    AuthError: (401, "unauthorized"),
    ForbiddenError: (403, "forbidden"),
    FilterError: (400, "invalid_parameter"),
    GeoError: (400, "invalid_geometry"),
    IngestError: (400, "invalid_input"),
    # A shared object (the alerts book) kept changing under a write: try again shortly.
    EditConflict: (503, "busy"),
    StoreError: (404, "not_found"),
}


class ErrorResponse(BaseModel):
    """An error: a stable code, a message naming the bad value, and the parameter."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="Stable code: invalid_parameter, not_found, invalid_input, ...")
    message: str = Field(description="What is wrong, naming the offending value.")
    parameter: str | None = Field(None, description="The query parameter at fault, if one.")
    details: list[dict[str, Any]] | None = Field(
        None,
        description="422 only: every failed check (`loc`, `msg`, `type`), as FastAPI lists them.",
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A parameter is valid alone but not here."},
    422: {"model": ErrorResponse, "description": "A parameter fails its declared type or range."},
    401: {"model": ErrorResponse, "description": "An API key that is unknown or revoked."},
    404: {"model": ErrorResponse, "description": "No such snapshot, or the store is empty."},
    503: {
        "model": ErrorResponse,
        "description": "The query ran past the time limit, or public figures are being built.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    },
    429: {
        "model": ErrorResponse,
        "description": "Too many requests from this key or address.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        },
    },
}


def add_exception_handlers(app: FastAPI) -> None:
    """Turn our errors into JSON with a stable code and the message."""
    for exc_type, (status, code) in STATUS_CODES.items():

        async def handler(
            request: Request, exc: Exception, status: int = status, code: str = code
        ) -> JSONResponse:
            message = str(exc)
            if isinstance(exc, QueryInterrupted):
                limit = request.app.state.settings.request_timeout
                message = f"the query ran past the {limit:g} s time limit; narrow the filters"
            # Errors never name where the store lives on disk.
            message = message.replace(str(request.app.state.settings.store), "the store")
            content: dict[str, object] = {"error": code, "message": message}
            if isinstance(exc, FilterError):
                content["parameter"] = exc.param
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            if isinstance(exc, NotReady):
                headers = {"Retry-After": str(exc.retry_after)}
            return JSONResponse(status_code=status, content=content, headers=headers)

        app.add_exception_handler(exc_type, handler)
    app.add_exception_handler(RequestValidationError, _invalid)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 in the shape of every other error, without the offending input.

    The first failed check names the parameter and the message; ``details`` lists them
    all (a 60 KB value is never echoed back).
    """
    assert isinstance(exc, RequestValidationError)
    detail = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors()]
    first = detail[0] if detail else {}
    loc = [str(part) for part in first.get("loc", ())]
    parameter = loc[-1] if len(loc) > 1 and loc[0] in ("query", "path", "header") else None
    content = {
        "error": "invalid_parameter",
        "message": f"{parameter or '.'.join(loc) or 'request'}: {first.get('msg', 'invalid')}",
        "parameter": parameter,
        "details": jsonable_encoder(detail),
    }
    return JSONResponse(status_code=422, content=content)
