"""Fault injection: kill -9 under a mixed write load, a full disk, a state directory turning
read-only, the socket file deleted under a running daemon, and SIGSTOP/SIGCONT.

kill -9 rounds: writer threads, each owning one user id, run every mutating operation (create,
set_policy, register_ritual, recovery attempts right and wrong, rotate, backups, reset, delete)
while the daemon is killed at a random moment. After the restart each user's state (exists,
address, policy, ritual, remaining attempts, backups) must be what the writer last saw
acknowledged; only the fields the one request in flight could change may differ instead.
tests/test_kill9.py covers create/delete; this mixes everything else.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from wallet_client import (
    AsyncWalletClient,
    DaemonUnavailableError,
    RitualStep,
    StorageError,
    WalletClient,
    WalletError,
    hash_response,
)

from ..support import ROOT, DaemonProcess
from . import figures
from .harness import BASE_CONFIG, tracebacks

pytestmark = [pytest.mark.fuzz, pytest.mark.slow, pytest.mark.root]

ROUNDS = 25 if figures.LONG_FUZZ else 3
WRITERS = 4
MAX_ATTEMPTS = BASE_CONFIG["max_attempts"]
RIGHT = [hash_response("right")]  # the registered hash; recovery takes the answers
WRONG = ["wrong"]


# --------------------------------------------------------------------------- kill -9


@dataclass(frozen=True)
class Snapshot:
    exists: bool = False
    address: str | None = None
    policy: tuple[Any, ...] | None = None
    ritual: bool = False
    remaining: int | None = None
    backups: frozenset[str] = frozenset()


WALLET_FIELDS = {"exists", "address", "policy", "ritual", "remaining"}
#: Which fields of a Snapshot each operation may change.
CHANGES = {
    "create": WALLET_FIELDS,
    "delete": WALLET_FIELDS,
    "set_policy": {"policy"},
    "register_ritual": {"ritual", "remaining"},
    "recover_wrong": {"remaining"},
    "recover_right": {"address", "remaining"},
    "rotate": {"address"},
    "create_backup": {"backups"},
    "delete_backup": {"backups"},
    "reset_attempts": {"remaining"},
}


def observe(client: WalletClient, user: str) -> Snapshot:
    backups = frozenset(b["backup_id"] for b in client.list_backups(user))
    address = client.get_wallet_address(user)
    if address is None:
        return Snapshot(backups=backups)
    policy = client.get_policy(user)
    ritual = client.has_ritual(user)
    return Snapshot(
        exists=True,
        address=address,
        policy=(policy.max_age_days, policy.max_signatures, policy.auto_rotate),
        ritual=ritual,
        remaining=client.get_remaining_attempts(user) if ritual else None,
        backups=backups,
    )


@dataclass
class Writer:
    user: str
    socket_path: Path
    seed: int
    acked: Snapshot = field(default_factory=Snapshot)
    in_flight: str | None = None
    acked_ops: int = 0
    errors: list[str] = field(default_factory=list)

    def choose(self, rng: random.Random) -> str:
        s = self.acked
        if not s.exists:
            return "create"
        ops = ["set_policy", "rotate", "create_backup", "register_ritual"]
        if s.backups:
            ops.append("delete_backup")
        if s.ritual:
            ops.append("reset_attempts")
            if s.remaining:
                ops += ["recover_wrong", "recover_right"]
        ops += ["delete"] if rng.random() < 0.05 else []
        return rng.choice(ops)

    def apply(self, client: WalletClient, op: str, rng: random.Random) -> Snapshot:
        """Run ``op``; returns the snapshot it acknowledged."""
        s, user = self.acked, self.user
        if op == "create":
            return replace(
                s,
                exists=True,
                address=client.create_wallet(user),
                policy=(90, 10000, False),
                ritual=False,
                remaining=None,
            )
        if op == "delete":
            assert client.delete_wallet(user)
            return Snapshot(backups=s.backups)
        if op == "set_policy":
            p = client.set_policy(
                user, max_signatures=rng.randint(1, 10**6), max_age_days=rng.randint(1, 999)
            )
            return replace(s, policy=(p.max_age_days, p.max_signatures, p.auto_rotate))
        if op == "register_ritual":
            client.register_ritual(user, [RitualStep("q?", RIGHT[0])])
            return replace(s, ritual=True, remaining=MAX_ATTEMPTS)
        if op == "recover_wrong":
            assert client.initiate_recovery(user, WRONG) is False
            return replace(s, remaining=(s.remaining or 0) - 1)
        if op == "recover_right":
            return replace(s, address=client.recover(user, ["right"]), remaining=MAX_ATTEMPTS)
        if op == "rotate":
            return replace(s, address=client.rotate_keys(user, "fault"))
        if op == "create_backup":
            record = client.create_backup(user, {"op": "fault"})
            return replace(s, backups=s.backups | {record["backup_id"]})
        if op == "delete_backup":
            backup_id = rng.choice(sorted(s.backups))
            assert client.delete_backup(user, backup_id)
            return replace(s, backups=s.backups - {backup_id})
        if op == "reset_attempts":
            assert client.reset_attempts(user) == MAX_ATTEMPTS
            return replace(s, remaining=MAX_ATTEMPTS)
        raise AssertionError(op)

    def run(self, stop: threading.Event) -> None:
        rng = random.Random(self.seed)
        with WalletClient(self.socket_path, timeout=10) as client:
            while not stop.is_set():
                op = self.choose(rng)
                self.in_flight = op
                try:
                    self.acked = self.apply(client, op, rng)
                except DaemonUnavailableError:
                    return  # killed: the outcome of `op` is unknown, it stays in flight
                except (WalletError, AssertionError) as exc:
                    self.errors.append(f"{self.user} {op}: {exc!r}")
                    return
                self.in_flight = None
                self.acked_ops += 1

    def check(self, seen: Snapshot) -> list[str]:
        """Fields that lost an acknowledged write: differ from acked where no request in
        flight could have changed them."""
        free = CHANGES[self.in_flight] if self.in_flight else set()
        lost = []
        for name in Snapshot.__dataclass_fields__:
            if name in free:
                continue
            if getattr(seen, name) != getattr(self.acked, name):
                lost.append(
                    f"{self.user}.{name}: acked {getattr(self.acked, name)!r}, "
                    f"after kill -9 {getattr(seen, name)!r} (in flight: {self.in_flight})"
                )
        if self.in_flight == "create_backup":
            # At most the one backup in flight may have appeared, and none may have gone.
            if not self.acked.backups <= seen.backups or len(seen.backups - self.acked.backups) > 1:
                lost.append(f"{self.user}.backups: {seen.backups} vs acked {self.acked.backups}")
        if self.in_flight == "delete_backup":
            if not seen.backups <= self.acked.backups or len(self.acked.backups - seen.backups) > 1:
                lost.append(f"{self.user}.backups: {seen.backups} vs acked {self.acked.backups}")
        return lost


def test_kill9_under_mixed_write_load(make_daemon: Any) -> None:
    daemon: DaemonProcess = make_daemon().start()
    rng = random.Random(os.environ.get("WALLETD_FAULT_SEED", "kill9"))
    writers = [Writer(f"w{i}", daemon.socket_path, seed=i) for i in range(WRITERS)]
    lost: list[str] = []
    acked = in_flight = 0
    for round_no in range(ROUNDS):
        for w in writers:
            w.seed = rng.randrange(2**32)
        stop = threading.Event()
        threads = [threading.Thread(target=w.run, args=(stop,)) for w in writers]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.6))  # a random point in the write load, not a readiness wait
        daemon.kill()
        stop.set()
        for t in threads:
            t.join(30)
        daemon.start()
        with WalletClient(daemon.socket_path, timeout=10) as root:
            for w in writers:
                assert not w.errors, w.errors
                seen = observe(root, w.user)
                lost += [f"round {round_no}: {x}" for x in w.check(seen)]
                acked += w.acked_ops
                in_flight += w.in_flight is not None
                w.acked, w.in_flight, w.acked_ops = seen, None, 0
            chain = root.audit_verify()
    figures.record(
        "kill -9 rounds",
        cases=ROUNDS,
        acked_lost=len(lost),
        errors=sum(len(w.errors) for w in writers),
        acked_writes=acked,
        in_flight_at_kill=in_flight,
    )
    assert not lost, lost
    assert chain.ok, chain
    assert daemon.stop() == 0
    assert not tracebacks(daemon)


# --------------------------------------------------------------------------- storage faults


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(mode=0o700)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill the file system under ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_full_disk_refuses_writes_and_loses_nothing(make_daemon: Any, open_tmp: Path) -> None:
    daemon: DaemonProcess = make_daemon()
    with tmpfs(daemon.state_dir, "8m"):
        daemon.start()
        acked: dict[str, str] = {}
        refused = 0
        with WalletClient(daemon.socket_path, timeout=20) as client:
            for i in range(5):
                acked[f"pre{i}"] = client.create_wallet(f"pre{i}")
            filler = fill(daemon.state_dir)
            for i in range(60):
                user = f"full{i}"
                try:
                    acked[user] = client.create_wallet(user)
                    if i % 3 == 0:
                        acked[user] = client.rotate_keys(user)
                        client.create_backup(user)
                except StorageError:
                    refused += 1
            assert refused, "a full disk refused no write"
            # Reads go on, and every acknowledged write is there.
            wallets = client.list_wallets()
            assert {u: wallets.get(u) for u in acked} == acked
            filler.unlink()
            acked["after"] = client.create_wallet("after")
            assert client.list_wallets().items() >= acked.items()
        assert daemon.stop() == 0
        daemon.start()
        with WalletClient(daemon.socket_path, timeout=20) as client:
            assert client.list_wallets().items() >= acked.items()
            assert client.audit_verify().ok
        assert daemon.stop() == 0
    figures.record("full disk", cases=len(acked) + refused, acked_lost=0, refused_writes=refused)
    assert not tracebacks(daemon)


@contextlib.contextmanager
def ext4(image: Path, path: Path) -> Iterator[str]:
    """An ext4 file system (loop-mounted, errors=remount-ro) at ``path``; yields its block
    device's name, under which /sys/fs/ext4/ can make it fail."""
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    path.mkdir(mode=0o700)
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(path)], check=True)
    path.chmod(0o700)
    try:
        source = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(path)], capture_output=True, text=True
        ).stdout.strip()
        yield Path(source).name
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(image: Path, path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True)
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(path)], check=True)


