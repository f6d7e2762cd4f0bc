"""Server behaviour over a real socket: wallet semantics, ordering and pipelining."""

from __future__ import annotations

import random
import re
import socket
from typing import Any

import msgspec
import pytest
import trio

import walletd_wire as wire
from wallet_client import (
    AsyncWalletClient,
    WalletExistsError,
    WalletNotFoundError,
)
from walletd.model.peer import Peer
from walletd.ops.dispatch import Dispatcher
from walletd.server.connection import Connection
from walletd.server.serve import Server
from walletd_wire.framing import FrameDecoder, encode_frame

ADDRESS = re.compile(r"0x[0-9a-f]{32}")


# --------------------------------------------------------------------------- wallets


async def test_create_returns_a_fresh_address(client: AsyncWalletClient) -> None:
    first = await client.create_wallet("alice")
    second = await client.create_wallet("bob")
    assert ADDRESS.fullmatch(first) and ADDRESS.fullmatch(second)
    assert first != second
    assert await client.get_wallet_address("alice") == first


async def test_keys_differ_per_wallet(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    await client.create_wallet("bob")
    message = b"same message"
    alice = await client.sign_message("alice", message)
    bob = await client.sign_message("bob", message)
    assert alice != bob
    assert not await client.verify_signature("bob", message, alice)
    assert not await client.verify_signature("alice", message, bob)


async def test_second_create_does_not_overwrite(client: AsyncWalletClient) -> None:
    address = await client.create_wallet("alice")
    signature = await client.sign_message("alice", b"m")
    with pytest.raises(WalletExistsError) as info:
        await client.create_wallet("alice")
    assert info.value.code == "already_exists"
    assert await client.get_wallet_address("alice") == address
    assert await client.sign_message("alice", b"m") == signature


async def test_signing_is_deterministic_hmac_sha256(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    signature = await client.sign_message("alice", b"hello")
    assert isinstance(signature, bytes) and len(signature) == 32
    assert await client.sign_message("alice", b"hello") == signature
    assert await client.sign_message("alice", b"hello!") != signature
    assert await client.verify_signature("alice", b"hello", signature) is True
    assert await client.verify_signature("alice", b"hellO", signature) is False


async def test_verify_rejects_altered_signatures(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    signature = await client.sign_message("alice", b"msg")
    for bit in (0, 7, 128, 255):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert await client.verify_signature("alice", b"msg", bytes(flipped)) is False
    # Wrong lengths are an invalid signature (False), not an error.
    for wrong in (signature[:31], signature + b"\x00", b"", signature * 2):
        assert await client.verify_signature("alice", b"msg", wrong) is False


@pytest.mark.parametrize(
    "message",
    [b"", b"\x00", b"\x00\x01\x00\xff" * 64, bytes(range(256)), "ünïcode".encode()],
    ids=["empty", "nul", "binary", "all-bytes", "utf8"],
)
async def test_messages_are_bytes(client: AsyncWalletClient, message: bytes) -> None:
    await client.create_wallet("alice")
    signature = await client.sign_message("alice", message)
    assert len(signature) == 32
    assert await client.verify_signature("alice", message, signature)
    assert not await client.verify_signature("alice", message + b"\x00", signature)


async def test_message_close_to_the_frame_limit(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    # 1 MiB minus room for the other fields of verify_signature, the larger request.
    message = random.Random(1).randbytes((1 << 20) - 128)
    signature = await client.sign_message("alice", message)
    assert await client.sign_message("alice", message) == signature
    assert await client.verify_signature("alice", message, signature)
    assert not await client.verify_signature("alice", message[:-1], signature)


async def test_unknown_wallets(client: AsyncWalletClient) -> None:
    assert await client.get_wallet_address("ghost") is None
    assert await client.has_wallet("ghost") is False
    with pytest.raises(WalletNotFoundError):
        await client.delete_wallet("ghost")
    with pytest.raises(WalletNotFoundError):
        await client.sign_message("ghost", b"m")
    with pytest.raises(WalletNotFoundError):
        await client.verify_signature("ghost", b"m", b"s" * 32)


async def test_list_has_and_delete(client: AsyncWalletClient) -> None:
    assert await client.list_wallets() == {}
    created = {name: await client.create_wallet(name) for name in ("a", "b", "c")}
    assert await client.list_wallets() == created
    assert await client.has_wallet("b") is True
    old_signature = await client.sign_message("b", b"m")
    assert await client.delete_wallet("b") is True
    assert await client.has_wallet("b") is False
    assert await client.get_wallet_address("b") is None
    assert await client.list_wallets() == {"a": created["a"], "c": created["c"]}
    with pytest.raises(WalletNotFoundError):
        await client.delete_wallet("b")
    # A new wallet under the same name is a new key.
    again = await client.create_wallet("b")
    assert again != created["b"]
    assert await client.sign_message("b", b"m") != old_signature


async def test_batches_agree_with_single_calls(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    messages = [b"", b"one", b"\x00two"]
    items = await client.sign_batch("alice", messages)
    singles = [await client.sign_message("alice", m) for m in messages]
    assert [i.signature for i in items] == singles
    assert {i.address for i in items} == {await client.get_wallet_address("alice")}
    pairs = [(m, s) for m, s in zip(messages, singles, strict=True)]
    pairs.append((b"one", singles[0]))
    assert await client.verify_batch("alice", pairs) == [True, True, True, False]


async def test_hello(client: AsyncWalletClient) -> None:
    hello = await client.hello()
    assert hello.protocol == wire.PROTOCOL_VERSION == 1
    assert hello.ops == list(wire.OPS)
    assert hello.server.startswith("walletd ")


async def test_status(server: Server, client: AsyncWalletClient) -> None:
    await client.create_wallet("a")
    await client.create_wallet("b")
    status = await client.status()
    assert status.wallets == 2
    assert status.connections == len(server.connections) == 1
    assert status.ephemeral is True
    assert status.server == (await client.hello()).server
    assert status.uptime_s >= 0
    assert status.requests >= 3  # root is an admin and sees the request counter
    async with AsyncWalletClient(server.config.socket) as other:
        assert (await other.status()).connections == 2


# --------------------------------------------------------------------------- ordering


class Wire:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.frames = FrameDecoder(1 << 30)

    async def receive(self, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        with trio.fail_after(20):
            while len(out) < count:
                out.extend(msgspec.msgpack.decode(f) for f in self.frames.frames())
                if len(out) < count:
                    data = await self.stream.receive_some(1 << 16)
                    assert data, "the daemon closed the connection"
                    self.frames.feed(data)
        return out


def _pipeline() -> tuple[bytes, list[tuple[int | None, str, str]]]:
    """200 frames of mixed requests, valid and not: the bytes, and per frame the id to echo,
    the expected outcome ("ok", an error code, or "*" when it depends on order) and the user."""
    rng = random.Random(7)
    encode = msgspec.msgpack.encode
    stream = bytearray()
    expected: list[tuple[int | None, str, str]] = []
    ids = rng.sample(range(1, 10**9), 200)  # not in order: matching is by position

    def add(request: dict[str, Any] | bytes, outcome: str, user: str = "") -> None:
        payload = request if isinstance(request, bytes) else encode(request)
        request_id = None if isinstance(request, bytes) else request["id"]
        stream.extend(encode_frame(payload))
        expected.append((request_id, outcome, user))

    for n, rid in enumerate(ids):
        user = f"user{n % 7}"
        kind = n % 10
        if kind == 0:
            add({"op": "create_wallet", "id": rid, "user_id": user}, "create", user)
        elif kind in (1, 2, 3):
            add(
                {"op": "sign_message", "id": rid, "user_id": user, "message": b"%d" % n},
                "sign",
                user,
            )
        elif kind == 4:
            add({"op": "hello", "id": rid}, "ok")
        elif kind == 5:
            add({"op": "no_such_op", "id": rid}, "unknown_op")
        elif kind == 6:
            add({"op": "has_wallet", "id": rid, "user_id": ""}, "invalid_argument")
        elif kind == 7:
            add(b"\xc1", "bad_request")
        elif kind == 8:
            add({"op": "list_wallets", "id": rid}, "ok")
        else:
            add({"op": "status", "id": rid}, "ok")
    return bytes(stream), expected


async def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    data, expected = _pipeline()
    assert len(expected) == 200
    async with await trio.open_unix_socket(server.config.socket) as stream:
        await stream.send_all(data)  # all 200 requests in one write
        responses = await Wire(stream).receive(200)
    # Requests take effect in stream order: a sign succeeds exactly when a create for its user
    # came earlier in the stream, and only the first create of each user succeeds.
    created: set[str] = set()
    for n, ((request_id, outcome, user), response) in enumerate(
        zip(expected, responses, strict=True)
    ):
        assert response["id"] == request_id, n
        if outcome == "create":
            code = None if response["ok"] else response["error"]["code"]
            assert code == ("already_exists" if user in created else None), (n, response)
            created.add(user)
        elif outcome == "sign":
            if user in created:
                assert response["ok"] is True, (n, response)
                assert len(response["result"]["signature"]) == 32
            else:
                assert response["error"]["code"] == "not_found", (n, response)
        elif outcome == "ok":
            assert response["ok"] is True, (n, response)
        else:
            assert response["error"]["code"] == outcome, (n, response)
    assert len(created) == 7


async def test_order_holds_across_separate_writes(server: Server) -> None:
    async with await trio.open_unix_socket(server.config.socket) as stream:
        conn = Wire(stream)
        frames = [
            encode_frame(msgspec.msgpack.encode({"op": "create_wallet", "id": 5, "user_id": "a"})),
            encode_frame(msgspec.msgpack.encode({"op": "has_wallet", "id": 3, "user_id": "a"})),
            encode_frame(msgspec.msgpack.encode({"op": "delete_wallet", "id": 9, "user_id": "a"})),
            encode_frame(msgspec.msgpack.encode({"op": "has_wallet", "id": 1, "user_id": "a"})),
        ]
        data = b"".join(frames)
        # Cut the stream inside frames so that each write ends mid-frame.
        for start in range(0, len(data), 7):
            await stream.send_all(data[start : start + 7])
        responses = await conn.receive(4)
    assert [r["id"] for r in responses] == [5, 3, 9, 1]
    assert responses[1]["result"] == {"exists": True}
    assert responses[2]["result"] == {"deleted": True}
    assert responses[3]["result"] == {"exists": False}


async def test_half_closed_client_still_gets_its_answers(server: Server) -> None:
    # A client may send everything, shut down its write side, then read.
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.connect(server.config.socket)
    stream = trio.SocketStream(sock)
    frames = b"".join(
        encode_frame(msgspec.msgpack.encode({"op": "hello", "id": i})) for i in range(1, 4)
    )
    await stream.send_all(frames)
    await stream.send_eof()
    responses = await Wire(stream).receive(3)
    assert [r["id"] for r in responses] == [1, 2, 3]
    assert await stream.receive_some(10) == b""
    await stream.aclose()


# --------------------------------------------------------------------------- isolation


class _ExplodingDispatcher(Dispatcher):
    def respond(self, peer: Peer, payload: bytes | memoryview) -> Any:
        raise RuntimeError("a bug in walletd")


async def test_a_bug_costs_one_connection_not_the_daemon(server: Server) -> None:
    handlers: dict[Any, Any] = {t: (lambda peer, req: None) for t in wire.REQUEST_TYPES}
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    left.setblocking(False)
    with left, right:
        peer = Peer(uid=0, gid=0, pid=1, is_admin=True)
        conn = Connection(1, left, peer, _ExplodingDispatcher(handlers), 1 << 20)
        right.sendall(encode_frame(msgspec.msgpack.encode({"op": "hello", "id": 1})))
        with trio.fail_after(5):
            await conn.serve(server.ctx)  # returns: the error is logged, not raised
    async with AsyncWalletClient(server.config.socket) as client:
        assert (await client.hello()).protocol == 1
