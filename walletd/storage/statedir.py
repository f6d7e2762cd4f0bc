"""The state directory: created private, refused when others could tamper with it, and locked
while a walletd (or ``walletd rekey``) has the state open."""

from __future__ import annotations

import fcntl
import os
import pwd
import stat
from pathlib import Path

from walletd.errors import StartupError

__all__ = ["StateLock", "check_state_dir", "fsync_dir"]


def check_state_dir(path: Path, *, create: bool = True) -> None:
    """Create the state directory 0700, or refuse one that others could tamper with."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if not create:
            raise StartupError(f"state directory {path} does not exist") from None
        try:
            path.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise StartupError(f"cannot create state directory {path}: {exc.strerror}") from exc
        return
    if not stat.S_ISDIR(st.st_mode):
        raise StartupError(f"state directory {path} exists but is not a directory")
    if st.st_uid != os.getuid():
        # Usually the command was run as the wrong user (root running `walletd check` on the
        # service's state): say that first; chown is the fix only if the owner is wrong.
        raise StartupError(
            f"state directory {path} is owned by uid {st.st_uid}, not by this process's uid "
            f"{os.getuid()}; run walletd as uid {st.st_uid} (e.g. runuser -u "
            f"{_user_name(st.st_uid)} -- walletd ...), or, if the owner is what is wrong, "
            f"chown {os.getuid()} {path}"
        )
    if st.st_mode & 0o022:
        raise StartupError(
            f"state directory {path} is writable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); fix it with: chmod 700 {path}"
        )


class StateLock:
    """An exclusive ``flock`` on the state directory itself (no lock file is created).

    Two daemons on one state would each serve from their own memory and overwrite each other's
    acknowledged changes; the lock makes the second one refuse to start.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, path: Path) -> StateLock:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise StartupError(f"cannot open state directory {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StartupError(
                f"state directory {path} is in use by another walletd (or walletd rekey); "
                "stop it first, or give this one its own --state-dir"
            ) from None
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` itself durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"
