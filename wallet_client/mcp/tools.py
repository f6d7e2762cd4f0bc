"""The tools' behaviour: arguments in, a walletd call through the trio client, a result out.

Each tool is a method ``tool_<name>(args) -> dict`` returning the structured result, or
raising :class:`~wallet_client.mcp.failures.ToolFailure`. Arguments arrive validated against
the tool's input schema (:mod:`wallet_client.mcp.server`); what a schema cannot say (one of
``user_id`` / ``address`` / ``public_key``; decoding hex) is checked here.

Two guards sit in front of the daemon, which still decides everything it always decides
(ownership, policy, approvals): ``--user-id`` pins (a wallet not pinned is ``not_pinned``
without asking the daemon) and ``--read-only`` (no tool that creates or signs is listed or
runs). They narrow what the daemon would allow; they are never the only check.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final

import walletd_wire as wire
from wallet_client.aio import AsyncWalletClient
from wallet_client.approval_calls import PendingApproval
from wallet_client.calls import Call
from wallet_client.errors import WalletError
from wallet_client.verify import verify

from . import approvals
from .failures import NOT_PINNED, READ_ONLY, ToolFailure, failure_from
from .schemas import TOOLS

__all__ = ["WalletTools"]

Args = dict[str, Any]
ToolFn = Callable[[Args], Awaitable[dict[str, Any]]]

# Audit detail keys a model may read back; anything else a record holds (backup hashes,
# ritual bookkeeping) stays out of its context.
_DETAIL_KEYS: Final = ("purpose", "version", "message_bytes", "reason", "key_type", "count")


class WalletTools:
    """Every tool of walletd-mcp over one client, with the server's pins and mode."""

    def __init__(
        self,
        client: AsyncWalletClient,
        *,
        pinned: Collection[str] = (),
        read_only: bool = False,
    ) -> None:
        self.client = client
        self.pinned = frozenset(pinned)
        self.read_only = read_only
        self._approvals: dict[str, str] = {}  # approval_id -> user_id, for the result's address

    def listed(self) -> list[str]:
        """The names of the tools this server offers, in listing order."""
        return [s.name for s in TOOLS if not (self.read_only and s.writes)]

    async def call(self, name: str, args: Args) -> dict[str, Any]:
        """Run tool ``name``; WalletError and friends come back as ToolFailure."""
        spec = next((s for s in TOOLS if s.name == name), None)
        if spec is None:
            raise ToolFailure("unknown_tool", f"no tool named {name[:64]!r}")
        if spec.writes and self.read_only:
            raise ToolFailure(READ_ONLY, f"{name} creates or signs; this server is read-only")
        fn: ToolFn = getattr(self, "tool_" + name.removeprefix("wallet_"))
        try:
            return await fn(args)
        except WalletError as exc:
            raise failure_from(exc) from None

    # ------------------------------------------------------------------ guards

    def _user(self, args: Args) -> str:
        user_id = str(args["user_id"])
        if self.pinned and user_id not in self.pinned:
            raise ToolFailure(NOT_PINNED, f"this server is not allowed to use {user_id[:64]!r}")
        return user_id

    # ------------------------------------------------------------------ wallets

    async def tool_create(self, args: Args) -> dict[str, Any]:
        user_id = self._user(args)
        key_type = str(args.get("key_type", "ed25519"))
        address = await self.client.create_wallet(user_id, key_type)
        return {"user_id": user_id, "address": address, "key_type": key_type}

    async def tool_get_address(self, args: Args) -> dict[str, Any]:
        user_id = self._user(args)
        address = await self.client.get_wallet_address(user_id)
        return {"user_id": user_id, "exists": address is not None, "address": address}

    async def tool_list(self, args: Args) -> dict[str, Any]:
        # The wire result carries key types, which the client's list_wallets() drops.
        result = await self.client._call(
            Call(wire.ListWallets(id=0), wire.WalletsResult, lambda r: r)
        )
        wallets = [
            {"user_id": u, "address": a, "key_type": result.key_types.get(u, "hmac-sha256")}
            for u, a in sorted(result.wallets.items())
            if not self.pinned or u in self.pinned
        ]
        return {"wallets": wallets}

    async def tool_public_key(self, args: Args) -> dict[str, Any]:
        user_id = self._user(args)
        key = await self.client.get_public_key(user_id, args.get("version"))
        return {
            "user_id": user_id,
            "key_type": key.key_type,
            "public_key": key.public_key.hex(),
            "address": key.address,
            "version": key.version,
            "created_at": key.created_at,
        }

    # ------------------------------------------------------------------ signing

    async def tool_sign_message(self, args: Args) -> dict[str, Any]:
        user_id = self._user(args)
        message = _decode(args["message"], args.get("encoding", "utf8"))
        try:
            signed = await self.client.sign_message_detailed(
                user_id, message, purpose=str(args["purpose"])
            )
        except PendingApproval as held:  # the signing calls raise a held signature
            return self._signed(user_id, held)
        return self._signed(user_id, signed)

    async def tool_sign_typed_data(self, args: Args) -> dict[str, Any]:
        user_id = self._user(args)
        try:
            signed = await self.client.sign_typed_data_detailed(
                user_id, args["typed_data"], purpose=str(args["purpose"])
            )
        except PendingApproval as held:
            return self._signed(user_id, held)
        return self._signed(user_id, signed)

    def _signed(self, user_id: str, signed: object) -> dict[str, Any]:
        pending = approvals.pending_result(signed)
        if pending is not None:
            self._approvals[pending["approval_id"]] = user_id
            return pending
        assert isinstance(signed, wire.SignatureResult)
        return {
            "status": "signed",
            "signature": signed.signature.hex(),
            "address": signed.address,
            "key_type": signed.key_type,
            "version": signed.version,
        }

    async def tool_verify_signature(self, args: Args) -> dict[str, Any]:
        signature = _unhex(args["signature"], "signature")
        signers = [k for k in ("user_id", "address", "public_key") if k in args]
        subjects = [k for k in ("message", "typed_data") if k in args]
        if len(signers) != 1 or len(subjects) != 1:
            raise ToolFailure(
                "invalid_argument",
                "give exactly one of user_id, address, public_key and exactly one of "
                "message, typed_data",
            )
        message = (
            _decode(args["message"], args.get("encoding", "utf8"))
            if subjects == ["message"]
            else None
        )
        subject: bytes | dict[str, Any] = message if message is not None else args["typed_data"]
        if signers == ["user_id"]:
            user_id = self._user(args)
            if message is not None:
                valid = await self.client.verify_signature(
                    user_id, message, signature, args.get("version")
                )
                return {"valid": valid}
            key = await self.client.get_public_key(user_id, args.get("version"))
            return {"valid": _offline(key.address, subject, signature, key.key_type)}
        if "key_type" not in args:
            raise ToolFailure("invalid_argument", "key_type is needed with address or public_key")
        signer: str | bytes = (
            args["address"] if "address" in args else _unhex(args["public_key"], "public_key")
        )
        return {"valid": _offline(signer, subject, signature, str(args["key_type"]))}

    # ------------------------------------------------------------------ policy, approvals

    async def tool_explain_signing(self, args: Args) -> dict[str, Any]:
        user_id = self._user(args)
        typed = args.get("typed_data")
        message = (
            None
            if typed is not None
            else _decode(args.get("message", ""), args.get("encoding", "utf8"))
        )
        return await approvals.explain(self.client, user_id, message=message, typed_data=typed)

    async def tool_approval_status(self, args: Args) -> dict[str, Any]:
        return await self._decision(str(args["approval_id"]), 0.0)

    async def tool_wait_for_approval(self, args: Args) -> dict[str, Any]:
        return await self._decision(str(args["approval_id"]), float(args.get("timeout_s", 60)))

    async def _decision(self, approval_id: str, timeout_s: float) -> dict[str, Any]:
        signature = await approvals.await_decision(self.client, approval_id, timeout_s)
        if signature is None:
            return {
                "status": "pending_approval",
                "approval_id": approval_id,
                "how_to_approve": approvals.HOW_TO_APPROVE.format(approval_id=approval_id),
            }
        result: dict[str, Any] = {"status": "signed", "signature": signature.hex()}
        user_id = self._approvals.pop(approval_id, None)
        if user_id is not None:
            result["address"] = await self.client.get_wallet_address(user_id)
        return result

    # ------------------------------------------------------------------ audit

    async def tool_recent_activity(self, args: Args) -> dict[str, Any]:
        user_id = self._user(args) if "user_id" in args else None
        limit = int(args.get("limit", 20))
        records = await self.client.audit_log(user_id, limit=limit)
        return {
            "records": [
                {
                    "seq": r.seq,
                    "timestamp": r.timestamp,
                    "event": r.event,
                    "user_id": r.user_id,
                    "outcome": r.outcome,
                    "actor_uid": r.actor_uid,
                    **{k: r.detail[k] for k in _DETAIL_KEYS if k in r.detail},
                }
                for r in records
                if not self.pinned or r.user_id in self.pinned
            ]
        }


def _decode(text: str, encoding: str) -> bytes:
    if encoding == "utf8":
        return text.encode("utf-8")
    try:
        if encoding == "hex":
            return bytes.fromhex(text.removeprefix("0x"))
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise ToolFailure("invalid_argument", f"message is not valid {encoding}") from None


def _unhex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(str(text).removeprefix("0x"))
    except ValueError:
        raise ToolFailure("invalid_argument", f"{what} must be hex") from None


def _offline(
    signer: str | bytes, subject: bytes | dict[str, Any], signature: bytes, key_type: str
) -> bool:
    try:
        return verify(signer, subject, signature, key_type=key_type)
    except ValueError as exc:  # a malformed key or address, or an invalid EIP-712 document
        raise ToolFailure("invalid_argument", str(exc)) from None
