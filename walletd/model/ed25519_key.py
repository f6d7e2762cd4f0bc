"""An Ed25519 signing key in memory we can zero, signed with libsodium.

Why libsodium (through PyNaCl's cffi binding) rather than OpenSSL (through ``cryptography``),
which the clients still use to verify:

- **Speed.** On the bench machine libsodium signs 64 bytes in about 27 µs, OpenSSL 3 in about
  59 µs (OpenSSL's Ed25519 is the portable reference code; libsodium's uses precomputed
  tables and the CPU's wide multiplier). Signing is most of an Ed25519 request's cost, so
  this is what puts walletd's Ed25519 rows where the issue wants them.
- **The GIL.** cffi releases it around the C call, so two threads sign in parallel; a large
  ``sign_batch`` uses that (walletd.ops.batch_threads).
- **Zeroing.** PyNaCl's Python API takes the secret key as immutable ``bytes``, which we
  could never clear. Calling the library directly on a buffer cffi allocated lets us keep
  the 64-byte expanded key (seed || public key, libsodium's form) in one place and overwrite
  it with ``sodium_memzero`` when the key object is freed (its last reference goes: a
  rotation or deletion, once no signature in flight still uses it).

``nacl._sodium`` is PyNaCl's compiled binding; ``nacl.bindings`` itself calls into it the same
way. Its declarations do not include ``crypto_sign_detached``, so we sign with the combined
``crypto_sign`` (signature || message) and keep the first 64 bytes: the signature is the same.
"""

from __future__ import annotations

from typing import Any

import nacl.bindings
from nacl._sodium import ffi, lib  # type: ignore[import-not-found]  # compiled, no stubs

__all__ = ["PUBLIC_KEY_BYTES", "SEED_BYTES", "SIGNATURE_BYTES", "Ed25519Key"]

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
_SECRET_BYTES = 64  # libsodium's expanded secret key: seed || public key

nacl.bindings.sodium_init()  # idempotent; picks the CPU's fastest implementations
# The signed-message buffer is written whole by crypto_sign: no need to clear it first.
_new_uncleared = ffi.new_allocator(should_clear_after_alloc=False)


class Ed25519Key:
    """One Ed25519 secret key; ``sign(message)`` is RFC 8032 (deterministic) Ed25519."""

    __slots__ = ("_secret", "public_key")

    _secret: Any  # cffi "unsigned char[64]"
    public_key: bytes

    def __init__(self, seed: bytes | bytearray) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes")
        public = ffi.new("unsigned char[]", PUBLIC_KEY_BYTES)
        self._secret = ffi.new("unsigned char[]", _SECRET_BYTES)
        if lib.crypto_sign_seed_keypair(public, self._secret, ffi.from_buffer(seed)) != 0:
            raise RuntimeError("libsodium could not derive an Ed25519 key pair")
        self.public_key = bytes(ffi.buffer(public))

    def sign(self, message: bytes | bytearray | memoryview) -> bytes:
        if type(message) is not bytes:  # cffi takes bytes for a const char *, not a view
            message = bytes(message)
        signed = _new_uncleared("unsigned char[]", SIGNATURE_BYTES + len(message))
        if lib.crypto_sign(signed, ffi.NULL, message, len(message), self._secret) != 0:
            raise RuntimeError("libsodium could not sign")
        return bytes(ffi.buffer(signed, SIGNATURE_BYTES))

    def __del__(self) -> None:
        secret = getattr(self, "_secret", None)  # absent if __init__ failed before it
        if secret is not None:
            lib.sodium_memzero(secret, _SECRET_BYTES)

    def __repr__(self) -> str:
        return "Ed25519Key(<secret>)"

    def __reduce__(self) -> Any:
        raise TypeError("an Ed25519Key holds a private key: it cannot be pickled or copied")
