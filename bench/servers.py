"""Starting, probing and stopping the servers under test, and reading their CPU time.

Every server gets a private socket in a temporary directory. Readiness is "the socket accepts a
connection", polled every few milliseconds while the process is alive: no fixed sleeps.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.wire import BenchError, Protocol, create_wallet, ssh_identities

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_USER = "bench"
# One wallet per public-key type beside the HMAC one, named by its type (bench.scenarios).
BENCH_KEY_TYPES = ("ed25519", "secp256k1")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str  # "reference", "walletd", "ssh-agent"
    protocol: Protocol
    socket_path: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    ssh_key_blob: bytes = b""
    reference_key: bytes | None = None  # the shared references' fixed HMAC key
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc/<pid>/stat (fields 14 and 15), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies summed over all CPUs, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return float(total - idle), float(total)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _log_tail(server_log: IO[bytes]) -> str:
    server_log.flush()
    with open(server_log.name, "rb") as f:
        return f.read()[-2000:].decode(errors="replace").strip()


def wait_ready(
    path: str, process: subprocess.Popen[bytes], log: IO[bytes], timeout: float
) -> float:
    """Poll until ``path`` accepts a connection; return the seconds it took."""
    start = time.perf_counter()
    while True:
        if process.poll() is not None:
            raise BenchError(f"exited with status {process.returncode}: {_log_tail(log)}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(path)
            return time.perf_counter() - start
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        if time.perf_counter() - start > timeout:
            raise BenchError(f"not ready after {timeout:.0f} s: {_log_tail(log)}")
        time.sleep(0.002)


def _spawn(
    name: str,
    argv: list[str],
    workdir: Path,
    env: dict[str, str] | None = None,
    cwd: Path = PROJECT_ROOT,
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    log = open(workdir / f"{name}.log", "w+b")  # noqa: SIM115 -- closed by Server.stop
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
    )
    return process, log


def _env_with_project() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def start_reference(workdir: Path, timeout: float = 30.0) -> Server:
    path = str(workdir / "reference.sock")
    argv = [sys.executable, "-m", "bench.reference_server", "--socket", path]
    process, log = _spawn("reference", argv, workdir, _env_with_project())
    server = Server("reference", "walletd", path, process, log)
    _ready_or_stop(server, timeout, create=True)
    return server


def walletd_command() -> list[str]:
    script = Path(sys.executable).with_name("walletd")
    return [str(script)] if script.exists() else [sys.executable, "-m", "walletd"]


def walletd_unavailable_reason() -> str | None:
    """None when ``walletd --help`` works, else a one-line reason."""
    try:
        done = subprocess.run(
            [*walletd_command(), "--help"], capture_output=True, timeout=30, cwd=PROJECT_ROOT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"walletd --help exited {done.returncode}"


def start_walletd(workdir: Path, timeout: float = 30.0) -> Server:
    path = str(workdir / "walletd.sock")
    argv = [*walletd_command(), "--ephemeral", "--socket", path, "--log-level", "warning"]
    process, log = _spawn("walletd", argv, workdir)
    server = Server("walletd", "walletd", path, process, log)
    _ready_or_stop(server, timeout, create=True)
    return server


def start_ssh_agent(workdir: Path, timeout: float = 30.0) -> Server:
    """A private ssh-agent holding one fresh ed25519 key (added with ssh-add)."""
    agent, keygen, add = (shutil.which(t) for t in ("ssh-agent", "ssh-keygen", "ssh-add"))
    if not (agent and keygen and add):
        raise BenchError("ssh-agent, ssh-keygen or ssh-add not found")
    key = workdir / "id_ed25519"
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "walletd-bench", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    path = str(workdir / "ssh-agent.sock")
    process, log = _spawn("ssh-agent", [agent, "-D", "-a", path], workdir)
    server = Server("ssh-agent", "ssh", path, process, log)
    _ready_or_stop(server, timeout)
    try:
        env = dict(os.environ, SSH_AUTH_SOCK=path)
        subprocess.run([add, "-q", str(key)], check=True, capture_output=True, env=env)
        blobs = ssh_identities(path)
        if len(blobs) != 1:
            raise BenchError(f"ssh-agent holds {len(blobs)} keys, expected 1")
    except BaseException:
        server.stop()
        raise
    server.ssh_key_blob = blobs[0]
    return server


def _ready_or_stop(server: Server, timeout: float, create: bool = False) -> None:
    """Wait for readiness (and create the bench wallet); stop the server if either fails."""
    try:
        wait_ready(server.socket_path, server.process, server.log, timeout)
        if create:
            create_wallet(server.socket_path, BENCH_USER)
            for key_type in BENCH_KEY_TYPES:
                create_wallet(server.socket_path, f"{BENCH_USER}-{key_type}", key_type)
    except BaseException:
        server.stop()
        raise
