"""The sans-IO core of a client connection: calls, request numbering, framing, responses.

:class:`ClientCore` numbers requests, frames them, and turns response frames into return
values or exceptions; a :class:`Call` (built in :mod:`wallet_client.calls`) says what one
method sends and how its result becomes the return value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

import walletd_wire as wire
from walletd_wire.framing import FrameDecoder, encode_frame

from .errors import InvalidArgumentError, ProtocolError, WalletError, error_from_wire

T = TypeVar("T")
R = TypeVar("R")

#: The daemon limits the frames it reads (max_frame_bytes), not the ones it writes: an
#: audit_log or list_wallets answer may well exceed 1 MiB. This bound only keeps a peer that is
#: not walletd from making a client buffer without end.
MAX_RESPONSE_BYTES = 1 << 30


@dataclass(slots=True)
class Call(Generic[T]):
    """One method call: the request, the result's wire type and the conversion to return."""

    request: wire.Request
    result_type: type[Any]
    convert: Callable[[Any], T]
    wait_s: float = 0.0  # a call that waits on purpose (an approval) gets this much longer


def _call(request: wire.Request, result_type: type[R], convert: Callable[[R], T]) -> Call[T]:
    return Call(request, result_type, convert)


def _same(value: T) -> T:
    return value


class ClientCore:
    """Request numbering, framing and response mapping, for one connection."""

    __slots__ = ("_decoder", "_encoder", "_frames", "_next_id", "_response_decoder")

    def __init__(self, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._response_decoder = msgspec.msgpack.Decoder(wire.Response)
        self._frames = FrameDecoder(max_response_bytes)
        self._next_id = 1

    def reset(self) -> None:
        """Forget buffered bytes: called when the connection is replaced."""
        self._frames = FrameDecoder(self._frames.max_frame_bytes)

    def encode(self, call: Call[Any]) -> tuple[int, bytes]:
        request_id = self._next_id
        self._next_id = request_id + 1 if request_id < 2**63 - 1 else 1
        call.request.id = request_id
        try:
            payload = self._encoder.encode(call.request)
        except (OverflowError, TypeError, ValueError) as exc:
            # e.g. an integer in metadata that MessagePack cannot represent
            raise InvalidArgumentError(f"cannot encode the request: {exc}") from exc
        return request_id, encode_frame(payload)

    def feed(self, data: bytes) -> None:
        self._frames.feed(data)

    def next_response(self) -> wire.Response | None:
        """The next complete response, or None until more bytes arrive."""
        try:
            frame = self._frames.next_frame()
        except Exception as exc:
            raise ProtocolError(f"the daemon sent a malformed frame: {exc}") from exc
        if frame is None:
            return None
        try:
            return self._response_decoder.decode(frame)
        except msgspec.MsgspecError as exc:
            raise ProtocolError(f"the daemon sent an undecodable response: {exc}") from exc

    def refusal(self) -> WalletError | None:
        """The error the daemon sent before closing the connection, if one is buffered.

        Used after a send failed: walletd answers an oversized frame (frame_too_large) and
        closes without reading it, and that answer says more than the broken pipe.
        """
        try:
            response = self.next_response()
        except ProtocolError:
            return None
        if response is None or response.ok or response.error is None:
            return None
        return error_from_wire(response.error.code, response.error.message)

    def result(self, call: Call[T], request_id: int, response: wire.Response) -> T:
        """The call's return value, or the mapped exception for an error response."""
        # An error the daemon could not tie to a request (it could not read one) has no id.
        if response.id != request_id and (response.ok or response.id is not None):
            raise ProtocolError(f"response id {response.id} does not match request {request_id}")
        if not response.ok:
            body = response.error or wire.ErrorBody(wire.ErrorCode.INTERNAL, "error without a body")
            raise error_from_wire(body.code, body.message)
        if not len(response.result):
            raise ProtocolError("the daemon sent a success response without a result")
        try:
            value = msgspec.msgpack.decode(response.result, type=call.result_type)
        except msgspec.MsgspecError as exc:
            raise ProtocolError(f"unexpected result from the daemon: {exc}") from exc
        return call.convert(value)
