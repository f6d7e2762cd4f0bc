"""Shared pieces of the adversarial tests: daemons with a TOML config, agents under other
uids, daemon RSS, log events, and a fingerprint of the daemon's state."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from wallet_client import errors as errors
from walletd_wire.framing import FrameDecoder

from ..support import HELLO, ROOT, DaemonProcess, daemon_process
from .agent import decode, encode

AGENT = Path(__file__).resolve().parent / "agent.py"
OTHER_UID = 65533  # a uid with no passwd entry, as in test_authz
NOBODY_UID = 65534

#: What every adversarial daemon runs with unless a test says otherwise: fast scrypt, three
#: recovery attempts, explicit rotation defaults (the model in test_stateful relies on them).
BASE_CONFIG: dict[str, Any] = {
    "scrypt_n": 1024,
    "max_attempts": 3,
    # The model keeps a lock until reset; the default (900 s) could expire in a long run.
    "lockout_seconds": "until_reset",
    "rotation_max_age_days": 90,
    "rotation_max_signatures": 10000,
    "rotation_auto_rotate": False,
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def write_config(path: Path, **options: Any) -> Path:
    values = {**BASE_CONFIG, **options}
    path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in values.items()))
    return path


def configured_daemon(
    tmp: Path, *extra: str, log_level: str = "info", **options: Any
) -> DaemonProcess:
    """A daemon (not started) in ``tmp`` (which other uids can traverse) with ``options``."""
    config = write_config(tmp / "walletd.toml", **options)
    return daemon_process(tmp, "--config", str(config), "--log-level", log_level, *extra)


# --------------------------------------------------------------------------- agents


class AgentError(AssertionError):
    """The agent itself failed (a crash in the client library, or the child died)."""


class Agent:
    """A client process under ``uid`` (see agent.py); ``call`` and ``batch`` drive it."""

    def __init__(self, uid: int, gid: int, socket_path: Path, *, timeout: float = 20.0) -> None:
        self.uid = uid
        self.proc = subprocess.Popen(
            [sys.executable, str(AGENT), str(uid), str(gid), str(socket_path), str(timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        ready = self._read()
        if ready != {"ready": uid}:
            raise AgentError(f"agent for uid {uid} did not start: {ready!r}")

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AgentError(f"agent for uid {self.uid} exited ({self.proc.poll()})")
        return json.loads(line)

    def batch(self, calls: Sequence[tuple[str, Sequence[Any], dict[str, Any]]]) -> list[Any]:
        """Run ``calls`` in order; each outcome is the value or the WalletError raised."""
        assert self.proc.stdin is not None
        wire = [[method, encode(list(args)), encode(kwargs)] for method, args, kwargs in calls]
        self.proc.stdin.write(json.dumps(wire) + "\n")
        self.proc.stdin.flush()
        outcomes = []
        for item in self._read():
            if "crash" in item:
                raise AgentError(f"client crashed in agent uid {self.uid}: {item['crash']}")
            if "error" in item:
                cls = getattr(errors, item["type"], errors.WalletError)
                outcomes.append(cls(item["message"], code=item["error"]))
            else:
                outcomes.append(decode(item["value"]))
        return outcomes

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The value, or the WalletError returned (not raised) so a model can compare it."""
        return self.batch([(method, args, kwargs)])[0]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --------------------------------------------------------------------------- observation


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` from /proc (readable by root even when non-dumpable)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def event_counts(daemon: DaemonProcess, event: str, field: str = "reason") -> Counter[str]:
    return Counter(
        str(line.get(field)) for line in daemon.log_lines() if line.get("event") == event
    )


def tracebacks(daemon: DaemonProcess, after: int = 0) -> list[dict[str, Any]]:
    """Log lines (from line ``after`` on) that carry an exception: a bug, whatever the test
    was doing."""
    return [
        line
        for line in daemon.log_lines()[after:]
        if "exception" in line or line.get("event") in ("internal_error", "connection_failed")
    ]


# --------------------------------------------------------------------------- raw frames


def raw_connect(path: Path | str, timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def read_responses(
    sock: socket.socket, count: int, *, max_bytes: int = 1 << 30
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``count`` responses, and whether the daemon closed the connection first."""
    frames = FrameDecoder(max_bytes)
    out: list[dict[str, Any]] = []
    while len(out) < count:
        while len(out) < count and (payload := frames.next_frame()) is not None:
            out.append(msgspec.msgpack.decode(payload))
        if len(out) >= count:
            break
        try:
            data = sock.recv(1 << 16)
        except ConnectionResetError:
            return out, True
        if not data:
            return out, True
        frames.feed(data)
    return out, False


def roundtrip(sock: socket.socket, frame: bytes = HELLO) -> dict[str, Any]:
    sock.sendall(frame)
    responses, _closed = read_responses(sock, 1)
    assert responses, "the daemon closed the connection instead of answering"
    return responses[0]


@contextlib.contextmanager
def running_daemon(prefix: str, **options: Any) -> Iterator[DaemonProcess]:
    """A started daemon in its own temporary directory (which other uids can traverse), for
    module-scoped fixtures; killed and removed at exit."""
    home = Path(tempfile.mkdtemp(prefix=f"walletd-{prefix}-"))
    home.chmod(0o755)
    daemon = configured_daemon(home, **options)
    try:
        yield daemon.start()
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill()
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def effective_uid(uid: int) -> Iterator[None]:
    """Connect as ``uid``: SO_PEERCRED records the effective uid at connect time. The real uid
    stays root, so the test process takes root back at once."""
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)
