"""Connection admission (issue 12 item 6) and lingering close (item 15)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog
import structlog.testing
import trio

from walletd.server.admission import RefusalLog, Slots, admin_reserve
from walletd.server.serve import Server

from .support import (
    HELLO,
    NOBODY,
    Clock,
    MakeConfig,
    StartServer,
    connect_as,
    length_prefix,
    read_answer,
)


def test_admin_reserve_is_at_least_one_slot() -> None:
    assert [admin_reserve(m, 4) for m in (1, 2, 5, 256)] == [1, 2, 4, 4]
    assert admin_reserve(256, 1) == 1


def test_one_uid_cannot_take_the_admin_slots() -> None:
    """Failed before: a non-admin could hold every slot (there was only max_connections)."""
    slots = Slots()
    limits = {"max_connections": 10, "per_uid": 100, "reserve": 2}
    while slots.refusal(1000, False, **limits) is None:
        slots.take(1000)
    assert slots.total == 8
    assert slots.refusal(1000, False, **limits) == "admin_reserve"
    assert slots.refusal(0, True, **limits) is None
    slots.take(0)
    slots.take(0)
    assert slots.refusal(0, True, **limits) == "max_connections"


def test_per_uid_cap() -> None:
    slots = Slots()
    limits = {"max_connections": 100, "per_uid": 3, "reserve": 1}
    for _ in range(3):
        slots.take(1000)
    assert slots.refusal(1000, False, **limits) == "max_connections_per_uid"
    assert slots.refusal(1001, False, **limits) is None
    slots.give_back(1000)
    assert slots.refusal(1000, False, **limits) is None


def test_refusals_are_logged_once_per_uid_per_10_s() -> None:
    """Failed before: every refusal was a log line (~20,000 a second from one uid)."""
    clock = Clock(0.0)
    refusals = RefusalLog(clock)
    with structlog.testing.capture_logs() as lines:
        for _ in range(500):
            refusals.refused(1000, 1, "max_connections_per_uid")
        refusals.refused(1001, 1, "not_allowed")  # another uid has its own line
        clock.advance(10.0)
        refusals.refused(1000, 1, "max_connections_per_uid")
    assert [(e["peer_uid"], e["suppressed"]) for e in lines] == [(1000, 0), (1001, 0), (1000, 499)]


# --------------------------------------------------------------------------- real sockets


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
async def test_a_uid_at_its_cap_does_not_lock_out_root(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    config = make_config(
        ephemeral=True,
        socket=str(open_tmp / "walletd.sock"),
        socket_mode=0o666,
        max_connections=6,
        max_connections_per_uid=3,
        admin_reserved_connections=1,
    )
    server: Server = await start_server(config)
    held = [connect_as(NOBODY.pw_uid, config.socket) for _ in range(3)]
    for stream in held:
        await stream.send_all(HELLO)
        assert (await read_answer(stream))["ok"] is True
    extra = connect_as(NOBODY.pw_uid, config.socket)
    refusal = await read_answer(extra)
    assert refusal["ok"] is False
    assert refusal["error"] == {
        "code": "unavailable",
        "message": "this uid holds as many connections as it may; close one",
    }
    async with await trio.open_unix_socket(config.socket) as root:
        await root.send_all(HELLO)
        assert (await read_answer(root))["ok"] is True
    assert server.slots.by_uid[NOBODY.pw_uid] == 3
    for stream in [*held, extra]:
        await stream.aclose()


async def test_frame_too_large_answer_reaches_a_client_that_keeps_writing(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    """Failed before: the daemon closed at once, and a client still writing its (too large)
    frame got EPIPE before it read the answer, as Node's net.Socket does."""
    server: Server = await start_server(make_config(ephemeral=True, max_frame_bytes=1024))
    async with await trio.open_unix_socket(server.config.socket) as stream:
        await stream.send_all(length_prefix(512 * 1024))
        for _ in range(8):  # well past what the socket buffers hold unread
            await stream.send_all(b"x" * 65536)  # raises BrokenResourceError (EPIPE) before
        await stream.send_eof()
        answer = await read_answer(stream)
    assert answer["ok"] is False
    assert answer["error"]["code"] == "frame_too_large"
