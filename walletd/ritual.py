"""Stored recovery rituals and the memory-hard check of an attempt (no I/O, no trio).

Per step only ``scrypt(sha256_hex_of_answer, salt)`` is kept, with its random salt and the
scrypt parameters, so the parameters can be raised later without invalidating old rituals.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import msgspec

from wallet_client import protocol as p

from .config import Config

SALT_BYTES = 16


class StoredStep(msgspec.Struct, array_like=True):
    prompt: str
    salt: bytes
    digest: bytes
    n: int
    r: int
    p: int


@dataclass(slots=True)
class Ritual:
    steps: list[StoredStep]
    attempts: int = 0
    locked_at: float | None = None


_steps_encoder = msgspec.msgpack.Encoder()
_steps_decoder = msgspec.msgpack.Decoder(list[StoredStep])


def encode_steps(steps: list[StoredStep]) -> bytes:
    return _steps_encoder.encode(steps)


def decode_steps(data: bytes) -> list[StoredStep]:
    return _steps_decoder.decode(data)


def _scrypt(response_hash: str, salt: bytes, n: int, r: int, p_: int) -> bytes:
    return hashlib.scrypt(
        response_hash.encode(), salt=salt, n=n, r=r, p=p_, maxmem=256 * 1024 * 1024, dklen=32
    )


def hash_steps(steps: list[p.RitualStep], config: Config) -> list[StoredStep]:
    out = []
    for step in steps:
        salt = secrets.token_bytes(SALT_BYTES)
        digest = _scrypt(
            step.expected_response_hash, salt, config.scrypt_n, config.scrypt_r, config.scrypt_p
        )
        out.append(
            StoredStep(step.prompt, salt, digest, config.scrypt_n, config.scrypt_r, config.scrypt_p)
        )
    return out


def check_responses(steps: list[StoredStep], responses: list[str]) -> bool:
    """Every step is hashed and compared, whatever the earlier ones gave."""
    ok = len(responses) == len(steps)
    for index, step in enumerate(steps):
        # A missing response is checked against a dummy, so the work does not depend on count.
        given = responses[index] if index < len(responses) else ""
        digest = _scrypt(given.lower(), step.salt, step.n, step.r, step.p)
        ok &= hmac.compare_digest(digest, step.digest)
    return ok
