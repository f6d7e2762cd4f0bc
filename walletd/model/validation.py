"""Checks on values that are well-typed on the wire but may still be unacceptable."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

import msgspec

from walletd.errors import invalid

MAX_USER_ID_BYTES = 256
MAX_REASON_CHARS = 256
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32  # descriptive data; also keeps every later walk far from the stack limit

# Unicode category Cc: C0 controls, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Characters that change how the text around them is shown without being seen themselves:
# Unicode format characters (Cf: bidi overrides such as U+202E, zero-width space and joiners,
# the BOM) and the line and paragraph separators (Zl, Zp). In a user id they let two ids look
# the same in a listing or a log line, or one id look like another ("alice\u202egnp" shows as
# "alicepng"); in a prompt they can reorder what the person answering reads.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp"})
MAX_PROMPT_BYTES = 1024


def check_user_id(user_id: str) -> str:
    """1-256 bytes of UTF-8 without control characters. User ids never name files."""
    size = len(user_id.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_USER_ID_BYTES:
        raise invalid(f"user_id must be 1-{MAX_USER_ID_BYTES} bytes of UTF-8, got {size}")
    if _CONTROL.search(user_id):
        raise invalid("user_id must not contain control characters")
    return user_id


def check_new_user_id(user_id: str) -> str:
    """A user id a new wallet may take: :func:`check_user_id`, in NFC, with no invisible marks.

    Only new wallets are held to this. Existing wallets keep the ids they were created with
    (every other op looks an id up exactly as sent), so no wallet of an older database becomes
    unreachable. The id is refused rather than normalized: a daemon that stored "é" for a
    client that sent "e\u0301" would answer every later request for "e\u0301" with not_found.
    Confusables across scripts (Latin "a" and Cyrillic "\u0430") are allowed and flagged only in
    SECURITY.md: ownership is by uid, never by the look of an id, so a look-alike id gives no
    access; telling them apart needs Unicode's confusables table, which the standard library
    lacks, and refusing mixed scripts would refuse real names.
    """
    check_user_id(user_id)
    if not unicodedata.is_normalized("NFC", user_id):
        raise invalid("user_id must be in Unicode normalization form C (NFC)")
    if _has_invisible(user_id):
        raise invalid(
            "user_id must not contain invisible format characters "
            "(bidi controls, zero-width characters, line or paragraph separators)"
        )
    return user_id


def check_prompt(prompt: str, number: int) -> str:
    """A ritual prompt: 1-1024 bytes of UTF-8 shown to a person, so no control characters.

    A prompt is printed on the terminal of whoever recovers; an escape sequence in it could
    rewrite that screen, and a bidi control could reorder the question.
    """
    size = len(prompt.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_PROMPT_BYTES:
        raise invalid(f"prompt {number} must be 1-{MAX_PROMPT_BYTES} bytes of text")
    if _CONTROL.search(prompt) or _has_invisible(prompt):
        raise invalid(
            f"prompt {number} must not contain control characters or invisible format "
            "characters (bidi controls, zero-width characters)"
        )
    return prompt


def _has_invisible(text: str) -> bool:
    return any(unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in text)


def check_reason(reason: str) -> str:
    if not 1 <= len(reason) <= MAX_REASON_CHARS or _CONTROL.search(reason):
        raise invalid(f"reason must be 1-{MAX_REASON_CHARS} characters without control characters")
    return reason


def check_sha256_hex(value: str, what: str) -> str:
    if not _HEX64.fullmatch(value.lower()):
        raise invalid(f"{what} must be exactly 64 hexadecimal characters (a SHA-256)")
    return value.lower()


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Plain JSON values, at most 16 KiB once encoded.

    Plain means: maps with string keys at every depth, lists, strings, finite numbers,
    booleans and nil. Anything else would not survive the JSON backup record unchanged (bytes
    become base64, an int key becomes a string, NaN is not JSON) or would break its canonical
    encoding (keys of mixed types cannot be sorted).
    """
    if metadata is None:
        return {}
    problem = _not_plain(metadata)
    if problem is not None:
        raise invalid(
            f"metadata must hold plain JSON values (maps with string keys, lists, strings, "
            f"finite numbers, booleans, nil): {problem}"
        )
    size = len(msgspec.json.encode(metadata))
    if size > MAX_METADATA_BYTES:
        raise invalid(f"metadata is {size} bytes encoded; the limit is {MAX_METADATA_BYTES}")
    return metadata


def _not_plain(value: Any, depth: int = 1) -> str | None:
    """What makes ``value`` not plain JSON, or None."""
    if depth > MAX_METADATA_DEPTH:
        return f"nested deeper than {MAX_METADATA_DEPTH} levels"
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "a number that is not finite"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"a map key of type {type(key).__name__}"
            if (problem := _not_plain(item, depth + 1)) is not None:
                return problem
        return None
    if isinstance(value, list):
        for item in value:
            if (problem := _not_plain(item, depth + 1)) is not None:
                return problem
        return None
    return f"a value of type {type(value).__name__}"
