"""walletd-mcp's tools through the SDK's in-memory client, against an in-process daemon.

Every tool, its happy path and its errors; results are checked against the declared output
schemas by the SDK's client itself (it refuses structured content that does not match).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from wallet_client import AsyncWalletClient
from wallet_client.mcp.server import build_server
from wallet_client.mcp.tools import WalletTools
from wallet_client.verify import verify
from walletd.server.serve import Server

from .test_eip712 import mail  # a valid EIP-712 document (the spec's example)

MAIL = mail()

Result = dict[str, Any]


@pytest.fixture
async def wallet(server: Server) -> AsyncIterator[AsyncWalletClient]:
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        yield c


async def call(client: Client, name: str, args: dict[str, Any]) -> tuple[bool, Result]:
    result = await client.call_tool(name, args)
    assert result.structured_content is not None
    # The text content says the same as the structured content, for hosts that read text.
    (block,) = result.content
    assert json.loads(getattr(block, "text", "")) == result.structured_content
    return bool(result.is_error), result.structured_content


async def ok(client: Client, name: str, args: dict[str, Any]) -> Result:
    is_error, data = await call(client, name, args)
    assert not is_error, data
    return data


async def error(client: Client, name: str, args: dict[str, Any]) -> Result:
    is_error, data = await call(client, name, args)
    assert is_error, data
    body: Result = data["error"]
    assert set(body) == {"code", "message", "retryable", "hint"}
    return body


def mcp_client(wallet: AsyncWalletClient, **kwargs: Any) -> Client:
    return Client(build_server(WalletTools(wallet, **kwargs)))


async def test_create_list_address_and_public_key(wallet: AsyncWalletClient) -> None:
    async with mcp_client(wallet) as client:
        made = await ok(client, "wallet_create", {"user_id": "agent", "key_type": "ed25519"})
        eth = await ok(client, "wallet_create", {"user_id": "eth", "key_type": "secp256k1"})
        assert eth["address"].startswith("0x")
        listed = await ok(client, "wallet_list", {})
        assert listed["wallets"] == [
            {"user_id": "agent", "address": made["address"], "key_type": "ed25519"},
            {"user_id": "eth", "address": eth["address"], "key_type": "secp256k1"},
        ]
        got = await ok(client, "wallet_get_address", {"user_id": "agent"})
        assert got == {"user_id": "agent", "exists": True, "address": made["address"]}
        none = await ok(client, "wallet_get_address", {"user_id": "nobody-here"})
        assert none == {"user_id": "nobody-here", "exists": False, "address": None}
        key = await ok(client, "wallet_public_key", {"user_id": "agent"})
        assert key["key_type"] == "ed25519"
        assert len(bytes.fromhex(key["public_key"])) == 32
        assert key["address"] == made["address"]


async def test_create_errors(wallet: AsyncWalletClient) -> None:
    async with mcp_client(wallet) as client:
        await ok(client, "wallet_create", {"user_id": "agent"})
        again = await error(client, "wallet_create", {"user_id": "agent"})
        assert again["code"] == "already_exists"
        assert again["retryable"] is False
        bad = await error(client, "wallet_create", {"user_id": "x", "key_type": "rsa"})
        assert bad["code"] == "invalid_argument"
        assert "key_type" in bad["message"]
        extra = await error(client, "wallet_create", {"user_id": "x", "seed": "abc"})
        assert extra["code"] == "invalid_argument"
        missing = await error(client, "wallet_public_key", {"user_id": "ghost"})
        assert missing["code"] == "not_found"


@pytest.mark.parametrize(
    ("encoding", "text", "raw"),
    [
        ("utf8", "hello walletd", b"hello walletd"),
        ("hex", "00ff10", b"\x00\xff\x10"),
        ("base64", base64.b64encode(b"\x01\x02binary").decode(), b"\x01\x02binary"),
    ],
)
async def test_sign_message_and_verify(
    wallet: AsyncWalletClient, encoding: str, text: str, raw: bytes
) -> None:
    async with mcp_client(wallet) as client:
        await ok(client, "wallet_create", {"user_id": "agent", "key_type": "ed25519"})
        args = {"user_id": "agent", "message": text, "encoding": encoding, "purpose": "a test"}
        signed = await ok(client, "wallet_sign_message", args)
        assert signed["status"] == "signed"
        key = await ok(client, "wallet_public_key", {"user_id": "agent"})
        signature = bytes.fromhex(signed["signature"])
        assert verify(bytes.fromhex(key["public_key"]), raw, signature, key_type="ed25519")
        common = {"message": text, "encoding": encoding, "signature": signed["signature"]}
        by_wallet = await ok(client, "wallet_verify_signature", {"user_id": "agent", **common})
        assert by_wallet == {"valid": True}
        by_key = {"public_key": key["public_key"], "key_type": "ed25519", **common}
        assert await ok(client, "wallet_verify_signature", by_key) == {"valid": True}
        by_address = {"address": key["address"], "key_type": "ed25519", **common}
        assert await ok(client, "wallet_verify_signature", by_address) == {"valid": True}
        forged = {**by_address, "signature": "00" * 64}
        assert await ok(client, "wallet_verify_signature", forged) == {"valid": False}


async def test_sign_message_errors(wallet: AsyncWalletClient) -> None:
    async with mcp_client(wallet) as client:
        await ok(client, "wallet_create", {"user_id": "agent"})
        base = {"user_id": "agent", "message": "hi", "purpose": "p"}
        no_purpose = await error(client, "wallet_sign_message", {**base, "purpose": ""})
        assert no_purpose["code"] == "invalid_argument"
        assert "purpose" in no_purpose["message"]
        bad_hex = await error(client, "wallet_sign_message", {**base, "encoding": "hex"})
        assert bad_hex == {**bad_hex, "code": "invalid_argument"}
        assert "hex" in bad_hex["message"]
        control = await error(client, "wallet_sign_message", {**base, "purpose": "a\nb"})
        assert control["code"] == "invalid_argument"  # refused by the daemon
        ghost = await error(client, "wallet_sign_message", {**base, "user_id": "ghost"})
        assert ghost["code"] == "not_found"


async def test_sign_typed_data_and_verify(wallet: AsyncWalletClient) -> None:
    async with mcp_client(wallet) as client:
        eth = await ok(client, "wallet_create", {"user_id": "eth", "key_type": "secp256k1"})
        args = {"user_id": "eth", "typed_data": MAIL, "purpose": "sign the mail"}
        signed = await ok(client, "wallet_sign_typed_data", args)
        assert signed["status"] == "signed"
        assert signed["address"] == eth["address"]
        signature = bytes.fromhex(signed["signature"])
        assert verify(eth["address"], MAIL, signature, key_type="secp256k1")
        check = {"typed_data": MAIL, "signature": signed["signature"]}
        mine = await ok(client, "wallet_verify_signature", {"user_id": "eth", **check})
        assert mine == {"valid": True}
        theirs = {"address": eth["address"], "key_type": "secp256k1", **check}
        assert await ok(client, "wallet_verify_signature", theirs) == {"valid": True}


async def test_sign_typed_data_errors(wallet: AsyncWalletClient) -> None:
    async with mcp_client(wallet) as client:
        await ok(client, "wallet_create", {"user_id": "ed", "key_type": "ed25519"})
        await ok(client, "wallet_create", {"user_id": "eth", "key_type": "secp256k1"})
        wrong_type = {"user_id": "ed", "typed_data": MAIL, "purpose": "p"}
        refused = await error(client, "wallet_sign_typed_data", wrong_type)
        assert refused["code"] == "invalid_argument"
        assert "secp256k1" in refused["message"]
        broken = {"user_id": "eth", "typed_data": {"types": {}}, "purpose": "p"}
        assert (await error(client, "wallet_sign_typed_data", broken))["code"] == (
            "invalid_argument"
        )


async def test_verify_signature_argument_errors(wallet: AsyncWalletClient) -> None:
    async with mcp_client(wallet) as client:
        await ok(client, "wallet_create", {"user_id": "agent"})
        both = {"user_id": "agent", "address": "0x00", "message": "m", "signature": "00"}
        assert (await error(client, "wallet_verify_signature", both))["code"] == (
            "invalid_argument"
        )
        no_type = {"address": "0x" + "00" * 20, "message": "m", "signature": "00"}
        assert "key_type" in (await error(client, "wallet_verify_signature", no_type))["message"]
        not_hex = {"user_id": "agent", "message": "m", "signature": "zz"}
        assert (await error(client, "wallet_verify_signature", not_hex))["code"] == (
            "invalid_argument"
        )
        bad_key = {"public_key": "0011", "key_type": "ed25519", "message": "m", "signature": "00"}
        assert (await error(client, "wallet_verify_signature", bad_key))["code"] == (
            "invalid_argument"
        )


async def test_hmac_wallet_verifies_through_the_daemon(wallet: AsyncWalletClient) -> None:
    async with mcp_client(wallet) as client:
        await ok(client, "wallet_create", {"user_id": "h", "key_type": "hmac-sha256"})
        signed = await ok(
            client, "wallet_sign_message", {"user_id": "h", "message": "m", "purpose": "p"}
        )
        check = {"user_id": "h", "message": "m", "signature": signed["signature"]}
        assert await ok(client, "wallet_verify_signature", check) == {"valid": True}
        nokey = await error(client, "wallet_public_key", {"user_id": "h"})
        assert nokey["code"] == "invalid_argument"


async def test_purpose_is_in_recent_activity(wallet: AsyncWalletClient) -> None:
    async with mcp_client(wallet) as client:
        await ok(client, "wallet_create", {"user_id": "agent"})
        args = {"user_id": "agent", "message": "secret-ish text", "purpose": "log in to x"}
        await ok(client, "wallet_sign_message", args)
        activity = await ok(client, "wallet_recent_activity", {"user_id": "agent"})
        events = [r["event"] for r in activity["records"]]
        assert events == ["wallet_created", "message_signed"]
        signed = activity["records"][-1]
        assert signed["purpose"] == "log in to x"
        assert signed["message_bytes"] == len(b"secret-ish text")
        assert "secret-ish" not in json.dumps(activity)  # the message itself is not recorded
        everything = await ok(client, "wallet_recent_activity", {"limit": 1})
        assert [r["event"] for r in everything["records"]] == ["message_signed"]


async def test_signing_without_purpose_writes_no_record(wallet: AsyncWalletClient) -> None:
    await wallet.create_wallet("agent", "ed25519")
    await wallet.sign_message("agent", b"m")
    assert [r.event for r in await wallet.audit_log("agent")] == ["wallet_created"]
    await wallet.create_wallet("eth", "secp256k1")
    await wallet.sign_typed_data("eth", MAIL, purpose="mail")
    records = await wallet.audit_log("eth")
    assert [r.event for r in records] == ["wallet_created", "typed_data_signed"]
    assert records[-1].detail == {"purpose": "mail", "version": 1}


async def test_pinned_server_sees_and_uses_only_its_wallets(wallet: AsyncWalletClient) -> None:
    await wallet.create_wallet("mine", "ed25519")
    await wallet.create_wallet("other", "ed25519")
    async with mcp_client(wallet, pinned=["mine"]) as client:
        listed = await ok(client, "wallet_list", {})
        assert [w["user_id"] for w in listed["wallets"]] == ["mine"]
        for name, args in [
            ("wallet_sign_message", {"user_id": "other", "message": "m", "purpose": "p"}),
            ("wallet_get_address", {"user_id": "other"}),
            ("wallet_create", {"user_id": "new"}),
            ("wallet_recent_activity", {"user_id": "other"}),
        ]:
            assert (await error(client, name, args))["code"] == "not_pinned", name
        await ok(client, "wallet_sign_message", {"user_id": "mine", "message": "m", "purpose": "p"})
        activity = await ok(client, "wallet_recent_activity", {})
        assert {r["user_id"] for r in activity["records"]} == {"mine"}


async def test_read_only_server_lists_and_runs_no_writing_tool(
    wallet: AsyncWalletClient,
) -> None:
    await wallet.create_wallet("agent", "ed25519")
    async with mcp_client(wallet, read_only=True) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert not names & {"wallet_create", "wallet_sign_message", "wallet_sign_typed_data"}
        assert "wallet_verify_signature" in names
        args = {"user_id": "agent", "message": "m", "purpose": "p"}
        refused = await error(client, "wallet_sign_message", args)
        assert refused["code"] == "read_only"
        assert (await error(client, "wallet_create", {"user_id": "x"}))["code"] == "read_only"
        assert await wallet.audit_log("agent") != []


async def test_explain_runs_the_daemon_policy_and_approval_tools_know_no_such_id(
    wallet: AsyncWalletClient,
) -> None:
    async with mcp_client(wallet) as client:
        await ok(client, "wallet_create", {"user_id": "agent"})
        explain = await ok(client, "wallet_explain_signing", {"user_id": "agent", "message": "m"})
        assert explain["action"] == "allow"  # no rules: the daemon default
        for name in ("wallet_approval_status", "wallet_wait_for_approval"):
            body = await error(client, name, {"approval_id": "a1"})
            assert body["code"] == "not_found"  # approvals exist (issue 16); this id does not


async def test_unknown_tool_and_daemon_gone(wallet: AsyncWalletClient, tmp_path: Any) -> None:
    async with mcp_client(wallet) as client:
        assert (await error(client, "wallet_delete", {}))["code"] == "unknown_tool"
    async with (
        AsyncWalletClient(tmp_path / "absent.sock", timeout=2) as gone,
        mcp_client(gone) as client,
    ):
        down = await error(client, "wallet_list", {})
        assert down["code"] == "unavailable"
        assert down["retryable"] is True
        assert "absent.sock" not in json.dumps(down)  # no socket path reaches the model
