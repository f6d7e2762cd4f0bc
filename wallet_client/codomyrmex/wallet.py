"""``codomyrmex.wallet.wallet.Wallet``: one user's wallet and ritual, backed by walletd.

As in Codomyrmex, the facade combines a WalletManager and a NaturalRitualRecovery; here they
share one connection. ``address`` and ``is_active`` are read from the daemon, not remembered,
so they are right even after another process rotated or recovered the wallet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..client import WalletClient
from ._connect import Connected, warn_storage_ignored
from .core import WalletManager
from .security.recovery import NaturalRitualRecovery, RitualStep

__all__ = ["Wallet"]


class Wallet(Connected):
    """Create, sign, verify, rotate, back up, recover and delete one user's wallet."""

    def __init__(
        self,
        user_id: str,
        storage_path: str | os.PathLike[str] | None = None,
        *,
        socket_path: str | os.PathLike[str] | None = None,
        client: WalletClient | None = None,
    ) -> None:
        if storage_path is not None:
            warn_storage_ignored("storage_path")
        super().__init__(socket_path, client)
        self.user_id = user_id
        self._manager = WalletManager(client=self._client)
        self._recovery = NaturalRitualRecovery(client=self._client)

    @property
    def address(self) -> str | None:
        """The wallet's current address, or None when the daemon has no wallet for the user."""
        return self._manager.get_wallet_address(self.user_id)

    @property
    def is_active(self) -> bool:
        return self._manager.has_wallet(self.user_id)

    def create(self) -> str:
        return self._manager.create_wallet(self.user_id)

    def sign(self, message: bytes) -> bytes:
        return self._manager.sign_message(self.user_id, message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return self._manager.verify_signature(self.user_id, message, signature)

    def rotate(self, reason: str = "manual") -> str:
        return self._manager.rotate_keys(self.user_id, reason=reason)

    def setup_recovery(self, steps: Sequence[RitualStep]) -> None:
        """Register the ritual (steps carry ``hash_response`` of each answer)."""
        self._recovery.register_ritual(self.user_id, steps)

    def recover(self, responses: Sequence[str]) -> bool:
        """Enact the ritual with the answers as typed. Success rotates the key."""
        return self._recovery.initiate_recovery(self.user_id, responses)

    def backup(self) -> dict[str, Any]:
        """Backup metadata (``backup_ts``, ``created_at`` as ISO 8601), never key material."""
        return self._manager.backup_wallet(self.user_id)

    def delete(self) -> bool:
        """Delete the wallet; the daemon deletes its ritual with it."""
        return self._manager.delete_wallet(self.user_id)

    def __repr__(self) -> str:
        return f"Wallet(user_id={self.user_id!r}, socket_path={self._client.socket_path!r})"
