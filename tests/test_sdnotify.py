"""sd_notify: the Notifier on its own, then a real walletd talking to a socket we bind.

The test plays systemd's part: it binds a datagram socket, hands its name over as
``$NOTIFY_SOCKET`` (a path, and an abstract ``@name``) and reads what the daemon says.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallet_client import WalletClient
from walletd.server.sdnotify import Notifier, notify_address, watchdog_interval

from .support import DaemonFactory


class NotifyReceiver:
    """The manager's end of ``$NOTIFY_SOCKET``: every datagram, parsed into ``KEY -> value``."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(notify_address(address))
        self.messages: list[dict[str, str]] = []

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)

    def receive(self, timeout: float) -> dict[str, str] | None:
        """The next message, or None when none arrives within ``timeout`` seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(message)
        return message

    def wait_for(self, key: str, value: str = "1", timeout: float = 30.0) -> dict[str, str]:
        """The first message (from now on) with ``key=value``; the timeout only bounds a failure."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.receive(remaining)
            if message is not None and message.get(key) == value:
                return message
        raise AssertionError(f"no {key}={value} within {timeout}s; got {self.messages}")

    def collect(self, seconds: float) -> list[dict[str, str]]:
        """Everything that arrives during the next ``seconds``."""
        got = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            message = self.receive(remaining)
            if message is not None:
                got.append(message)
        return got


def abstract_name() -> str:
    return f"@walletd-test-{os.getpid()}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, open_tmp: Path) -> Iterator[NotifyReceiver]:
    address = str(open_tmp / "notify.sock") if request.param == "path" else abstract_name()
    r = NotifyReceiver(address)
    yield r
    r.close()


# ---------------------------------------------------------------------------- Notifier alone


def test_notifier_sends_one_datagram_per_message(receiver: NotifyReceiver) -> None:
    notifier = Notifier(receiver.address)
    try:
        assert notifier.enabled
        notifier.ready("3 wallets, 0 connections")
        ready = receiver.receive(5)
        assert ready == {
            "READY": "1",
            "STATUS": "3 wallets, 0 connections",
            "MAINPID": str(os.getpid()),
        }
        notifier.reloading()
        reloading = receiver.receive(5)
        assert reloading is not None
        assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        notifier.watchdog()
        assert receiver.receive(5) == {"WATCHDOG": "1"}
        notifier.stopping()
        assert receiver.receive(5) == {"STOPPING": "1", "STATUS": "stopping"}
    finally:
        notifier.close()


def test_without_notify_socket_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    notifier.ready("x")  # does not raise
    notifier.close()


def test_nobody_listening_is_not_an_error(open_tmp: Path) -> None:
    notifier = Notifier(str(open_tmp / "nobody-here.sock"))
    try:
        assert notifier.enabled
        assert notifier.notify("WATCHDOG=1") is False
    finally:
        notifier.close()


def test_a_manager_that_stopped_reading_never_blocks_the_caller(open_tmp: Path) -> None:
    # The daemon notifies from its event loop: a full receive queue must cost a lost message,
    # not a stalled loop. A blocking send would hang here, hence the thread and the bound.
    receiver = NotifyReceiver(str(open_tmp / "full.sock"))
    notifier = Notifier(receiver.address)
    outcomes: list[bool] = []

    def flood() -> None:
        for _ in range(100_000):
            ok = notifier.notify("STATUS=" + "x" * 1000)
            outcomes.append(ok)
            if not ok:
                return

    try:
        worker = threading.Thread(target=flood, daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "notify() blocked on a full notification socket"
        assert outcomes[-1] is False and outcomes.count(True) >= 1
    finally:
        notifier.close()
        receiver.close()


def test_watchdog_interval_is_half_the_timeout_for_this_process_only() -> None:
    me = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "400000"}) == pytest.approx(0.2)
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_abstract_address_maps_the_at_sign_to_a_nul() -> None:
    assert notify_address("@walletd/notify") == "\0walletd/notify"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"


# ---------------------------------------------------------------------------- a real daemon


@pytest.mark.slow
def test_daemon_lifecycle_over_notify_socket(
    daemon: DaemonFactory, receiver: NotifyReceiver, open_tmp: Path
) -> None:
    config = open_tmp / "walletd.toml"
    config.write_text("max_connections = 64\n")
    proc = daemon(
        "--config",
        str(config),
        ephemeral=True,
        env={"NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "400000"},
    ).start(wait=False)

    # READY=1 comes once the socket answers: connecting right after it must work.
    ready = receiver.wait_for("READY")
    assert not any("READY" in m for m in receiver.messages[:-1])
    with WalletClient(proc.socket_path, timeout=10) as client:
        assert client.status().connections == 1
        assert ready["STATUS"] == "0 wallets, 0 connections"
        assert ready["MAINPID"] == str(proc.pid)

        # STATUS= follows the connection count (sent when it changes).
        receiver.wait_for("STATUS", "0 wallets, 1 connections")
        client.create_wallet("alice")
        receiver.wait_for("STATUS", "1 wallets, 1 connections")

        # Watchdog pings every WATCHDOG_USEC/2 = 0.2 s: count them over a measured window.
        started = time.monotonic()
        window = receiver.collect(2.0)
        elapsed = time.monotonic() - started
        pings = sum(1 for m in window if m.get("WATCHDOG") == "1")
        assert 3 <= pings <= elapsed / 0.2 * 3 + 3, (pings, elapsed)

        # SIGHUP: RELOADING=1, then READY=1 once the configuration is re-read.
        proc.send_signal(signal.SIGHUP)
        receiver.wait_for("RELOADING")
        after = receiver.wait_for("READY")
        assert after["STATUS"] == "1 wallets, 1 connections"
        assert client.has_wallet("alice")  # the same client, still served

    proc.send_signal(signal.SIGTERM)
    receiver.wait_for("STOPPING")
    assert proc.wait(20) == 0
    events = [line["event"] for line in proc.log_lines()]
    assert "reloaded" in events and "stopped" in events


@pytest.mark.slow
def test_no_watchdog_pings_unless_asked(daemon: DaemonFactory, open_tmp: Path) -> None:
    receiver = NotifyReceiver(str(open_tmp / "notify.sock"))
    try:
        proc = daemon(ephemeral=True, env={"NOTIFY_SOCKET": receiver.address}).start(wait=False)
        receiver.wait_for("READY")
        with WalletClient(proc.socket_path, timeout=10) as client:
            client.create_wallet("bob")
            receiver.wait_for("STATUS", "1 wallets, 1 connections")
        assert proc.stop() == 0
        receiver.wait_for("STOPPING")
        assert not any("WATCHDOG" in m for m in receiver.messages)
    finally:
        receiver.close()
