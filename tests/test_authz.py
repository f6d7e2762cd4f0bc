"""Who may do what: the authorization matrix, over a real socket, with real uids.

Roles: the wallet's owner (nobody), another uid, root (admin), a member of ``admin_group``,
a uid outside ``allowed_uids``, and a uid the socket's mode keeps out. Each role runs every
operation in a child process under its own uid (see tests/run_as.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wallet_client import WalletClient

from .support import NOBODY, DaemonFactory, DaemonProcess, run_as

OTHER_UID = 65533
GROUP_ADMIN_UID, ADMIN_GID = 65532, 65532

# Every operation, reads first and destructive ones last. Each returns "ok" or the error code.
MATRIX_CODE = """
c = WalletClient(ARGS[0], timeout=20)
u, backup_id = ARGS[1], ARGS[2]
def attempt(fn):
    try:
        fn()
        return "ok"
    except errors.WalletError as e:
        return e.code
ops = [
    ("get_wallet_address", lambda: c.get_wallet_address(u)),
    ("has_wallet", lambda: c.has_wallet(u)),
    ("sign_message", lambda: c.sign_message(u, b"m")),
    ("verify_signature", lambda: c.verify_signature(u, b"m", b"x" * 32)),
    ("sign_batch", lambda: c.sign_batch(u, [b"a", b"b"])),
    ("verify_batch", lambda: c.verify_batch(u, [(b"a", b"x" * 32)])),
    ("needs_rotation", lambda: c.needs_rotation(u)),
    ("rotation_status", lambda: c.rotation_status(u)),
    ("rotation_history", lambda: c.rotation_history(u)),
    ("get_policy", lambda: c.get_policy(u)),
    ("backup_wallet", lambda: c.backup_wallet(u)),
    ("list_backups", lambda: c.list_backups(u)),
    ("verify_backup", lambda: c.verify_backup(u, backup_id)),
    ("audit_log", lambda: c.audit_log(u)),
    ("has_ritual", lambda: c.has_ritual(u)),
    ("get_prompts", lambda: c.get_prompts(u)),
    ("get_remaining_attempts", lambda: c.get_remaining_attempts(u)),
    ("is_locked", lambda: c.is_locked(u)),
    ("initiate_recovery", lambda: c.initiate_recovery(u, [hash_response("wrong")])),
    ("reset_attempts", lambda: c.reset_attempts(u)),
    ("audit_verify", lambda: c.audit_verify()),
    ("set_policy", lambda: c.set_policy(u, max_signatures=500)),
    ("rotate_keys", lambda: c.rotate_keys(u)),
    ("create_backup", lambda: c.create_backup(u, {"by": "matrix"})),
    ("delete_backup", lambda: c.delete_backup(u, backup_id)),
    ("register_ritual", lambda: c.register_ritual(u, [RitualStep("q?", hash_response("a"))])),
    ("unregister_ritual", lambda: c.unregister_ritual(u)),
    ("delete_wallet", lambda: c.delete_wallet(u)),
]
result = {"list_wallets_sees_target": u in c.list_wallets()}
result.update((name, attempt(fn)) for name, fn in ops)
"""

ANY_PEER = {"has_ritual", "get_prompts", "get_remaining_attempts", "is_locked", "initiate_recovery"}
ADMIN_ONLY = {"reset_attempts", "audit_verify"}
OPS = [line.split('"')[1] for line in MATRIX_CODE.splitlines() if line.startswith('    ("')]

SETUP_CODE = """
c = WalletClient(ARGS[0])
result = {}
for u in ARGS[1:]:
    c.create_wallet(u)
    c.register_ritual(u, [RitualStep("colour?", hash_response("blue"))])
    result[u] = c.create_backup(u)["backup_id"]
