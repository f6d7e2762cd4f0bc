"""The response envelope, and the lenient request view used to explain a bad request.

::

    {"id": <id>, "ok": true,  "result": {...}}
    {"id": <id or nil>, "ok": false, "error": {"code": "<code>", "message": "<text>"}}
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from msgspec import Struct

from .error_codes import ErrorCode

__all__ = [
    "PROTOCOL_VERSION",
    "Envelope",
    "ErrorBody",
    "ErrorResponse",
    "OkResponse",
    "ReceivedError",
    "Response",
    "error",
    "ok",
]

PROTOCOL_VERSION: Final = 1


class ErrorBody(Struct):
    code: ErrorCode
    message: str


class OkResponse(Struct, gc=False):
    id: int
    ok: bool
    result: Any


class ErrorResponse(Struct):
    id: int | None
    ok: bool
    error: ErrorBody


class Response(Struct, kw_only=True):
    """What a client decodes; ``result`` stays raw until the caller knows its type."""

    id: int | None = None
    ok: bool
    result: msgspec.Raw = msgspec.Raw()  # empty when absent
    error: ReceivedError | None = None


class ReceivedError(Struct):
    """An error as a client reads it: the code stays a string, so that a code added by a newer
    daemon reaches the client's mapping (which falls back to a generic error) instead of
    failing the decode."""

    code: str
    message: str


class Envelope(Struct):
    """A lenient view of a request, used only to name what went wrong with a bad one."""

    op: Any = None
    id: Any = None


def ok(request_id: int, result: Any) -> OkResponse:
    return OkResponse(request_id, True, result)


def error(request_id: int | None, code: ErrorCode, message: str) -> ErrorResponse:
    return ErrorResponse(request_id, False, ErrorBody(code, message))
