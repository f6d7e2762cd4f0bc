"""Key types and the public-key signature schemes anyone can verify, with no daemon.

Shared by walletd and its clients; imports neither trio nor anything of ``walletd`` or
``wallet_client``.

- ``ed25519``: RFC 8032 signatures (64 bytes) over the message bytes. The public key is 32
  bytes; the address is its base58 (bitcoin alphabet) encoding, the Solana convention.
- ``secp256k1``: Ethereum. Messages are signed as EIP-191 ``personal_sign`` digests, typed
  data as EIP-712 digests; signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28}.
  Verification recovers the signer's address and compares it with the expected one.
- ``hmac-sha256``: the symmetric type walletd started with; only walletd can verify it.

High-s secp256k1 signatures are refused (False): every signer we know of, walletd included,
emits low-s (EIP-2, libsecp256k1), and accepting both forms would give each signature a
second valid encoding that anyone can compute, which breaks systems that use a signature as
an identifier (replay caches, deduplication). ``v`` may be {27, 28} or the raw recovery ids
{0, 1}, which some tools write.

Error contract of :func:`verify_offline`: a signature that does not verify, including one of
the wrong length or with a bad ``v``, is ``False``; a key or address that is not well-formed,
an unknown key type, or an invalid EIP-712 document raises ValueError (TypedDataError for the
document), because those are the caller's mistakes and ``False`` would hide them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .eip712 import TypedDataError, parse_typed_data
from .ethereum import (
    SECP256K1_HALF_N,
    SECP256K1_N,
    address_from_uncompressed,
    checksum_address,
    eip191_digest,
    eth_address,
    keccak256,
)

__all__ = [
    "ED25519_PUBLIC_KEY_BYTES",
    "ED25519_SIGNATURE_BYTES",
    "SECP256K1_SIGNATURE_BYTES",
    "KeyType",
    "TypedDataError",
    "b58decode",
    "b58encode",
    "checksum_address",
    "ed25519_address",
    "ed25519_public_key_from_address",
    "eip191_digest",
    "eth_address",
    "keccak256",
    "recover_eth_address",
    "verify_ed25519",
    "verify_offline",
]


class KeyType(enum.StrEnum):
    HMAC_SHA256 = "hmac-sha256"
    ED25519 = "ed25519"
    SECP256K1 = "secp256k1"


ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
SECP256K1_SIGNATURE_BYTES = 65

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}
# base58 of 32 bytes is 32 ("1" per zero byte) to 44 characters; anything longer is not a key.
_MAX_ED25519_ADDRESS_CHARS = 44


def b58encode(data: bytes) -> str:
    """Base58 (bitcoin alphabet); each leading zero byte becomes a leading ``1``."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_B58_ALPHABET[remainder])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; ValueError on a character outside the alphabet.

    Quadratic in the length, like every base58 codec: callers bound the input first.
    """
    number = 0
    for char in text:
        index = _B58_INDEX.get(char)
        if index is None:
            raise ValueError("not base58: characters must come from the bitcoin alphabet")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def ed25519_address(public_key: bytes) -> str:
    """The address of a 32-byte Ed25519 public key: its base58 encoding."""
    if len(public_key) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return b58encode(bytes(public_key))


def ed25519_public_key_from_address(address: str) -> bytes:
    """The 32-byte public key an Ed25519 address encodes; ValueError if it is not one."""
    if not isinstance(address, str) or len(address) > _MAX_ED25519_ADDRESS_CHARS:
        raise ValueError("an Ed25519 address is the base58 of 32 bytes (at most 44 characters)")
    public_key = b58decode(address)
    if len(public_key) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError("an Ed25519 address must decode to exactly 32 bytes")
    return public_key


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 verification: False for a bad or wrong-length signature; ValueError, bad key."""
    if len(public_key) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError("an Ed25519 public key is 32 bytes")
    if len(signature) != ED25519_SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(bytes(signature), message)
    except InvalidSignature:
        return False
    return True


def recover_eth_address(digest: bytes, signature: bytes) -> str | None:
    """The checksummed address that made ``signature`` over ``digest``; None if there is none.

    None for a signature that is not 65 bytes, whose ``v`` is not 27, 28, 0 or 1, whose r or s
    is out of range, or whose s is high (see the module docstring).
    """
    if len(digest) != 32:
        raise ValueError("an Ethereum signing digest is 32 bytes")
    if len(signature) != SECP256K1_SIGNATURE_BYTES:
        return None
    v = signature[64]
    if v in (27, 28):
        recovery_id = v - 27
    elif v in (0, 1):
        recovery_id = v
    else:
        return None
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_HALF_N):
        return None
    compact = bytes(signature[:64]) + bytes((recovery_id,))
    try:
        point = coincurve.PublicKey.from_signature_and_message(compact, bytes(digest), hasher=None)
    except ValueError:  # no point has this signature (r is not an x coordinate, ...)
        return None
    return address_from_uncompressed(point.format(compressed=False))


def _expected_eth_address(public_key_or_address: bytes | str) -> str:
    if isinstance(public_key_or_address, str):
        return checksum_address(public_key_or_address)
    return eth_address(public_key_or_address)


def _expected_ed25519_key(public_key_or_address: bytes | str) -> bytes:
    if isinstance(public_key_or_address, str):
        return ed25519_public_key_from_address(public_key_or_address)
    if len(public_key_or_address) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return bytes(public_key_or_address)


def verify_offline(
    public_key_or_address: bytes | str,
    message: bytes | Mapping[str, Any],
    signature: bytes,
    key_type: str,
) -> bool:
    """Check a walletd signature with only the signer's public key or address.

    ``ed25519``: the 32-byte public key or its base58 address; ``message`` is the signed bytes.
    ``secp256k1``: an ``0x`` address or a SEC1 public key (33 or 65 bytes); ``message`` is the
    bytes signed with EIP-191 ``personal_sign``, or a Mapping, which is an EIP-712 document
    (``eth_signTypedData_v4`` shape) and is validated first.
    ``hmac-sha256``: ValueError, only walletd holds the key.

    Returns False for a signature that does not verify (including a wrong length); raises
    ValueError for a malformed key or address, an unknown key type or a Mapping message on
    ed25519, and TypedDataError (a ValueError) for an invalid EIP-712 document.
    """
    try:
        kind = KeyType(key_type)
    except ValueError:
        raise ValueError(
            "unknown key type; expected one of " + ", ".join(t.value for t in KeyType)
        ) from None
    if not isinstance(signature, bytes | bytearray | memoryview):
        raise TypeError("signature must be bytes")
    if isinstance(message, Mapping):
        if kind is not KeyType.SECP256K1:
            raise ValueError("EIP-712 typed data is signed only by secp256k1 keys")
    elif not isinstance(message, bytes | bytearray | memoryview):
        raise TypeError("message must be bytes, or a Mapping (an EIP-712 document)")
    if kind is KeyType.HMAC_SHA256:
        raise ValueError("hmac-sha256 signatures can be verified only by walletd")
    if kind is KeyType.ED25519:
        assert not isinstance(message, Mapping)
        return verify_ed25519(_expected_ed25519_key(public_key_or_address), message, signature)
    expected = _expected_eth_address(public_key_or_address)
    digest = (
        parse_typed_data(message).digest()
        if isinstance(message, Mapping)
        else eip191_digest(message)
    )
    return recover_eth_address(digest, signature) == expected
