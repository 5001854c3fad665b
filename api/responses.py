"""JSON responses encoded once, with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


def json_response(
    payload: Any, headers: dict[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    """A response holding ``payload`` as JSON (UTF-8, NaN as null)."""
    return Response(orjson.dumps(payload), media_type=media_type, headers=headers)


def csv_safe(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run: text starting = + - @ tab CR is quoted."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
