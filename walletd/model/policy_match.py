"""The ``match`` part of policy rules, compiled to small predicates over a request.

Each condition becomes one closure ``test(request) -> bool``; a rule matches when all of its
tests hold (``ops`` and ``key_types`` are not tests: the layer indexes rules by them). The
tests are ordered cheapest first, the pattern (an RE2 call) last. See ``policy_rules`` for
the document format and ``policy_values`` for how field conditions compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from .policy_pattern import PatternError, compile_pattern
from .policy_request import KEY_TYPES, OPS, SigningRequest
from .policy_time import TimeError
from .policy_values import (
    MAX_FIELD_NAME_CHARS,
    MAX_FIELDS,
    ValueProblem,
    field_test,
    int_out,
    one_or_more,
    parse_address,
    parse_int,
    parse_prefix,
    parse_text,
)

MAX_MESSAGE_BYTES = 2**32

_MATCH_FIELDS = (
    "ops",
    "key_types",
    "max_bytes",
    "prefix",
    "pattern",
    "chain_id",
    "verifying_contract",
    "primary_type",
    "fields",
)


Predicate = Callable[[SigningRequest], bool]
T = TypeVar("T")


class PolicyError(ValueError):
    """A policy document that cannot be compiled. The message names the rule and the field,
    e.g. ``rule 'orders': limit.count must be a positive integer``; it never holds anything
    being signed (documents are policy, not secrets)."""


def _names(where: str, what: str, value: Any, allowed: tuple[str, ...]) -> list[str]:
    def item(x: Any) -> str:
        if not isinstance(x, str) or x not in allowed:
            raise ValueProblem(f"must name one of {', '.join(allowed)}")
        return x

    return field(where, what, lambda: one_or_more(value, item, limit=len(allowed)))


def field(where: str, what: str, parse: Callable[[], T]) -> T:
    """Run ``parse``; turn its ValueProblem/TimeError into a PolicyError naming the rule
    (``where``) and the field (``what``)."""
    try:
        return parse()
    except (ValueProblem, TimeError, PatternError) as exc:
        sep = "" if str(exc).startswith(("[", ".")) else " "
        raise PolicyError(f"{where}: {what}{sep}{exc}") from None


class Match:
    """A compiled ``match``: what the evaluator checks inline (``max_bytes``, ``prefix``: no
    call per check, they are the most common conditions) and the other ``tests``; ``ops``
    and ``key_types`` are used by the layer's index. ``normal`` is the normalised form."""

    __slots__ = (
        "key_types",
        "max_bytes",
        "normal",
        "ops",
        "pattern",
        "prefix",
        "tests",
        "typed_tests",
    )

    def __init__(self) -> None:
        self.ops: frozenset[str] | None = None
        self.key_types: frozenset[str] | None = None
        self.max_bytes: int | None = None
        self.prefix: bytes | None = None
        self.tests: tuple[Predicate, ...] = ()
        # The same conditions in parts, for the compiled sign path (policy_compiled): the
        # typed-data tests, and the pattern's RE2 match over the message bytes (its test in
        # ``tests`` adds the None and UTF-8 checks).
        self.typed_tests: tuple[Predicate, ...] = ()
        self.pattern: Callable[[bytes], object] | None = None
        self.normal: dict[str, Any] = {}


