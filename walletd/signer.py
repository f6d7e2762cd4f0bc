"""HMAC-SHA256 with the key's pad states computed once per key.

HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)) (RFC 2104). Hashing the two 64-byte padded
keys is the same for every message, so we do it once and copy the resulting SHA-256 states per
signature. For short messages that makes a signature about 2.5x cheaper than
``hmac.digest(key, m, "sha256")``, which rebuilds both states each time; signing is the hot
path, so it is worth these few lines. The result is byte-for-byte standard HMAC-SHA256
(tests/test_signer.py checks it against :func:`hmac.digest`).

The padded keys are built in bytearrays and zeroed at once; the hash states live in OpenSSL,
which clears them when they are freed (when the key is rotated or deleted).
"""

from __future__ import annotations

import hashlib
import hmac

BLOCK_BYTES = 64  # SHA-256's block size


class HmacSha256:
    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes | bytearray) -> None:
        if len(key) > BLOCK_BYTES:
            key = bytearray(hashlib.sha256(key).digest())
        inner_pad = bytearray(b"\x36" * BLOCK_BYTES)
        outer_pad = bytearray(b"\x5c" * BLOCK_BYTES)
        for index, byte in enumerate(key):
            inner_pad[index] ^= byte
            outer_pad[index] ^= byte
        self._inner = hashlib.sha256(inner_pad)
        self._outer = hashlib.sha256(outer_pad)
        inner_pad[:] = outer_pad[:] = bytes(BLOCK_BYTES)

    def sign(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(self.sign(message), signature)
