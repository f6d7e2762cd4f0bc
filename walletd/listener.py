"""The listening socket: bound by walletd, or inherited from systemd (socket activation).

Binding: a missing parent directory is created 0700 (0750 when a socket group is set); an
existing one is never chmod-ed. The socket is created under a umask that already gives it its
final mode, so there is no window in which it is more open than configured. A stale socket
file (nobody answering) is replaced; a live one means another walletd is running, and startup
fails. A path longer than the kernel's limit is a startup error.

Activation: when ``LISTEN_PID`` is our pid and ``LISTEN_FDS`` >= 1, the inherited descriptors
(starting at fd 3, matched by ``LISTEN_FDNAMES`` when given) are served as they are: never
bound, chmod-ed or unlinked by walletd. The variables are then removed from our environment.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import trio

from .errors import StartupError
from .peer import resolve_group

SD_LISTEN_FDS_START = 3
FD_NAME = "walletd"
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


@dataclass
class BoundSocket:
    sock: trio.socket.SocketType
    path: str | None  # None when inherited: then it is not ours to unlink
    inode: tuple[int, int] | None = None

    def remove(self) -> None:
        """Unlink the socket file we bound, unless something else has replaced it since."""
        if self.path is None or self.inode is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self.inode:
            os.unlink(self.path)


def inherited_sockets() -> list[socket.socket]:
    """Listening sockets passed by systemd, or [] when we were not socket-activated."""
    try:
        if int(os.environ.get("LISTEN_PID", "")) != os.getpid():
            return []
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    names = os.environ.get("LISTEN_FDNAMES", "")
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)  # children must not think the fds are theirs
    fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)
    if names:
        labelled = dict(zip(fds, names.split(":"), strict=False))
        chosen = [fd for fd in fds if labelled.get(fd) == FD_NAME] or list(fds)
    else:
        chosen = list(fds)
    out = []
    for fd in chosen:
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
            raise StartupError(f"inherited fd {fd} is not a Unix stream socket")
        out.append(sock)
    return out


def bind_unix_socket(path: str, mode: int, group: str | None, backlog: int) -> BoundSocket:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise StartupError(
            f"socket path {path} is {len(os.fsencode(path))} bytes; the kernel limit is "
            f"{MAX_SOCKET_PATH}. Choose a shorter --socket path"
        )
    gid = None
    if group is not None:
        try:
            gid = resolve_group(group)
        except KeyError:
            raise StartupError(f"socket_group {group!r} does not exist") from None
    parent = Path(path).parent
    if not parent.exists():
        try:
            parent.mkdir(mode=0o750 if gid is not None else 0o700, parents=True)
        except OSError as exc:
            raise StartupError(f"cannot create socket directory {parent}: {exc.strerror}") from exc
        if gid is not None:
            os.chown(parent, -1, gid)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot bind socket {path}: {exc.strerror}") from exc
    finally:
        os.umask(old_umask)
    try:
        if gid is not None:
            # chown only changes the group of a socket already at its final mode: no window.
            os.chown(path, -1, gid)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        os.unlink(path)
        raise StartupError(f"cannot set up socket {path}: {exc.strerror}") from exc
    st = os.stat(path)
    return BoundSocket(trio.socket.from_stdlib_socket(sock), path, (st.st_dev, st.st_ino))


def _clear_stale(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise StartupError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise StartupError(f"cannot check existing socket {path}: {exc.strerror}") from exc
        os.unlink(path)  # stale: nobody is listening
        return
    finally:
        probe.close()
    raise StartupError(f"another walletd is already serving {path}; stop it first")
