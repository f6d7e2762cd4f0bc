"""The sync and trio clients, their shared sans-IO core, and the ``Wallet`` facade."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

import walletd_wire as wire
from wallet_client import (
    AsyncWalletClient,
    DaemonUnavailableError,
    InvalidArgumentError,
    ProtocolError,
    Wallet,
    WalletClient,
    WalletExistsError,
    WalletNotFoundError,
    calls,
)
from wallet_client.client import resolve_socket_path
from walletd.server.serve import Server
from walletd_wire.framing import FrameDecoder, encode_frame

from .support import MakeConfig, StartServer, wait_until


async def in_thread(fn: Callable[[], Any]) -> Any:
    """Run blocking client code while the in-process daemon keeps serving."""
    return await trio.to_thread.run_sync(fn)


# --------------------------------------------------------------------------- parity


async def test_sync_and_async_clients_agree(server: Server, client: AsyncWalletClient) -> None:
    path = server.config.socket

    def sync_side(address: str, signature: bytes) -> dict[str, Any]:
        with WalletClient(path, timeout=10) as c:
            out: dict[str, Any] = {
                "hello": c.hello(),
                "address": c.get_wallet_address("alice"),
                "missing": c.get_wallet_address("ghost"),
                "has": (c.has_wallet("alice"), c.has_wallet("ghost")),
                "signature": c.sign_message("alice", b"\x00msg"),
                "verify": (
                    c.verify_signature("alice", b"\x00msg", signature),
                    c.verify_signature("alice", b"\x00msg", signature[:-1]),
                ),
                "batch": c.sign_batch("alice", [b"a", b"b"]),
                "policy": c.get_policy("alice"),
                "backup": c.backup_wallet("alice")["key_hash"],
            }
            try:
                c.create_wallet("alice")
            except WalletExistsError as exc:
                out["exists"] = (type(exc), exc.code)
            try:
                c.sign_message("", b"")
            except InvalidArgumentError as exc:
                out["invalid"] = (type(exc), exc.code)
            out["list"] = c.list_wallets()
            return out

    address = await client.create_wallet("alice")
    signature = await client.sign_message("alice", b"\x00msg")
    expected: dict[str, Any] = {
        "hello": await client.hello(),
        "address": await client.get_wallet_address("alice"),
        "missing": await client.get_wallet_address("ghost"),
        "has": (await client.has_wallet("alice"), await client.has_wallet("ghost")),
        "signature": signature,
        "verify": (
            await client.verify_signature("alice", b"\x00msg", signature),
            await client.verify_signature("alice", b"\x00msg", signature[:-1]),
        ),
        "batch": await client.sign_batch("alice", [b"a", b"b"]),
        "policy": await client.get_policy("alice"),
        "backup": (await client.backup_wallet("alice"))["key_hash"],
    }
    for key, call in (
        ("exists", lambda: client.create_wallet("alice")),
        ("invalid", lambda: client.sign_message("", b"")),
    ):
        with pytest.raises(Exception) as info:  # the type is what we compare
            await call()
        expected[key] = (type(info.value), info.value.code)  # type: ignore[attr-defined]
    expected["list"] = await client.list_wallets()

    got = await in_thread(lambda: sync_side(address, signature))
    assert got == expected
    assert got["address"] == address
    assert got["exists"] == (WalletExistsError, "already_exists")
    assert got["invalid"] == (InvalidArgumentError, "invalid_argument")


# --------------------------------------------------------------------------- socket path


def test_socket_path_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WALLETD_SOCKET", raising=False)
    assert resolve_socket_path(None) == calls.DEFAULT_SOCKET == "/run/walletd/walletd.sock"
    assert WalletClient().socket_path == calls.DEFAULT_SOCKET
    assert AsyncWalletClient().socket_path == calls.DEFAULT_SOCKET

    monkeypatch.setenv("WALLETD_SOCKET", str(tmp_path / "env.sock"))
    assert WalletClient().socket_path == str(tmp_path / "env.sock")
    assert AsyncWalletClient().socket_path == str(tmp_path / "env.sock")
    # The argument wins over the environment; a path object is accepted.
    assert WalletClient(tmp_path / "arg.sock").socket_path == str(tmp_path / "arg.sock")
    assert AsyncWalletClient(str(tmp_path / "arg.sock")).socket_path == str(tmp_path / "arg.sock")

    monkeypatch.setenv("WALLETD_SOCKET", "")  # set but empty means unset
    assert resolve_socket_path(None) == calls.DEFAULT_SOCKET


async def test_environment_variable_reaches_the_daemon(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WALLETD_SOCKET", server.config.socket)
    async with AsyncWalletClient() as c:
        assert (await c.hello()).protocol == 1
    assert await in_thread(lambda: WalletClient().hello().protocol) == 1


async def test_missing_socket_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "walletd.sock"
    with pytest.raises(DaemonUnavailableError) as info:
        WalletClient(missing).hello()
    assert str(missing) in str(info.value)
    assert info.value.code == "unavailable"
    async with AsyncWalletClient(missing) as c:
        with pytest.raises(DaemonUnavailableError) as ainfo:
            await c.hello()
    assert str(missing) in str(ainfo.value)


async def test_refused_socket_is_unavailable(tmp_path: Path) -> None:
    # A socket file nobody listens on (a daemon that died without cleaning up).
    path = tmp_path / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    with pytest.raises(DaemonUnavailableError, match=r"stale\.sock"):
        WalletClient(path).hello()
    with pytest.raises(DaemonUnavailableError, match=r"stale\.sock"):
        await AsyncWalletClient(path).hello()


# --------------------------------------------------------------------------- reconnecting


async def test_clients_reconnect_after_the_daemon_closed_an_idle_connection(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server: Server = await start_server(make_config(ephemeral=True, idle_timeout=0.3))
    path = server.config.socket
    async with AsyncWalletClient(path, timeout=10) as aclient:
        sclient = WalletClient(path, timeout=10)
        try:
            await aclient.create_wallet("a")
            await in_thread(lambda: sclient.hello())
            await wait_until(lambda: not server.connections)  # both reaped as idle
            # Neither call fails: the dropped connection is noticed before sending.
            assert await aclient.has_wallet("a")
            assert await in_thread(lambda: sclient.has_wallet("a"))
        finally:
            sclient.close()


async def test_clients_reconnect_after_a_daemon_restart(
    nursery: trio.Nursery, make_config: MakeConfig
) -> None:
    from walletd.ops.daemon import build_daemon

    config = make_config(ephemeral=True)

    async def start() -> Server:
        server: Server = await nursery.start(Server(build_daemon(config)).run)
        return server

    first = await start()
    async with AsyncWalletClient(config.socket, timeout=10) as aclient:
        sclient = WalletClient(config.socket, timeout=10)
        try:
            await aclient.hello()
            await in_thread(sclient.hello)
            first.shutdown()
            await wait_until(lambda: not os.path.exists(config.socket))
            with pytest.raises(DaemonUnavailableError):
                await aclient.hello()
            with pytest.raises(DaemonUnavailableError):
                await in_thread(sclient.hello)
            second = await start()
            assert (await aclient.hello()).protocol == 1
            assert (await in_thread(sclient.hello)).protocol == 1
            second.shutdown()
        finally:
            sclient.close()


async def test_unavailable_at_connect(start_server: StartServer, make_config: MakeConfig) -> None:
    server: Server = await start_server(make_config(ephemeral=True, max_connections=1))
    async with AsyncWalletClient(server.config.socket, timeout=10) as first:
        await first.hello()
        async with AsyncWalletClient(server.config.socket, timeout=10) as second:
            with pytest.raises(DaemonUnavailableError) as info:
                await second.hello()
            assert info.value.code == "unavailable"
        with pytest.raises(DaemonUnavailableError):
            await in_thread(lambda: WalletClient(server.config.socket, timeout=10).hello())
        await first.hello()


# --------------------------------------------------------------------------- timeouts


@pytest.fixture
def silent_socket(tmp_path: Path) -> Any:
    """A socket that accepts connections (the kernel's backlog does) and never answers."""
    path = tmp_path / "silent.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    yield path
    listener.close()


async def test_sync_timeout_is_daemon_unavailable(silent_socket: Path) -> None:
    c = WalletClient(silent_socket, timeout=0.2)
    with pytest.raises(DaemonUnavailableError, match=r"did not answer within 0\.2s") as info:
        await in_thread(c.hello)
    assert str(silent_socket) in str(info.value)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert c._sock is None  # a late answer must not be read as the next call's


async def test_async_timeout_is_daemon_unavailable(silent_socket: Path) -> None:
    async with AsyncWalletClient(silent_socket, timeout=0.2) as c:
        with pytest.raises(DaemonUnavailableError, match=r"did not answer within 0\.2s"):
            await c.hello()
        assert c._stream is None


async def test_cancelled_call_does_not_leak_its_answer_into_the_next(tmp_path: Path) -> None:
    """A daemon that answers late: the cancelled call's answer must not become the next's."""
    path = str(tmp_path / "slow.sock")
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen(8)
    release = trio.Event()
    encoder = msgspec.msgpack.Encoder()

    async def serve(stream: trio.SocketStream, delay: bool) -> None:
        frames = FrameDecoder()
        async with stream:
            while data := await stream.receive_some(4096):
                frames.feed(data)
                for frame in frames.frames():
                    request = msgspec.msgpack.decode(frame)
                    if delay:
                        await release.wait()
                    answer = wire.ok(request["id"], wire.ExistsResult(not delay))
                    try:
                        await stream.send_all(encode_frame(encoder.encode(answer)))
                    except trio.BrokenResourceError:
                        return

    async with trio.open_nursery() as nursery:
        listener = trio.SocketListener(sock)

        async def accept() -> None:
            for n in range(2):
                nursery.start_soon(serve, await listener.accept(), n == 0)

        nursery.start_soon(accept)
        async with AsyncWalletClient(path, timeout=10) as c:
            with trio.move_on_after(0.2) as scope:
                await c.has_wallet("a")
            assert scope.cancelled_caught
            release.set()
            assert await c.has_wallet("a") is True  # from the second connection
        nursery.cancel_scope.cancel()
    await listener.aclose()


# --------------------------------------------------------------------------- frame limits


async def test_oversized_request_reports_frame_too_large(client: AsyncWalletClient) -> None:
    # Regression: the daemon answers frame_too_large and closes without reading the payload;
    # the clients reported the broken pipe instead of the daemon's answer.
    await client.create_wallet("alice")
    huge = b"\x00" * (2 << 20)
    with pytest.raises(ProtocolError) as info:
        await client.sign_message("alice", huge)
    assert info.value.code == "frame_too_large"
    assert len(await client.sign_message("alice", b"ok")) == 32  # reconnected

    path = client.socket_path

    def sync_side() -> tuple[str, int]:
        with WalletClient(path, timeout=10) as c:
            try:
                c.sign_message("alice", huge)
            except ProtocolError as exc:
                code = exc.code
            return code, len(c.sign_message("alice", b"ok"))

    assert await in_thread(sync_side) == ("frame_too_large", 32)


async def test_responses_larger_than_a_request_frame(client: AsyncWalletClient) -> None:
    # Regression: the clients refused any response over 1 MiB, which a long list_backups,
    # list_wallets or audit_log legitimately is; the daemon limits what it reads, not writes.
    await client.create_wallet("alice")
    padding = {"pad": "m" * 16_000}  # just under the 16 KiB metadata limit
    for _ in range(70):
        await client.create_backup("alice", padding)
    backups = await client.list_backups("alice")
    assert len(backups) == 70
    assert len(msgspec.msgpack.encode(list(backups))) > 1 << 20
    path = client.socket_path
    assert len(await in_thread(lambda: WalletClient(path).list_backups("alice"))) == 70


# --------------------------------------------------------------------------- sans-IO core


def test_core_numbers_requests_and_maps_responses() -> None:
    core = calls.ClientCore()
    call = calls.has_wallet("a")
    first, frame = core.encode(call)
    assert msgspec.msgpack.decode(frame[4:]) == {"op": "has_wallet", "user_id": "a", "id": first}
    second, _ = core.encode(calls.hello())
    assert second == first + 1

    encoder = msgspec.msgpack.Encoder()
    answer = encode_frame(encoder.encode(wire.ok(first, wire.ExistsResult(True))))
    for byte in answer[:-1]:  # byte by byte: nothing until the frame is complete
        core.feed(bytes([byte]))
        assert core.next_response() is None
    core.feed(answer[-1:])
    response = core.next_response()
    assert response is not None
    assert core.result(call, first, response) is True

    core.feed(
        encode_frame(encoder.encode(wire.error(first, wire.ErrorCode.NOT_FOUND, "no wallet")))
    )
    response = core.next_response()
    assert response is not None
    with pytest.raises(WalletNotFoundError, match="no wallet"):
        core.result(call, first, response)


def test_core_refuses_a_mismatched_id() -> None:
    core = calls.ClientCore()
    call = calls.has_wallet("a")
    request_id, _ = core.encode(call)
    encoder = msgspec.msgpack.Encoder()
    core.feed(encode_frame(encoder.encode(wire.ok(request_id + 1, wire.ExistsResult(True)))))
    response = core.next_response()
    assert response is not None
    with pytest.raises(ProtocolError, match="does not match"):
        core.result(call, request_id, response)
    # An error the daemon could not tie to a request carries no id and is still reported.
    core.feed(encode_frame(encoder.encode(wire.error(None, wire.ErrorCode.BAD_REQUEST, "garbled"))))
    response = core.next_response()
    assert response is not None
    with pytest.raises(ProtocolError, match="garbled") as info:
        core.result(call, request_id, response)
    assert info.value.code == "bad_request"


def test_core_reports_garbage_as_protocol_error() -> None:
    core = calls.ClientCore()
    core.feed(encode_frame(b"\xc1"))
    with pytest.raises(ProtocolError, match="undecodable"):
        core.next_response()
    core = calls.ClientCore(max_response_bytes=16)
    core.feed(b"\x00\x00\x01\x00")
    with pytest.raises(ProtocolError, match="malformed frame"):
        core.next_response()


# --------------------------------------------------------------------------- Wallet facade


async def test_wallet_facade(server: Server) -> None:
    path = server.config.socket

    def use() -> dict[str, Any]:
        wallet = Wallet("agent-7", path)
        try:
            out: dict[str, Any] = {"before": (wallet.address, wallet.is_active)}
            address = wallet.create()
            signature = wallet.sign(b"payload")
            out["created"] = (address, wallet.address, wallet.is_active)
            out["verify"] = (wallet.verify(b"payload", signature), wallet.verify(b"x", signature))
            backup = wallet.backup({"why": "test"})
            out["backup"] = (backup["user_id"], backup["wallet_id"], backup["metadata"])
            new = wallet.rotate("scheduled")
            out["rotated"] = (new != address, wallet.address == new)
            out["old_signature_after_rotate"] = wallet.verify(b"payload", signature)
            out["repr"] = repr(wallet)
            shared = Wallet("agent-8", client=wallet.client)
            out["shared"] = shared.client is wallet.client
            out["deleted"] = wallet.delete()
            out["after"] = (wallet.address, wallet.is_active)
            try:
                wallet.sign(b"x")
            except WalletNotFoundError as exc:
                out["sign_after_delete"] = exc.code
            return out
        finally:
            wallet.client.close()

    out = await in_thread(use)
    address = out["created"][0]
    assert out["before"] == (None, False)
    assert out["created"] == (address, address, True)
    assert out["verify"] == (True, False)
    assert out["backup"] == ("agent-7", address, {"why": "test"})
    assert out["rotated"] == (True, True)
    assert out["old_signature_after_rotate"] is False
    assert "agent-7" in out["repr"] and path in out["repr"]
    assert out["shared"] is True
    assert out["deleted"] is True
    assert out["after"] == (None, False)
    assert out["sign_after_delete"] == "not_found"
