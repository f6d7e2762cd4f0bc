"""The state directory: created private, refused when others could tamper with it, and locked
while a walletd (or ``walletd rekey``) has the state open."""

from __future__ import annotations

import fcntl
import os
import pwd
import stat
from collections.abc import Sequence
from pathlib import Path

from walletd.errors import StartupError

__all__ = ["StateLock", "check_state_dir", "fsync_dir", "tighten_state_files"]


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
    if st.st_mode & 0o077:
        # Read matters as much as write: a uid that can open the directory can flock it (the
        # lock below is a flock on the directory itself) and so keep walletd from starting.
        raise StartupError(
            f"state directory {path} is open to group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}; it must be 0700: another uid could read it, or "
            f"lock it to keep walletd from starting); fix it with: chmod 700 {path}"
        )


def tighten_state_files(path: Path, names: Sequence[str], *, fix: bool = True) -> list[str]:
    """Make the state files in ``path`` 0600 (group/other bits cleared); what was loose.

    A database or log restored from a backup often comes back with the restoring tool's
    modes (0644). Inside a 0700 directory no other uid could reach it, so nothing was exposed
    through it here: the fix is to clear the bits, and a warning names each file so the
    operator can look at where the copy came from. A file owned by another uid is refused:
    that uid could rewrite it whatever its mode. With ``fix=False`` (``walletd check``,
    which changes nothing) the loose files are only reported.
    """
    loose: list[str] = []
    for name in names:
        file = path / name
        try:
            st = file.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            raise StartupError(f"{file} is not a regular file; walletd changed nothing")
        if st.st_uid != os.getuid():
            raise StartupError(
                f"{file} is owned by uid {st.st_uid}, not walletd's uid {os.getuid()}; that uid "
                f"could rewrite it. walletd changed nothing; fix it with: chown {os.getuid()} "
                f"{file}"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            loose.append(f"{file} had mode {mode:04o}")
            if fix:
                os.chmod(file, mode & 0o700)
    return loose


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
