"""What the signing policy sees of one signing request (one item of a batch)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from .policy_pattern import is_utf8

OPS = ("sign_message", "sign_batch", "sign_typed_data")
KEY_TYPES = ("hmac-sha256", "ed25519", "secp256k1")

_EMPTY: Mapping[str, object] = {}


class TypedFacts:
    """The facts of an EIP-712 document that rules can match on.

    ``fields`` maps the primary message's field names to values: ``int`` for ``uintN`` /
    ``intN`` (any size), ``str`` for ``address`` / ``string`` / hex ``bytesN``, ``bool``.
    Nested structs may be flattened by the decoder as ``"a.b"`` names; rules match names as
    given. ``verifying_contract`` is kept lowercase.
    """

    __slots__ = ("chain_id", "fields", "primary_type", "verifying_contract")

    def __init__(
        self,
        *,
        chain_id: int | None = None,
        verifying_contract: str | None = None,
        primary_type: str | None = None,
        fields: Mapping[str, object] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.verifying_contract = None if verifying_contract is None else verifying_contract.lower()
        self.primary_type = primary_type
        self.fields = _EMPTY if fields is None else fields

    def __repr__(self) -> str:
        # Field values may be what is being signed: never shown.
        return f"TypedFacts(chain_id={self.chain_id}, primary_type={self.primary_type!r})"


class SigningRequest(msgspec.Struct, gc=False):
    """One signature the policy decides on.

    ``op`` is the wire op (items of a batch carry ``"sign_batch"``); ``key_type`` the wallet's;
    ``message`` the bytes to be signed (``None`` when there are none, e.g. for typed data
    unless the daemon chooses to pass its canonical encoding); ``typed`` the EIP-712 facts or
    ``None``. Built once per request by the daemon (a Struct: building one costs a quarter of
    a plain class's ``__init__``, and the sign path builds one per signature); the UTF-8 check
    of ``message`` is done at most once, and only if a pattern rule is reached.
    """

    op: str
    key_type: str
    message: bytes | None = None
    typed: TypedFacts | None = None
    utf8_checked: bool | None = None  # the cached answer of utf8(); None until asked

    def utf8(self) -> bool:
        """Whether ``message`` is valid UTF-8 (False when there is no message)."""
        ok = self.utf8_checked
        if ok is None:
            ok = self.utf8_checked = self.message is not None and is_utf8(self.message)
        return ok

    def __repr__(self) -> str:
        size = None if self.message is None else len(self.message)
        return f"SigningRequest(op={self.op!r}, key_type={self.key_type!r}, message_bytes={size})"
