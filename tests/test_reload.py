"""SIGHUP reload on a real walletd: live options change, restart-only ones wait, clients stay.

Each reload is awaited on the notification socket (RELOADING=1, then READY=1), the way
systemd follows it, so nothing here sleeps. The client is a raw socket that is never
reconnected: if walletd dropped it, the next request would fail.
"""

from __future__ import annotations

import itertools
import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from walletd_wire.framing import FrameDecoder, encode_frame

from .support import DaemonFactory, DaemonProcess
from .test_sdnotify import NotifyReceiver

pytestmark = pytest.mark.slow


class RawConnection:
    """One connection for the whole test (the library clients reconnect; this one must not)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(path))
        self.frames = FrameDecoder()
        self.ids = itertools.count(1)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        request_id = next(self.ids)
        self.sock.sendall(
            encode_frame(msgspec.msgpack.encode({"op": op, "id": request_id, **fields}))
        )
        while (frame := self.frames.next_frame()) is None:
            data = self.sock.recv(1 << 16)
            assert data, "walletd closed the connection"
            self.frames.feed(data)
        response = msgspec.msgpack.decode(frame)
        assert response["id"] == request_id
        assert isinstance(response, dict)
        return response

    def result(self, op: str, **fields: Any) -> Any:
        response = self.call(op, **fields)
        assert response["ok"], response
        return response["result"]

    def close(self) -> None:
        self.sock.close()


class Reloadable:
    """A walletd started from a config file only (no flags, so the file decides everything)."""

    def __init__(self, proc: DaemonProcess, config: Path, receiver: NotifyReceiver) -> None:
        self.proc, self.config, self.receiver = proc, config, receiver

    def write(self, **options: Any) -> None:
        base = {"socket": str(self.proc.socket_path), "state_dir": str(self.proc.state_dir)}
        lines = [f"{key} = {json.dumps(value)}" for key, value in {**base, **options}.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def write_raw(self, text: str) -> None:
        self.config.write_text(text)

    def reload(self) -> None:
        self.proc.send_signal(signal.SIGHUP)
        self.receiver.wait_for("RELOADING")
        self.receiver.wait_for("READY")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.proc.log_lines() if line.get("event") == name]


@pytest.fixture
def walletd(daemon: DaemonFactory, open_tmp: Path) -> Iterator[Reloadable]:
    receiver = NotifyReceiver(str(open_tmp / "notify.sock"))
    proc = daemon(env={"NOTIFY_SOCKET": receiver.address})
    config = open_tmp / "walletd.toml"
    proc.args = ["--config", str(config)]  # the fixture's flags would override the file
    w = Reloadable(proc, config, receiver)
    w.write(log_level="info", rotation_max_signatures=100)
    proc.start()
    receiver.wait_for("READY")
    yield w
    receiver.close()


def test_sighup_applies_log_level_and_default_policy_on_the_same_connection(
    walletd: Reloadable,
) -> None:
    conn = RawConnection(walletd.proc.socket_path)
    conn.result("create_wallet", user_id="alice")
    conn.result("create_wallet", user_id="bob")
    conn.result("set_policy", user_id="bob", max_signatures=50)  # bob's own override
    assert conn.result("get_policy", user_id="alice")["max_signatures"] == 100
    assert not [line for line in walletd.proc.log_lines() if line["level"] == "debug"]

    walletd.write(log_level="debug", rotation_max_signatures=7, max_frame_bytes=2048)
    walletd.reload()

    # The same connection, now under the new default; bob's override still wins.
    assert conn.result("get_policy", user_id="alice")["max_signatures"] == 7
    assert conn.result("get_policy", user_id="bob")["max_signatures"] == 50
    # max_frame_bytes is restart-only: a 4 KiB message still fits the old 1 MiB limit.
    assert conn.result("sign_message", user_id="alice", message=b"x" * 4096)

    (created,) = [e for e in walletd.events("wallet_created") if e["user_id"] == "alice"]
    requests = walletd.events("request")
    assert [r["op"] for r in requests] == ["get_policy", "get_policy", "sign_message"]
    assert {r["conn"] for r in requests} == {created["conn"]}  # one connection throughout
    assert not walletd.events("connection_closed")

    (reloaded,) = walletd.events("reloaded")
    assert reloaded["changed"] == ["log_level", "rotation_max_signatures"]
    assert reloaded["needs_restart"] == ["max_frame_bytes"]
    assert [e["option"] for e in walletd.events("reload_needs_restart")] == ["max_frame_bytes"]
    conn.close()
    assert walletd.proc.stop() == 0


def test_a_bad_configuration_on_reload_changes_nothing(walletd: Reloadable) -> None:
    conn = RawConnection(walletd.proc.socket_path)
    conn.result("create_wallet", user_id="carol")

    walletd.write_raw("log_level = 'debug'\nrotation_max_signatures = \n")  # not TOML
    walletd.reload()
    walletd.write(log_level="debug", rotation_max_signatures=3, admin_group="no-such-group-zz")
    walletd.reload()  # used to escape reload() as a KeyError and stop the daemon
    walletd.write(log_level="debug", no_such_option=1)
    walletd.reload()

    failures = [e["error"] for e in walletd.events("reload_failed")]
    assert len(failures) == 3, failures
    assert "not valid TOML" in failures[0]
    assert "no-such-group-zz" in failures[1]
    assert "no_such_option" in failures[2]
    assert conn.result("get_policy", user_id="carol")["max_signatures"] == 100
    assert not walletd.events("reloaded")
    assert not walletd.events("request")  # still at info: nothing was applied

    # Then a good file applies, including the log format.
    walletd.write(log_level="debug", log_format="console", rotation_max_signatures=3)
    walletd.reload()
    assert conn.result("get_policy", user_id="carol")["max_signatures"] == 3
    console = [line for line in walletd.proc.log_text().splitlines() if "reloaded" in line]
    assert len(console) == 1 and not console[0].startswith("{")
    conn.close()
    assert walletd.proc.stop() == 0


def test_sighup_without_a_config_file_is_logged_and_harmless(
    daemon: DaemonFactory, open_tmp: Path
) -> None:
    receiver = NotifyReceiver(str(open_tmp / "notify.sock"))
    try:
        proc = daemon(ephemeral=True, env={"NOTIFY_SOCKET": receiver.address}).start()
        receiver.wait_for("READY")
        proc.send_signal(signal.SIGHUP)
        receiver.wait_for("RELOADING")
        receiver.wait_for("READY")
        assert [e["reason"] for e in proc.log_lines() if e["event"] == "reload_skipped"] == [
            "no configuration file"
        ]
        assert proc.stop() == 0
    finally:
        receiver.close()
