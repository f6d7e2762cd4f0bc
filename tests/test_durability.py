"""Acknowledged means durable: what a real daemon answered survives a restart, clean or kill -9.

Wallets under several uids keep their addresses, owners, keys (identical signatures), policies,
rituals, recovery attempt counts, rotation history and backups; signature counters survive a
clean stop (flushed at shutdown) and, within ``counter_flush_interval``, a kill -9. In
``--ephemeral`` mode nothing at all is written to the state directory.
"""

from __future__ import annotations

import json
import pwd
import time
from pathlib import Path
from typing import Any

import pytest

from wallet_client import RitualStep, WalletClient, hash_response
from walletd.storage.store import DB_NAME, Store

from . import children, recovery_children
from .support import NOBODY, DaemonFactory, DaemonProcess, call_as

pytestmark = pytest.mark.slow

# Two unprivileged uids, so that "cannot touch each other's wallets" means something (root is
# an admin and may touch every wallet).
DAEMON_USER = pwd.getpwnam("daemon")
UIDS = {
    "nobody": (NOBODY.pw_uid, NOBODY.pw_gid),
    "daemon": (DAEMON_USER.pw_uid, DAEMON_USER.pw_gid),
}

MINE = {"nobody": ["nina", "nora"], "daemon": ["dana"]}


def _as(who: str, proc: DaemonProcess, *, create: bool) -> dict[str, Any]:
    """As ``who`` (an unprivileged uid): create (when asked) and sign its own wallets, try the
    other uid's and root's; addresses, signatures and what the others' wallets answered."""
    other = "daemon" if who == "nobody" else "nobody"
    uid, gid = UIDS[who]
    args = [str(proc.socket_path), json.dumps(MINE[who]), json.dumps(MINE[other] + ["alice"])]
    result: dict[str, Any] = call_as(
        uid, gid, children.own_and_others, *args, "1" if create else "0"
    )
    return result


STEPS = [RitualStep("first pet?", hash_response("rex")), RitualStep("city?", hash_response("oslo"))]
RIGHT = ["rex", "oslo"]  # as typed: the client hashes them
WRONG = ["cat", "rome"]


def _observe(c: WalletClient, users: list[str]) -> dict[str, Any]:
    """Everything about ``users`` that must survive a restart (read without changing it)."""
    out: dict[str, Any] = {"wallets": c.list_wallets()}
    for user in users:
        status = c.rotation_status(user)
        out[user] = {
            "count": status.signature_count,
            "address": status.address,
            "policy": c.get_policy(user),
            "history": [
                (r.old_wallet_id, r.new_wallet_id, r.reason) for r in c.rotation_history(user)
            ],
            "ritual": c.has_ritual(user),
            "remaining": c.get_remaining_attempts(user) if c.has_ritual(user) else None,
            "backups": sorted(b["backup_id"] for b in c.list_backups(user)),
        }
    return out


