"""Values in policy documents: integers that may be big, prefixes, addresses, field conditions.

Integers: MessagePack carries at most 64-bit integers, and token amounts (``10**24`` wei) do
not fit, so wherever a rule takes an integer it takes an ``int`` or a decimal string
(``"1000000000000000000000000"``), at most 78 digits (uint256 has 78). ``to_document`` gives
back an int when it fits MessagePack (int64/uint64) and the decimal string otherwise.

Field conditions (``fields: {name: {op: value}}`` on typed data), decided here:

- ``lt``/``le``/``gt``/``ge`` take an integer; they hold only when the request's field is an
  integer (the daemon's typed-data decoder gives ``uintN``/``intN`` values as Python ints).
- ``eq``/``ne``/``in`` take integers, text or booleans. An int field compares with integer
  operands (``7`` and ``"7"`` are both 7), a text field with text operands (hex text such as
  an address compares case-insensitively: an EIP-55 checksum is case only), a bool field with
  ``true``/``false``.
- A condition on a field the request does not have does not hold (also for ``ne``): a rule
  only matches what it can see. All conditions of a rule must hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

MAX_INT_DIGITS = 78
MAX_TEXT_CHARS = 256
MAX_PREFIX_BYTES = 1024
MAX_IN_VALUES = 64
MAX_FIELDS = 32
MAX_FIELD_NAME_CHARS = 128

_DECIMAL = re.compile(r"-?[0-9]{1,78}")
_HEX_TEXT = re.compile(r"0[xX][0-9a-fA-F]*")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
_HEX_BYTES = re.compile(r"([0-9a-fA-F]{2})*")

COMPARISONS = ("lt", "le", "gt", "ge")
FIELD_OPS = ("eq", "ne", "in", *COMPARISONS)


class ValueProblem(ValueError):
    """A value that cannot be accepted; the caller adds which rule and field."""


def parse_int(value: Any, *, minimum: int | None = None) -> int:
    """An int (not a bool) or a decimal string, within the digit limit and ``minimum``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
        if len(str(abs(number))) > MAX_INT_DIGITS:
            raise ValueProblem(f"must have at most {MAX_INT_DIGITS} digits")
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise ValueProblem("must be an integer (an int or a decimal string)")
    if minimum is not None and number < minimum:
        raise ValueProblem(f"must be an integer of at least {minimum}")
    return number


def int_out(number: int) -> int | str:
    """An int that MessagePack can carry, or its decimal text."""
    return number if -(2**63) <= number < 2**64 else str(number)


def fold_text(text: str) -> str:
    """Hex text compares case-insensitively (EIP-55 checksums are case only)."""
    return text.lower() if _HEX_TEXT.fullmatch(text) else text


def parse_text(value: Any, *, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise ValueProblem(f"must be text of 1-{limit} characters")
    return value


def parse_address(value: Any) -> str:
    """An Ethereum address as 0x + 40 hex digits, any case; kept lowercase."""
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value.lower()):
        raise ValueProblem("must be an address: 0x followed by 40 hex digits")
    return value.lower()


def parse_prefix(value: Any) -> tuple[bytes, str | dict[str, str]]:
    """A prefix given as text (UTF-8) or ``{"hex": "..."}``: the bytes and the normal form."""
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        normal: str | dict[str, str] = value
    elif isinstance(value, dict) and set(value) == {"hex"} and isinstance(value["hex"], str):
        if not _HEX_BYTES.fullmatch(value["hex"]):
            raise ValueProblem("hex must be an even number of hex digits")
        data = bytes.fromhex(value["hex"])
        normal = {"hex": data.hex()}
    else:
        raise ValueProblem('must be text or {"hex": "..."}')
    if not 1 <= len(data) <= MAX_PREFIX_BYTES:
        raise ValueProblem(f"must be 1-{MAX_PREFIX_BYTES} bytes")
    return data, normal


def one_or_more(value: Any, item: Callable[[Any], Any], *, limit: int = 16) -> list[Any]:
    """A scalar or a non-empty list of at most ``limit`` items, each checked by ``item``."""
    items = value if isinstance(value, list) else [value]
    if not 1 <= len(items) <= limit:
        raise ValueProblem(f"must be a value or a list of 1-{limit} values")
    out: list[Any] = []
    for x in items:
        checked = item(x)
        if checked not in out:
            out.append(checked)
    return out


# --------------------------------------------------------------------- field conditions


class Operand:
    """An eq/ne/in operand in each form a field value may be compared in."""

    __slots__ = ("as_bool", "as_int", "as_text", "normal")

    def __init__(self, value: Any) -> None:
        self.as_int: int | None = None
        self.as_text: str | None = None
        self.as_bool: bool | None = None
        if isinstance(value, bool):
            self.as_bool = value
            self.normal: bool | int | str = value
        elif isinstance(value, int):
            self.as_int = parse_int(value)
            self.normal = int_out(self.as_int)
        elif isinstance(value, str):
            if len(value) > MAX_TEXT_CHARS:
                raise ValueProblem(f"text operands are at most {MAX_TEXT_CHARS} characters")
            self.as_text = fold_text(value)
            if _DECIMAL.fullmatch(value):
                self.as_int = int(value)
            self.normal = value
        else:
            raise ValueProblem("operands are integers, text or booleans")


def _key(operand: Operand, kind: type) -> object:
    if kind is bool:
        return operand.as_bool
    return operand.as_int if kind is int else operand.as_text


FieldTest = Callable[[Mapping[str, object]], bool]


def field_test(name: str, op: str, value: Any) -> tuple[FieldTest, Any]:
    """A closure testing one condition on a fields mapping, and the normalised operand."""
    missing = object()
    if op in COMPARISONS:
        bound = parse_int(value)
        return _comparison(name, op, bound, missing), int_out(bound)
    if op == "in":
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_VALUES:
            raise ValueProblem(f"in must be a list of 1-{MAX_IN_VALUES} values")
        operands = [Operand(v) for v in value]
    elif op in ("eq", "ne"):
        operands = [Operand(value)]
    else:
        raise ValueProblem(f"unknown condition {op[:16]!r} (one of {', '.join(FIELD_OPS)})")
    # One frozenset per field kind, so a test is a type check and a set lookup.
    sets = {
        kind: frozenset(k for o in operands if (k := _key(o, kind)) is not None)
        for kind in (bool, int, str)
    }
    want = op != "ne"

    def test(fields: Mapping[str, object]) -> bool:
        v = fields.get(name, missing)
        if v is missing:
            return False
        if isinstance(v, bool):
            return (v in sets[bool]) is want
        if isinstance(v, int):
            return (v in sets[int]) is want
        if isinstance(v, str):
            return (fold_text(v) in sets[str]) is want
        return False

    normal = [o.normal for o in operands] if op == "in" else operands[0].normal
    return test, normal


def _comparison(name: str, op: str, bound: int, missing: object) -> FieldTest:
    def value(fields: Mapping[str, object]) -> int | None:
        v = fields.get(name, missing)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    if op == "lt":
        return lambda f: (v := value(f)) is not None and v < bound
    if op == "le":
        return lambda f: (v := value(f)) is not None and v <= bound
    if op == "gt":
        return lambda f: (v := value(f)) is not None and v > bound
    return lambda f: (v := value(f)) is not None and v >= bound
