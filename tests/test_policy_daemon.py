"""The signing policy enforced by a real (in-process) daemon over its socket.

Time is the injected wall clock (``clock``, tests/support.Clock): limits, time windows and the
per-minute aggregation of denial records are driven by advancing it, never by sleeping.
"""

from __future__ import annotations

from typing import Any

import pytest

from wallet_client import (
    AsyncWalletClient,
    InvalidArgumentError,
    PermissionDeniedError,
    PolicyDeniedError,
    SigningPausedError,
)
from walletd.server.serve import Server

from .support import Clock, MakeConfig, StartServer

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
