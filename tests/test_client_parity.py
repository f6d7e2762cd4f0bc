"""The two clients are one: every op on both, alike, and client.py generated from aio.py.

``wallet_client/client.py`` is written by ``scripts/unasync.py`` from ``wallet_client/aio.py``
(the trio client). These tests hold the parts of that promise a reader cannot see at a glance:
that no op is missing from either client, that each method looks the same in both (async or
not), that the two transports offer the same names, and that the committed file is current.
"""

from __future__ import annotations

import importlib.util
import inspect
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import walletd_wire as wire
from wallet_client import AsyncWalletClient, WalletClient
from wallet_client import _sync_transport as sync_transport
from wallet_client import _trio_transport as trio_transport

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "unasync.py"

# Op -> method, for ops whose client method is not named like the op. None today: the method
# names mirror the in-process library walletd replaced, and so do the op names.
METHOD_FOR_OP: dict[str, str] = {}

# Public methods that are no op of their own, each with why it exists.
EXTRA_METHODS: dict[str, str] = {
    "recover": "initiate_recovery that returns the new address and raises on a wrong answer",
    "sign_message_detailed": "sign_message returning the key type and version with the signature",
    "sign_typed_data_detailed": "sign_typed_data returning the key type and version as well",
}

# Methods whose names differ by flavour, as Python's protocols want: trio -> blocking.
FLAVOUR_NAMES: dict[str, str] = {
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}


def public_methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


def op_methods() -> list[str]:
    return [METHOD_FOR_OP.get(op, op) for op in wire.OPS]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- methods


def test_every_op_has_a_method_on_both_clients() -> None:
    assert {"hello", "status"} <= set(wire.OPS)  # the handshake ops are methods too
    for method in op_methods():
        assert callable(getattr(AsyncWalletClient, method, None)), f"AsyncWalletClient.{method}"
        assert callable(getattr(WalletClient, method, None)), f"WalletClient.{method}"
    assert set(METHOD_FOR_OP) <= set(wire.OPS), "METHOD_FOR_OP names an op that no longer exists"


def test_the_clients_have_the_same_public_methods() -> None:
    trio_side = {FLAVOUR_NAMES.get(n, n) for n in public_methods(AsyncWalletClient)}
    assert trio_side == public_methods(WalletClient)
    # Nothing public that is neither an op's method nor an explained extra.
    unexplained = trio_side - set(op_methods()) - set(EXTRA_METHODS) - {"close"}
    assert not unexplained, f"not an op, not in EXTRA_METHODS: {sorted(unexplained)}"


@pytest.mark.parametrize("method", [*op_methods(), *EXTRA_METHODS])
def test_each_method_has_one_signature_and_docstring(method: str) -> None:
    trio_method: Callable[..., Any] = getattr(AsyncWalletClient, method)
    sync_method: Callable[..., Any] = getattr(WalletClient, method)
    assert inspect.iscoroutinefunction(trio_method), f"AsyncWalletClient.{method} is not async"
    assert not inspect.iscoroutinefunction(sync_method), f"WalletClient.{method} is async"
    # Annotations are compared as written (both modules use postponed evaluation).
    assert inspect.signature(trio_method) == inspect.signature(sync_method)
    assert trio_method.__doc__ == sync_method.__doc__


def test_the_lifecycle_methods_correspond() -> None:
    assert inspect.signature(AsyncWalletClient.__init__) == inspect.signature(WalletClient.__init__)
    for trio_name, sync_name in FLAVOUR_NAMES.items():
        assert inspect.iscoroutinefunction(getattr(AsyncWalletClient, trio_name))
        assert not inspect.iscoroutinefunction(getattr(WalletClient, sync_name))


