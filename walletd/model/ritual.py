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

import walletd_wire as wire
from walletd.config import Config

SALT_BYTES = 16
#: CPython's hashlib.scrypt refuses a larger ``maxmem``: parameters needing more cannot run.
MAX_SCRYPT_MEMORY = 2**31 - 1


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


def scrypt_memory(n: int, r: int, p_: int) -> int:
    """Bytes scrypt needs for these parameters, reckoned as OpenSSL does: 128·r·(n + p + 2)."""
    return 128 * r * (n + p_ + 2)


def check_scrypt_params(n: int, r: int, p_: int) -> None:
    """ValueError for parameters scrypt cannot run with (the message names them)."""
    if n < 2 or n & (n - 1):
        raise ValueError(f"scrypt n={n} must be a power of two greater than 1")
    if scrypt_memory(n, r, p_) > MAX_SCRYPT_MEMORY:
        raise ValueError(
            f"scrypt n={n}, r={r}, p={p_} needs {scrypt_memory(n, r, p_)} bytes of memory; "
            f"the limit is {MAX_SCRYPT_MEMORY} (lower n or r)"
        )


def _scrypt(response_hash: str, salt: bytes, n: int, r: int, p_: int) -> bytes:
    # maxmem follows the parameters: a fixed cap made every n·r above it (n=2**17 with r=16,
    # say) fail with "memory limit exceeded" at registration, as an internal error.
    return hashlib.scrypt(
        response_hash.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p_,
        maxmem=min(scrypt_memory(n, r, p_) + (1 << 20), MAX_SCRYPT_MEMORY),
        dklen=32,
    )


def hash_steps(steps: list[wire.RitualStep], config: Config) -> list[StoredStep]:
    check_scrypt_params(config.scrypt_n, config.scrypt_r, config.scrypt_p)
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
