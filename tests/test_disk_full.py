"""Storage failing under a running daemon: a full disk, a file system that turns read-only, and
one that returns I/O errors.

Real file systems, mounted for the test (we are root): a 2 MiB tmpfs that we fill, and an ext4
image on a loop device that the kernel turns read-only (``errors=remount-ro`` plus ext4's
``trigger_fs_error``) or shuts down (EXT4_IOC_SHUTDOWN: every I/O fails with EIO).
``mount -o remount,ro`` cannot be used for "read-only mid-run": Linux refuses it (EBUSY) while
a process holds files open for writing there, which a serving walletd always does.

In every case: changes fail with ``storage_error`` (StorageError) and change nothing, in memory
or on disk; signing, verifying and reads go on; what was acknowledged before is still there
after a restart once the storage is healthy again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallet_client import StorageError, WalletClient

from .support import DaemonFactory, DaemonProcess
from .test_store import snapshot

pytestmark = [pytest.mark.slow, pytest.mark.root]

USERS = ["alice", "bob", "carol"]
EXT4_IOC_SHUTDOWN = 0x8004587D  # _IOR('X', 125, __u32)
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _mount_or_skip(*cmd: str) -> None:
    result = _run(*cmd)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({' '.join(cmd)}: {result.stderr.strip()})")


def _unmount(path: Path) -> None:
    if _run("umount", str(path)).returncode != 0:
        _run("umount", "-l", str(path))


@pytest.fixture
def tmpfs(open_tmp: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted at teardown."""
    mount = open_tmp / "fs"
    mount.mkdir()
    _mount_or_skip("mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(mount))
    yield mount
    _unmount(mount)


@pytest.fixture
def ext4(open_tmp: Path) -> Iterator[tuple[Path, str]]:
    """An ext4 file system on a loop device, mounted errors=remount-ro: (mount point, device)."""
    image = open_tmp / "ext4.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    if _run("mkfs.ext4", "-q", "-F", str(image)).returncode != 0:
        pytest.skip("mkfs.ext4 is not available")
    losetup = _run("losetup", "--find", "--show", str(image))
    if losetup.returncode != 0:
        pytest.skip(f"no loop device here: {losetup.stderr.strip()}")
    device = losetup.stdout.strip()
    mount = open_tmp / "ext"
    mount.mkdir()
    try:
        _mount_or_skip("mount", "-o", "errors=remount-ro", device, str(mount))
        yield mount, device
    finally:
        _unmount(mount)
        _run("losetup", "--detach", device)


def _fill(directory: Path) -> Path:
    """Write zeros into ``directory`` until the file system has no byte left."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            while _write(f.fileno(), b"\0" * chunk):
                pass
    return filler


def _write(fd: int, data: bytes) -> bool:
    """False once the file system is full."""
    try:
        os.write(fd, data)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return False
    return True


def _serve_some(proc: DaemonProcess) -> dict[str, tuple[str, bytes]]:
    with WalletClient(proc.socket_path) as c:
        return {u: (c.create_wallet(u), c.sign_message(u, b"hello")) for u in USERS}


def _assert_failing_storage(proc: DaemonProcess, acked: dict[str, tuple[str, bytes]]) -> None:
    """Every change fails with storage_error and changes nothing; everything else works."""
    with WalletClient(proc.socket_path) as c:
        before = c.list_wallets()
        policy = c.get_policy("alice")
        for attempt in (
            lambda: c.create_wallet("dave"),
            lambda: c.delete_wallet("bob"),
            lambda: c.rotate_keys("carol", "scheduled"),
            lambda: c.set_policy("alice", max_signatures=3),
            lambda: c.create_wallet("erin"),
        ):
            with pytest.raises(StorageError) as caught:
                attempt()
            assert caught.value.code == "storage_error"
            assert "nothing was changed" in caught.value.message
        # Memory is exactly as before the failed changes.
        assert c.list_wallets() == before == {u: a for u, (a, _) in acked.items()}
        assert not c.has_wallet("dave")
        assert c.get_policy("alice") == policy
        # Signing, verifying and reads go on, with the same keys.
        for user, (address, signature) in acked.items():
            assert c.get_wallet_address(user) == address
            assert c.sign_message(user, b"hello") == signature
            assert c.verify_signature(user, b"hello", signature)
        items = c.sign_batch("alice", [b"a", b"b"])
        assert all(item.signature for item in items)
        assert c.rotation_status("bob").address == acked["bob"][0]


def _assert_kept(proc: DaemonProcess, acked: dict[str, tuple[str, bytes]], *extra: str) -> None:
    with WalletClient(proc.socket_path) as c:
        assert sorted(c.list_wallets()) == sorted([*acked, *extra])
        for user, (address, signature) in acked.items():
            assert c.get_wallet_address(user) == address
            assert c.sign_message(user, b"hello") == signature
        assert c.audit_verify().ok  # failed changes left no gap or fork in the chain


def test_disk_full(daemon: DaemonFactory, tmpfs: Path) -> None:
    proc = daemon("--state-dir", str(tmpfs / "state")).start()
    acked = _serve_some(proc)
    filler = _fill(tmpfs)
    _assert_failing_storage(proc, acked)
    filler.unlink()  # space again: the same daemon recovers without a restart
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("frank")
    assert proc.stop() == 0
    proc.start()
    _assert_kept(proc, acked, "frank")
    assert proc.stop() == 0


def test_state_dir_turns_read_only_mid_run(daemon: DaemonFactory, ext4: tuple[Path, str]) -> None:
    mount, device = ext4
    proc = daemon("--state-dir", str(mount / "state")).start()
    acked = _serve_some(proc)
    Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("walletd test\n")
    with pytest.raises(OSError) as caught:
        (mount / "probe").write_text("x")
    assert caught.value.errno == errno.EROFS  # really read-only now
    _assert_failing_storage(proc, acked)
    proc.stop()  # the final counter flush fails (logged); what counts is what stays
    _unmount(mount)
    assert _run("mount", device, str(mount)).returncode == 0  # read-write again
    proc.start()
    _assert_kept(proc, acked)
    assert proc.stop() == 0


def test_io_errors_mid_run(daemon: DaemonFactory, ext4: tuple[Path, str]) -> None:
    mount, device = ext4
    proc = daemon("--state-dir", str(mount / "state")).start()
    acked = _serve_some(proc)
    fd = os.open(mount, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = EXT4_GOING_FLAGS_NOLOGFLUSH.to_bytes(4, "little")
        fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, flags)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as caught:
        (mount / "probe").write_text("x")
    assert caught.value.errno == errno.EIO
    _assert_failing_storage(proc, acked)
    assert proc.proc is not None and proc.proc.poll() is None  # still serving
    proc.stop()
    _unmount(mount)
    with contextlib.suppress(subprocess.TimeoutExpired):
        _run("e2fsck", "-fy", device)
    assert _run("mount", device, str(mount)).returncode == 0
    proc.start()
    _assert_kept(proc, acked)
    assert proc.stop() == 0


def test_start_on_a_read_only_file_system_is_refused(daemon: DaemonFactory, tmpfs: Path) -> None:
    """With no file open there, ``mount -o remount,ro`` works: walletd then refuses to start
    (it would otherwise open the database read-only and fail every change) and touches
    nothing; once the file system is writable again it starts with everything it had."""
    proc = daemon("--state-dir", str(tmpfs / "state")).start()
    acked = _serve_some(proc)
    assert proc.stop() == 0
    assert _run("mount", "-o", "remount,ro", str(tmpfs)).returncode == 0
    before = snapshot(tmpfs)
    proc.start(wait=False)
    assert proc.proc is not None and proc.proc.wait(30) == 3
    message = proc.log_text().splitlines()[-1]
    assert "cannot open" in message and "for writing" in message
    assert "walletd changed nothing" in message
    assert snapshot(tmpfs) == before
    assert _run("mount", "-o", "remount,rw", str(tmpfs)).returncode == 0
    proc.start()
    _assert_kept(proc, acked)
    assert proc.stop() == 0
