"""The independent reference servers of ``../shared/bench-references/``, started as they are.

Why they exist beside ``bench/reference_server.py``: that one is ours and shares walletd's I/O
design (stdlib sockets parked with trio's lowlevel waits), so it cannot show what the design
costs. The shared servers do the same per-request work (frame, msgspec decode, HMAC-SHA256,
encode) on plain, independent stacks, and share no code with walletd or with this package:
they are run from their own folder with this interpreter (which has trio and msgspec), never
imported, never copied, never changed.

| name          | stack                                                   |
|---------------|---------------------------------------------------------|
| `trio-stream` | trio `SocketStream.receive_some` / `send_all`          |
| `trio-socket` | bare `trio.socket` `recv` / `send` (`--raw`)            |
| `asyncio`     | `asyncio.Protocol` on the stdlib event loop             |

They sign with one fixed key (``wire.REF_KEY`` in that folder) and answer
``{"signature": ...}`` without an address, so the warm-up check recomputes the first signature
under that key (``bench.wire.check_first_answer``) instead of checking walletd's result shape.
They need no wallet: they ignore ``user_id``.

The folder is ``$WALLETD_BENCH_REFERENCES``, else ``../shared/bench-references`` beside the
project (``--references`` overrides both).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import servers
from bench.wire import BenchError

ENV_DIR = "WALLETD_BENCH_REFERENCES"
DEFAULT_DIR = servers.PROJECT_ROOT.parent / "shared" / "bench-references"

TRIO_STREAM = "trio-stream"
TRIO_SOCKET = "trio-socket"
ASYNCIO = "asyncio"


@dataclass(frozen=True)
class SharedServer:
    """How to start one shared reference: its script (relative to the folder) and flags."""

    script: str
    flags: tuple[str, ...]
    title: str


SHARED: dict[str, SharedServer] = {
    TRIO_STREAM: SharedServer("servers/trio_server.py", (), "trio SocketStream"),
    TRIO_SOCKET: SharedServer("servers/trio_server.py", ("--raw",), "bare trio.socket"),
    ASYNCIO: SharedServer("servers/asyncio_server.py", (), "asyncio Protocol (stdlib loop)"),
}


def references_dir(explicit: Path | None = None) -> Path:
    """The shared references' folder: ``explicit``, else the environment, else the default."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(ENV_DIR)
    return Path(from_env) if from_env else DEFAULT_DIR


def load_reference_key(directory: Path) -> bytes:
    """``REF_KEY`` from the folder's ``wire.py``: read from the source of truth, not copied.

    Loading it runs that module's top level (constants, a Struct or two), which is harmless;
    the servers themselves still run in their own processes.
    """
    path = directory / "wire.py"
    spec = importlib.util.spec_from_file_location("_walletd_bench_shared_wire", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise BenchError(f"no wire.py in {directory}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken shared folder is a note in the report, not a crash
        raise BenchError(f"{path} does not load: {type(exc).__name__}: {exc}") from exc
    key = getattr(module, "REF_KEY", None)
    if not isinstance(key, bytes) or not key:
        raise BenchError(f"{path} defines no REF_KEY bytes")
    return key


def start_shared(
    name: str, workdir: Path, directory: Path, timeout: float = 30.0
) -> servers.Server:
    """Start the shared reference ``name`` on a private socket in ``workdir``; wait until ready."""
    spec = SHARED[name]
    script = directory / spec.script
    if not script.is_file():
        raise BenchError(f"{script} not found (set {ENV_DIR} or --references)")
    key = load_reference_key(directory)
    path = str(workdir / f"{name}.sock")
    argv = [sys.executable, str(script), *spec.flags, path]
    process, log = servers._spawn(name, argv, workdir, cwd=directory)
    server = servers.Server(name, "walletd", path, process, log, reference_key=key)
    servers._ready_or_stop(server, timeout)
    return server
