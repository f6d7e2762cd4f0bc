"""The listening socket: bound by walletd, or inherited from systemd (socket activation).

Binding: a missing parent directory is created 0700 (0750 when a socket group is set); an
existing one is never chmod-ed. The socket is created under a umask that already gives it its
final mode, so there is no window in which it is more open than configured. A stale socket
file (nobody answering) is replaced; a live one means another walletd is running, and startup
fails. A path longer than the kernel's limit is a startup error.

Activation: when ``LISTEN_PID`` is our pid and ``LISTEN_FDS`` >= 1, the inherited descriptors
(starting at fd 3; when ``LISTEN_FDNAMES`` is given, those named ``walletd``) are served as
they are: never bound, chmod-ed or unlinked by walletd, and closed (not unlinked) at exit, so
the socket file and systemd's own descriptor stay. The variables are removed from our
environment either way. The socket path, mode and group options do not apply then: the socket
unit decides them.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

import trio

from walletd.errors import StartupError
from walletd.server.credentials import resolve_group

SD_LISTEN_FDS_START = 3
#: The name walletd.socket gives its fd (FileDescriptorName=); systemd's default name for an
#: unnamed socket is the socket unit's name, so that is accepted too.
FD_NAMES = frozenset({"walletd", "walletd.socket"})
_LISTEN_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


@dataclass
class BoundSocket:
    sock: trio.socket.SocketType
    path: str | None  # None when inherited: then it is not ours to unlink
    inode: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        """The address, for logs (an inherited socket is named by what it is bound to)."""
        if self.path is not None:
            return self.path
        try:
            address = self.sock.getsockname()
        except OSError:
            address = ""
        return f"inherited:{address if isinstance(address, str) and address else 'unnamed'}"

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


def inherited_sockets(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """Listening sockets passed by systemd, or [] when we were not socket-activated.

    Like ``sd_listen_fds(unset_environment=1)``, the ``LISTEN_*`` variables are removed in
    every case, so nothing we might start later takes the descriptors for its own.
    """
    env = os.environ if environ is None else environ
    pid_text, count_text, names_text = (env.pop(var, None) for var in _LISTEN_VARS)
    if pid_text is None or count_text is None:
        return []
    try:
        pid, count = int(pid_text), int(count_text)
    except ValueError:
        raise StartupError(
            f"socket activation: LISTEN_PID={pid_text!r} LISTEN_FDS={count_text!r} are not numbers"
        ) from None
    if pid != os.getpid() or count < 1:
        return []  # meant for another process (e.g. a wrapper that forked us)
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    for fd in fds:
        _set_cloexec(fd)  # ours only: never leaks into a child
    chosen = fds
    if names_text:
        names = names_text.split(":")
        chosen = [fd for fd, name in zip(fds, names, strict=False) if name in FD_NAMES]
        if not chosen:
            raise StartupError(
                f"socket activation: systemd passed {count} descriptor(s) named "
                f"{names_text!r}, none named 'walletd'; set FileDescriptorName=walletd "
                "in the socket unit"
            )
    return [_listening_unix_socket(fd) for fd in chosen]


def _set_cloexec(fd: int) -> None:
    try:
        os.set_inheritable(fd, False)
    except OSError as exc:
        raise StartupError(
            f"socket activation: descriptor {fd} was announced but is not open ({exc.strerror})"
        ) from exc


def _listening_unix_socket(fd: int) -> socket.socket:
    problem = (
        f"socket activation: descriptor {fd} is not a listening Unix stream socket; "
        "walletd.socket must use ListenStream= with a path"
    )
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        raise StartupError(problem) from None  # not a socket at all
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()  # not ours to close: report it and leave it as it was
        raise StartupError(problem)
    return sock


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
