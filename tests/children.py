"""Client code that tests run in a child process under another uid (tests/run_as.py).

Each function takes the daemon's socket path (and string arguments) and returns plain JSON
values; :func:`tests.support.call_as` runs one as ``module:function`` in a child that has
dropped to the given uid, so the daemon sees that uid in the peer credentials. Written as
functions (not strings handed to ``exec``) so they are type-checked, linted and importable.

Only the client is imported here: the child imports this module as root, before it drops
privileges, and must not need anything the other uid cannot read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from wallet_client import RitualStep, WalletClient, errors, hash_response


def hello_or_refusal(socket_path: str) -> str | list[str]:
    """ "ok", or the refusal's exception class and code."""
    with WalletClient(socket_path) as c:
        try:
            c.hello()
        except errors.WalletError as exc:
            return [type(exc).__name__, exc.code]
        return "ok"


def refused_on_root_owned(socket_path: str, user_id: str) -> list[Any]:
    """Sign with and reset another uid's wallet; then show the same connection goes on."""
    out: list[Any] = []
    with WalletClient(socket_path) as c:
        calls: list[Callable[[], object]] = [
            lambda: c.sign_message(user_id, b"x"),
            lambda: c.reset_attempts(user_id),
        ]
        for call in calls:
            try:
                call()
                out.append("ok")
            except errors.WalletError as exc:
                out.append([exc.code, exc.message])
        out.append(c.hello().protocol)
    return out


def wallets_with_rituals_and_backups(socket_path: str, *user_ids: str) -> dict[str, str]:
    """Create each wallet with a ritual and a backup; user_id -> backup id."""
    result: dict[str, str] = {}
    with WalletClient(socket_path) as c:
        for u in user_ids:
            c.create_wallet(u)
            c.register_ritual(u, [RitualStep("colour?", hash_response("blue"))])
            result[u] = c.create_backup(u)["backup_id"]
    return result


# Every operation, reads first and destructive ones last: (name, call(client, user_id, backup_id)).
MATRIX: list[tuple[str, Callable[[WalletClient, str, str], object]]] = [
    ("get_wallet_address", lambda c, u, backup: c.get_wallet_address(u)),
    ("has_wallet", lambda c, u, backup: c.has_wallet(u)),
    ("sign_message", lambda c, u, backup: c.sign_message(u, b"m")),
    ("verify_signature", lambda c, u, backup: c.verify_signature(u, b"m", b"x" * 32)),
    ("sign_batch", lambda c, u, backup: c.sign_batch(u, [b"a", b"b"])),
    ("verify_batch", lambda c, u, backup: c.verify_batch(u, [(b"a", b"x" * 32)])),
    ("needs_rotation", lambda c, u, backup: c.needs_rotation(u)),
    ("rotation_status", lambda c, u, backup: c.rotation_status(u)),
    ("rotation_history", lambda c, u, backup: c.rotation_history(u)),
    ("get_policy", lambda c, u, backup: c.get_policy(u)),
    ("backup_wallet", lambda c, u, backup: c.backup_wallet(u)),
    ("list_backups", lambda c, u, backup: c.list_backups(u)),
    ("verify_backup", lambda c, u, backup: c.verify_backup(u, backup)),
    ("audit_log", lambda c, u, backup: c.audit_log(u)),
    ("has_ritual", lambda c, u, backup: c.has_ritual(u)),
    ("get_prompts", lambda c, u, backup: c.get_prompts(u)),
    ("get_remaining_attempts", lambda c, u, backup: c.get_remaining_attempts(u)),
    ("is_locked", lambda c, u, backup: c.is_locked(u)),
    ("initiate_recovery", lambda c, u, backup: c.initiate_recovery(u, [hash_response("wrong")])),
    ("reset_attempts", lambda c, u, backup: c.reset_attempts(u)),
    ("audit_verify", lambda c, u, backup: c.audit_verify()),
    ("set_policy", lambda c, u, backup: c.set_policy(u, max_signatures=500)),
    ("rotate_keys", lambda c, u, backup: c.rotate_keys(u)),
    ("create_backup", lambda c, u, backup: c.create_backup(u, {"by": "matrix"})),
    ("delete_backup", lambda c, u, backup: c.delete_backup(u, backup)),
    (
        "register_ritual",
        lambda c, u, backup: c.register_ritual(u, [RitualStep("q?", hash_response("a"))]),
    ),
    ("unregister_ritual", lambda c, u, backup: c.unregister_ritual(u)),
    ("delete_wallet", lambda c, u, backup: c.delete_wallet(u)),
]
MATRIX_OPS = [name for name, _ in MATRIX]