def compile_match(where: str, match: Any) -> Match:
    if not isinstance(match, dict):
        raise PolicyError(f"{where}: match must be a map")
    unknown = sorted(str(k)[:64] for k in set(match) - set(_MATCH_FIELDS))
    if unknown:
        raise PolicyError(f"{where}: match has unknown field {unknown[0]!r}")
    out = Match()
    normal = out.normal
    if "ops" in match:
        normal["ops"] = _names(where, "match.ops", match["ops"], OPS)
        out.ops = frozenset(normal["ops"])
    if "key_types" in match:
        normal["key_types"] = _names(where, "match.key_types", match["key_types"], KEY_TYPES)
        out.key_types = frozenset(normal["key_types"])
    # Cheapest tests first; the pattern (an RE2 call) last.
    tests: list[Predicate] = []
    if "max_bytes" in match:
        size = field(where, "match.max_bytes", lambda: parse_int(match["max_bytes"], minimum=0))
        if size > MAX_MESSAGE_BYTES:
            raise PolicyError(f"{where}: match.max_bytes must be at most {MAX_MESSAGE_BYTES}")
        normal["max_bytes"] = out.max_bytes = size
    if "prefix" in match:
        out.prefix, normal["prefix"] = field(
            where, "match.prefix", lambda: parse_prefix(match["prefix"])
        )
    out.typed_tests = tuple(_compile_typed(where, match, normal))
    tests.extend(out.typed_tests)
    if "pattern" in match:
        pattern = match["pattern"]
        if not isinstance(pattern, str):
            raise PolicyError(f"{where}: match.pattern must be text")
        full = out.pattern = field(where, "match.pattern", lambda: compile_pattern(pattern))
        normal["pattern"] = pattern

        def pattern_test(r: SigningRequest) -> bool:
            # A message that is not UTF-8 matches no pattern. RE2 runs first: when it finds
            # no match (it never matches bytes that are not UTF-8) the check is not needed.
            message = r.message
            return message is not None and bool(full(message)) and r.utf8()

        tests.append(pattern_test)
    out.tests = tuple(tests)
    return out


def _compile_typed(where: str, match: dict[str, Any], normal: dict[str, Any]) -> list[Predicate]:
    tests: list[Predicate] = []
    if "chain_id" in match:
        chains = field(where, "match.chain_id", lambda: one_or_more(match["chain_id"], _chain_id))
        normal["chain_id"] = [int_out(c) for c in chains]
        chain_set = frozenset(chains)
        tests.append(lambda r: r.typed is not None and r.typed.chain_id in chain_set)
    if "verifying_contract" in match:
        contracts = field(
            where,
            "match.verifying_contract",
            lambda: one_or_more(match["verifying_contract"], parse_address),
        )
        normal["verifying_contract"] = contracts
        contract_set = frozenset(contracts)
        tests.append(lambda r: r.typed is not None and r.typed.verifying_contract in contract_set)
    if "primary_type" in match:
        types = field(
            where, "match.primary_type", lambda: one_or_more(match["primary_type"], parse_text)
        )
        normal["primary_type"] = types
        type_set = frozenset(types)
        tests.append(lambda r: r.typed is not None and r.typed.primary_type in type_set)
    if "fields" in match:
        tests.extend(_compile_fields(where, match["fields"], normal))
    return tests


def _chain_id(x: Any) -> int:
    return parse_int(x, minimum=1)


def _compile_fields(where: str, fields: Any, normal: dict[str, Any]) -> list[Predicate]:
    if not isinstance(fields, dict) or not 1 <= len(fields) <= MAX_FIELDS:
        raise PolicyError(f"{where}: match.fields must be a map of 1-{MAX_FIELDS} field names")
    tests: list[Predicate] = []
    out: dict[str, dict[str, Any]] = {}
    for name, conditions in fields.items():
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_FIELD_NAME_CHARS:
            raise PolicyError(
                f"{where}: match.fields names must be text of 1-{MAX_FIELD_NAME_CHARS} characters"
            )
        at = f"match.fields.{name}"
        if not isinstance(conditions, dict) or not conditions:
            raise PolicyError(f"{where}: {at} must be a map of conditions (eq, ne, in, lt, ...)")
        out[name] = {}
        for op, value in conditions.items():
            test, out[name][str(op)] = field(
                where, f"{at}.{str(op)[:16]}", partial(field_test, name, str(op), value)
            )
            tests.append(partial(_typed_fields, test))
    normal["fields"] = out
    return tests


def _typed_fields(test: Callable[[Mapping[str, object]], bool], r: SigningRequest) -> bool:
    return r.typed is not None and test(r.typed.fields)
