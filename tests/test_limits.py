"""Limits and timeouts, with small values and trio's real clock.

The timeouts here are behaviour, not performance: each test leaves a wide margin between what
must happen and what must not, and none asserts how long anything took.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import trio
from trio.testing import MockClock

from wallet_client import AsyncWalletClient
from walletd.config import Config
from walletd.server.serve import Server
from walletd_wire.framing import FrameDecoder, encode_frame

StartServer = Callable[..., Any]
MakeConfig = Callable[..., Config]

HELLO = encode_frame(msgspec.msgpack.encode({"op": "hello", "id": 1}))


async def closed_by_daemon(stream: trio.SocketStream, timeout: float = 10.0) -> bytes:
    """Read until the daemon closes the connection; returns what it sent before."""
    received = bytearray()
    with trio.fail_after(timeout):
        while True:
            try:
                data = await stream.receive_some(1 << 16)
            except trio.BrokenResourceError:
                return bytes(received)
            if not data:
                return bytes(received)
            received += data


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


async def keep_asking(path: str, stop: trio.Event, answers: list[int]) -> None:
    """Another client that must keep getting answers while something misbehaves."""
    async with AsyncWalletClient(path, timeout=5) as c:
        while not stop.is_set():
            assert (await c.hello()).protocol == 1
            answers.append(1)
            await trio.sleep(0.02)


async def roundtrip(stream: trio.SocketStream, frame: bytes = HELLO) -> dict[str, Any]:
    await stream.send_all(frame)
    frames = FrameDecoder()
    with trio.fail_after(10):
        while (payload := frames.next_frame()) is None:
            data = await stream.receive_some(1 << 16)
            assert data, "closed by the daemon"
            frames.feed(data)
    response: dict[str, Any] = msgspec.msgpack.decode(payload)
    return response


# --------------------------------------------------------------------------- idle_timeout
#
# The timeout tests run on trio's MockClock with autojump: the daemon reads trio's clock
# (connections and the reaper), so an idle, slow or non-reading peer meets its timeout as
# soon as everything is waiting, in virtual time, without the test waiting real seconds.


async def test_idle_connection_is_closed(
    start_server: StartServer, make_config: MakeConfig, autojump_clock: MockClock
) -> None:
    server: Server = await start_server(make_config(ephemeral=True, idle_timeout=0.3))
    async with await trio.open_unix_socket(server.config.socket) as stream:
        assert (await roundtrip(stream))["ok"]
        assert await closed_by_daemon(stream) == b""  # closed quietly: no error frame
    await wait_until(lambda: not server.connections)


async def test_busy_connection_is_not_closed(
    start_server: StartServer, make_config: MakeConfig, autojump_clock: MockClock
) -> None:
    server: Server = await start_server(make_config(ephemeral=True, idle_timeout=0.5))
    async with await trio.open_unix_socket(server.config.socket) as stream:
        assert (await roundtrip(stream))["ok"]
        (conn_id,) = server.connections
        # Three idle timeouts long, never idle for more than a tenth of one.
        deadline = trio.current_time() + 1.5
        while trio.current_time() < deadline:
            assert (await roundtrip(stream))["ok"]
            await trio.sleep(0.05)
        assert list(server.connections) == [conn_id]


# --------------------------------------------------------------------------- frame_timeout


async def test_slow_loris_is_dropped_and_stalls_nobody(
    start_server: StartServer, make_config: MakeConfig, autojump_clock: MockClock
) -> None:
    config = make_config(ephemeral=True, frame_timeout=0.5, idle_timeout=60)
    await start_server(config)
    stop = trio.Event()
    answers: list[int] = []
    sent = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_asking, config.socket, stop, answers)
        async with await trio.open_unix_socket(config.socket) as stream:

            async def trickle() -> None:
                nonlocal sent
                # Announce 200 bytes, then send one byte every 50 ms: 10 s for the frame.
                await stream.send_all(struct.pack(">I", 200))
                try:
                    while True:
                        await trio.sleep(0.05)
                        await stream.send_all(b"\x00")
                        sent += 1
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

            async with trio.open_nursery() as inner:
                inner.start_soon(trickle)
                assert await closed_by_daemon(stream) == b""
                inner.cancel_scope.cancel()
        stop.set()
    assert 0 < sent < 200  # dropped mid-frame, although bytes kept arriving
    assert answers  # the other client was served throughout


async def test_fast_frame_within_frame_timeout_is_fine(
    start_server: StartServer, make_config: MakeConfig, autojump_clock: MockClock
) -> None:
    server: Server = await start_server(make_config(ephemeral=True, frame_timeout=1.0))
    async with await trio.open_unix_socket(server.config.socket) as stream:
        for _ in range(3):
            await stream.send_all(HELLO[:3])
            await trio.sleep(0.05)
            assert (await roundtrip(stream, HELLO[3:]))["ok"]


async def test_partial_prefix_counts_as_a_started_frame(
    start_server: StartServer, make_config: MakeConfig, autojump_clock: MockClock
) -> None:
    # One byte of a prefix, then silence: the frame timeout applies, not the idle timeout.
    server: Server = await start_server(
        make_config(ephemeral=True, frame_timeout=0.3, idle_timeout=60)
    )
    async with await trio.open_unix_socket(server.config.socket) as stream:
        await stream.send_all(b"\x00")
        assert await closed_by_daemon(stream) == b""


# --------------------------------------------------------------------------- write_timeout


async def test_reader_that_never_reads_is_dropped(
    start_server: StartServer, make_config: MakeConfig, autojump_clock: MockClock
) -> None:
    config = make_config(ephemeral=True, write_timeout=0.5, idle_timeout=60)
    server: Server = await start_server(config)
    stop = trio.Event()
    answers: list[int] = []
    async with await trio.open_unix_socket(config.socket) as stream:
        assert (await roundtrip(stream))["ok"]
        (conn_id,) = server.connections

        async def flood() -> None:
            # Each hello answer is ~30x its request; never reading them fills the buffers.
            try:
                while True:
                    await stream.send_all(HELLO * 1000)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_asking, config.socket, stop, answers)
            nursery.start_soon(flood)
            await wait_until(lambda: conn_id not in server.connections)
            stop.set()
            nursery.cancel_scope.cancel()
    assert answers


# --------------------------------------------------------------------------- max_connections


async def test_connection_limit_frees_up(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server: Server = await start_server(make_config(ephemeral=True, max_connections=2))
    path = server.config.socket
    first = await trio.open_unix_socket(path)
    second = await trio.open_unix_socket(path)
    assert (await roundtrip(first))["ok"] and (await roundtrip(second))["ok"]
    async with await trio.open_unix_socket(path) as third:
        refusal = msgspec.msgpack.decode((await closed_by_daemon(third))[4:])
        assert refusal["error"]["code"] == "unavailable"
    assert (await roundtrip(second))["ok"]  # the admitted ones go on
    await first.aclose()
    await wait_until(lambda: len(server.connections) == 1)
    async with await trio.open_unix_socket(path) as fourth:
        assert (await roundtrip(fourth))["ok"]
    await second.aclose()


# --------------------------------------------------------------------------- max_frame_bytes


def _sign_frame(payload_size: int) -> bytes:
    """A sign_message frame whose payload is exactly ``payload_size`` bytes."""
    request: dict[str, Any] = {"op": "sign_message", "id": 1, "user_id": "a", "message": b""}
    overhead = len(msgspec.msgpack.encode(request))
    request["message"] = b"m" * (payload_size - overhead - 1)  # bin8 -> bin16 header: +1
    payload = msgspec.msgpack.encode(request)
    assert len(payload) == payload_size
    return encode_frame(payload)


@pytest.mark.parametrize("limit", [1024, 4096])
async def test_frame_limit_is_inclusive_over_a_socket(
    start_server: StartServer, make_config: MakeConfig, limit: int
) -> None:
    server: Server = await start_server(make_config(ephemeral=True, max_frame_bytes=limit))
    async with await trio.open_unix_socket(server.config.socket) as stream:
        create = {"op": "create_wallet", "id": 1, "user_id": "a"}
        assert (await roundtrip(stream, encode_frame(msgspec.msgpack.encode(create))))["ok"]
        response = await roundtrip(stream, _sign_frame(limit))
        assert response["ok"], response
        assert len(response["result"]["signature"]) == 32
        # One byte more: refused on the prefix alone, then closed.
        oversized = _sign_frame(limit + 1)
        await stream.send_all(oversized[:4])
        rest = await closed_by_daemon(stream)
        refusal = msgspec.msgpack.decode(rest[4:])
        assert refusal["error"]["code"] == "frame_too_large"
        assert str(limit) in refusal["error"]["message"]


async def test_answers_before_an_oversized_frame_are_delivered(server: Server) -> None:
    # Requests that arrived with the bad prefix, before it, are answered first.
    async with await trio.open_unix_socket(server.config.socket) as stream:
        await stream.send_all(HELLO + HELLO + struct.pack(">I", (1 << 20) + 1))
        frames = FrameDecoder()
        frames.feed(await closed_by_daemon(stream))
        answers = [msgspec.msgpack.decode(f) for f in frames.frames()]
    assert [a["ok"] for a in answers] == [True, True, False]
    assert answers[2]["error"]["code"] == "frame_too_large"
