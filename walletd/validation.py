"""Checks on values that are well-typed on the wire but may still be unacceptable."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .errors import invalid

MAX_USER_ID_BYTES = 256
MAX_REASON_CHARS = 256
MAX_METADATA_BYTES = 16 * 1024

# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_user_id(user_id: str) -> str:
    """1-256 bytes of UTF-8 without control characters. User ids never name files."""
    size = len(user_id.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_USER_ID_BYTES:
        raise invalid(f"user_id must be 1-{MAX_USER_ID_BYTES} bytes of UTF-8, got {size}")
    if _CONTROL.search(user_id):
        raise invalid("user_id must not contain control characters")
    return user_id


def check_reason(reason: str) -> str:
    if not 1 <= len(reason) <= MAX_REASON_CHARS or _CONTROL.search(reason):
        raise invalid(f"reason must be 1-{MAX_REASON_CHARS} characters without control characters")
    return reason


def check_sha256_hex(value: str, what: str) -> str:
    if not _HEX64.fullmatch(value.lower()):
        raise invalid(f"{what} must be exactly 64 hexadecimal characters (a SHA-256)")
    return value.lower()


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Plain JSON values (no bytes), at most 16 KiB once encoded."""
    if metadata is None:
        return {}
    try:
        size = len(msgspec.json.encode(metadata))
    except (TypeError, msgspec.EncodeError):
        raise invalid(
            "metadata must hold plain values: strings, numbers, booleans, lists, maps"
        ) from None
    if size > MAX_METADATA_BYTES:
        raise invalid(f"metadata is {size} bytes encoded; the limit is {MAX_METADATA_BYTES}")
    # Bytes encode to base64 strings in JSON; refuse them rather than change their type.
    if _has_bytes(metadata):
        raise invalid("metadata must not contain binary values")
    return metadata


def _has_bytes(value: Any) -> bool:
    if isinstance(value, bytes | bytearray):
        return True
    if isinstance(value, dict):
        return any(_has_bytes(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_bytes(v) for v in value)
    return False