def test_state_dir_turning_read_only(make_daemon: Any, open_tmp: Path) -> None:
    """The kernel will not remount a file system read-only while walletd holds its database
    open for writing (EBUSY), but it does so on its own after an I/O error (errors=remount-ro):
    that is how a read-only state directory appears mid-run, and what this reproduces."""
    daemon: DaemonProcess = make_daemon()
    image = open_tmp / "state.ext4"
    with ext4(image, daemon.state_dir) as device:
        daemon.start()
        with WalletClient(daemon.socket_path, timeout=20) as client:
            before = client.create_wallet("ro")
            client.create_backup("ro")
            signature = client.sign_message("ro", b"m")
            Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("walletd fault test\n")
            refused = 0
            for call in (
                lambda: client.create_wallet("ro2"),
                lambda: client.rotate_keys("ro"),
                lambda: client.create_backup("ro"),
                lambda: client.set_policy("ro", max_signatures=5),
                lambda: client.register_ritual("ro", [RitualStep("q?", RIGHT[0])]),
                lambda: client.delete_wallet("ro"),
            ):
                with pytest.raises(StorageError):
                    call()
                refused += 1
            # Reads and signing (no commit) go on; memory kept the acknowledged state only.
            assert client.list_wallets() == {"ro": before}
            assert client.verify_signature("ro", b"m", signature)
            assert client.get_policy("ro").max_signatures == 10000
            assert not client.has_ritual("ro")
            assert len(client.list_backups("ro")) == 1
            assert client.hello().protocol == 1
        assert daemon.stop() == 0  # the last counter flush fails (logged), the stop is clean
        remount(image, daemon.state_dir)
        daemon.start()
        with WalletClient(daemon.socket_path, timeout=20) as client:
            assert client.list_wallets() == {"ro": before}
            assert client.verify_signature("ro", b"m", signature)
            assert client.rotate_keys("ro") != before
            assert client.audit_verify().ok
        assert daemon.stop() == 0
    figures.record("read-only state dir", cases=refused, acked_lost=0)
    assert not tracebacks(daemon)


