"""What the signing policy sees of a request: the facts of an EIP-712 document.

``typed_facts`` reads a validated document (walletd_wire.eip712, whose normaliser gives
``uintN``/``intN`` as ints, addresses as EIP-55 text and bytes as ``bytes``, which rules see
as ``0x`` hex text) into the model's :class:`~walletd.model.policy_request.TypedFacts`.
Fields of nested structs are flattened as ``"outer.inner"`` so a rule can name them; arrays
are not matchable (a rule that names one does not hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from walletd.model.policy_request import TypedFacts
from walletd_wire.eip712 import TypedData

__all__ = ["typed_facts"]

#: Flattening stops at this depth: deeper fields are not matchable (rules cannot name them).
MAX_DEPTH = 8


def typed_facts(typed: TypedData) -> TypedFacts:
    fields: dict[str, object] = {}
    _flatten(typed.message, "", fields, 0)
    return TypedFacts(
        chain_id=typed.chain_id,
        verifying_contract=typed.verifying_contract,
        primary_type=typed.primary_type,
        fields=fields,
    )


def _flatten(message: Mapping[str, Any], prefix: str, out: dict[str, object], depth: int) -> None:
    for name, value in message.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            if depth < MAX_DEPTH:
                _flatten(value, f"{key}.", out, depth + 1)
        elif isinstance(value, bool | int | str):
            out[key] = value
        elif isinstance(value, bytes):
            out[key] = "0x" + value.hex()  # the model compares hex text (see policy_values)
