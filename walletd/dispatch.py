"""From one frame's payload to one response: decode, route, run, map errors.

Handlers are ``handler(peer, request) -> result`` and may return an awaitable when they must
wait (a commit, scrypt, a rotation); most reads and signing return their result directly, so
the common path creates no coroutine. Every failure becomes exactly one error response; only a
broken frame (handled by the connection) closes a connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import Any

import msgspec
import structlog

from wallet_client import protocol as p
from wallet_client.protocol import ErrorCode

from .errors import RequestError
from .peer import Peer

log = structlog.get_logger("walletd")

OkResponse, ErrorResponse, ErrorBody = p.OkResponse, p.ErrorResponse, p.ErrorBody

Handler = Callable[[Peer, Any], Any]
Response = p.OkResponse | p.ErrorResponse

_TOO_DEEP = "request is nested too deeply"
_BAD_UTF8 = "a string is not valid UTF-8"


class Dispatcher:
    def __init__(self, handlers: dict[type[p.Request], Handler]) -> None:
        missing = set(p.REQUEST_TYPES) - set(handlers)
        if missing:
            raise RuntimeError(f"no handler for {sorted(t.__name__ for t in missing)}")
        self._handlers = handlers
        self._decoder = msgspec.msgpack.Decoder(p.AnyRequest)
        self._strict_decode = self._decoder.decode
        self._envelope = msgspec.msgpack.Decoder(p.Envelope)

    def decode(self, payload: bytes | memoryview) -> p.Request | p.ErrorResponse:
        """The typed request, or the error response that explains why there is none."""
        if not payload:
            return p.error(None, ErrorCode.BAD_REQUEST, "empty frame: expected a MessagePack map")
        try:
            request: p.Request = self._decoder.decode(payload)
        except msgspec.ValidationError as exc:
            return self._explain(payload, str(exc))
        except msgspec.DecodeError as exc:
            return p.error(None, ErrorCode.BAD_REQUEST, f"frame is not valid MessagePack: {exc}")
        except UnicodeDecodeError:
            # A MessagePack str that is not UTF-8 raises this, not a MsgspecError.
            return self._explain(payload, _BAD_UTF8)
        except RecursionError:
            # msgspec refuses nesting deeper than the interpreter's recursion limit with a
            # RecursionError (not a MsgspecError); a 200 KB frame of nested arrays does it.
            return p.error(None, ErrorCode.BAD_REQUEST, _TOO_DEEP)
        return request

    def _explain(self, payload: bytes | memoryview, problem: str) -> p.ErrorResponse:
        # The strict decode failed; a lenient look tells us the id to echo and whether the op
        # is one we do not know (unknown_op) or a known op with bad fields (bad_request).
        try:
            envelope = self._envelope.decode(payload)
        except RecursionError:
            return p.error(None, ErrorCode.BAD_REQUEST, _TOO_DEEP)
        except UnicodeDecodeError:
            return p.error(None, ErrorCode.BAD_REQUEST, f"invalid request: {_BAD_UTF8}")
        except msgspec.MsgspecError:
            return p.error(None, ErrorCode.BAD_REQUEST, f"request must be a map: {problem}")
        request_id = envelope.id if _is_request_id(envelope.id) else None
        if isinstance(envelope.op, str) and envelope.op not in p.OPS:
            return p.error(
                request_id,
                ErrorCode.UNKNOWN_OP,
                f"unknown op {envelope.op[:64]!r}; 'hello' lists the supported ops",
            )
        return p.error(request_id, ErrorCode.BAD_REQUEST, f"invalid request: {problem}")

    def respond(self, peer: Peer, payload: bytes | memoryview) -> Response | Awaitable[Response]:
        """The response to one frame's payload: ``decode`` then ``run``.

        The strict decode is tried first; only a frame that fails it pays for ``decode``'s
        explanation of what is wrong.
        """
        try:
            request: p.Request = self._strict_decode(payload)
        except Exception:
            bad = self.decode(payload)
            assert isinstance(bad, p.ErrorResponse)
            return bad
        return self.run(peer, request)

    def run(self, peer: Peer, request: p.Request) -> Response | Awaitable[Response]:
        """The response to ``request``; an awaitable when the handler has to wait."""
        try:
            result = self._handlers[request.__class__](peer, request)
        except RequestError as exc:
            return p.ErrorResponse(request.id, False, p.ErrorBody(exc.code, exc.message))
        except Exception:
            return self._internal(request)
        if result.__class__ is CoroutineType:
            return self._finish(request, result)
        return p.OkResponse(request.id, True, result)

    async def _finish(self, request: p.Request, pending: Awaitable[Any]) -> Response:
        try:
            return p.OkResponse(request.id, True, await pending)
        except RequestError as exc:
            return p.ErrorResponse(request.id, False, p.ErrorBody(exc.code, exc.message))
        except Exception:
            return self._internal(request)

    def _internal(self, request: p.Request) -> p.ErrorResponse:
        # The traceback goes to the log (exceptions built by walletd never hold secrets; the
        # redaction processor still runs); the client gets no detail.
        log.exception("internal_error", op=type(request).__struct_config__.tag, id=request.id)
        return p.error(request.id, ErrorCode.INTERNAL, "internal error; see the walletd log")


def _is_request_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
