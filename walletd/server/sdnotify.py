"""sd_notify: tell systemd about readiness, status, watchdog pings, reloads and shutdown.

The protocol is one datagram of ``KEY=value`` lines to the Unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without that variable every
call is a no-op, so the daemon runs the same outside systemd.

The socket is non-blocking: these calls are made from the event loop, and a manager that has
stopped reading (a full receive queue) must cost us a lost status line, never a stalled loop.

What walletd sends, and when (see :mod:`walletd.server`):

- ``READY=1`` + ``STATUS=`` once the state is loaded and the listeners accept connections;
- ``STATUS=`` (wallets, connections) when it changes, and ``WATCHDOG=1`` every half of
  ``$WATCHDOG_USEC``, from one task of the event loop (a wedged loop stops the pings);
- ``RELOADING=1`` + ``MONOTONIC_USEC=`` on SIGHUP, then ``READY=1`` when the reload is done;
- ``STOPPING=1`` when shutdown begins.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = ["Notifier", "watchdog_interval"]


def notify_address(value: str) -> str:
    """``$NOTIFY_SOCKET`` as an address for ``sendto`` (``@name`` -> abstract ``\\0name``)."""
    return "\0" + value[1:] if value.startswith("@") else value


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if address:
            self._address = notify_address(address)
            self._sock = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            )

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one message; False when there is no one to tell or it failed."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError:
            return False  # manager gone, not listening, or its queue full: nothing to do
        return True

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd (Type=notify-reload, >= 253) match the reload to this
        # message; older managers ignore it.
        self.notify(
            "RELOADING=1",
            "STATUS=reloading configuration",
            f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
        )

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def watchdog(self, status: str | None = None) -> None:
        self.notify("WATCHDOG=1", *([f"STATUS={status}"] if status is not None else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process.

    systemd recommends pinging at half the timeout, so one late ping is not yet fatal.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec:
        return None
    try:
        if pid and int(pid) != os.getpid():
            return None
        value = int(usec)
    except ValueError:
        return None
    return value / 2 / 1e6 if value > 0 else None