@pytest.mark.root
def test_restart_keeps_everything(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    root_users = ["alice", "bob", "carol"]
    with WalletClient(proc.socket_path) as c:
        for user in root_users:
            c.create_wallet(user)
        signatures = {
            u: [c.sign_message(u, f"m{i}".encode()) for i in range(3)] for u in root_users
        }
        c.rotate_keys("bob", "scheduled")
        signatures["bob"] = [c.sign_message("bob", b"after rotation")]
        c.set_policy("alice", max_signatures=500, max_age_days=30)
        c.register_ritual("carol", STEPS)
        assert not c.initiate_recovery("carol", WRONG)
        backup = c.create_backup("alice", {"note": "before restart"})
        users_before = {who: _as(who, proc, create=True) for who in UIDS}
        before = _observe(c, root_users)
        audit_before = c.audit_verify()
    assert proc.stop() == 0  # SIGTERM: a clean stop
    proc.start()

    with WalletClient(proc.socket_path) as c:
        after = _observe(c, root_users)
        assert after == before
        assert after["alice"]["count"] == 3 and after["bob"]["count"] == 1
        assert after["carol"]["remaining"] == before["carol"]["remaining"] < 5
        assert c.verify_backup("alice", backup["backup_id"])
        audit = c.audit_verify()
        assert audit.ok and audit.records == audit_before.records
        for user in ("alice", "carol"):
            assert [c.sign_message(user, f"m{i}".encode()) for i in range(3)] == signatures[user]
        assert c.sign_message("bob", b"after rotation") == signatures["bob"][0]
    for who, seen_before in users_before.items():
        seen = _as(who, proc, create=False)
        assert seen["addresses"] == seen_before["addresses"]
        assert seen["signatures"] == seen_before["signatures"]  # same keys
        assert set(seen["theirs"].values()) == {"forbidden"}  # the other uid's and root's
        assert seen["listed"] == seen_before["addresses"]  # owners kept
    assert proc.stop() == 0


@pytest.mark.root
def test_every_acknowledged_change_survives_kill9(daemon: DaemonFactory) -> None:
    """Each kind of change is committed before its answer: kill -9 right after the answer."""
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        for user in ("keep", "gone", "turn", "rule", "ask", "lost"):
            c.create_wallet(user)
        keep_signature = c.sign_message("keep", b"hello")
        assert c.delete_wallet("gone")
        turned = c.rotate_keys("turn", "suspected leak")
        turn_signature = c.sign_message("turn", b"hello")
        c.set_policy("rule", max_signatures=7, auto_rotate=True)
        c.register_ritual("ask", STEPS)
        c.register_ritual("lost", STEPS)
        assert not c.initiate_recovery("ask", WRONG)
        assert not c.initiate_recovery("ask", WRONG)
    # The last change: nobody recovers root's wallet "lost" (it becomes nobody's, new key).
    recovered = call_as(
        *UIDS["nobody"],
        recovery_children.recover_and_sign,
        str(proc.socket_path),
        "lost",
        "hello",
        *RIGHT,
    )
    proc.kill()  # SIGKILL right after the last acknowledgement
    proc.start()
    with WalletClient(proc.socket_path) as c:
        assert sorted(c.list_wallets()) == ["ask", "keep", "lost", "rule", "turn"]
        assert c.sign_message("keep", b"hello") == keep_signature
        assert c.get_wallet_address("turn") == turned
        assert c.sign_message("turn", b"hello") == turn_signature
        assert [r.reason for r in c.rotation_history("turn")] == ["suspected leak"]
        policy = c.get_policy("rule")
        assert (policy.max_signatures, policy.auto_rotate) == (7, True)
        assert c.get_remaining_attempts("ask") == 5 - 2
        assert c.audit_verify().ok
    again = call_as(
        *UIDS["nobody"], children.address_and_signature, str(proc.socket_path), "lost", "hello"
    )
    assert again == recovered  # owned by nobody now, with the key the recovery made
    assert proc.stop() == 0


def _stored_count(state_dir: Path, user: str) -> int:
    store = Store.open_readonly(state_dir / DB_NAME)
    try:
        rows = store.query("SELECT signature_count FROM wallets WHERE user_id = ?", (user,))
    finally:
        store.close()
    return int(rows[0][0])


def test_signature_counts_are_flushed_while_serving(daemon: DaemonFactory, tmp_path: Path) -> None:
    config = tmp_path / "walletd.toml"
    config.write_text("counter_flush_interval = 0.2\n")
    proc = daemon("--config", str(config)).start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
        for i in range(7):
            c.sign_message("alice", f"m{i}".encode())
    # Wait for the flush to show up in the database (read-only, beside the running daemon).
    deadline = time.monotonic() + 20
    while _stored_count(proc.state_dir, "alice") != 7:
        assert time.monotonic() < deadline, "signature count never flushed"
        time.sleep(0.05)  # paces the polling of the observable event, not a readiness guess
    proc.kill()
    proc.start()
    with WalletClient(proc.socket_path) as c:
        assert c.rotation_status("alice").signature_count == 7
    assert proc.stop() == 0


def test_ephemeral_mode_writes_nothing(daemon: DaemonFactory) -> None:
    proc = daemon(ephemeral=True).start()
    with WalletClient(proc.socket_path) as c:
        assert c.status().ephemeral
        c.create_wallet("alice")
        c.create_backup("alice")
        c.register_ritual("alice", STEPS)
        c.sign_message("alice", b"x")
    assert proc.stop() == 0
    assert not proc.state_dir.exists()
    events = [line["event"] for line in proc.log_lines()]
    assert "ephemeral_mode" in events
    assert events.index("ephemeral_mode") < events.index("ready")
    proc.start()  # nothing was kept
    with WalletClient(proc.socket_path) as c:
        assert c.list_wallets() == {}
    assert proc.stop() == 0
    assert not proc.state_dir.exists()
