"""walletctl's input and output: where messages come from, how results are printed.

Kept apart from the command table (:mod:`wallet_client.walletctl`) so that both it and the
ritual commands (:mod:`wallet_client.cli_ritual`) print and parse the same way:

- results go to stdout, as text for people or, with ``--json``, as one JSON document and
  nothing else; notes, warnings and errors always go to stderr;
- messages to sign are bytes exactly as given (``--file``, stdin), never decoded as text.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Output",
    "UsageError",
    "decode_signature",
    "encode_signature",
    "fields",
    "format_time",
    "json_text",
    "parse_time",
    "printable",
    "read_input",
    "read_message",
]

_HEX = re.compile(r"(?:0x)?([0-9a-fA-F]*)")


class UsageError(Exception):
    """The command line, or a file or answer it names, cannot be used (exit code 2)."""


class Output:
    """Prints a command's result in the chosen form; everything else goes to stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, text: str | Iterable[str] | None) -> None:
        """``data`` as JSON with --json; else ``text`` (a line, or lines) for people."""
        if self.as_json:
            print(json.dumps(data, ensure_ascii=False))
        elif isinstance(text, str):
            print(text)
        elif text is not None:
            for line in text:
                print(line)

    def note(self, message: str) -> None:
        print(f"walletctl: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- reading


def read_input(path: str) -> bytes:
    """The bytes of ``path``, or of stdin for ``-``; an unreadable file is a usage error."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_message(args: argparse.Namespace) -> bytes:
    """The message from --message, --file, or else stdin: bytes as given, no text coercion."""
    if args.message is not None:
        # fsencode gives back the very bytes of argv, even ones that are not valid UTF-8.
        return os.fsencode(args.message)
    if args.file is not None:
        return read_input(args.file)
    if sys.stdin.isatty():
        print("walletctl: reading the message from stdin (end it with Ctrl-D)", file=sys.stderr)
    return sys.stdin.buffer.read()


# --------------------------------------------------------------------------- values


def decode_signature(text: str) -> bytes:
    """A signature given as hex (optionally ``0x``-prefixed) or base64 (standard or URL-safe).

    Hex is tried first: a base64 signature of walletd's 32-byte HMACs always ends in ``=``,
    so the two cannot be confused.
    """
    text = text.strip()
    if match := _HEX.fullmatch(text):
        digits = match.group(1)
        if digits and len(digits) % 2 == 0:
            return bytes.fromhex(digits)
    if text[:2] in ("0x", "0X"):
        # "0x" says hex; "0xzz" is also four base64 characters, which made it a 3-byte
        # signature that verified as "invalid" instead of being a usage error.
        raise argparse.ArgumentTypeError(
            "a signature after 0x must be an even number of hex digits"
        )
    try:
        value = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        value = b""
    if not value:
        raise argparse.ArgumentTypeError("a signature must be hex or base64")
    return value


def encode_signature(signature: bytes, as_base64: bool) -> str:
    return base64.b64encode(signature).decode("ascii") if as_base64 else signature.hex()


def parse_time(text: str) -> float:
    """Unix seconds, or an ISO-8601 date or date-time (no zone means local time)."""
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither Unix seconds nor an ISO-8601 date/time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.astimezone()  # naive means the local time zone, as `date` does
        return moment.timestamp()
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time")
    return value


def format_time(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def printable(text: str) -> str:
    """``text`` with control characters shown as ``?``: prompts and ids come from others,
    and must not drive the terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


def fields(values: Mapping[str, Any]) -> list[str]:
    """``key: value`` lines for people; booleans as yes/no."""
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value) or "-"
        elif value is None:
            shown = "-"
        else:
            shown = str(value)
        lines.append(f"{key}: {printable(shown)}")
    return lines


def json_text(value: Any) -> str:
    """Compact JSON, for a value inside a line of text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
