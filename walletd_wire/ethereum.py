"""Ethereum primitives: keccak-256, EIP-191 message digests and EIP-55 addresses.

Keccak-256 comes from pycryptodome's ``Crypto.Hash.keccak``. It is *not* Python's
``hashlib.sha3_256``: SHA-3 as standardised (FIPS 202) changed Keccak's padding byte, so the
two give different digests for every input, and Ethereum uses the original Keccak.

Addresses are ``0x`` + the last 20 bytes of keccak-256 of the uncompressed public key's 64
coordinate bytes, written with the EIP-55 mixed-case checksum. :func:`checksum_address`
accepts an address in one case (all lower or all upper: no checksum to check) and refuses a
mixed-case address whose checksum is wrong, as ethers and web3 do: mixed case is a claim that
the address was checksummed, and a wrong checksum is almost always a typo.
"""

from __future__ import annotations

import re

import coincurve
from Crypto.Hash import keccak

__all__ = [
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "address_from_uncompressed",
    "checksum_address",
    "eip191_digest",
    "eth_address",
    "keccak256",
]

# The order of secp256k1's group: private scalars are in [1, N-1], signature r and s in [1, N-1].
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
# "Low s" (EIP-2, libsecp256k1's normal form): s <= N/2, so each signature has one encoding.
SECP256K1_HALF_N = SECP256K1_N // 2

_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"
_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
_COMPRESSED_BYTES = 33
_UNCOMPRESSED_BYTES = 65

Buffer = bytes | bytearray | memoryview


def keccak256(data: Buffer) -> bytes:
    """Keccak-256 of ``data`` (Ethereum's hash; not SHA3-256)."""
    return keccak.new(digest_bits=256, data=data).digest()


def eip191_digest(message: Buffer) -> bytes:
    """The ``personal_sign`` digest (EIP-191 version 0x45) of ``message``.

    keccak256("\\x19Ethereum Signed Message:\\n" + decimal byte length + message): the prefix
    makes the digest useless as a transaction hash, which is why wallets sign messages this way.
    """
    # One keccak call on a joined buffer, not three update() calls: each call into
    # pycryptodome's cffi binding costs ~1 µs, so this is ~7.3 µs instead of ~9.3 µs for a
    # 64-byte message (about 4% of an EIP-191 signature); the copy is cheap next to hashing.
    # tests/test_keytypes.py compares it with eth-account's defunct_hash_message.
    joined = b"%s%d%s" % (_EIP191_PREFIX, len(message), message)
    return keccak.new(digest_bits=256, data=joined).digest()


def _checksummed(lower_hex40: str) -> str:
    """EIP-55: upper-case each letter whose nibble in keccak256(lowercase hex) is >= 8."""
    nibbles = keccak256(lower_hex40.encode("ascii")).hex()
    return "0x" + "".join(
        char.upper() if char > "9" and nibble >= "8" else char
        for char, nibble in zip(lower_hex40, nibbles, strict=False)
    )


def checksum_address(text: str) -> str:
    """``text`` as an EIP-55 checksummed address; ValueError if it is not a valid address.

    Accepts ``0x`` + 40 hex digits in any single case; a mixed-case address must carry a
    correct checksum. The message names the rule broken, never echoes the input.
    """
    if not isinstance(text, str):
        raise TypeError("an Ethereum address is a str")
    if _HEX40.fullmatch(text) is None:
        raise ValueError("an Ethereum address is '0x' followed by 40 hexadecimal digits")
    body = text[2:]
    lower = body.lower()
    result = _checksummed(lower)
    if body not in (lower, body.upper()) and result[2:] != body:
        raise ValueError(
            "the address is mixed-case but its EIP-55 checksum is wrong (a typo?); "
            "write it all lower-case to skip the check"
        )
    return result


def address_from_uncompressed(point: bytes) -> str:
    """The address of an already-validated 65-byte uncompressed SEC1 point (0x04 || X || Y)."""
    return _checksummed(keccak256(point[1:])[-20:].hex())


def eth_address(public_key: Buffer) -> str:
    """The EIP-55 address of a secp256k1 public key, 33-byte compressed or 65-byte uncompressed.

    ValueError if the bytes are not a point on the curve.
    """
    if len(public_key) not in (_COMPRESSED_BYTES, _UNCOMPRESSED_BYTES):
        raise ValueError(
            "a secp256k1 public key is 33 bytes (compressed) or 65 bytes (uncompressed SEC1)"
        )
    try:
        point = coincurve.PublicKey(bytes(public_key))
    except ValueError:
        raise ValueError("the bytes are not a valid secp256k1 public key") from None
    return address_from_uncompressed(point.format(compressed=False))
