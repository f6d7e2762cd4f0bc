"""Key material and signing for the public-key wallet types (daemon side).

General layout: :func:`generate_private_key` makes a key, :func:`public_key_of` and
:func:`address_of` derive what may be shown, :func:`signer_for` builds the object that signs
with it. Verification that needs no private key lives in :mod:`walletd_wire.schemes`, shared
with the clients, and the signers' ``verify_*`` methods delegate to it, so the daemon and a
third party agree on what verifies.

- ``ed25519``: the private key is the RFC 8032 32-byte seed; the public key is 32 raw bytes.
- ``secp256k1``: the private key is a 32-byte big-endian scalar in [1, n-1]; the public key is
  returned as 33-byte *compressed* SEC1 (the smallest form; :func:`walletd_wire.schemes.
  eth_address` takes either form, and the address is the same).

There is deliberately no public method that signs a caller-supplied hash. A signer that signs
bare 32-byte digests can be made to sign a transaction it cannot see; every public method here
hashes what it is given under a scheme that a transaction hash cannot collide with (EIP-191's
prefix, EIP-712's 0x1901), and the one digest-signing helper is private to this module.

Secrecy: signers keep their private key inside the crypto library's object; their repr shows
the address only, and they refuse to be pickled or copied. Ed25519 keys live in a buffer that
is zeroed when the key is freed (walletd.model.ed25519_key); ``coincurve`` keeps its own copy
of a secp256k1 scalar as an immutable ``bytes``, which we cannot zero. The caller's bytearray
can and should be zeroed once the signer exists.
"""

from __future__ import annotations

import secrets
from typing import NoReturn, Protocol

import coincurve

from walletd.model.ed25519_key import Ed25519Key
from walletd_wire.eip712 import TypedData
from walletd_wire.ethereum import SECP256K1_HALF_N, SECP256K1_N, eip191_digest, eth_address
from walletd_wire.schemes import (
    KeyType,
    ed25519_address,
    recover_eth_address,
    verify_ed25519,
)

__all__ = [
    "PRIVATE_KEY_BYTES",
    "Ed25519Signer",
    "PublicKeySigner",
    "Secp256k1Signer",
    "address_of",
    "generate_private_key",
    "public_key_of",
    "signer_for",
]

PRIVATE_KEY_BYTES = 32  # for every key type: HMAC key, Ed25519 seed, secp256k1 scalar


def _key_type(key_type: KeyType | str) -> KeyType:
    try:
        return KeyType(key_type)
    except ValueError:
        raise ValueError("unknown key type") from None


def _check_private(key_type: KeyType, private: bytes | bytearray) -> None:
    """ValueError unless ``private`` is a valid key of ``key_type`` (message names no bytes)."""
    if len(private) != PRIVATE_KEY_BYTES:
        raise ValueError(f"a {key_type.value} private key is {PRIVATE_KEY_BYTES} bytes")
    if key_type is KeyType.SECP256K1 and not 0 < int.from_bytes(private, "big") < SECP256K1_N:
        raise ValueError("a secp256k1 private key must be a scalar in [1, n-1]")


def generate_private_key(key_type: KeyType | str) -> bytearray:
    """A new private key from :mod:`secrets`, in a bytearray the caller can zero.

    ``hmac-sha256`` keys are 32 random bytes, as today's wallets have; a secp256k1 scalar is
    redrawn in the (about 2**-128 likely) case that it falls outside [1, n-1].
    """
    kind = _key_type(key_type)
    while True:
        private = bytearray(secrets.token_bytes(PRIVATE_KEY_BYTES))
        if kind is not KeyType.SECP256K1 or 0 < int.from_bytes(private, "big") < SECP256K1_N:
            return private
        private[:] = bytes(PRIVATE_KEY_BYTES)


def public_key_of(key_type: KeyType | str, private: bytes | bytearray) -> bytes:
    """Ed25519: the 32-byte public key; secp256k1: the 33-byte compressed SEC1 point."""
    kind = _key_type(key_type)
    if kind is KeyType.HMAC_SHA256:
        raise ValueError("hmac-sha256 keys have no public key")
    return signer_for(kind, private).public_key


def address_of(key_type: KeyType | str, public_key: bytes) -> str:
    """Ed25519: base58 of the public key; secp256k1: the EIP-55 checksummed address."""
    kind = _key_type(key_type)
    if kind is KeyType.ED25519:
        return ed25519_address(public_key)
    if kind is KeyType.SECP256K1:
        return eth_address(public_key)
    raise ValueError("hmac-sha256 keys have no public key and no derived address")


