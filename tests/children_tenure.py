"""Children for tests/test_ownership_waits.py, run under another uid by tests.support.call_as.

Only the client is imported (the child imports this as root before dropping privileges).
"""

from __future__ import annotations

from collections.abc import Callable

from wallet_client import RitualStep, WalletClient, errors, hash_response


def recover(socket_path: str, user_id: str, answer: str) -> str | list[str]:
    """Recover ``user_id`` with ``answer``: the new address, or the error's code."""
    with WalletClient(socket_path) as c:
        try:
            return c.recover(user_id, [answer])
        except errors.WalletError as exc:
            return ["error", exc.code]


def recreate_and_probe(socket_path: str, user_id: str, old_backup_id: str) -> dict[str, object]:
    """Create ``user_id`` afresh as this uid; what its owner can see of the old wallet."""
    out: dict[str, object] = {}
    with WalletClient(socket_path) as c:
        c.create_wallet(user_id)
        c.register_ritual(user_id, [RitualStep("colour?", hash_response("red"))])
        mine = c.create_backup(user_id)["backup_id"]
        listed = c.list_backups(user_id)
        out["listed"] = [b["backup_id"] for b in listed]
        out["problems"] = [p["backup_id"] for p in listed.problems]
        out["mine"] = mine
        out["history"] = [[r.reason, r.actor_uid] for r in c.rotation_history(user_id)]
        calls: list[tuple[str, Callable[[], bool]]] = [
            ("verify", lambda: c.verify_backup(user_id, old_backup_id)),
            ("delete", lambda: c.delete_backup(user_id, old_backup_id)),
        ]
        for name, call in calls:
            try:
                out[name] = ["ok", call()]
            except errors.WalletError as exc:
                out[name] = ["error", exc.code]
    return out
