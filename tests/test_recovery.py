"""The recovery ritual over the wire: registration rules, recovery, counting and lockout,
what a failure reveals (nothing), and that a flood of attempts does not stop signing.

In-process servers (root, hence admin) for behaviour; a real daemon and children running as
other uids for the ownership rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
import trio
import trio.testing

import walletd_wire as wire
from wallet_client import (
    AsyncWalletClient,
    InvalidArgumentError,
    ProtocolError,
    RitualError,
    RitualLockedError,
    RitualStep,
    WalletClient,
    WalletNotFoundError,
    hash_response,
)
from walletd.config import Config, ConfigError, load_config
from walletd.server.serve import Server
from walletd_wire.framing import FrameDecoder, encode_frame

from . import recovery_children
from .support import (
    NOBODY,
    Clock,
    DaemonFactory,
    MakeConfig,
    StartServer,
    call_as,
    call_as_nobody,
    wallet_in,
)
from .test_ritual_store import ScryptSpy

ANSWERS = ["Rex", "Elm Street", "teal"]
PROMPTS = ["Your first pet?", "The street you grew up on?", "Favourite colour?"]
# The clients take the answers as typed and send only their hashes.
RIGHT = list(ANSWERS)
WRONG = ["nope"] * len(ANSWERS)
OTHER_UID = 65533  # not in /etc/passwd; any unused uid will do


def ritual(prompts: list[str] = PROMPTS, answers: list[str] = ANSWERS) -> list[RitualStep]:
    return [RitualStep(q, hash_response(a)) for q, a in zip(prompts, answers, strict=True)]


def one_wrong(index: int) -> list[str]:
    responses = list(RIGHT)
    responses[index] = "wrong"
    return responses


async def raw_call(socket_path: str, request: wire.Request) -> dict[str, Any]:
    """Send one request as bytes and return the response map, bypassing client-side checks."""
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    with sock:
        await sock.connect(socket_path)
        await sock.send(encode_frame(msgspec.msgpack.encode(request)))
        frames = FrameDecoder()
        while (frame := frames.next_frame()) is None:
            data = await sock.recv(65536)
            assert data, "walletd closed the connection"
            frames.feed(data)
    response: dict[str, Any] = msgspec.msgpack.decode(frame)
    return response


@pytest.fixture
async def alice(client: AsyncWalletClient) -> str:
    """A wallet with the three-step ritual; returns its address."""
    address = await client.create_wallet("alice")
    assert await client.register_ritual("alice", ritual()) == 3
    return address


# --------------------------------------------------------------------------- registration


async def test_register_then_read(client: AsyncWalletClient, alice: str) -> None:
    assert await client.has_ritual("alice")
    assert await client.get_prompts("alice") == PROMPTS  # in order
    assert await client.get_remaining_attempts("alice") == 5  # default max_attempts
    assert not await client.is_locked("alice")


async def test_register_limits(client: AsyncWalletClient, server: Server) -> None:
    await client.create_wallet("alice")
    h = hash_response("x")
    ok_sizes = [
        [RitualStep("q", h)] * 16,  # 16 steps
        [RitualStep("é" * 512, h)],  # 1024 bytes of UTF-8
        [RitualStep("q", h.upper())],  # hex in either case
    ]
    for steps in ok_sizes:
        assert await client.register_ritual("alice", steps) == len(steps)
    # More steps than a ritual can have: refused by the decoder (hello's limits say 16).
    with pytest.raises(ProtocolError) as too_many:
        await client.register_ritual("alice", [RitualStep("q", h)] * 17)
    assert too_many.value.code == "bad_request"
    bad = [
        [RitualStep("", h)],
        [RitualStep("é" * 512 + "x", h)],  # 1025 bytes
        [RitualStep("q", h[:63])],
        [RitualStep("q", h + "0")],
        [RitualStep("q", "g" * 64)],
        [RitualStep("q", "x")],
    ]
    for steps in bad:
        with pytest.raises(InvalidArgumentError):
            await client.register_ritual("alice", steps)
    # The client refuses an empty ritual before sending; the daemon refuses one that is sent.
    reply = await raw_call(
        server.config.socket, wire.RegisterRitual(id=7, user_id="alice", steps=[])
    )
    assert reply["ok"] is False
    assert reply["error"]["code"] == "invalid_argument"
    assert reply["id"] == 7
    # Nothing above replaced the last good registration.
    assert await client.get_prompts("alice") == ["q"]


async def test_empty_ritual_refused_before_sending(tmp_path: Path) -> None:
    # No daemon listens here: had the client tried to send, it would raise DaemonUnavailable.
    async with AsyncWalletClient(tmp_path / "nothing.sock") as c:
        with pytest.raises(RitualError):
            await c.register_ritual("alice", [])
    with WalletClient(tmp_path / "nothing.sock") as c, pytest.raises(RitualError):
        c.register_ritual("alice", [])


async def test_register_needs_a_wallet(client: AsyncWalletClient) -> None:
    with pytest.raises(WalletNotFoundError):
        await client.register_ritual("ghost", ritual())


async def test_no_ritual(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    assert not await client.has_ritual("alice")
    assert not await client.has_ritual("ghost")
    for user in ("alice", "ghost"):
        with pytest.raises(RitualError) as info:
            await client.get_prompts(user)
        assert info.value.code == "no_ritual"
        assert not isinstance(info.value, RitualLockedError)
    with pytest.raises(RitualError):
        await client.get_remaining_attempts("alice")
    with pytest.raises(RitualError):
        await client.initiate_recovery("alice", RIGHT)


async def test_reregistering_replaces_and_resets(client: AsyncWalletClient, alice: str) -> None:
    assert not await client.initiate_recovery("alice", WRONG)
    assert not await client.initiate_recovery("alice", WRONG)
    assert await client.get_remaining_attempts("alice") == 3
    new = ritual(["Only question?"], ["only answer"])
    assert await client.register_ritual("alice", new) == 1
    assert await client.get_prompts("alice") == ["Only question?"]
    assert await client.get_remaining_attempts("alice") == 5
    assert not await client.initiate_recovery("alice", RIGHT)  # the old answers are gone
    assert await client.initiate_recovery("alice", ["only answer"])


async def test_unregister_and_delete_remove_the_ritual(
    client: AsyncWalletClient, alice: str
) -> None:
    assert await client.unregister_ritual("alice") is True
    assert await client.unregister_ritual("alice") is False
    assert not await client.has_ritual("alice")
    await client.register_ritual("alice", ritual())
    assert await client.delete_wallet("alice")
    assert not await client.has_ritual("alice")
    await client.create_wallet("alice")
    assert not await client.has_ritual("alice")  # a new wallet does not inherit it
    assert not await client.initiate_recovery("ghost", RIGHT)


def test_recovery_settings() -> None:
    config = Config()
    assert config.max_attempts == 5
    assert config.lockout_seconds == 900.0  # finite by default: a lockout is a denial of service
    assert load_config(None, {"max_attempts": 1}).max_attempts == 1
    for bad in ({"max_attempts": 0}, {"lockout_seconds": 0}, {"recovery_concurrency": 0}):
        with pytest.raises(ConfigError):
            load_config(None, bad)


# --------------------------------------------------------------------------- recovery


async def test_recover_success_rotates_and_resets(client: AsyncWalletClient, alice: str) -> None:
    assert not await client.initiate_recovery("alice", WRONG)
    assert await client.get_remaining_attempts("alice") == 4
    new_address = await client.recover("alice", RIGHT)
    assert new_address != alice
    assert await client.get_wallet_address("alice") == new_address
    assert await client.get_remaining_attempts("alice") == 5  # success resets the count
    signature = await client.sign_message("alice", b"after recovery")
    assert await client.verify_signature("alice", b"after recovery", signature)
    history = await client.rotation_history("alice")
    assert [(r.old_wallet_id, r.new_wallet_id, r.reason) for r in history] == [
        (alice, new_address, "recovery")
    ]
    events = [r.event for r in await client.audit_log("alice")]
    assert events[-1] == "recovery_succeeded"
    succeeded = (await client.audit_log("alice"))[-1]
    assert succeeded.detail["reason"] == "recovery"
    assert succeeded.addresses == [alice, new_address]
    # initiate_recovery reports success as True (and rotates again).
    assert await client.initiate_recovery("alice", RIGHT) is True
    assert await client.get_wallet_address("alice") not in (alice, new_address)


async def test_failure_is_counted_and_says_nothing(client: AsyncWalletClient, alice: str) -> None:
    assert await client.initiate_recovery("alice", one_wrong(1)) is False
    with pytest.raises(RitualError) as info:
        await client.recover("alice", one_wrong(2))
    assert info.value.code == "recovery_failed"
    assert await client.get_remaining_attempts("alice") == 3
    assert await client.get_wallet_address("alice") == alice  # nothing rotated


@pytest.mark.parametrize(
    "responses",
    [[], RIGHT[:2], [*RIGHT, RIGHT[0]], RIGHT * 5 + RIGHT[:1], [hash_response(a) for a in ANSWERS]],
    ids=["none", "too_few", "one_extra", "sixteen", "hashes_as_answers"],
)
async def test_wrong_count_is_a_failed_attempt(
    client: AsyncWalletClient, alice: str, responses: list[str]
) -> None:
    assert await client.initiate_recovery("alice", responses) is False
    assert await client.get_remaining_attempts("alice") == 4


async def test_more_responses_than_steps_can_be_is_refused_uncounted(
    client: AsyncWalletClient, alice: str
) -> None:
    """17 responses cannot answer any ritual (at most 16 steps): the decoder refuses them
    (bad_request) before anything is hashed, and no attempt is counted."""
    with pytest.raises(ProtocolError) as info:
        await client.initiate_recovery("alice", RIGHT * 6)
    assert info.value.code == "bad_request"
    assert await client.get_remaining_attempts("alice") == 5


async def test_unknown_user_counts_nothing(client: AsyncWalletClient, alice: str) -> None:
    assert await client.initiate_recovery("ghost", RIGHT) is False
    assert await client.initiate_recovery("ghost", []) is False
    assert await client.get_remaining_attempts("alice") == 5
    assert all(r.user_id != "ghost" for r in await client.audit_log())


async def test_lockout_at_max_attempts(start_server: StartServer, make_config: MakeConfig) -> None:
    server = await start_server(make_config(ephemeral=True, max_attempts=3))
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        address = await c.create_wallet("alice")
        await c.register_ritual("alice", ritual())
        remaining = []
        for _ in range(3):
            assert not await c.initiate_recovery("alice", WRONG)
            remaining.append(await c.get_remaining_attempts("alice"))
        assert remaining == [2, 1, 0]
        assert await c.is_locked("alice")
        for _ in range(2):  # right answers change nothing once locked
            with pytest.raises(RitualLockedError) as info:
                await c.initiate_recovery("alice", RIGHT)
            assert isinstance(info.value, RitualError)
            assert info.value.code == "locked"
        with pytest.raises(RitualLockedError):
            await c.recover("alice", RIGHT)
        assert await c.get_wallet_address("alice") == address
        events = [r.event for r in await c.audit_log("alice")]
        assert events.count("recovery_attempted") == 3  # refused attempts are not counted
        assert events[-1] == "recovery_locked"
        # An admin lifts the lockout.
        assert await c.reset_attempts("alice") == 3
        assert not await c.is_locked("alice")
        assert await c.get_remaining_attempts("alice") == 3
        assert await c.recover("alice", RIGHT) != address
        assert "recovery_attempts_reset" in [r.event for r in await c.audit_log("alice")]


async def test_last_allowed_attempt_is_still_checked(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(ephemeral=True, max_attempts=2))
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        await c.create_wallet("alice")
        await c.register_ritual("alice", ritual())
        assert not await c.initiate_recovery("alice", WRONG)
        assert await c.initiate_recovery("alice", RIGHT)  # attempt 2 of 2 may succeed
        assert await c.get_remaining_attempts("alice") == 2


async def test_lockout_expires_after_lockout_seconds(
    start_server: StartServer, make_config: MakeConfig, clock: Clock
) -> None:
    server = await start_server(make_config(ephemeral=True, max_attempts=2, lockout_seconds=600))
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        await c.create_wallet("alice")
        await c.register_ritual("alice", ritual())
        assert not await c.initiate_recovery("alice", WRONG)
        clock.advance(500)
        assert not await c.initiate_recovery("alice", WRONG)  # locked from here: t=500
        clock.advance(599)
        assert await c.is_locked("alice")
        with pytest.raises(RitualLockedError):
            await c.initiate_recovery("alice", RIGHT)
        clock.advance(1)
        assert not await c.is_locked("alice")
        assert await c.get_remaining_attempts("alice") == 2  # a fresh allowance
        assert not await c.initiate_recovery("alice", WRONG)
        assert await c.get_remaining_attempts("alice") == 1
        assert await c.initiate_recovery("alice", RIGHT)


async def test_lockout_without_lockout_seconds_is_for_good(
    start_server: StartServer, make_config: MakeConfig, clock: Clock
) -> None:
    server = await start_server(make_config(ephemeral=True, lockout_seconds=None))
    async with AsyncWalletClient(server.config.socket, timeout=10) as client:
        await client.create_wallet("alice")
        await client.register_ritual("alice", ritual())
        for _ in range(5):
            assert not await client.initiate_recovery("alice", WRONG)
        clock.advance(10 * 365 * 86400)
        assert await client.is_locked("alice")
        with pytest.raises(RitualLockedError):
            await client.initiate_recovery("alice", RIGHT)


async def test_failures_are_indistinguishable(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    """Whichever step is wrong, the response and the log lines are the same, and no log line
    names a step, a prompt, or an answer (at debug level, which logs every request)."""
    server = await start_server(make_config(ephemeral=True, log_level="debug"))
    replies, logs = [], []
    async with AsyncWalletClient(server.config.socket, timeout=10) as client:
        await client.create_wallet("alice")
        await client.register_ritual("alice", ritual())
        for index in range(3):
            with structlog.testing.capture_logs() as captured:
                reply = await raw_call(
                    server.config.socket,
                    wire.InitiateRecovery(
                        id=1,
                        user_id="alice",
                        responses=[hash_response(a) for a in one_wrong(index)],
                    ),
                )
            replies.append(reply)
            logs.append(captured)
        records = (await client.audit_log("alice"))[-6:]
    assert replies == [{"id": 1, "ok": True, "result": {"recovered": False, "address": None}}] * 3

    def shape(entries: list[MutableMapping[str, Any]]) -> list[dict[str, Any]]:
        # All but what differs by design: the attempt number, the request's duration and the
        # connection number (each try is a new connection, whose open/close events race).
        varying = {"attempt", "duration_us", "conn"}
        return [
            {k: v for k, v in e.items() if k not in varying}
            for e in entries
            if not e["event"].startswith("connection_")
        ]

    events = [e["event"] for e in shape(logs[0])]
    assert events == ["recovery_attempted", "recovery_failed", "request"]
    assert shape(logs[0]) == shape(logs[1]) == shape(logs[2])
    for entry in (e for entries in logs for e in entries):
        text = repr(entry).lower()
        assert "step" not in text
        assert "index" not in text
        assert "prompt" not in text
        for secret in (*ANSWERS, *(hash_response(a) for a in ANSWERS), *PROMPTS):
            assert secret.lower() not in text
    # The audit trail says the same: attempted, failed; nothing about which step.
    assert [r.event for r in records] == ["recovery_attempted", "recovery_failed"] * 3
    assert all(set(r.detail) <= {"attempt"} for r in records)


# --------------------------------------------------------------------------- ownership


@pytest.mark.root
@pytest.mark.slow
def test_ownership_rules_and_transfer(daemon: DaemonFactory, open_tmp: Path) -> None:
    """Readers may be anyone; management is the owner's or an admin's; success hands over."""
    config = open_tmp / "walletd.toml"
    config.write_text("scrypt_n = 1024\n")
    proc = daemon("--config", str(config), ephemeral=True).start()
    sock = str(proc.socket_path)
    with WalletClient(sock) as root:
        alice = root.create_wallet("alice")  # root's wallet, recovered by nobody below
        root.register_ritual("alice", ritual())

    # nobody: may read alice's ritual, not manage it; recovers it; creates bob with a ritual.
    nobody = call_as_nobody(
        recovery_children.read_then_recover,
        sock,
        "alice",
        "bob",
        json.dumps(PROMPTS),
        json.dumps(ANSWERS),
    )
    assert nobody["prompts"] == PROMPTS
    assert nobody["has"] is True
    assert nobody["remaining"] == 5
    assert nobody["locked"] is False
    assert nobody["sign_before"] == "forbidden"
    assert nobody["register"] == nobody["unregister"] == "forbidden"
    assert nobody["reset"] == nobody["reset_own"] == "forbidden"  # admin only, even the owner
    assert nobody["address"] != alice
    assert nobody["signed_with"] == nobody["address"]
    assert nobody["own_steps"] == 3

    # Another non-root uid recovers nobody's wallet; nobody is then locked out of it.
    other = call_as(OTHER_UID, NOBODY.pw_gid, recovery_children.take_over, sock, "bob", *ANSWERS)
    assert other["sign_before"] == "forbidden"
    assert other["failed"] is False
    assert other["valid"] is True
    assert other["remaining"] == 5
    assert other["signed_with"] == other["address"]
    assert other["wallets"] == {"bob": other["address"]}

    after = call_as_nobody(recovery_children.locked_out, sock, "bob")
    assert after == {"bob": "forbidden", "wallets": {"alice": nobody["address"]}}

    with WalletClient(sock) as root:
        bob_history = root.rotation_history("bob")
        assert [(r.reason, r.actor_uid) for r in bob_history] == [("recovery", OTHER_UID)]
        assert bob_history[0].new_wallet_id == other["address"]
        succeeded = [r for r in root.audit_log("bob") if r.event == "recovery_succeeded"]
        assert len(succeeded) == 1
        assert succeeded[0].detail["old_owner_uid"] == NOBODY.pw_uid
        assert succeeded[0].detail["new_owner_uid"] == OTHER_UID
        assert root.get_wallet_address("alice") == nobody["address"]
    assert proc.stop() == 0


# --------------------------------------------------------------------------- floods


async def test_recovery_flood_does_not_stop_signing(
    start_server: StartServer, make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 slow recovery attempts at once, with recovery_concurrency=2, while another
    connection signs 200 messages: the signer finishes while the flood is still queued."""
    spy = ScryptSpy()
    monkeypatch.setattr(hashlib, "scrypt", spy)
    config = make_config(ephemeral=True, scrypt_n=2**13, max_attempts=1000, recovery_concurrency=2)
    server = await start_server(config)
    flood_size, signatures = 20, 200
    async with AsyncWalletClient(config.socket, timeout=60) as admin:
        await admin.create_wallet("victim")
        await admin.register_ritual("victim", ritual(PROMPTS[:2], ANSWERS[:2]))
        await admin.create_wallet("signer")

    done = 0

    async def attempt() -> None:
        nonlocal done
        async with AsyncWalletClient(config.socket, timeout=60) as c:
            assert not await c.initiate_recovery("victim", WRONG[:2])
        done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(flood_size):
            nursery.start_soon(attempt)
        # Every flood request is now in the daemon: each task waits on a socket, and the
        # daemon's connection tasks on the store, the limiter or a scrypt thread.
        await trio.testing.wait_all_tasks_blocked()
        assert done == 0
        async with AsyncWalletClient(config.socket, timeout=60) as signer:
            for i in range(signatures):
                message = b"message %d" % i
                signature = await signer.sign_message("signer", message)
                assert await signer.verify_signature("signer", message, signature)
        flood_done_when_signer_finished = done
    assert flood_done_when_signer_finished < flood_size
    assert done == flood_size
    assert spy.max_running <= config.recovery_concurrency
    async with AsyncWalletClient(config.socket, timeout=10) as admin:
        assert await admin.get_remaining_attempts("victim") == 1000 - flood_size
    assert wallet_in(server, "signer").signature_count == signatures
