"""The ``types`` table of an EIP-712 document: parsed, checked and bounded before any value.

General layout: a field's type string is parsed by :func:`parse_type` into an :class:`Atomic`,
an :class:`Array` or a :class:`StructRef`; :func:`parse_schema` checks every name and field,
resolves references, refuses cycles and over-deep nesting, and precomputes each struct's
``typeHash`` (keccak256 of EIP-712's ``encodeType``).

Cycles: EIP-712 can express a type that contains itself through an array (``Node(Node[]
children)``), which terminates only because the data does. We refuse every type reachable from
itself, directly or not: such documents are rare in practice, a policy cannot summarise them,
and with no cycles the nesting depth is a property of the types alone, so :data:`MAX_DEPTH` is
checked here, once, instead of during every walk of the data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .ethereum import keccak256

__all__ = [
    "DOMAIN_FIELD_TYPES",
    "DOMAIN_TYPE",
    "MAX_ARRAY_LENGTH",
    "MAX_DEPTH",
    "MAX_FIELDS_PER_TYPE",
    "MAX_NAME_CHARS",
    "MAX_TYPES",
    "Array",
    "Atomic",
    "Field",
    "Schema",
    "StructRef",
    "TypedDataError",
    "parse_schema",
    "parse_type",
]

# Limits. Real documents (permits, orders, Safe transactions, Seaport) use under 20 types of
# under 20 fields, nested 4 or 5 deep; these leave an order of magnitude of room and keep the
# worst case small: MAX_TYPES * MAX_FIELDS_PER_TYPE = 4096 field definitions.
MAX_TYPES = 64
MAX_FIELDS_PER_TYPE = 64
MAX_NAME_CHARS = 64
MAX_DEPTH = 16  # struct nesting plus array dimensions, from the primary type down
MAX_ARRAY_LENGTH = 1024  # per array, dynamic or fixed
_MAX_TYPE_CHARS = 128  # a field's type string, e.g. "Person[][4]"

DOMAIN_TYPE = "EIP712Domain"
# EIP-712's domain fields and their required types; other domain fields are allowed (the
# spec's own example adds ``httpOrigin``), but a standard name must have its standard type, so
# a policy can rely on ``chainId`` being a uint256 and ``verifyingContract`` an address.
DOMAIN_FIELD_TYPES: Mapping[str, str] = {
    "name": "string",
    "version": "string",
    "chainId": "uint256",
    "verifyingContract": "address",
    "salt": "bytes32",
}

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*", re.ASCII)
_TYPE_STRING = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)((?:\[[0-9]*\])*)", re.ASCII)
_DIMENSION = re.compile(r"\[([0-9]*)\]", re.ASCII)
_SIZED = re.compile(r"(uint|int|bytes)([0-9]*)", re.ASCII)


class TypedDataError(ValueError):
    """An EIP-712 document walletd will not hash; the message names the type or field.

    Messages name types, fields and limits, never the values in the document (those are the
    message being signed, and messages stay out of logs).
    """


AtomicKind = Literal["uint", "int", "address", "bool", "bytes_n", "bytes", "string"]


@dataclass(frozen=True, slots=True)
class Atomic:
    """A value type: ``size`` is the bit width of ints, the byte count of bytesN, else 0."""

    kind: AtomicKind
    size: int = 0


@dataclass(frozen=True, slots=True)
class Array:
    """``element[]`` (``length`` None) or ``element[length]``."""

    element: FieldType
    length: int | None


@dataclass(frozen=True, slots=True)
class StructRef:
    name: str


FieldType = Atomic | Array | StructRef


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type_string: str  # as written: encodeType uses it verbatim
    type: FieldType


@dataclass(frozen=True, slots=True)
class Schema:
    """Every struct's fields, in declaration order, and its precomputed typeHash."""

    structs: Mapping[str, tuple[Field, ...]]
    type_hashes: Mapping[str, bytes]


_UNSIZED = {
    "address": Atomic("address"),
    "bool": Atomic("bool"),
    "bytes": Atomic("bytes"),
    "string": Atomic("string"),
}


