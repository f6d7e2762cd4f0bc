"""Offline verification: check a walletd signature with only a public key or an address.

No daemon, no socket: this is how a third party checks what an agent signed. The schemes and
their error contract are in :mod:`walletd_wire.schemes`; this module is the client library's
name for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from walletd_wire.schemes import verify_offline

__all__ = ["verify"]


def verify(
    public_key_or_address: bytes | str,
    message: bytes | Mapping[str, Any],
    signature: bytes,
    *,
    key_type: str,
) -> bool:
    """True if ``signature`` is the key's signature of ``message``.

    - ``key_type="ed25519"``: ``public_key_or_address`` is the 32-byte public key or its base58
      address; ``message`` the signed bytes.
    - ``key_type="secp256k1"``: an ``0x`` address or a SEC1 public key; ``message`` the bytes
      signed with EIP-191 (``personal_sign``), or a map, which is an EIP-712 document::

          verify(address, typed_data, signature, key_type="secp256k1")

    False for a signature that does not verify (wrong length included). ValueError for a
    malformed key or address, an unknown key type, or ``hmac-sha256`` (only walletd can check
    those); ``walletd_wire.eip712.TypedDataError`` (a ValueError) for an invalid document.
    """
    return verify_offline(public_key_or_address, message, signature, key_type)
