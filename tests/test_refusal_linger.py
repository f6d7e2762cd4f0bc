"""Accept-time refusals reach a client that keeps writing (issue 12, item 15).

A client that connects and at once writes a large request (Node's ``net.Socket`` writes before
it reads) must still read the daemon's ``forbidden`` (allow-lists) or ``unavailable`` (at the
connection cap) answer: the daemon lingers after refusing, reading and discarding what the
client sends, instead of closing at once, which made the client's next write fail with EPIPE
(lost in 4 of 5 tries for ``forbidden``, 3 of 3 for ``unavailable``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

from walletd.server.serve import Server

from .support import HELLO, NOBODY, MakeConfig, StartServer, connect_as, length_prefix, read_answer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")

#: Well past what a Unix socket buffers unread (~200 KiB), within the linger's byte budget.
WRITES, CHUNK = 8, 1 << 16


async def _keep_writing_then_read(stream: trio.SocketStream) -> dict[str, Any]:
    """Write a 512 KiB request without reading first, then read the one answer."""
    await stream.send_all(length_prefix(WRITES * CHUNK))
    for _ in range(WRITES):
        await stream.send_all(b"x" * CHUNK)  # BrokenResourceError (EPIPE) without the linger
    await stream.send_eof()
    return await read_answer(stream)


async def test_forbidden_reaches_a_client_that_keeps_writing(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    config = make_config(
        ephemeral=True,
        socket=str(open_tmp / "walletd.sock"),
        socket_mode=0o666,
        allowed_uids=[NOBODY.pw_uid + 1],
    )
    server: Server = await start_server(config)
    for _ in range(3):  # every time, not most times
        stream = connect_as(NOBODY.pw_uid, str(server.config.socket))
        async with stream:
            answer = await _keep_writing_then_read(stream)
        assert answer["ok"] is False
        assert answer["error"] == {
            "code": "forbidden",
            "message": f"uid {NOBODY.pw_uid} may not use this walletd",
        }


async def test_unavailable_reaches_a_client_that_keeps_writing(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    config = make_config(
        ephemeral=True,
        socket=str(open_tmp / "walletd.sock"),
        socket_mode=0o666,
        max_connections=8,
        max_connections_per_uid=2,
        admin_reserved_connections=1,
    )
    server: Server = await start_server(config)
    path = str(server.config.socket)
    held = [connect_as(NOBODY.pw_uid, path) for _ in range(2)]
    try:
        for stream in held:  # both admitted: the cap is reached
            await stream.send_all(HELLO)
            assert (await read_answer(stream))["ok"] is True
        for _ in range(3):
            extra = connect_as(NOBODY.pw_uid, path)
            async with extra:
                answer = await _keep_writing_then_read(extra)
            assert answer["ok"] is False
            assert answer["error"] == {
                "code": "unavailable",
                "message": "this uid holds as many connections as it may; close one",
            }
    finally:
        for stream in held:
            await stream.aclose()
