"""Recovery state against real walletd processes: the attempt count and the lockout survive a
restart and a kill -9 in the middle of a check, and nothing on disk or in the log holds an
answer, its SHA-256, or which step failed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from wallet_client import (
    DaemonUnavailableError,
    RitualLockedError,
    RitualStep,
    WalletClient,
    hash_response,
)

from .support import DaemonFactory, DaemonProcess

pytestmark = pytest.mark.slow

ANSWERS = ["zebra-crossing 7f3a", "Überlingen 1999", "kumquat!"]
PROMPTS = ["Where did you learn to swim?", "Your first concert?", "Least favourite fruit?"]
RIGHT = list(ANSWERS)  # as typed: the client hashes them
WRONG = ["no"] * len(ANSWERS)


def steps(count: int = len(ANSWERS)) -> list[RitualStep]:
    return [RitualStep(q, hash_response(a)) for q, a in list(zip(PROMPTS, ANSWERS))[:count]]


def start(daemon: Any, open_tmp: Path, **options: int) -> DaemonProcess:
    config = open_tmp / "walletd.toml"
    config.write_text("".join(f"{k} = {v}\n" for k, v in options.items()))
    proc: DaemonProcess = daemon("--config", str(config)).start()
    return proc


def wait_for_event(proc: DaemonProcess, event: str, *, after: int, timeout: float = 30.0) -> None:
    """Return once the daemon's JSON log holds more than ``after`` ``event`` lines."""
    deadline = time.monotonic() + timeout
    while sum(line.get("event") == event for line in proc.log_lines()) <= after:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            raise AssertionError(f"walletd exited before logging {event}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"walletd did not log {event} within {timeout}s")
        # Reading the log is the readiness check; this only paces the loop.
        time.sleep(0.005)


def count_events(proc: DaemonProcess, event: str) -> int:
    return sum(line.get("event") == event for line in proc.log_lines())


def test_lockout_survives_restart(daemon: DaemonFactory, open_tmp: Path) -> None:
    proc = start(daemon, open_tmp, scrypt_n=1024, max_attempts=2)
    with WalletClient(proc.socket_path) as c:
        address = c.create_wallet("alice")
        c.register_ritual("alice", steps())
        assert not c.initiate_recovery("alice", WRONG)
        assert not c.initiate_recovery("alice", RIGHT[:2])
        assert c.is_locked("alice")
    proc.restart()
    with WalletClient(proc.socket_path) as c:
        assert c.is_locked("alice")
        assert c.get_remaining_attempts("alice") == 0
        with pytest.raises(RitualLockedError):
            c.initiate_recovery("alice", RIGHT)
        assert c.get_prompts("alice") == PROMPTS
        assert c.reset_attempts("alice") == 2
    proc.restart()
    with WalletClient(proc.socket_path) as c:
        assert c.get_remaining_attempts("alice") == 2  # the reset was durable too
        assert not c.initiate_recovery("alice", WRONG)
        new_address = c.recover("alice", RIGHT)
        assert new_address != address
    proc.restart()
    with WalletClient(proc.socket_path) as c:
        assert c.get_remaining_attempts("alice") == 2  # success reset the count, durably
        assert c.get_wallet_address("alice") == new_address
        assert [r.reason for r in c.rotation_history("alice")] == ["recovery"]
    assert proc.stop() == 0


def test_kill_during_the_check_still_counts_the_attempt(
    daemon: DaemonFactory, open_tmp: Path
) -> None:
    """SIGKILL while scrypt checks a *right* answer: after the restart the attempt is counted
    and nothing was recovered. Slow scrypt (n=2**17, r=16: 256 MiB, about a second) makes the
    check long enough to kill reliably once ``recovery_attempted`` is logged."""
    proc = start(daemon, open_tmp, scrypt_n=2**17, scrypt_r=16, max_attempts=3)
    with WalletClient(proc.socket_path) as c:
        address = c.create_wallet("alice")
        c.register_ritual("alice", steps(1))
        assert c.get_remaining_attempts("alice") == 3
    before = count_events(proc, "recovery_attempted")
    outcome: dict[str, Any] = {}

    def attempt() -> None:
        try:
            with WalletClient(proc.socket_path, timeout=60) as c:
                outcome["result"] = c.initiate_recovery("alice", RIGHT[:1])
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=attempt)
    worker.start()
    try:
        wait_for_event(proc, "recovery_attempted", after=before)
        proc.kill()
    finally:
        worker.join(60)
    # The kill came before the answer: the client saw the connection drop, not a result.
    assert "result" not in outcome
    assert isinstance(outcome.get("error"), DaemonUnavailableError)
    assert count_events(proc, "recovery_succeeded") == 0

    proc.start()
    with WalletClient(proc.socket_path) as c:
        assert c.get_remaining_attempts("alice") == 2
        assert not c.is_locked("alice")
        assert c.get_wallet_address("alice") == address  # nothing was recovered
        events = [r.event for r in c.audit_log("alice")]
        assert events[-1] == "recovery_attempted"
        assert "recovery_succeeded" not in events
        assert c.audit_verify().ok
    assert proc.stop() == 0