# --------------------------------------------------------------------------- the socket


def test_socket_file_deleted_under_a_running_daemon(make_daemon: Any) -> None:
    """What happens: connections already open keep working; new ones fail with
    DaemonUnavailableError naming the path; a second walletd may bind the path again but
    refuses to start on the same state (the state lock); SIGTERM still stops cleanly."""
    daemon: DaemonProcess = make_daemon()
    daemon.start()
    held = WalletClient(daemon.socket_path, timeout=10)
    held.create_wallet("held")
    daemon.socket_path.unlink()
    assert held.sign_message("held", b"still here")
    with pytest.raises(DaemonUnavailableError, match=str(daemon.socket_path)):
        WalletClient(daemon.socket_path, timeout=5).hello()
    second = subprocess.run(
        [sys.executable, "-m", "walletd", *daemon.args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 3, second
    assert "in use by another walletd" in second.stderr
    assert held.list_wallets() == {"held": held.get_wallet_address("held")}
    held.close()
    assert daemon.stop() == 0
    assert not daemon.socket_path.exists()
    errors = [line for line in daemon.log_lines() if line.get("level") == "error"]
    assert not errors and not tracebacks(daemon), errors
    figures.record("socket deleted", cases=1)


def test_sigstop_then_sigcont(make_daemon: Any) -> None:
    daemon: DaemonProcess = make_daemon()
    daemon.start()
    with WalletClient(daemon.socket_path, timeout=10) as client:
        client.create_wallet("stopped")
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        quick = WalletClient(daemon.socket_path, timeout=0.5)
        with pytest.raises(DaemonUnavailableError, match="did not answer"):
            quick.sign_message("stopped", b"m")
        with pytest.raises(DaemonUnavailableError, match="did not answer"):
            quick.create_wallet("while-stopped")  # a mutation whose outcome stays unknown

        async def async_client() -> None:
            async with AsyncWalletClient(daemon.socket_path, timeout=0.5) as c:
                with pytest.raises(DaemonUnavailableError, match="did not answer"):
                    await c.hello()

        import trio

        trio.run(async_client)
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
    # A retry after SIGCONT succeeds. The timed-out create may or may not have been applied
    # (the daemon read it before it was stopped, or after): either answer is sane.
    assert quick.sign_message("stopped", b"m")
    outcome: Any
    try:
        outcome = quick.create_wallet("while-stopped")
    except WalletError as exc:
        outcome = exc
    applied = isinstance(outcome, WalletError)
    assert not applied or outcome.code == "already_exists", outcome
    quick.close()
    assert daemon.stop() == 0
    assert not tracebacks(daemon)
    figures.record("SIGSTOP/SIGCONT", cases=1, timed_out_mutation_applied=applied)
