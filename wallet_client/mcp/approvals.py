"""Adapters to the signing policy and approvals (issues 15 and 16), which the tools use.

The daemon and clients gain ``explain_signing``, pending results and ``await_approval`` in
their own change; until then this module is the only place that knows their shape, so the
tools of walletd-mcp need no change when they land:

- :func:`pending_result`: a signing call's return value, when it is a pending approval
  (an object with ``approval_id`` and ``expires_at``, the clients' ``PendingApproval``), as
  the tool result ``{status: "pending_approval", approval_id, expires_at, how_to_approve}``;
- :func:`explain`: the dry run, through the client's ``explain_signing`` when it has one;
- :func:`await_decision`: ``await_approval(approval_id, timeout_s)``, which returns the
  signature once approved and raises ``ApprovalDeniedError`` / ``ApprovalTimeoutError``
  (matched here by wire code, as the exception classes are not on main yet).

A client without the method answers ``unsupported`` (a tool error, not retryable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from wallet_client.aio import AsyncWalletClient
from wallet_client.errors import WalletError

from .failures import UNSUPPORTED, ToolFailure, failure_from

__all__ = ["HOW_TO_APPROVE", "await_decision", "explain", "pending_result"]

HOW_TO_APPROVE: Final = "walletctl approvals approve {approval_id}"

# Wire codes an unfinished wait may carry (issue 16 names the exceptions, not yet the codes).
_STILL_PENDING: Final = frozenset({"approval_timeout", "timeout"})


def pending_result(value: object) -> dict[str, Any] | None:
    """The tool result for a held signature, or None when ``value`` is no pending approval."""
    approval_id = getattr(value, "approval_id", None)
    expires_at = getattr(value, "expires_at", None)
    if approval_id is None or expires_at is None:
        return None
    return {
        "status": "pending_approval",
        "approval_id": str(approval_id),
        "expires_at": float(expires_at),
        "how_to_approve": HOW_TO_APPROVE.format(approval_id=approval_id),
    }


async def explain(
    client: AsyncWalletClient,
    user_id: str,
    *,
    message: bytes | None,
    typed_data: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The daemon's decision for a request it is not asked to sign, as plain data."""
    method = getattr(client, "explain_signing", None)
    if method is None:
        raise ToolFailure(UNSUPPORTED, "this walletd has no signing policy to explain yet")
    op = "sign_typed_data" if typed_data is not None else "sign_message"
    subject: dict[str, Any] = (
        {"typed_data": dict(typed_data)} if typed_data is not None else {"message": message}
    )
    try:
        decision = await method(user_id, op=op, **subject)
    except WalletError as exc:
        raise failure_from(exc) from None
    plain = msgspec.to_builtins(decision)
    return plain if isinstance(plain, dict) else {"decision": plain}


async def await_decision(
    client: AsyncWalletClient, approval_id: str, timeout_s: float
) -> bytes | None:
    """The signature once a person approves; None while still pending after ``timeout_s``.

    The wait gets a connection of its own: the daemon holds a waiting request on its
    connection, and the other tools must not queue behind it.
    """
    if getattr(client, "await_approval", None) is None:
        raise ToolFailure(UNSUPPORTED, "this walletd has no approvals yet")
    try:
        async with AsyncWalletClient(client.socket_path, timeout=timeout_s + 10) as waiter:
            signature = await waiter.await_approval(approval_id, timeout_s)
    except WalletError as exc:
        if exc.code in _STILL_PENDING:
            return None
        raise failure_from(exc) from None
    return bytes(signature)
