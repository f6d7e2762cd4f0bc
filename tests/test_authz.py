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

from . import children
from .support import NOBODY, DaemonFactory, DaemonProcess, call_as

pytestmark = [pytest.mark.slow, pytest.mark.root]

OTHER_UID = 65533
GROUP_ADMIN_UID, ADMIN_GID = 65532, 65532

ANY_PEER = {"has_ritual", "get_prompts", "get_remaining_attempts", "is_locked", "initiate_recovery"}
ADMIN_ONLY = {"reset_attempts", "audit_verify"}
OPS = children.MATRIX_OPS


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
    backups = call_as(
        NOBODY.pw_uid,
        NOBODY.pw_gid,
        children.wallets_with_rituals_and_backups,
        str(proc.socket_path),
        *targets,
    )
    yield proc, backups
    assert proc.stop() == 0


# The daemon and, for each target wallet, the id of the backup made as its owner.
Served = tuple[DaemonProcess, dict[str, str]]


def _run_matrix(sock: Path, uid: int, gid: int, target: str, backup_id: str) -> dict[str, object]:
    result: dict[str, object] = call_as(
        uid, gid, children.authz_matrix, str(sock), target, backup_id
    )
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
    view = children.own_wallets_and_count
    nobody_view = call_as(NOBODY.pw_uid, NOBODY.pw_gid, view, str(proc.socket_path))
    assert nobody_view == [["w-group", "w-other", "w-owner", "w-root"], 4]
    assert call_as(OTHER_UID, OTHER_UID, view, str(proc.socket_path)) == [[], 0]


def test_uid_outside_allowed_uids_is_refused_at_accept(
    daemon: DaemonFactory, open_tmp: Path
) -> None:
    config = open_tmp / "walletd.toml"
    config.write_text(f"allowed_uids = [{NOBODY.pw_uid}]\n")
    proc = daemon("--config", str(config)).start()
    probe = children.hello_or_refusal
    assert call_as(NOBODY.pw_uid, NOBODY.pw_gid, probe, str(proc.socket_path)) == "ok"
    assert call_as(OTHER_UID, OTHER_UID, probe, str(proc.socket_path)) == [
        "PermissionDeniedError",
        "forbidden",
    ]
    with WalletClient(proc.socket_path) as root:  # admins are always let in
        assert root.hello().protocol == 1
    assert proc.stop() == 0


def test_socket_mode_keeps_other_users_out(daemon: DaemonFactory) -> None:
    proc = daemon(socket_mode="0600").start()
    assert proc.socket_path.stat().st_mode & 0o777 == 0o600
    probe = children.hello_or_refusal
    assert call_as(NOBODY.pw_uid, NOBODY.pw_gid, probe, str(proc.socket_path)) == [
        "DaemonUnavailableError",
        "unavailable",
    ]
    assert proc.stop() == 0
