"""walletd-mcp as a host runs it: a child process spoken to in raw newline-delimited JSON-RPC.

The daemon runs in-process (so the test can read its keys for the secret scan); the MCP
server is a real ``walletd-mcp`` child on pipes. Everything the child writes, on stdout and
on stderr, is kept and scanned for the wallets' keys and the signed messages.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import AsyncWalletClient, verify
from walletd.server.serve import Server

from .adversarial.test_security_edges import Secrets
from .support import NOBODY, RUN_AS, MakeConfig, StartServer
from .test_eip712 import mail

PROTOCOL = "2025-11-25"


class McpChild:
    """One walletd-mcp process: send requests, read answers by id, keep all it wrote."""

    def __init__(self, proc: trio.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.stdout = bytearray()
        self._pending = bytearray()
        self._ids = iter(range(1, 1_000_000))

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request_id = next(self._ids)
        await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = await self._next()
            if message.get("id") == request_id:
                assert "error" not in message, message
                return message["result"]

    async def _next(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self._pending:
            with trio.fail_after(30):
                data = await self.proc.stdout.receive_some()
            assert data, f"walletd-mcp closed stdout; stderr:\n{self.stderr.read_text()}"
            self.stdout += data
            self._pending += data
        line, _, rest = bytes(self._pending).partition(b"\n")
        self._pending = bytearray(rest)
        message: dict[str, Any] = json.loads(line)  # every stdout line is JSON-RPC
        assert message["jsonrpc"] == "2.0"
        return message

    async def initialize(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "test-host", "version": "0"},
            },
        )
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "tools/call", {"name": name, "arguments": arguments}
        )
        return result

    def everything_written(self) -> bytes:
        return bytes(self.stdout) + self.stderr.read_bytes()


@asynccontextmanager
async def mcp_child(argv: list[str], tmp: Path) -> AsyncIterator[McpChild]:
    stderr_path = tmp / "walletd-mcp.stderr"
    with stderr_path.open("wb") as stderr:
        proc = await trio.lowlevel.open_process(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
    child = McpChild(proc, stderr_path)
    try:
        yield child
    finally:
        assert proc.stdin is not None
        await proc.stdin.aclose()  # EOF: the server stops by itself
        with trio.fail_after(20):
            await proc.wait()
        # Whatever is left on stdout is kept for the scan.
        assert proc.stdout is not None
        while data := await proc.stdout.receive_some():
            child.stdout += data
    assert proc.returncode == 0, stderr_path.read_text()


def mcp_argv(socket: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "wallet_client.mcp.main", "--socket", socket, *extra]


async def test_initialize_list_sign_and_verify_over_stdio(
    start_server: StartServer, make_config: MakeConfig, tmp_path: Path
) -> None:
    server: Server = await start_server(make_config(ephemeral=True, log_level="debug"))
    message = "SECRET-MESSAGE-" + secrets.token_hex(16)
    doc = mail()
    doc["message"]["contents"] = "SECRET-CONTENTS-" + secrets.token_hex(16)
    argv = mcp_argv(server.config.socket, "--log-level", "debug")
    async with mcp_child(argv, tmp_path) as child:
        init = await child.initialize()
        assert init["serverInfo"]["name"] == "walletd"
        assert "tools" in init["capabilities"]
        listed = await child.request("tools/list")
        names = [t["name"] for t in listed["tools"]]
        assert "wallet_sign_message" in names
        created = await child.call("wallet_create", {"user_id": "agent"})
        assert created["isError"] is False
        address = created["structuredContent"]["address"]
        signed = await child.call(
            "wallet_sign_message", {"user_id": "agent", "message": message, "purpose": "test"}
        )
        assert signed["isError"] is False
        content = signed["structuredContent"]
        assert content["status"] == "signed"
        assert content["address"] == address
        check = {"address": address, "key_type": "ed25519", "message": message}
        valid = await child.call(
            "wallet_verify_signature", {**check, "signature": content["signature"]}
        )
        assert valid["structuredContent"] == {"valid": True}
        forged = await child.call("wallet_verify_signature", {**check, "signature": "00" * 64})
        assert forged["structuredContent"] == {"valid": False}
        await child.call("wallet_create", {"user_id": "eth", "key_type": "secp256k1"})
        typed = await child.call(
            "wallet_sign_typed_data", {"user_id": "eth", "typed_data": doc, "purpose": "mail"}
        )
        assert typed["structuredContent"]["status"] == "signed"
        refused = await child.call("wallet_create", {"user_id": "agent"})
        assert refused["isError"] is True
        assert refused["structuredContent"]["error"]["code"] == "already_exists"
        secret = Secrets()
        secret.add("message", message.encode())
        secret.add("typed data contents", doc["message"]["contents"].encode())
        for user_id, wallet in server.ctx.book.wallets.items():
            secret.add(f"key of {user_id}", bytes(wallet.key))
    written = child.everything_written()
    assert b"tool_called" in written  # the logs went to stderr, and they were scanned
    assert secret.found_in(written) == []


@pytest.mark.root
async def test_server_as_a_uid_that_owns_no_wallet(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path, tmp_path: Path
) -> None:
    config = make_config(socket=str(open_tmp / "walletd.sock"), socket_mode=0o666, ephemeral=True)
    server: Server = await start_server(config)
    async with AsyncWalletClient(config.socket, timeout=10) as root:
        await root.create_wallet("roots", "ed25519")
    argv = [
        sys.executable,
        str(RUN_AS),
        str(NOBODY.pw_uid),
        str(NOBODY.pw_gid),
        "tests.mcp_children:serve",
        "--socket",
        config.socket,
    ]
    async with mcp_child(argv, tmp_path) as child:
        await child.initialize()
        listed = await child.call("wallet_list", {})
        assert listed["structuredContent"] == {"wallets": []}
        for name, args in [
            ("wallet_sign_message", {"user_id": "roots", "message": "m", "purpose": "p"}),
            ("wallet_public_key", {"user_id": "roots"}),
        ]:
            refused = await child.call(name, args)
            assert refused["isError"] is True
            assert refused["structuredContent"]["error"]["code"] == "forbidden", name
        # What nobody creates is nobody's, and only that shows up.
        made = await child.call("wallet_create", {"user_id": "nobodys"})
        assert made["isError"] is False
        mine = await child.call("wallet_list", {})
        assert [w["user_id"] for w in mine["structuredContent"]["wallets"]] == ["nobodys"]
    assert server.ctx.book.wallets["nobodys"].owner_uid == NOBODY.pw_uid


@pytest.mark.root
async def test_a_pending_approval_approved_by_another_uid_while_the_model_waits(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path, tmp_path: Path
) -> None:
    """The MCP server runs as nobody; root's admin layer sends its wallet's signatures to
    review. The model is told the signature is pending (a result, not an error), waits for
    it, and root (another uid, an admin) approves while it waits: the wait returns the
    signature, which verifies offline."""
    config = make_config(socket=str(open_tmp / "walletd.sock"), socket_mode=0o666, ephemeral=True)
    await start_server(config)
    argv = [
        sys.executable,
        str(RUN_AS),
        str(NOBODY.pw_uid),
        str(NOBODY.pw_gid),
        "tests.mcp_children:serve",
        "--socket",
        config.socket,
    ]
    async with (
        AsyncWalletClient(config.socket, timeout=30) as root,
        mcp_child(argv, tmp_path) as child,
    ):
        await child.initialize()
        made = await child.call("wallet_create", {"user_id": "held"})
        address = made["structuredContent"]["address"]
        review = [{"id": "ask", "action": "review", "reason": "a person looks first"}]
        await root.set_signing_policy("held", "admin", review, 0)
        asked = await child.call(
            "wallet_sign_message", {"user_id": "held", "message": "pay 5", "purpose": "test"}
        )
        assert asked["isError"] is False  # pending is a normal result
        pending = asked["structuredContent"]
        assert pending["status"] == "pending_approval"
        approval_id = pending["approval_id"]
        assert approval_id in pending["how_to_approve"]
        waited: dict[str, Any] = {}

        async def model_waits() -> None:
            waited.update(
                await child.call(
                    "wallet_wait_for_approval", {"approval_id": approval_id, "timeout_s": 20}
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(model_waits)
            with trio.fail_after(20):
                while approval_id not in [p.approval_id for p in await root.list_pending()]:
                    await trio.sleep(0.01)  # polling the daemon's own state, not a readiness guess
            await root.approve(approval_id)
        content = waited["structuredContent"]
        assert content["status"] == "signed"
        signature = bytes.fromhex(content["signature"].removeprefix("0x"))
        assert verify(address, b"pay 5", signature, key_type="ed25519")
