"""What one uid may see and do of records it does not own: audit, backups, rotation history.

Children for tests/test_audit.py, tests/test_backups.py and tests/test_rotation.py, run
under another uid by :func:`tests.support.call_as`. As in tests/children.py: each function
takes the socket path and strings, imports only the client (the child imports this module
as root, before it drops privileges) and returns plain JSON values.
"""

from __future__ import annotations

from collections.abc import Callable

from wallet_client import WalletClient, errors

# A backup id no wallet has (32 hex digits, like the daemon's own).
NO_SUCH_BACKUP = "f" * 32


def _allowed_or_code(call: Callable[[], object], allowed: str = "allowed") -> str:
    """``allowed`` when ``call`` returns, the error code when the daemon refuses it."""
    try:
        call()
    except errors.WalletError as exc:
        return exc.code
    return allowed


# --------------------------------------------------------------------------- audit


def keep_one_delete_one(socket_path: str, kept: str, deleted: str) -> None:
    """Create and rotate ``kept``; create and delete ``deleted`` (its user id is then free)."""
    with WalletClient(socket_path) as c:
        c.create_wallet(kept)
        c.rotate_keys(kept)
        c.create_wallet(deleted)
        c.delete_wallet(deleted)


def _audit_seen(c: WalletClient, other: str) -> dict[str, object]:
    return {
        "all": [[r.user_id, r.event, r.actor_uid] for r in c.audit_log()],
        "audit_verify": _allowed_or_code(c.audit_verify),
        "audit_log_other": _allowed_or_code(lambda: c.audit_log(other)),
    }


def audit_seen(socket_path: str, other: str) -> dict[str, object]:
    """The audit records this uid is shown ("all": [user_id, event, actor_uid] each), and
    what audit_verify and audit_log of ``other``'s wallet answer ("allowed" or the code)."""
    with WalletClient(socket_path) as c:
        return _audit_seen(c, other)


def take_over_then_audit(socket_path: str, user_id: str, other: str) -> dict[str, object]:
    """Create and rotate ``user_id`` (free again after a delete), then :func:`audit_seen`
    on the same connection."""
    with WalletClient(socket_path) as c:
        c.create_wallet(user_id)
        c.rotate_keys(user_id)
        return _audit_seen(c, other)


# --------------------------------------------------------------------------- backups


def create_with_backup(socket_path: str, user_id: str) -> str:
    """Create ``user_id`` and one backup of it: the backup id."""
    with WalletClient(socket_path) as c:
        c.create_wallet(user_id)
        backup_id: str = c.create_backup(user_id)["backup_id"]
        return backup_id


def backups_and_problems(socket_path: str, user_id: str) -> list[list[str]]:
    """[ids of ``user_id``'s backups as listed, sorted ids of the problems shown]."""
    with WalletClient(socket_path) as c:
        listed = c.list_backups(user_id)
        return [[b["backup_id"] for b in listed], sorted(p["backup_id"] for p in listed.problems)]


def every_family_on(socket_path: str, user_id: str, backup_id: str) -> dict[str, object]:
    """Every operation family on another uid's ``user_id``: "allowed" or the refusal's code;
    "audit_log_all" is how many audit records this uid is shown."""
    with WalletClient(socket_path) as c:
        u = user_id
        ops: dict[str, Callable[[], object]] = {
            "sign_message": lambda: c.sign_message(u, b"x"),
            "delete_wallet": lambda: c.delete_wallet(u),
            "rotate_keys": lambda: c.rotate_keys(u),
            "rotation_status": lambda: c.rotation_status(u),
            "needs_rotation": lambda: c.needs_rotation(u),
            "rotation_history": lambda: c.rotation_history(u),
            "get_policy": lambda: c.get_policy(u),
            "set_policy": lambda: c.set_policy(u, max_signatures=1),
            "backup_wallet": lambda: c.backup_wallet(u),
            "create_backup": lambda: c.create_backup(u),
            "list_backups": lambda: c.list_backups(u),
            "verify_backup": lambda: c.verify_backup(u, backup_id),
            "delete_backup": lambda: c.delete_backup(u, backup_id),
            "audit_log_of_wallet": lambda: c.audit_log(u),
            "audit_verify": c.audit_verify,
        }
        result: dict[str, object] = {name: _allowed_or_code(op) for name, op in ops.items()}
        result["audit_log_all"] = len(c.audit_log())
    return result


def backup_ops_codes(socket_path: str, user_id: str) -> list[str]:
    """list_backups, verify_backup and delete_backup (of :data:`NO_SUCH_BACKUP`) on
    ``user_id``: "ok" or the error code of each."""
    with WalletClient(socket_path) as c:
        return [
            _allowed_or_code(lambda: c.list_backups(user_id), "ok"),
            _allowed_or_code(lambda: c.verify_backup(user_id, NO_SUCH_BACKUP), "ok"),
            _allowed_or_code(lambda: c.delete_backup(user_id, NO_SUCH_BACKUP), "ok"),
        ]


# --------------------------------------------------------------------------- rotation


def _history(c: WalletClient, user_id: str) -> list[list[str]]:
    return [[r.old_wallet_id, r.new_wallet_id] for r in c.rotation_history(user_id)]


def rotate_twice_then_delete(socket_path: str, user_id: str) -> list[list[str]]:
    """Create ``user_id``, rotate it twice, delete it: the rotation history this uid still
    reads, [old_wallet_id, new_wallet_id] each."""
    with WalletClient(socket_path) as c:
        c.create_wallet(user_id)
        c.rotate_keys(user_id)
        c.rotate_keys(user_id)
        c.delete_wallet(user_id)
        return _history(c, user_id)


def create_rotate_history(socket_path: str, user_id: str) -> list[list[str]]:
    """Create ``user_id`` and rotate it once: the rotation history this uid reads."""
    with WalletClient(socket_path) as c:
        c.create_wallet(user_id)
        c.rotate_keys(user_id)
        return _history(c, user_id)
