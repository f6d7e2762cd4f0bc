"""Files and processes around the master key and the state directory (issue 12, items 10-12).

* ``walletd check`` and ``walletd rekey`` are non-dumpable with no core limit before they
  read a master key, as ``serve`` is;
* ``master_key_file`` (and rekey's new key file) must belong to walletd's uid or root and
  have no group/other bits;
* the state directory must be 0700 (read bits refused too: a uid that can open it can flock
  it), and a restored database or log with loose modes is tightened to 0600 with a warning;
  one owned by another uid is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from walletd.config import Config
from walletd.errors import StartupError
from walletd.storage.loader import open_store
from walletd.storage.sealing import load_master_key
from walletd.storage.store import DB_NAME

from .support import NOBODY, ROOT, MakeConfig


def make_state(config: Config) -> Path:
    """A state directory with a database (and its generated master key), closed again."""
    store, _, _ = open_store(config)
    store.close()
    return Path(config.state_dir)


def key_file(path: Path, mode: int = 0o600) -> Path:
    path.write_text(os.urandom(32).hex() + "\n")
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- item 12


@pytest.mark.parametrize("dir_mode", [0o750, 0o705, 0o710, 0o701])
def test_state_dir_open_to_others_is_refused(make_config: MakeConfig, dir_mode: int) -> None:
    config = make_config()
    state = make_state(config)
    state.chmod(dir_mode)
    with pytest.raises(StartupError, match="must be 0700") as info:
        open_store(config)
    assert f"chmod 700 {state}" in str(info.value)
    state.chmod(0o700)
    open_store(config)[0].close()


@pytest.mark.parametrize("name", [DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"])
def test_restored_files_with_loose_modes_are_made_private(
    make_config: MakeConfig, name: str
) -> None:
    config = make_config()
    state = make_state(config)
    target = state / name
    if not target.exists():
        target.write_bytes(b"")  # an empty log/index, as a restore may leave
    target.chmod(0o644)
    with capture_logs() as logs:
        store, _, _ = open_store(config)
    try:
        assert target.stat().st_mode & 0o777 == 0o600
    finally:
        store.close()  # (a clean close may remove the log and index again)
    fixed = [e for e in logs if e["event"] == "state_file_mode_fixed"]
    assert len(fixed) == 1 and name in fixed[0]["file"] and "0644" in fixed[0]["file"]


def test_check_reports_loose_files_without_changing_them(make_config: MakeConfig) -> None:
    from walletd.storage.maintenance import inspect_state

    config = make_config()
    state = make_state(config)
    (state / DB_NAME).chmod(0o640)
    summary = inspect_state(config)
    assert (state / DB_NAME).stat().st_mode & 0o777 == 0o640
    assert any(DB_NAME in w and "0640" in w for w in summary["warnings"])
    assert summary["problems"] == []


@pytest.mark.root
def test_database_owned_by_another_uid_is_refused(make_config: MakeConfig) -> None:
    config = make_config()
    state = make_state(config)
    db = state / DB_NAME
    os.chown(db, NOBODY.pw_uid, NOBODY.pw_gid)
    before = db.stat()
    with pytest.raises(StartupError, match=f"owned by uid {NOBODY.pw_uid}"):
        open_store(config)
    assert db.stat().st_mode == before.st_mode and db.stat().st_uid == NOBODY.pw_uid


# --------------------------------------------------------------------------- item 11


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_master_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = key_file(tmp_path / "master.key", mode)
    with pytest.raises(StartupError, match="chmod 600"):
        load_master_key(state, str(path), require_external=False, may_generate=False)
    path.chmod(0o600)
    assert load_master_key(state, str(path), require_external=False, may_generate=False)


@pytest.mark.root
def test_master_key_file_owned_by_another_uid_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = key_file(tmp_path / "master.key")
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(StartupError, match=f"owned by uid {NOBODY.pw_uid}"):
        load_master_key(state, str(path), require_external=False, may_generate=False)
    os.chown(path, 0, 0)  # root's (an operator installed it) is fine
    assert load_master_key(state, str(path), require_external=False, may_generate=False)


# --------------------------------------------------------------------------- item 10

# Runs walletd's own command line in this child, noting at every master-key read whether
# the process is already dumpable and what its core limit is.
_PROBE = """
import ctypes, json, resource, sys
import walletd.storage.sealing as sealing
import walletd.storage.maintenance as maintenance
from walletd.main import main
seen = []
real = sealing.read_key_file
def probe(path):
    libc = ctypes.CDLL(None)
    seen.append([libc.prctl(3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE)[1]])
    return real(path)
sealing.read_key_file = probe
maintenance.read_key_file = probe
code = main(sys.argv[2:])
open(sys.argv[1], "w").write(json.dumps([code, seen]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("command", ["check", "rekey"])
def test_check_and_rekey_harden_before_reading_a_key(
    make_config: MakeConfig, tmp_path: Path, command: str
) -> None:
    config = make_config()
    state = make_state(config)
    extra = ["--new-master-key-file", str(key_file(tmp_path / "new.key"))]
    out = tmp_path / "probe.json"
    argv = [command, "--state-dir", str(state), *(extra if command == "rekey" else [])]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    code, seen = json.loads(out.read_text())
    assert code == 0
    assert seen, "no master key was read"
    # PR_GET_DUMPABLE 0 and a hard core limit of 0 at every read of a key.
    assert all(dumpable == 0 and core == 0 for dumpable, core in seen), seen
