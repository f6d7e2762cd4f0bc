"""The connection's fast path against a readable reference loop, byte for byte.

``reference_loop`` is what ``walletd.server.connection.Connection._loop`` does, written for
reading: receive, feed the decoder, answer each complete frame in order, send. The property
feeds both loops the same byte stream of pipelined requests (good, bad and unknown ones),
split at random points, over real socket pairs, and requires the same bytes back.
"""

from __future__ import annotations

import socket
from types import CoroutineType
from typing import Any

import msgspec
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from walletd.config import Config
from walletd.model.peer import Peer
from walletd.ops.daemon import build_daemon
from walletd.ops.dispatch import Dispatcher
from walletd.server.connection import Connection
from walletd_wire import FrameDecoder, encode_frame

PEER = Peer(uid=0, gid=0, pid=1, is_admin=True)
ENCODER = msgspec.msgpack.Encoder()


async def reference_loop(sock: trio.socket.SocketType, dispatcher: Dispatcher) -> None:
    """Read, decode, respond, send: the fast path without its tricks."""
    frames = FrameDecoder()
    while data := await sock.recv(1 << 16):
        frames.feed(data)
        for payload in frames.frames():
            response: Any = dispatcher.respond(PEER, payload)
            if response.__class__ is CoroutineType:
                response = await response
            await sock.send(encode_frame(ENCODER.encode(response)))


class Counter:
    """The loop's view of the server: a request count, and how many connections are open
    (1: the connection is alone and polls briefly before it parks)."""

    def __init__(self, connections: int) -> None:
        self.requests = 0
        self.connections = connections


def deterministic_requests() -> st.SearchStrategy[bytes]:
    """Frames whose answers do not depend on time or on earlier requests."""
    ops = st.sampled_from(
        [
            {"op": "hello"},
            {"op": "has_wallet", "user_id": "nobody-here"},
            {"op": "get_wallet_address", "user_id": "nobody-here"},
            {"op": "list_wallets"},
            {"op": "sign_message", "user_id": "nobody-here", "message": b"m"},
            {"op": "no_such_op"},
            {"op": "hello", "unexpected": 1},
            {"op": "has_wallet", "user_id": "bad id!"},
        ]
    )
    request = st.builds(lambda op, i: ENCODER.encode({**op, "id": i}), ops, st.integers(0, 999))
    raw = st.sampled_from([b"", b"\xc1", b"\x91\x01", msgspec.msgpack.encode([1, 2])])
    return st.one_of(request, raw).map(encode_frame)


async def answers(run_loop: Any, stream: bytes, cuts: list[int]) -> bytes:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    received = bytearray()
    with left, right:
        right.setblocking(False)
        peer_side = trio.socket.from_stdlib_socket(right)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_loop, left)
            start = 0
            for cut in [*sorted(cuts), len(stream)]:
                await peer_side.send(stream[start:cut])
                start = cut
                await trio.sleep(0)
            peer_side.shutdown(socket.SHUT_WR)
            while data := await peer_side.recv(1 << 16):
                received += data
    return bytes(received)


@settings(max_examples=40, deadline=None)
@given(
    frames=st.lists(deterministic_requests(), min_size=1, max_size=20),
    cut_fractions=st.lists(st.floats(0, 1), max_size=8),
    alone=st.booleans(),
)
def test_fast_path_answers_exactly_as_the_reference_loop(
    frames: list[bytes], cut_fractions: list[float], alone: bool
) -> None:
    stream = b"".join(frames)
    cuts = [int(f * len(stream)) for f in cut_fractions]
    dispatcher = build_daemon(Config(ephemeral=True)).dispatcher

    async def fast(sock: socket.socket) -> None:
        sock.setblocking(False)
        await Connection(1, sock, PEER, dispatcher, 1 << 20).serve(Counter(1 if alone else 2))
        sock.shutdown(socket.SHUT_WR)

    async def reference(sock: socket.socket) -> None:
        sock.setblocking(False)
        await reference_loop(trio.socket.from_stdlib_socket(sock), dispatcher)
        sock.shutdown(socket.SHUT_WR)

    async def both() -> tuple[bytes, bytes]:
        return await answers(fast, stream, cuts), await answers(reference, stream, cuts)

    got_fast, got_reference = trio.run(both)
    assert got_fast == got_reference
    decoder = FrameDecoder()
    decoder.feed(got_fast)
    assert len(decoder.frames()) == len(frames)  # one answer per frame, in order