"""


def _expected(role: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for op in OPS:
        if role in ("owner",) and op in ADMIN_ONLY:
            out[op] = "forbidden"
        elif role == "other" and op not in ANY_PEER:
            out[op] = "forbidden"
        else:
            out[op] = "ok"
    out["list_wallets_sees_target"] = role != "other"
    return out


@pytest.fixture
def served(daemon: DaemonFactory) -> Iterator[Served]:
    proc = daemon("--admin-group", str(ADMIN_GID)).start()
    targets = ["w-owner", "w-other", "w-root", "w-group"]
    backups = run_as(
        NOBODY.pw_uid, NOBODY.pw_gid, SETUP_CODE, args=[str(proc.socket_path), *targets]
    )
    yield proc, backups
    assert proc.stop() == 0


# The daemon and, for each target wallet, the id of the backup made as its owner.
Served = tuple[DaemonProcess, dict[str, str]]


def _run_matrix(sock: Path, uid: int, gid: int, target: str, backup_id: str) -> dict[str, object]:
    result: dict[str, object] = run_as(uid, gid, MATRIX_CODE, args=[str(sock), target, backup_id])
    return result


def test_owner_may_do_everything_but_admin_ops(served: Served) -> None:
    proc, backups = served
    got = _run_matrix(proc.socket_path, NOBODY.pw_uid, NOBODY.pw_gid, "w-owner", backups["w-owner"])
    assert got == _expected("owner")


def test_other_uid_is_refused_everything_but_recovery(served: Served) -> None:
    proc, backups = served
    got = _run_matrix(proc.socket_path, OTHER_UID, OTHER_UID, "w-other", backups["w-other"])
    assert got == _expected("other")
    # ...and nothing changed: the owner still has the wallet, the backup and the ritual.
    with WalletClient(proc.socket_path) as root:
        assert root.has_wallet("w-other")
        assert root.verify_backup("w-other", backups["w-other"]) is True
        assert root.has_ritual("w-other")
        assert root.rotation_history("w-other") == []


def test_root_is_admin(served: Served) -> None:
    proc, backups = served
    got = _run_matrix(proc.socket_path, 0, 0, "w-root", backups["w-root"])
    assert got == _expected("admin")


def test_admin_group_member_is_admin(served: Served) -> None:
    proc, backups = served
    got = _run_matrix(proc.socket_path, GROUP_ADMIN_UID, ADMIN_GID, "w-group", backups["w-group"])
    assert got == _expected("admin")


def test_list_and_status_show_only_own_wallets(served: Served) -> None:
    proc, _ = served
    with WalletClient(proc.socket_path) as root:
        root.create_wallet("root-own")
        assert {"root-own", "w-owner"} <= set(root.list_wallets())  # admin sees all
    code = "c = WalletClient(ARGS[0])\nresult = [sorted(c.list_wallets()), c.status().wallets]"
    nobody_view = run_as(NOBODY.pw_uid, NOBODY.pw_gid, code, args=[str(proc.socket_path)])
    assert nobody_view == [["w-group", "w-other", "w-owner", "w-root"], 4]
    assert run_as(OTHER_UID, OTHER_UID, code, args=[str(proc.socket_path)]) == [[], 0]


def test_uid_outside_allowed_uids_is_refused_at_accept(
    daemon: DaemonFactory, open_tmp: Path
) -> None:
    config = open_tmp / "walletd.toml"
    config.write_text(f"allowed_uids = [{NOBODY.pw_uid}]\n")
    proc = daemon("--config", str(config)).start()
    probe = (
        "c = WalletClient(ARGS[0])\n"
        "try:\n    c.hello(); result = 'ok'\n"
        "except errors.WalletError as e:\n    result = [type(e).__name__, e.code]\n"
    )
    assert run_as(NOBODY.pw_uid, NOBODY.pw_gid, probe, args=[str(proc.socket_path)]) == "ok"
    assert run_as(OTHER_UID, OTHER_UID, probe, args=[str(proc.socket_path)]) == [
        "PermissionDeniedError",
        "forbidden",
    ]
    with WalletClient(proc.socket_path) as root:  # admins are always let in
        assert root.hello().protocol == 1
    assert proc.stop() == 0


def test_socket_mode_keeps_other_users_out(daemon: DaemonFactory) -> None:
    proc = daemon(socket_mode="0600").start()
    assert proc.socket_path.stat().st_mode & 0o777 == 0o600
    probe = (
        "c = WalletClient(ARGS[0])\n"
        "try:\n    c.hello(); result = 'ok'\n"
        "except errors.WalletError as e:\n    result = [type(e).__name__, e.code]\n"
    )
    assert run_as(NOBODY.pw_uid, NOBODY.pw_gid, probe, args=[str(proc.socket_path)]) == [
        "DaemonUnavailableError",
        "unavailable",
    ]
    assert proc.stop() == 0