def _sign_digest(key: coincurve.PrivateKey, digest: bytes) -> bytes:
    """65 bytes ``r || s || v`` over a 32-byte digest; low-s and v in {27, 28}.

    Private on purpose (see the module docstring). libsecp256k1 already emits low-s; we check
    rather than trust it, since a high-s signature would be refused by our own verifier.
    """
    compact = key.sign_recoverable(digest, hasher=None)  # r || s || recovery id (RFC 6979 nonce)
    r, s, recovery_id = compact[:32], int.from_bytes(compact[32:64], "big"), compact[64]
    if s > SECP256K1_HALF_N:
        s, recovery_id = SECP256K1_N - s, recovery_id ^ 1
    if recovery_id > 1:
        # Only when r overflowed n (probability about 2**-128); Ethereum's v cannot say so.
        raise RuntimeError("secp256k1 signature not representable with v in {27, 28}")
    return r + s.to_bytes(32, "big") + bytes((27 + recovery_id,))


class PublicKeySigner(Protocol):
    """What the daemon needs from a signer of any public-key type."""

    @property
    def key_type(self) -> KeyType: ...
    @property
    def public_key(self) -> bytes: ...
    @property
    def address(self) -> str: ...
    def sign_message(self, message: bytes) -> bytes: ...
    def verify_message(self, message: bytes, signature: bytes) -> bool: ...


class _Signer:
    """Shared behaviour: public facts as attributes, no key in repr, no pickling or copying."""

    __slots__ = ("_address", "_public_key")

    _address: str
    _public_key: bytes

    @property
    def public_key(self) -> bytes:
        return self._public_key

    @property
    def address(self) -> str:
        return self._address

    def __repr__(self) -> str:
        return f"{type(self).__name__}(address={self._address!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("signers hold private keys: they cannot be pickled or copied")


class Ed25519Signer(_Signer):
    """RFC 8032 Ed25519 over the message bytes (64-byte signatures), signed by libsodium."""

    __slots__ = ("_key",)

    def __init__(self, private: bytes | bytearray) -> None:
        _check_private(KeyType.ED25519, private)
        self._key = Ed25519Key(private)
        self._public_key = self._key.public_key
        self._address = ed25519_address(self._public_key)

    @property
    def key_type(self) -> KeyType:
        return KeyType.ED25519

    def sign_message(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def verify_message(self, message: bytes, signature: bytes) -> bool:
        return verify_ed25519(self._public_key, message, signature)


class Secp256k1Signer(_Signer):
    """Ethereum signing: EIP-191 messages and EIP-712 typed data, 65-byte r || s || v."""

    __slots__ = ("_key",)

    def __init__(self, private: bytes | bytearray) -> None:
        _check_private(KeyType.SECP256K1, private)
        self._key = coincurve.PrivateKey(bytes(private))
        self._public_key = self._key.public_key.format(compressed=True)
        self._address = eth_address(self._public_key)

    @property
    def key_type(self) -> KeyType:
        return KeyType.SECP256K1

    def sign_message(self, message: bytes) -> bytes:
        """EIP-191 ``personal_sign`` of ``message``."""
        return _sign_digest(self._key, eip191_digest(message))

    def sign_typed_data(self, typed: TypedData) -> bytes:
        """EIP-712 signature of an already validated document (see parse_typed_data)."""
        return _sign_digest(self._key, typed.digest())

    def verify_message(self, message: bytes, signature: bytes) -> bool:
        return recover_eth_address(eip191_digest(message), signature) == self._address

    def verify_typed_data(self, typed: TypedData, signature: bytes) -> bool:
        return recover_eth_address(typed.digest(), signature) == self._address


def signer_for(
    key_type: KeyType | str, private: bytes | bytearray
) -> Ed25519Signer | Secp256k1Signer:
    """The signer for a public-key type; ValueError for hmac-sha256 (walletd.signer has it)."""
    kind = _key_type(key_type)
    if kind is KeyType.ED25519:
        return Ed25519Signer(private)
    if kind is KeyType.SECP256K1:
        return Secp256k1Signer(private)
    raise ValueError("hmac-sha256 keys are signed with walletd's HMAC signer, not this module")
