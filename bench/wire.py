"""Request frames the benchmark clients send, and a tiny blocking request/response helper.

Both walletd's protocol and the ssh-agent protocol are ``uint32 big-endian length + payload``
frames, so one client loop drives both; only the payloads and the success check differ.
Frames are encoded once, before measuring, and cycled, so the client spends its CPU on the
socket and not on encoding.
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from walletd_wire import CreateWallet, Request, Response, SignBatch, SignMessage
from walletd_wire.framing import encode_frame

Protocol = Literal["walletd", "ssh"]

FRAME_CYCLE = 1024  # distinct pre-encoded requests per connection; ids cycle through them
MESSAGE_BYTES = 64

SSH_AGENTC_REQUEST_IDENTITIES = 11
SSH_AGENT_IDENTITIES_ANSWER = 12
SSH_AGENTC_SIGN_REQUEST = 13
SSH_AGENT_SIGN_RESPONSE = 14

_U32 = struct.Struct(">I")
_encoder = msgspec.msgpack.Encoder()
_response_decoder = msgspec.msgpack.Decoder(Response)


class BenchError(Exception):
    """A server answered wrongly or could not be driven; the measurement is void."""


@dataclass(frozen=True)
class Workload:
    """What a client connection sends: frames to cycle and, for walletd, the ids they carry."""

    protocol: Protocol
    frames: list[bytes]
    ids: list[int] | None  # expected response id per frame (walletd); None for ssh-agent
    items_per_request: int  # signatures per request: 1, or the batch size
    # A server whose HMAC key we know (the shared references' fixed key): the warm-up answer's
    # signature is recomputed from the first frame's message instead of only shape-checked.
    reference_key: bytes | None = None
    first_message: bytes = b""


def sign_workload(user_id: str, reference_key: bytes | None = None) -> Workload:
    messages = [os.urandom(MESSAGE_BYTES) for _ in range(FRAME_CYCLE)]
    frames = [
        encode_frame(_encoder.encode(SignMessage(id=i, user_id=user_id, message=message)))
        for i, message in enumerate(messages)
    ]
    return Workload(
        "walletd", frames, list(range(FRAME_CYCLE)), 1, reference_key, first_message=messages[0]
    )


def batch_workload(user_id: str, batch: int, cycle: int = 16) -> Workload:
    frames = []
    for i in range(cycle):
        messages = [os.urandom(MESSAGE_BYTES) for _ in range(batch)]
        request = SignBatch(id=i, user_id=user_id, messages=messages)
        frames.append(encode_frame(_encoder.encode(request)))
    return Workload("walletd", frames, list(range(cycle)), batch)


def _ssh_string(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def ssh_sign_workload(key_blob: bytes) -> Workload:
    frames = [
        encode_frame(
            bytes([SSH_AGENTC_SIGN_REQUEST])
            + _ssh_string(key_blob)
            + _ssh_string(os.urandom(MESSAGE_BYTES))
            + _U32.pack(0)
        )
        for _ in range(FRAME_CYCLE)
    ]
    return Workload("ssh", frames, None, 1)


def check_response(protocol: Protocol, payload: bytes | bytearray, expect_id: int | None) -> None:
    """Raise BenchError unless ``payload`` is a successful answer (used outside the hot loop)."""
    if protocol == "ssh":
        if not payload or payload[0] != SSH_AGENT_SIGN_RESPONSE:
            raise BenchError(f"ssh-agent answered type {payload[:1]!r} to a sign request")
        return
    response = _response_decoder.decode(payload)
    if not response.ok or response.result is None:
        raise BenchError(f"server returned an error: {response.error}")
    if response.id != expect_id:
        raise BenchError(f"response id {response.id} where {expect_id} was expected")


def check_result(payload: bytes | bytearray, items: int) -> None:
    """Look inside a walletd-protocol result: a 32-byte signature (per item) and an address."""
    response = _response_decoder.decode(payload)
    if response.result is None:
        raise BenchError(f"server returned an error: {response.error}")
    result = msgspec.msgpack.decode(response.result)
    signed = result["items"] if items > 1 else [result]
    if len(signed) != items:
        raise BenchError(f"{len(signed)} signatures for {items} messages")
    for item in signed:
        # HMAC-SHA256: 32 bytes; Ed25519: 64; secp256k1 (r || s || v): 65.
        if len(item.get("signature") or b"") not in (32, 64, 65) or not item.get("address"):
            raise BenchError(f"malformed signature result: {item!r}")


def check_first_answer(workload: Workload, payload: bytes) -> None:
    """The warm-up check, in full: success and id always; then the result's content."""
    check_response(workload.protocol, payload, workload.ids[0] if workload.ids else None)
    if workload.protocol != "walletd":
        return
    if workload.reference_key is None:
        check_result(payload, workload.items_per_request)
        return
    # The shared references answer {"signature": HMAC(REF_KEY, message)} and no address.
    result = msgspec.msgpack.decode(_response_decoder.decode(payload).result)
    expected = hmac.digest(workload.reference_key, workload.first_message, "sha256")
    if not isinstance(result, dict) or result.get("signature") != expected:
        raise BenchError("the reference's signature does not match HMAC-SHA256 under its key")


def recv_frame(sock: socket.socket) -> bytes:
    header = _recv_exactly(sock, 4)
    (size,) = _U32.unpack(header)
    return _recv_exactly(sock, size)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        data = sock.recv(n - len(chunks))
        if not data:
            raise BenchError("server closed the connection")
        chunks += data
    return bytes(chunks)


def call(path: str, request: Request, timeout: float = 10.0) -> Any:
    """One walletd-protocol request on a fresh connection; returns the decoded result."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(encode_frame(_encoder.encode(request)))
        response = _response_decoder.decode(recv_frame(sock))
    if not response.ok or response.result is None:
        raise BenchError(f"{type(request).__name__} failed: {response.error}")
    return msgspec.msgpack.decode(response.result)


def create_wallet(path: str, user_id: str, key_type: str = "hmac-sha256") -> str:
    result = call(path, CreateWallet(id=1, user_id=user_id, key_type=key_type))
    return str(result["address"])


def ssh_identities(path: str) -> list[bytes]:
    """The key blobs an ssh-agent holds (SSH_AGENTC_REQUEST_IDENTITIES)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(encode_frame(bytes([SSH_AGENTC_REQUEST_IDENTITIES])))
        payload = recv_frame(sock)
    if payload[0] != SSH_AGENT_IDENTITIES_ANSWER:
        raise BenchError(f"ssh-agent answered type {payload[0]} to request-identities")
    (count,) = _U32.unpack_from(payload, 1)
    blobs = []
    offset = 5
    for _ in range(count):
        (size,) = _U32.unpack_from(payload, offset)
        blobs.append(payload[offset + 4 : offset + 4 + size])
        offset += 4 + size
        (size,) = _U32.unpack_from(payload, offset)  # comment
        offset += 4 + size
    return blobs