def authz_matrix(socket_path: str, user_id: str, backup_id: str) -> dict[str, object]:
    """Every operation on ``user_id``'s wallet: "ok" or the error code of its refusal."""
    with WalletClient(socket_path, timeout=20) as c:
        result: dict[str, object] = {"list_wallets_sees_target": user_id in c.list_wallets()}
        for name, call in MATRIX:
            try:
                call(c, user_id, backup_id)
                result[name] = "ok"
            except errors.WalletError as exc:
                result[name] = exc.code
    return result


def own_wallets_and_count(socket_path: str) -> list[Any]:
    """The wallets list_wallets shows, and the count status reports."""
    with WalletClient(socket_path) as c:
        return [sorted(c.list_wallets()), c.status().wallets]


# --------------------------------------------------------------------------- own wallets


def create_wallets(socket_path: str, *user_ids: str) -> dict[str, str]:
    """Create each wallet as this uid; user_id -> address."""
    with WalletClient(socket_path) as c:
        return {u: c.create_wallet(u) for u in user_ids}


def create_and_sign(socket_path: str, user_id: str, message: str) -> str:
    """Create ``user_id`` as this uid and sign ``message`` with it: the signature's hex."""
    with WalletClient(socket_path) as c:
        c.create_wallet(user_id)
        return c.sign_message(user_id, message.encode()).hex()


def sign_and_list(socket_path: str, user_id: str, message: str) -> list[Any]:
    """[signature hex of ``message``, the sorted user ids list_wallets shows this uid]."""
    with WalletClient(socket_path) as c:
        return [c.sign_message(user_id, message.encode()).hex(), sorted(c.list_wallets())]


def address_and_signature(socket_path: str, user_id: str, message: str) -> list[str | None]:
    """[``user_id``'s address, the hex of its signature of ``message``]."""
    with WalletClient(socket_path) as c:
        return [c.get_wallet_address(user_id), c.sign_message(user_id, message.encode()).hex()]


def sign_or_permission_code(socket_path: str, user_id: str) -> str:
    """ "signed", or the code of the PermissionDeniedError signing with ``user_id`` raised
    (any other error fails the child)."""
    with WalletClient(socket_path) as c:
        try:
            c.sign_message(user_id, b"x")
        except errors.PermissionDeniedError as exc:
            return exc.code
        return "signed"


def own_and_others(
    socket_path: str, mine_json: str, theirs_json: str, create: str
) -> dict[str, Any]:
    """Create (when ``create`` is "1") and sign with the wallets of ``mine_json`` (a JSON list
    of user ids), try to sign with those of ``theirs_json``; report addresses, signatures
    (hex), what each of theirs answered ("signed" or the error code) and list_wallets."""
    mine: list[str] = json.loads(mine_json)
    theirs: list[str] = json.loads(theirs_json)
    addresses: dict[str, str | None] = {}
    signatures: dict[str, str] = {}
    answered: dict[str, str] = {}
    with WalletClient(socket_path) as c:
        for user in mine:
            addresses[user] = c.create_wallet(user) if create == "1" else c.get_wallet_address(user)
            signatures[user] = c.sign_message(user, b"probe " + user.encode()).hex()
        for user in theirs:
            try:
                c.sign_message(user, b"x")
                answered[user] = "signed"
            except errors.WalletError as exc:
                answered[user] = exc.code
        listed = c.list_wallets()
    return {
        "addresses": addresses,
        "signatures": signatures,
        "theirs": answered,
        "listed": listed,
    }