def test_the_transports_offer_the_same_names() -> None:
    assert trio_transport.__all__ == sync_transport.__all__
    for name in trio_transport.__all__:
        assert hasattr(trio_transport, name) and hasattr(sync_transport, name), name
    for name in ("TIMED_OUT", "SEND_BROKEN", "LOST", "CANCELLED"):
        for flavour in (trio_transport, sync_transport):
            kinds = getattr(flavour, name)
            assert all(issubclass(k, BaseException) for k in kinds), (flavour.__name__, name)
    # What a call raises when the daemon hangs up early must be reported as a lost connection.
    for flavour in (trio_transport, sync_transport):
        assert issubclass(flavour.ClosedByPeer, flavour.LOST)
    trio_connection = public_methods(trio_transport.Connection)
    assert trio_connection == public_methods(sync_transport.Connection)
    for name in trio_connection:
        trio_fn = getattr(trio_transport.Connection, name)
        sync_fn = getattr(sync_transport.Connection, name)
        assert inspect.signature(trio_fn) == inspect.signature(sync_fn), name


# --------------------------------------------------------------------------- generation


def test_the_generated_client_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    first = (ROOT / "wallet_client" / "client.py").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# Generated by scripts/unasync.py from wallet_client/aio.py — do not edit"


def _copy_of_the_tree(tmp_path: Path) -> Path:
    """The files the script reads and writes, laid out as in the repository."""
    for relative in ("scripts/unasync.py", "wallet_client/aio.py", "wallet_client/client.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")  # ruff's settings
    return tmp_path


def test_check_fails_clearly_on_a_stale_client_and_writing_repairs_it(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    script = root / "scripts" / "unasync.py"
    target = root / "wallet_client" / "client.py"
    target.write_text(target.read_text().replace("return self._call", "return  self._call", 1))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, check=False
        )

    stale = run("--check")
    assert stale.returncode == 1
    assert "wallet_client/client.py is stale" in stale.stderr
    assert "python scripts/unasync.py" in stale.stderr  # says how to fix it
    assert "-        return  self._call" in stale.stderr  # and shows what differs

    assert run().returncode == 0
    assert target.read_text() == (ROOT / "wallet_client" / "client.py").read_text()
    assert run("--check").returncode == 0


def test_check_fails_when_the_client_is_missing(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    (root / "wallet_client" / "client.py").unlink()
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "is stale" in done.stderr


def test_rules_that_no_longer_fit_stop_the_script() -> None:
    script = load_script()
    source = (ROOT / "wallet_client" / "aio.py").read_text(encoding="utf-8")
    # trio used directly in the client, instead of through the transport, cannot be generated.
    leaky = source.replace("await transport.checkpoint()", "await trio.lowlevel.checkpoint()")
    with pytest.raises(script.StaleRuleError, match="'trio'"):
        script.generate(leaky)
    # A rename that matches nothing means the rules and aio.py have drifted apart.
    renamed = source.replace("aclose", "shut")
    with pytest.raises(script.StaleRuleError, match="aclose"):
        script.generate(renamed)
    with pytest.raises(script.StaleRuleError, match="__all__"):
        script.generate(source.replace('__all__ = ["AsyncWalletClient"]', "__all__ = []"))


def test_generation_drops_async_and_keeps_everything_else() -> None:
    script = load_script()
    source = '''"""module"""

class AsyncWalletClient:
    """class"""

    async def hello(self) -> int:
        """Kept as written."""
        # await in a comment is text, not code: kept
        async with self._lock:
            return await self._call("x")

    async def aclose(self) -> None:
        self._stream = None

    async def __aenter__(self) -> AsyncWalletClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

from . import _trio_transport as transport
__all__ = ["AsyncWalletClient"]
'''
    with pytest.raises(script.StaleRuleError, match="'await'"):
        script.generate(source)  # the comment survives, and the leftover check sees it
    out = script.generate(
        source.replace("        # await in a comment is text, not code: kept\n", "")
    )
    assert out.splitlines()[0].startswith("# Generated by scripts/unasync.py")
    assert "    def hello(self) -> int:\n" in out
    assert '        with self._lock:\n            return self._call("x")\n' in out
    assert "    def close(self) -> None:\n        self._sock = None\n" in out
    assert "def __enter__(self) -> WalletClient:" in out
    assert "        self.close()\n" in out
    assert "from . import _sync_transport as transport" in out
    assert '"""Kept as written."""' in out
    assert script.SYNC_CLASS_DOCSTRING in out