def shown(name: object) -> str:
    """``name`` quoted if it is a short identifier, else a description (never raw input)."""
    if isinstance(name, str) and len(name) <= MAX_NAME_CHARS and _IDENTIFIER.fullmatch(name):
        return repr(name)
    return "a name that is not an identifier"


def _atomic(base: str) -> Atomic | None:
    """The atomic type named ``base``, None if it names no atomic type; refuses bad widths."""
    unsized = _UNSIZED.get(base)
    if unsized is not None:
        return unsized
    sized = _SIZED.fullmatch(base)
    if sized is None:
        return None
    prefix, digits = sized.groups()
    if not digits:
        raise TypedDataError(f"type {base!r} needs a width: write {base}256")
    width = int(digits)
    if prefix == "bytes":
        if str(width) != digits or not 1 <= width <= 32:
            raise TypedDataError(f"type {base!r}: bytesN takes N from 1 to 32")
        return Atomic("bytes_n", width)
    if str(width) != digits or width % 8 or not 8 <= width <= 256:
        raise TypedDataError(f"type {base!r}: integer widths are 8 to 256 in steps of 8")
    return Atomic("uint" if prefix == "uint" else "int", width)


def parse_type(type_string: str, structs: Mapping[str, object], where: str) -> FieldType:
    """Parse one field's type string; ``where`` names the field in error messages."""
    if len(type_string) > _MAX_TYPE_CHARS or (match := _TYPE_STRING.fullmatch(type_string)) is None:
        raise TypedDataError(f"{where}: the type is not a type name with optional [] or [k]")
    base, dimensions = match.groups()
    parsed: FieldType
    atomic = _atomic(base)
    if atomic is not None:
        parsed = atomic
    elif base in structs:
        parsed = StructRef(base)
    else:
        raise TypedDataError(f"{where}: unknown type {base!r} (not atomic, not in types)")
    for digits in _DIMENSION.findall(dimensions):
        if not digits:
            parsed = Array(parsed, None)
            continue
        if str(int(digits)) != digits or not 1 <= int(digits) <= MAX_ARRAY_LENGTH:
            raise TypedDataError(
                f"{where}: a fixed array length is 1 to {MAX_ARRAY_LENGTH}, without leading zeros"
            )
        parsed = Array(parsed, int(digits))
    return parsed


def _parse_fields(
    name: str, raw_fields: object, structs: Mapping[str, object]
) -> tuple[Field, ...]:
    if isinstance(raw_fields, str | bytes) or not isinstance(raw_fields, Sequence):
        raise TypedDataError(f"types[{name!r}] must be a list of {{name, type}} fields")
    if len(raw_fields) > MAX_FIELDS_PER_TYPE:
        raise TypedDataError(f"types[{name!r}] has more than {MAX_FIELDS_PER_TYPE} fields")
    fields: list[Field] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_fields):
        where = f"types[{name!r}][{index}]"
        if not isinstance(raw, Mapping) or set(raw) != {"name", "type"}:
            raise TypedDataError(f"{where} must be a map with exactly 'name' and 'type'")
        field_name, type_string = raw["name"], raw["type"]
        if not isinstance(type_string, str):
            raise TypedDataError(f"{where}: 'type' must be a string")
        if not isinstance(field_name, str) or shown(field_name) != repr(field_name):
            raise TypedDataError(
                f"{where}: the field name must be an identifier of at most {MAX_NAME_CHARS} "
                "characters"
            )
        if field_name in seen:
            raise TypedDataError(f"types[{name!r}]: field {field_name!r} is declared twice")
        seen.add(field_name)
        where = f"{name}.{field_name}"
        fields.append(Field(field_name, type_string, parse_type(type_string, structs, where)))
    return tuple(fields)


def _check_domain(fields: tuple[Field, ...]) -> None:
    for field in fields:
        wanted = DOMAIN_FIELD_TYPES.get(field.name)
        if wanted is not None and field.type_string != wanted:
            raise TypedDataError(
                f"{DOMAIN_TYPE}.{field.name} must have type {wanted}, as EIP-712 defines it"
            )


