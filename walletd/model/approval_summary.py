"""What the approver is shown of a held signing request: a bounded, terminal-safe summary.

A person decides from this, in a terminal (``walletctl approvals watch``), so it must be true,
short and unable to rewrite the screen:

- a message that is printable UTF-8 (letters, marks, symbols, spaces, ``\\n`` and ``\\t``) is
  shown as text, cut at ``max_text`` characters (``truncated`` says so); its length in bytes
  and SHA-256 are always given, so a person can check it against what the agent claims;
- any other message (binary, invalid UTF-8, or text with control, format or bidi characters
  that could hide or reorder what is shown) gets only its length and SHA-256;
- typed data (EIP-712) gets the domain, the primary type and the message fields, flattened as
  ``"outer.inner"``, every value rendered as text (integers in decimal, bytes as ``0x`` hex),
  with anything unprintable escaped, each value cut at ``max_value`` characters, and fields
  added only while the summary stays under ``max_bytes`` (``omitted_fields`` counts the rest).

The summary holds no more of the message than a person needs to read; it is never logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

__all__ = ["MAX_BYTES", "printable", "summarize_message", "summarize_typed"]

MAX_BYTES = 4096  # the default bound of one summary, rendered as UTF-8
MAX_TEXT = 1024  # characters of message text shown
MAX_VALUE = 200  # characters of one typed-data value shown
_ALLOWED_CONTROLS = frozenset("\n\t")
_MAX_DEPTH = 8


def _is_printable_text(text: str) -> bool:
    return all(ch.isprintable() or ch in _ALLOWED_CONTROLS for ch in text)


def printable(text: str, limit: int = MAX_VALUE) -> str:
    """``text`` with every unprintable character escaped (``\\x1b``, ``\\u202e``), cut to
    ``limit`` characters with a trailing ``…``: safe to put on a terminal."""
    out: list[str] = []
    size = 0
    for ch in text:
        if ch.isprintable():
            piece = ch
        elif ord(ch) < 0x100:
            piece = f"\\x{ord(ch):02x}"
        else:
            piece = f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"
        if size + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def summarize_message(
    message: bytes, *, max_text: int = MAX_TEXT, max_bytes: int = MAX_BYTES
) -> dict[str, object]:
    """The summary of a raw message: text when printable UTF-8, else length and digest.

    The text shown is at most ``max_text`` characters and, encoded, fits ``max_bytes`` with
    the rest of the summary."""
    summary: dict[str, object] = {
        "kind": "binary",
        "length": len(message),
        "sha256": hashlib.sha256(message).hexdigest(),
    }
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        return summary
    if not _is_printable_text(text):
        return summary
    shown = text[:max_text]
    room = max(0, max_bytes - 160)  # the other fields take well under 160 bytes
    if len(shown.encode()) > room:
        shown = shown.encode()[:room].decode("utf-8", errors="ignore")
    summary["kind"] = "text"
    summary["text"] = shown
    summary["truncated"] = len(shown) < len(text)
    return summary


def _render(value: object, limit: int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        text = str(value)
        # A 78-digit uint256 is readable; a longer run would only be cut mid-number.
        return text if len(text) <= limit else text[: limit - 1] + "…"
    if isinstance(value, bytes | bytearray):
        return printable("0x" + bytes(value).hex(), limit)
    if isinstance(value, str):
        return printable(value, limit)
    if isinstance(value, Sequence):
        return f"[{len(value)} items]"
    return printable(repr(type(value).__name__), limit)


def _flatten(message: Mapping[str, object], prefix: str, depth: int) -> list[tuple[str, object]]:
    pairs: list[tuple[str, object]] = []
    for name, value in message.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and depth < _MAX_DEPTH:
            pairs.extend(_flatten(value, f"{key}.", depth + 1))
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
            items = list(value)
            pairs.append((key, items))
            for i, item in enumerate(items):
                if isinstance(item, Mapping) and depth < _MAX_DEPTH:
                    pairs.extend(_flatten(item, f"{key}[{i}].", depth + 1))
                else:
                    pairs.append((f"{key}[{i}]", item))
        else:
            pairs.append((key, value))
    return pairs


def summarize_typed(
    *,
    primary_type: str,
    domain: Mapping[str, object],
    message: Mapping[str, object],
    digest: bytes | None = None,
    max_bytes: int = MAX_BYTES,
    max_value: int = MAX_VALUE,
) -> dict[str, object]:
    """The summary of an EIP-712 document (as decoded and validated by the daemon)."""
    summary: dict[str, object] = {
        "kind": "typed_data",
        "primary_type": printable(primary_type, max_value),
    }
    if digest is not None:
        summary["digest"] = "0x" + digest.hex()
    budget = max_bytes - _size(summary)
    shown_domain: dict[str, str] = {}
    for key, value in _flatten(domain, "", 0):
        budget = _add(shown_domain, key, value, budget, max_value)
    fields: dict[str, str] = {}
    omitted = 0
    for key, value in _flatten(message, "", 0):
        if budget <= 0:
            omitted += 1
            continue
        left = _add(fields, key, value, budget, max_value)
        if left == budget:
            omitted += 1
        budget = left
    summary["domain"] = shown_domain
    summary["fields"] = fields
    summary["omitted_fields"] = omitted
    return summary


def _add(into: dict[str, str], key: object, value: object, budget: int, limit: int) -> int:
    """Add ``key: value`` if it fits in ``budget`` bytes; return the budget left."""
    name = printable(str(key), limit)
    text = _render(value, limit)
    cost = len(name.encode()) + len(text.encode()) + 8  # quotes, separators
    if cost > budget:
        return budget
    into[name] = text
    return budget - cost


def _size(summary: Mapping[str, object]) -> int:
    return sum(len(str(k).encode()) + len(str(v).encode()) + 8 for k, v in summary.items())
