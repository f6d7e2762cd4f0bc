"""``walletd check --state-dir DIR``: read-only, full integrity_check, unseals every key, walks the
audit chain, prints a summary (wallets, owners, problems) and never any key material; exit 0
when all is well, 1 when it found problems. It changes no file, even beside a running daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wallet_client import WalletClient
from walletd.storage.sealing import GENERATED_KEY_NAME, read_key_file
from walletd.storage.store import DB_NAME

from . import children
from .support import NOBODY, DaemonFactory, DaemonProcess, call_as_nobody
from .test_sealing import _forms
from .test_store import flip, load_keys, snapshot, walletd_cli

pytestmark = [pytest.mark.slow, pytest.mark.root]

EXIT_PROBLEMS = 1


@dataclass
class State:
    proc: DaemonProcess
    secrets: list[bytes]  # the raw wallet keys and the master key: never to be printed

    @property
    def state_dir(self) -> Path:
        return self.proc.state_dir


@pytest.fixture
def state(daemon: DaemonFactory) -> State:
    """A stopped daemon's state with root's and nobody's wallets and a backup."""
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        for user in ("alice", "bob"):
            c.create_wallet(user)
        c.create_wallet("carol", "ed25519")
        c.create_backup("alice")
    call_as_nobody(children.create_wallets, str(proc.socket_path), "nina", "nora")
    assert proc.stop() == 0
    secrets = list(load_keys(proc.state_dir).values())
    secrets.append(read_key_file(proc.state_dir / GENERATED_KEY_NAME))
    return State(proc, secrets)


def check(state: State, *args: str, text: bool = False) -> tuple[int, str, dict[str, Any]]:
    """Run check with --json (and as text when asked); assert it changed nothing and printed
    no key material."""
    state_dir = state.state_dir
    before = snapshot(state_dir) if state_dir.exists() else None
    as_json = walletd_cli("check", "--state-dir", str(state_dir), "--json", *args)
    runs = [as_json]
    if text:
        runs.append(walletd_cli("check", "--state-dir", str(state_dir), *args))
        assert runs[1].returncode == as_json.returncode
    after = snapshot(state_dir) if state_dir.exists() else None
    assert after == before, "check changed the state directory"
    printed = "".join(run.stdout + run.stderr for run in runs).encode()
    for secret in state.secrets:
        for form in _forms(secret):
            assert form not in printed
    return as_json.returncode, runs[-1].stdout, json.loads(as_json.stdout)


def test_healthy_state(state: State) -> None:
    code, text, summary = check(state, text=True)
    assert code == 0
    assert summary["problems"] == []
    assert summary["wallets"] == summary["keys_unsealed"] == 5
    assert summary["owners"] == {"0": 3, str(NOBODY.pw_uid): 2}
    assert summary["key_types"] == {"ed25519": 1, "hmac-sha256": 4}
    assert summary["audit_records"] == 6
    assert summary["master_key"].startswith("generated file")
    assert "wallets: 5" in text and "problems: none" in text
    assert f"owners: uid 0 (root): 3, uid {NOBODY.pw_uid} (nobody): 2" in text
    assert "key_types: ed25519: 1, hmac-sha256: 4" in text


def test_beside_a_running_daemon_and_after_a_crash(state: State) -> None:
    proc = state.proc
    proc.start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("dave")
        text = walletd_cli("check", "--state-dir", str(state.state_dir), "--json")
        assert text.returncode == 0, text.stdout
        assert json.loads(text.stdout)["wallets"] == 6
        c.create_wallet("erin")  # the daemon is unaffected
    proc.kill()
    state.secrets += load_keys(state.state_dir).values()
    code, _, summary = check(state)  # -wal and -shm present, left as they are
    assert (state.state_dir / (DB_NAME + "-wal")).exists()
    assert code == 0 and summary["wallets"] == 7


def test_keys_that_fail_to_unseal(state: State) -> None:
    conn = sqlite3.connect(state.state_dir / DB_NAME, isolation_level=None)
    rows = dict(conn.execute("SELECT user_id, sealed_key FROM wallets"))
    conn.execute("UPDATE wallets SET sealed_key = ? WHERE user_id = 'bob'", (rows["nina"],))
    conn.close()
    code, text, summary = check(state, text=True)
    assert code == EXIT_PROBLEMS
    assert summary["wallets"] == 5 and "keys_unsealed" not in summary
    assert len(summary["problems"]) == 1
    assert "'bob'" in summary["problems"][0] and "fails to unseal" in summary["problems"][0]
    assert "problems (1):" in text


def test_corrupt_database(state: State) -> None:
    db = state.state_dir / DB_NAME
    conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    (root,) = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'audit'").fetchone()
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    flip(db, (root - 1) * size + 8, 4)  # the audit table's root page header
    code, _, summary = check(state)
    assert code == EXIT_PROBLEMS
    assert summary["problems"]
    assert any("integrity" in p or "corrupt" in p for p in summary["problems"])


def test_unreadable_database(state: State) -> None:
    flip(state.state_dir / DB_NAME, 0, 16)
    code, _, summary = check(state)
    assert code == EXIT_PROBLEMS
    assert "not a database" in summary["problems"][0]


def test_edited_audit_record(state: State) -> None:
    conn = sqlite3.connect(state.state_dir / DB_NAME, isolation_level=None)
    conn.execute("UPDATE audit SET actor_uid = 4242 WHERE seq = 2")
    conn.close()
    code, _, summary = check(state)
    assert code == EXIT_PROBLEMS
    assert summary["problems"] == [
        "audit chain broken at record 2: its contents do not match its hash (the record was edited)"
    ]


def test_wrong_master_key(state: State, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(os.urandom(32))
    wrong.chmod(0o600)
    code, _, summary = check(state, "--master-key-file", str(wrong))
    assert code == EXIT_PROBLEMS
    assert summary["wallets"] == 5  # what can be read without the key is still summarised
    assert "wrong key" in summary["problems"][0]


def test_missing_state(state: State) -> None:
    shutil.rmtree(state.state_dir)
    code, _, summary = check(state)
    assert code == EXIT_PROBLEMS
    assert "does not exist" in summary["problems"][0]
    assert not state.state_dir.exists()