def _references(field_type: FieldType) -> str | None:
    while isinstance(field_type, Array):
        field_type = field_type.element
    return field_type.name if isinstance(field_type, StructRef) else None


def _dependencies(structs: Mapping[str, tuple[Field, ...]]) -> dict[str, tuple[str, ...]]:
    return {
        name: tuple(dict.fromkeys(r for f in fields if (r := _references(f.type)) is not None))
        for name, fields in structs.items()
    }


def _refuse_cycles(edges: Mapping[str, tuple[str, ...]]) -> None:
    """Depth-first search; a grey node met again closes a cycle, which we report in order."""
    state: dict[str, int] = {}  # absent: unvisited, 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in edges[name]:
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise TypedDataError(
                    "types: " + " -> ".join(cycle) + " is a cycle; walletd refuses types that "
                    "contain themselves, even through arrays"
                )
            if target not in state:
                visit(target)  # at most MAX_TYPES deep
        path.pop()
        state[name] = 2

    for name in edges:
        if name not in state:
            visit(name)


def _depth(field_type: FieldType, struct_depths: Mapping[str, int]) -> int:
    if isinstance(field_type, Array):
        return 1 + _depth(field_type.element, struct_depths)
    if isinstance(field_type, StructRef):
        return struct_depths[field_type.name]
    return 0


def _struct_depths(structs: Mapping[str, tuple[Field, ...]], order: list[str]) -> dict[str, int]:
    depths: dict[str, int] = {}
    for name in order:  # dependencies first, so every referenced depth is known
        fields = structs[name]
        depths[name] = 1 + max((_depth(f.type, depths) for f in fields), default=0)
        if depths[name] > MAX_DEPTH:
            raise TypedDataError(f"type {name!r} nests deeper than {MAX_DEPTH} levels")
    return depths


def _post_order(edges: Mapping[str, tuple[str, ...]]) -> list[str]:
    order: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        done.add(name)
        for target in edges[name]:
            if target not in done:
                visit(target)
        order.append(name)

    for name in edges:
        if name not in done:
            visit(name)
    return order


def _encode_type(
    name: str, structs: Mapping[str, tuple[Field, ...]], edges: Mapping[str, tuple[str, ...]]
) -> str:
    """EIP-712 ``encodeType``: the struct, then every struct it reaches, sorted by name."""
    reached: set[str] = set()
    pending = list(edges[name])
    while pending:
        target = pending.pop()
        if target not in reached and target != name:
            reached.add(target)
            pending.extend(edges[target])
    return "".join(
        f"{struct}({','.join(f'{f.type_string} {f.name}' for f in structs[struct])})"
        for struct in [name, *sorted(reached)]
    )


def parse_schema(raw_types: Any) -> Schema:
    """Check a document's ``types`` map and precompute its type hashes."""
    if not isinstance(raw_types, Mapping):
        raise TypedDataError("'types' must be a map from type name to a list of fields")
    if len(raw_types) > MAX_TYPES:
        raise TypedDataError(f"'types' defines more than {MAX_TYPES} types")
    if DOMAIN_TYPE not in raw_types:
        raise TypedDataError(f"'types' must define {DOMAIN_TYPE}")
    for name in raw_types:
        if not isinstance(name, str) or shown(name) != repr(name):
            raise TypedDataError(
                f"'types': a type name must be an identifier of at most {MAX_NAME_CHARS} characters"
            )
        if _atomic_looking(name):
            raise TypedDataError(f"'types': {name!r} is an atomic type's name, not a struct's")
    structs = {name: _parse_fields(name, fields, raw_types) for name, fields in raw_types.items()}
    _check_domain(structs[DOMAIN_TYPE])
    edges = _dependencies(structs)
    _refuse_cycles(edges)
    _struct_depths(structs, _post_order(edges))
    type_hashes = {
        name: keccak256(_encode_type(name, structs, edges).encode("ascii")) for name in structs
    }
    return Schema(structs, type_hashes)


def _atomic_looking(name: str) -> bool:
    try:
        return _atomic(name) is not None
    except TypedDataError:
        return True
