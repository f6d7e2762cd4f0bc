"""Client code for the approval tests, run in children under other uids (tests.support.call_as).

Each function takes the socket path and strings, imports only the client, and returns plain
JSON values: ``[code, detail]`` pairs, "ok" when the call succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wallet_client import PendingApproval, WalletClient, errors
from walletd_wire.approvals import LeaseSpec


def _outcome(call: Callable[[], Any]) -> list[Any]:
    try:
        return ["ok", call()]
    except PendingApproval as held:
        return ["pending", held.approval_id]
    except errors.ApprovalTimeoutError as exc:
        return [exc.code, exc.approval_id]
    except errors.WalletError as exc:
        return [exc.code, exc.message]


def create(socket_path: str, user_id: str) -> str:
    with WalletClient(socket_path) as c:
        return c.create_wallet(user_id)


def sign(socket_path: str, user_id: str, message: str, wait: str = "") -> list[Any]:
    """Sign once: ["ok", hex] | ["pending", approval_id] | [code, message]."""
    with WalletClient(socket_path) as c:
        return _outcome(
            lambda: c.sign_message(
                user_id, message.encode(), wait=float(wait) if wait else None
            ).hex()
        )


def sign_wait_then_sign_again(socket_path: str, user_id: str, message: str) -> list[Any]:
    """One process: ask (held), wait for the decision, then ask again (a lease may cover it)."""
    with WalletClient(socket_path) as c:
        first = _outcome(lambda: c.sign_message(user_id, message.encode()).hex())
        if first[0] != "pending":
            return [first]
        got = _outcome(lambda: c.await_approval(first[1], 60).hex())
        again = _outcome(lambda: c.sign_message(user_id, message.encode()).hex())
        return [first, got, again]


def await_it(socket_path: str, approval_id: str, timeout_s: str = "5") -> list[Any]:
    with WalletClient(socket_path, timeout=120) as c:
        return _outcome(lambda: c.await_approval(approval_id, float(timeout_s)).hex())


def approve(socket_path: str, approval_id: str, scope: str = "", ttl: str = "") -> list[Any]:
    lease = LeaseSpec(scope=scope, ttl_s=float(ttl) if ttl else None) if scope else None
    with WalletClient(socket_path) as c:
        return _outcome(lambda: c.approve(approval_id, lease=lease).approval_id)


def deny(socket_path: str, approval_id: str, reason: str) -> list[Any]:
    with WalletClient(socket_path) as c:
        return _outcome(lambda: c.deny(approval_id, reason=reason).approval_id)


def pending_ids(socket_path: str) -> list[str]:
    with WalletClient(socket_path) as c:
        return [p.approval_id for p in c.list_pending()]


def lease_ids(socket_path: str) -> list[str]:
    with WalletClient(socket_path) as c:
        return [ls.lease_id for ls in c.list_leases()]


def revoke(socket_path: str, lease_id: str) -> list[Any]:
    with WalletClient(socket_path) as c:
        return _outcome(lambda: c.revoke_lease(lease_id).uses)
