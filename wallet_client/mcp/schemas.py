"""What a model sees: every tool's name, description, input and output JSON Schema, hints.

The descriptions are written for a language model choosing a tool: what it does, what it
returns, and what it will never do. ``tests/mcp_tools.json`` is a snapshot of the listing
(names, input schemas, annotations), so any change to what a model sees is a reviewed diff.

No property is named like a secret or a path (``tests/test_mcp_schemas.py`` checks the rule
of issue 17): walletd-mcp never takes or returns a key, seed, file path or socket path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = ["TOOLS", "ToolSpec", "tool_named"]

MAX_MESSAGE_CHARS: Final = 1 << 20  # under walletd's 1 MiB frame once encoded
MAX_PURPOSE_CHARS: Final = 256  # the daemon's limit (walletd.ops.purpose)
MAX_WAIT_S: Final = 300

Schema = dict[str, Any]

_USER_ID: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "description": "The wallet's name: the agent or account it belongs to, e.g. 'trading-bot'.",
}
_ENCODING: Schema = {
    "type": "string",
    "enum": ["utf8", "hex", "base64"],
    "default": "utf8",
    "description": "How `message` is written: plain text (utf8, the default), hex or base64.",
}
_MESSAGE: Schema = {
    "type": "string",
    "maxLength": MAX_MESSAGE_CHARS,
    "description": "The exact bytes to sign or check, written in `encoding`.",
}
_PURPOSE: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_PURPOSE_CHARS,
    "description": (
        "Why you are signing, in one sentence a person reviewing the audit log will "
        "understand (e.g. 'log in to example.com as the trading bot'). Recorded by walletd."
    ),
}
_TYPED_DATA: Schema = {
    "type": "object",
    "description": (
        "An EIP-712 document as for eth_signTypedData_v4: {types, primaryType, domain, "
        "message}. Integers above 2**53 may be written as decimal strings."
    ),
}
_KEY_TYPE: Schema = {
    "type": "string",
    "enum": ["ed25519", "secp256k1", "hmac-sha256"],
    "description": (
        "ed25519: anyone verifies with the public key. secp256k1: an Ethereum account "
        "(EIP-191 messages, EIP-712 documents). hmac-sha256: only walletd can verify."
    ),
}
_APPROVAL_ID: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "description": "The approval_id a signing tool returned with status 'pending_approval'.",
}
_HEX_SIGNATURE: Schema = {"type": "string", "description": "The signature, hex encoded."}


def _obj(properties: Schema, required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


_SIGNED: Schema = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["signed", "pending_approval"]},
        "signature": _HEX_SIGNATURE,
        "address": {"type": "string"},
        "key_type": {"type": "string"},
        "version": {"type": "integer"},
        "approval_id": {"type": "string"},
        "expires_at": {"type": "number", "description": "Unix seconds."},
        "how_to_approve": {"type": "string"},
    },
    "required": ["status"],
}
_ERROR_NOTE = (
    " Failures come back as a tool error whose structured content is {error: {code, "
    "message, retryable, hint}}."
)


@dataclass(frozen=True)
class ToolSpec:
    """One tool. ``writes``: creates or signs, so ``--read-only`` leaves it out."""

    name: str
    title: str
    description: str
    input_schema: Schema
    output_schema: Schema
    writes: bool = False
    idempotent: bool = True


TOOLS: Final[tuple[ToolSpec, ...]] = (
    ToolSpec(
        "wallet_create",
        "Create a wallet",
        "Create a new wallet held by walletd: the key is made and kept inside the daemon and "
        "never leaves it; you get its address. Fails if the wallet already exists." + _ERROR_NOTE,
        _obj(
            {"user_id": _USER_ID, "key_type": {**_KEY_TYPE, "default": "ed25519"}},
            ["user_id"],
        ),
        _obj(
            {
                "user_id": {"type": "string"},
                "address": {"type": "string"},
                "key_type": {"type": "string"},
            }
        ),
        writes=True,
        idempotent=False,
    ),
    ToolSpec(
        "wallet_get_address",
        "Get a wallet's address",
        "The address of a wallet you may use, or exists=false when there is none.",
        _obj({"user_id": _USER_ID}, ["user_id"]),
        _obj(
            {
                "user_id": {"type": "string"},
                "exists": {"type": "boolean"},
                "address": {"type": ["string", "null"]},
            }
        ),
    ),
    ToolSpec(
        "wallet_list",
        "List wallets",
        "The wallets this server may use: user_id, address and key type of each.",
        _obj({}),
        _obj({"wallets": {"type": "array", "items": {"type": "object"}}}),
    ),
    ToolSpec(
        "wallet_sign_message",
        "Sign a message",
        "Sign a message with a wallet. walletd's signing policy decides: the result is "
        "status 'signed' with the signature, or status 'pending_approval' when a person must "
        "approve first (tell them how_to_approve, then call wallet_wait_for_approval). "
        "secp256k1 wallets sign EIP-191 (personal_sign)." + _ERROR_NOTE,
        _obj(
            {
                "user_id": _USER_ID,
                "message": _MESSAGE,
                "encoding": _ENCODING,
                "purpose": _PURPOSE,
            },
            ["user_id", "message", "purpose"],
        ),
        _SIGNED,
        writes=True,
        idempotent=False,
    ),
    ToolSpec(
        "wallet_sign_typed_data",
        "Sign an EIP-712 document",
        "Sign EIP-712 typed data (eth_signTypedData_v4) with a secp256k1 wallet; walletd "
        "validates and hashes the document itself. Results as for wallet_sign_message."
        + _ERROR_NOTE,
        _obj(
            {"user_id": _USER_ID, "typed_data": _TYPED_DATA, "purpose": _PURPOSE},
            ["user_id", "typed_data", "purpose"],
        ),
        _SIGNED,
        writes=True,
        idempotent=False,
    ),
    ToolSpec(
        "wallet_verify_signature",
        "Verify a signature",
        "Check a signature. Name the signer by user_id (a wallet you may use; works for every "
        "key type), or by address or public_key with key_type (anyone's ed25519 or secp256k1 "
        "key, checked locally). Give message (with encoding) or typed_data (EIP-712). "
        "Returns {valid}.",
        _obj(
            {
                "user_id": _USER_ID,
                "address": {"type": "string", "maxLength": 128},
                "public_key": {
                    "type": "string",
                    "maxLength": 256,
                    "description": "A public key, hex encoded.",
                },
                "key_type": {**_KEY_TYPE, "enum": ["ed25519", "secp256k1"]},
                "message": _MESSAGE,
                "encoding": _ENCODING,
                "typed_data": _TYPED_DATA,
                "signature": {**_HEX_SIGNATURE, "maxLength": 1024},
                "version": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "With user_id: check against this key version.",
                },
            },
            ["signature"],
        ),
        _obj({"valid": {"type": "boolean"}}),
    ),
    ToolSpec(
        "wallet_public_key",
        "Get a wallet's public key",
        "The public key of an ed25519 or secp256k1 wallet (hex), its address and version, "
        "so others can verify its signatures without walletd.",
        _obj(
            {"user_id": _USER_ID, "version": {"type": "integer", "minimum": 1}},
            ["user_id"],
        ),
        _obj(
            {
                "user_id": {"type": "string"},
                "key_type": {"type": "string"},
                "public_key": {"type": "string"},
                "address": {"type": "string"},
                "version": {"type": "integer"},
                "created_at": {"type": "number"},
            }
        ),
    ),
    ToolSpec(
        "wallet_explain_signing",
        "Explain the signing policy",
        "Dry run: would walletd sign this message or document now, and which policy rule "
        "decides? Signs nothing and uses up no limit.",
        _obj(
            {
                "user_id": _USER_ID,
                "message": _MESSAGE,
                "encoding": _ENCODING,
                "typed_data": _TYPED_DATA,
            },
            ["user_id"],
        ),
        {"type": "object"},
    ),
    ToolSpec(
        "wallet_approval_status",
        "Check a pending approval",
        "Whether a person has approved a pending signature yet: status 'signed' (with the "
        "signature) or 'pending_approval'; a denial is a tool error.",
        _obj({"approval_id": _APPROVAL_ID}, ["approval_id"]),
        _SIGNED,
    ),
    ToolSpec(
        "wallet_wait_for_approval",
        "Wait for an approval",
        "Wait up to timeout_s seconds for a person to decide a pending signature. Returns "
        "as wallet_approval_status does; still pending after the wait is not an error.",
        _obj(
            {
                "approval_id": _APPROVAL_ID,
                "timeout_s": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": MAX_WAIT_S,
                    "default": 60,
                },
            },
            ["approval_id"],
        ),
        _SIGNED,
    ),
    ToolSpec(
        "wallet_recent_activity",
        "Recent wallet activity",
        "The newest audit records of your wallets (creations, signatures made with a "
        "purpose, rotations...), newest last: what was done, when, by which uid and why.",
        _obj(
            {
                "user_id": _USER_ID,
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
            }
        ),
        _obj({"records": {"type": "array", "items": {"type": "object"}}}),
    ),
)

_BY_NAME: Final = {spec.name: spec for spec in TOOLS}


def tool_named(name: str) -> ToolSpec | None:
    return _BY_NAME.get(name)
