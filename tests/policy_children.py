"""Client code for the signing-policy tests, run in a child under another uid.

As in tests/children.py: each function takes the socket path and strings, imports only the
client, and returns plain JSON values (see tests.support.call_as).
"""

from __future__ import annotations

from typing import Any

from wallet_client import WalletClient, errors

ALLOW_EVERYTHING: list[dict[str, Any]] = [{"id": "anything", "action": "allow"}]


def _outcome(call: Any) -> list[Any]:
    try:
        return ["ok", call()]
    except errors.WalletError as exc:
        return [exc.code, exc.message]


def owner_tries_to_loosen(socket_path: str, user_id: str) -> dict[str, Any]:
    """Create a wallet, try to write its admin layer, write an allow-everything owner layer."""
    with WalletClient(socket_path) as c:
        c.create_wallet(user_id)
        admin = _outcome(lambda: c.set_signing_policy(user_id, "admin", ALLOW_EVERYTHING, 0).admin)
        owner = _outcome(
            lambda: c.set_signing_policy(user_id, "owner", ALLOW_EVERYTHING, 0).owner.version
        )
        return {"admin": admin[0], "owner": owner}


def sign_as_owner(socket_path: str, user_id: str, message: str) -> list[Any]:
    """[code, message] of signing ``message``: "ok" and the signature's hex when it signs."""
    with WalletClient(socket_path) as c:
        return _outcome(lambda: c.sign_message(user_id, message.encode()).hex())


def owner_pauses(socket_path: str) -> list[Any]:
    """An owner (not an admin) trying the kill switch."""
    with WalletClient(socket_path) as c:
        return _outcome(lambda: len(c.pause_signing()))