def secrets_of(answers: list[str]) -> dict[str, bytes]:
    """Every form of an answer that must never be stored or logged."""
    out = {}
    for i, answer in enumerate(answers):
        digest = hashlib.sha256(answer.encode()).digest()
        out[f"answer {i}"] = answer.encode()
        out[f"sha256 hex {i}"] = digest.hex().encode()
        out[f"SHA256 HEX {i}"] = digest.hex().upper().encode()
        out[f"sha256 bytes {i}"] = digest
    return out


def scan(paths: list[Path], forbidden: dict[str, bytes]) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        found += [f"{name} in {path.name}" for name, value in forbidden.items() if value in data]
    return found


def state_files(proc: DaemonProcess) -> list[Path]:
    return [p for p in proc.state_dir.rglob("*") if p.is_file()]


def test_no_answer_or_hash_on_disk_or_in_the_log(daemon: DaemonFactory, open_tmp: Path) -> None:
    proc = start(daemon, open_tmp, scrypt_n=1024)
    forbidden = secrets_of(ANSWERS)
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
        c.register_ritual("alice", steps())
        for wrong in range(3):
            responses = list(RIGHT)
            responses[wrong] = "wrong"
            assert not c.initiate_recovery("alice", responses)
        assert not c.initiate_recovery("alice", RIGHT[:2])
        c.recover("alice", RIGHT)
        c.register_ritual("alice", steps())  # replaced rows go through secure_delete
    # Killed, the WAL still holds every page written: scan it with the database.
    proc.kill()
    files = state_files(proc)
    assert any(p.name.endswith("-wal") for p in files)
    assert scan(files, forbidden) == []
    proc.start()
    with WalletClient(proc.socket_path) as c:
        assert c.get_remaining_attempts("alice") == 5  # the re-registration's reset count
        assert c.audit_verify().ok
    assert proc.stop() == 0
    assert scan(state_files(proc), forbidden) == []

    # The daemon logged at debug level (one event per request): no answer, no hash, no step.
    log = proc.log_path.read_bytes()
    assert scan([proc.log_path], forbidden) == []
    assert b"expected_response_hash" not in log
    failures = [line for line in proc.log_lines() if line.get("event") == "recovery_failed"]
    assert len(failures) == 4
    for line in proc.log_lines():
        if line.get("event", "").startswith(("recovery", "ritual")):
            assert not {"step", "steps_failed", "index", "failed_step", "prompt"} & set(line)
    shapes = {
        tuple(sorted(k for k in line if k not in ("timestamp", "peer_pid", "conn")))
        for line in failures
    }
    assert len(shapes) == 1  # every failure logs the same fields, whichever step was wrong
