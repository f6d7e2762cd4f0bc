"""A wallet's key by type: making a new one, and the one callable that signs its messages.

The daemon treats every key type the same way at the few points where types differ:

- :func:`new_key_material` makes the private key and what may be shown of it (the address,
  and for the public-key types the public key recorded in the key history);
- :func:`message_signer` builds, once per key, the ``sign(message) -> signature`` callable the
  sign path calls (HMAC-SHA256 with precomputed pads, Ed25519 over the bytes, or EIP-191
  ``personal_sign``), plus the public-key signer object when there is one. So signing stays
  one call whatever the type, and the HMAC hot path is exactly what it was.

``hmac-sha256`` wallets keep their random ``0x`` + uuid4 address (the library walletd
replaces); the public-key types' addresses are derived from the key (see walletd_wire.schemes).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field

from walletd.model.keys import Ed25519Signer, Secp256k1Signer, generate_private_key, signer_for
from walletd.model.signer import Signer, hmac_sha256_signer
from walletd_wire.schemes import KeyType

__all__ = [
    "KEY_BYTES",
    "KEY_TYPES",
    "KeyType",
    "NewKey",
    "PublicSigner",
    "key_hash",
    "message_signer",
    "new_address",
    "new_key",
    "new_key_material",
    "parse_key_type",
]

KEY_BYTES = 32
KEY_TYPES: tuple[str, ...] = tuple(t.value for t in KeyType)

PublicSigner = Ed25519Signer | Secp256k1Signer


def new_key() -> bytearray:
    """A new HMAC key: 32 random bytes in a bytearray the caller can zero."""
    return bytearray(secrets.token_bytes(KEY_BYTES))


def new_address() -> str:
    """``0x`` + the 32 lowercase hex digits of a uuid4, as in the library walletd replaces."""
    return "0x" + uuid.uuid4().hex


def key_hash(key: bytes | bytearray) -> str:
    return hashlib.sha256(key).hexdigest()


def parse_key_type(value: str) -> KeyType:
    """The KeyType named ``value``; ValueError listing the supported ones otherwise."""
    try:
        return KeyType(value)
    except ValueError:
        raise ValueError(
            f"unknown key type {value[:40]!r}; supported: {', '.join(KEY_TYPES)}"
        ) from None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A fresh private key (zero it if it is not kept) and its public facts."""

    key: bytearray = field(repr=False)
    address: str
    public_key: bytes | None  # None for hmac-sha256


def new_key_material(key_type: KeyType) -> NewKey:
    if key_type is KeyType.HMAC_SHA256:
        return NewKey(new_key(), new_address(), None)
    private = generate_private_key(key_type)
    signer = signer_for(key_type, private)
    return NewKey(private, signer.address, signer.public_key)


def message_signer(key_type: KeyType, key: bytes | bytearray) -> tuple[Signer, PublicSigner | None]:
    """The callable that signs a message with ``key``, and the public-key signer behind it."""
    if key_type is KeyType.HMAC_SHA256:
        return hmac_sha256_signer(key), None
    signer = signer_for(key_type, key)
    return signer.sign_message, signer
