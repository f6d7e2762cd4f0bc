"""``Wallet``: a facade bound to one user id, as the library walletd replaces offered."""

from __future__ import annotations

import os
from typing import Any

from .client import WalletClient


class Wallet:
    """One user's wallet. Shares ``client`` when given, else opens its own connection."""

    def __init__(
        self,
        user_id: str,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        client: WalletClient | None = None,
    ) -> None:
        self.user_id = user_id
        self._client = client if client is not None else WalletClient(socket_path)

    @property
    def client(self) -> WalletClient:
        return self._client

    def create(self, key_type: str = "hmac-sha256") -> str:
        """Create the wallet (``key_type``: hmac-sha256, ed25519 or secp256k1); its address."""
        return self._client.create_wallet(self.user_id, key_type)

    @property
    def address(self) -> str | None:
        return self._client.get_wallet_address(self.user_id)

    @property
    def is_active(self) -> bool:
        return self._client.has_wallet(self.user_id)

    def sign(self, message: bytes) -> bytes:
        return self._client.sign_message(self.user_id, message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self._client.verify_signature(self.user_id, message, signature)

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:
        """EIP-712 signature of ``typed_data`` (secp256k1 wallets)."""
        return self._client.sign_typed_data(self.user_id, typed_data)

    @property
    def public_key(self) -> bytes:
        """The current public key (public-key wallets; invalid_argument for hmac-sha256)."""
        return self._client.get_public_key(self.user_id).public_key

    def delete(self) -> bool:
        return self._client.delete_wallet(self.user_id)

    def rotate(self, reason: str = "manual") -> str:
        return self._client.rotate_keys(self.user_id, reason)

    def backup(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._client.create_backup(self.user_id, metadata)

    def __repr__(self) -> str:
        return f"Wallet(user_id={self.user_id!r}, socket_path={self._client.socket_path!r})"
