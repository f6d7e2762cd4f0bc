"""The signing policy enforced by a real (in-process) daemon over its socket.

Time is the injected wall clock (``clock``, tests/support.Clock): limits, time windows and the
per-minute aggregation of denial records are driven by advancing it, never by sleeping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import (
    AsyncWalletClient,
    InvalidArgumentError,
    PermissionDeniedError,
    PolicyDeniedError,
    SigningPausedError,
)
from walletd.config import SigningConfig
from walletd.server.serve import Server

from . import policy_children
from .support import Clock, MakeConfig, StartServer, call_as_nobody

ORDERS_ONLY: list[dict[str, Any]] = [
    {"id": "orders", "action": "allow", "match": {"prefix": "order:"}},
    {"id": "rest", "action": "deny", "reason": "orders only"},
]


async def open_client(server: Server) -> AsyncWalletClient:
    return AsyncWalletClient(server.config.socket, timeout=10)


async def test_a_wallet_without_rules_signs_as_before(client: AsyncWalletClient) -> None:
    await client.create_wallet("plain")
    policy = await client.get_signing_policy("plain")
    assert (policy.admin.version, policy.owner.version) == (0, 0)
    assert policy.admin.rules == [] and policy.default == "allow"
    assert await client.sign_message("plain", b"anything")


async def test_owner_rules_decide_and_name_the_rule_never_the_message(
    client: AsyncWalletClient,
) -> None:
    await client.create_wallet("agent")
    await client.set_signing_policy("agent", "owner", ORDERS_ONLY, 0)
    assert await client.sign_message("agent", b"order:1")
    with pytest.raises(PolicyDeniedError) as refused:
        await client.sign_message("agent", b"transfer:secret-content")
    assert "'rest'" in refused.value.message and "owner" in refused.value.message
    assert "secret-content" not in refused.value.message


async def test_compare_and_set_conflicts(client: AsyncWalletClient) -> None:
    await client.create_wallet("cas")
    first = await client.set_signing_policy("cas", "admin", ORDERS_ONLY, 0)
    assert first.admin.version == 1
    with pytest.raises(InvalidArgumentError, match="version 1"):
        await client.set_signing_policy("cas", "admin", [], 0)
    assert (await client.get_signing_policy("cas")).admin.rules == first.admin.rules
    second = await client.set_signing_policy("cas", "admin", [], 1)
    assert second.admin.version == 2 and second.admin.rules == []


# --------------------------------------------------------------------------- layers and uids


@pytest.fixture
async def shared_server(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> Server:
    """An in-process server whose socket other uids can reach."""
    run = open_tmp / "run"
    run.mkdir(mode=0o755)
    run.chmod(0o755)
    config = make_config(ephemeral=True, socket=str(run / "walletd.sock"), socket_mode=0o666)
    started: Server = await start_server(config)
    return started


@pytest.mark.root
async def test_the_owner_cannot_write_the_admin_layer_nor_loosen_it(shared_server: Server) -> None:
    path = shared_server.config.socket
    tried = await trio.to_thread.run_sync(
        lambda: call_as_nobody(policy_children.owner_tries_to_loosen, path, "agent")
    )
    assert tried == {"admin": "forbidden", "owner": ["ok", 1]}
    async with await open_client(shared_server) as admin:
        assert (await admin.get_signing_policy("agent")).admin.version == 0
        await admin.set_signing_policy("agent", "admin", ORDERS_ONLY, 0)
    signed = await trio.to_thread.run_sync(
        lambda: call_as_nobody(policy_children.sign_as_owner, path, "agent", "order:1")
    )
    assert signed[0] == "ok"
    # The owner's allow-everything rule does not loosen the admin's deny.
    refused = await trio.to_thread.run_sync(
        lambda: call_as_nobody(policy_children.sign_as_owner, path, "agent", "transfer")
    )
    assert refused[0] == "policy_denied" and "admin layer" in refused[1]
    paused = await trio.to_thread.run_sync(
        lambda: call_as_nobody(policy_children.owner_pauses, path)
    )
    assert paused[0] == "forbidden"


async def test_the_owner_layer_tightens_what_the_admin_allows(client: AsyncWalletClient) -> None:
    await client.create_wallet("w")
    await client.set_signing_policy("w", "admin", [{"id": "all", "action": "allow"}], 0)
    await client.set_signing_policy(
        "w", "owner", [{"id": "no-big", "action": "deny", "match": {"prefix": "big:"}}], 0
    )
    assert await client.sign_message("w", b"small:1")
    with pytest.raises(PolicyDeniedError, match="'no-big' of the owner layer"):
        await client.sign_message("w", b"big:1")


async def test_review_is_refused_until_approvals_exist(client: AsyncWalletClient) -> None:
    await client.create_wallet("r")
    await client.set_signing_policy("r", "admin", [{"id": "ask", "action": "review"}], 0)
    explained = await client.explain_signing("r", b"x")
    assert (explained.action, explained.rule_id) == ("review", "ask")
    with pytest.raises(PolicyDeniedError, match="review"):
        await client.sign_message("r", b"x")


async def test_default_deny_refuses_wallets_without_rules(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(ephemeral=True, signing=SigningConfig(default="deny")))
    async with await open_client(server) as c:
        await c.create_wallet("d")
        with pytest.raises(PolicyDeniedError, match="default"):
            await c.sign_message("d", b"x")
        await c.set_signing_policy("d", "admin", ORDERS_ONLY[:1], 0)
        await c.set_signing_policy("d", "owner", ORDERS_ONLY[:1], 0)
        assert await c.sign_message("d", b"order:1")


# --------------------------------------------------------------------------- bad documents

BAD_DOCUMENTS: list[tuple[str, Any]] = [
    ("not a map", ["allow"]),
    ("unknown field", [{"id": "a", "action": "allow", "colour": "red"}]),
    ("wrong type", [{"id": "a", "action": "allow", "match": {"max_bytes": "big"}}]),
    ("bad pattern", [{"id": "a", "action": "allow", "match": {"pattern": "(a"}}]),
    ("backreference", [{"id": "a", "action": "allow", "match": {"pattern": "(a)\\1"}}]),
    ("negative count", [{"id": "a", "action": "allow", "limit": {"count": -1, "window_s": 60}}]),
    ("zero window", [{"id": "a", "action": "allow", "limit": {"count": 1, "window_s": 0}}]),
    (
        "impossible window",
        [{"id": "a", "action": "allow", "when": {"not_before": 200, "not_after": 100}}],
    ),
    ("bad weekday", [{"id": "a", "action": "allow", "when": {"weekly": [{"days": ["xyz"]}]}}]),
    ("limit on deny", [{"id": "a", "action": "deny", "limit": {"count": 1, "window_s": 60}}]),
    ("duplicate id", [{"id": "a", "action": "allow"}, {"id": "a", "action": "deny"}]),
    ("unknown action", [{"id": "a", "action": "maybe"}]),
    ("too many rules", [{"id": f"r{i}", "action": "allow"} for i in range(65)]),
    ("bad id", [{"id": "", "action": "allow"}]),
]


@pytest.mark.parametrize(("what", "rules"), BAD_DOCUMENTS, ids=[b[0] for b in BAD_DOCUMENTS])
async def test_bad_documents_are_invalid_argument_and_change_nothing(
    client: AsyncWalletClient, what: str, rules: Any
) -> None:
    await client.create_wallet("bad")
    before = await client.set_signing_policy("bad", "owner", ORDERS_ONLY, 0)
    with pytest.raises(InvalidArgumentError, match="invalid signing policy"):
        await client.set_signing_policy("bad", "owner", rules, 1)
    after = await client.get_signing_policy("bad")
    assert after.owner == before.owner
    assert await client.sign_message("bad", b"order:still")


async def test_a_bad_layer_name_is_invalid_argument(client: AsyncWalletClient) -> None:
    await client.create_wallet("l")
    with pytest.raises(InvalidArgumentError, match="layer"):
        await client.set_signing_policy("l", "root", [], 0)
