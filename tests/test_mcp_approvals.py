"""The approval adapters' result shapes, ahead of the daemon's approvals (issue 16).

The daemon cannot hold a signature yet, so these tests stand in for the *client* at the seam
the adapters define (a signing call that returns an object with ``approval_id`` and
``expires_at``, and an ``await_approval`` method), and check what walletd-mcp makes of it
through the SDK's client: a pending approval is a normal result (``isError`` false, valid
against the output schema), a denial is a tool error. When the ops land, these become tests
against the real daemon (see the report of issue 17).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from mcp import Client

from wallet_client import AsyncWalletClient
from wallet_client.errors import WalletError
from wallet_client.mcp.approvals import pending_result
from wallet_client.mcp.server import build_server
from wallet_client.mcp.tools import WalletTools
from walletd.server.serve import Server


@dataclass
class PendingApproval:
    approval_id: str
    expires_at: float


class HeldClient(AsyncWalletClient):
    """A client whose signatures are held for approval, as issue 16's clients return them."""

    decisions: dict[str, bytes | str] = {}

    async def sign_message_detailed(self, *args: Any, **kwargs: Any) -> Any:
        return PendingApproval("ap-1", 1_900_000_000.0)

    async def await_approval(self, approval_id: str, timeout_s: float = 30.0) -> bytes:
        decision = self.decisions.get(approval_id, "approval_timeout")
        if isinstance(decision, bytes):
            return decision
        raise WalletError("decided", code=decision)


@pytest.fixture
async def held(server: Server) -> AsyncIterator[HeldClient]:
    client = HeldClient(server.config.socket, timeout=10)
    async with client:
        yield client


def test_pending_result_shape() -> None:
    assert pending_result(PendingApproval("ap-9", 12.5)) == {
        "status": "pending_approval",
        "approval_id": "ap-9",
        "expires_at": 12.5,
        "how_to_approve": "walletctl approvals approve ap-9",
    }
    assert pending_result(b"a signature") is None


async def test_pending_is_a_result_not_an_error(held: HeldClient, monkeypatch: Any) -> None:
    await held.create_wallet("agent", "ed25519")
    # The wait opens its own connection with the plain client class: route it to ours.
    monkeypatch.setattr("wallet_client.mcp.approvals.AsyncWalletClient", HeldClient)
    async with Client(build_server(WalletTools(held))) as client:
        args = {"user_id": "agent", "message": "m", "purpose": "p"}
        result = await client.call_tool("wallet_sign_message", args)
        assert result.is_error is False
        assert result.structured_content is not None
        assert result.structured_content["status"] == "pending_approval"
        waited = await client.call_tool("wallet_wait_for_approval", {"approval_id": "ap-1"})
        assert waited.is_error is False
        assert waited.structured_content is not None
        assert waited.structured_content["status"] == "pending_approval"
        HeldClient.decisions["ap-1"] = b"\x01" * 64
        approved = await client.call_tool("wallet_approval_status", {"approval_id": "ap-1"})
        assert approved.structured_content is not None
        assert approved.structured_content["status"] == "signed"
        assert approved.structured_content["signature"] == "01" * 64
        HeldClient.decisions["ap-2"] = "approval_denied"
        denied = await client.call_tool("wallet_approval_status", {"approval_id": "ap-2"})
        assert denied.is_error is True
        assert denied.structured_content is not None
        assert denied.structured_content["error"]["code"] == "approval_denied"
        assert denied.structured_content["error"]["retryable"] is False
