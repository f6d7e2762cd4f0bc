"""``codomyrmex.wallet.core.WalletManager``, backed by walletd.

Codomyrmex's manager kept wallets in a dict and keys in a directory, one registry per
instance. Here every call is a request to the daemon: all managers of one uid see the same
wallets, and they outlive the process. Return values keep Codomyrmex's shapes.
"""

from __future__ import annotations

import os
from typing import Any

from ..client import WalletClient
from ..errors import WalletExistsError
from ._connect import Connected, iso_utc, warn_storage_ignored

__all__ = ["WalletManager"]


class WalletManager(Connected):
    """Wallet creation, signing, rotation, backup metadata and deletion, in walletd.

    ``storage_path`` is accepted for compatibility and ignored with one warning: the daemon
    keeps the keys. ``socket_path`` (else ``$WALLETD_SOCKET``, else the system socket) or an
    existing ``client`` says which daemon.
    """

    def __init__(
        self,
        storage_path: str | os.PathLike[str] | None = None,
        *,
        socket_path: str | os.PathLike[str] | None = None,
        client: WalletClient | None = None,
    ) -> None:
        if storage_path is not None:
            warn_storage_ignored("storage_path")
        super().__init__(socket_path, client)

    @property
    def key_manager(self) -> WalletClient:
        """Where the keys are: the daemon, through this manager's client.

        Codomyrmex code hands ``mgr.key_manager`` to ``BackupManager``; doing so here shares
        the connection.
        """
        return self._client

    def create_wallet(self, user_id: str) -> str:
        """Create a wallet (a fresh key in the daemon) and return its address.

        Raises WalletError (WalletExistsError) if the user already has a wallet in the daemon,
        whichever manager created it: walletd never overwrites a key.
        """
        try:
            return self._client.create_wallet(user_id)
        except WalletExistsError as exc:
            # Codomyrmex's wording, which callers match on; the wire code is kept.
            raise WalletExistsError(f"User {user_id} already has a wallet") from exc

    def get_wallet_address(self, user_id: str) -> str | None:
        return self._client.get_wallet_address(user_id)

    def has_wallet(self, user_id: str) -> bool:
        return self._client.has_wallet(user_id)

    def sign_message(self, user_id: str, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under the user's key, made by the daemon (32 bytes)."""
        return self._client.sign_message(user_id, message)

    def verify_signature(self, user_id: str, message: bytes, signature: bytes) -> bool:
        return self._client.verify_signature(user_id, message, signature)

    def rotate_keys(self, user_id: str, reason: str = "manual") -> str:
        """A new key and address; the daemon records the rotation in its history."""
        return self._client.rotate_keys(user_id, reason)

    def backup_wallet(self, user_id: str) -> dict[str, Any]:
        """Backup metadata (never key material), with Codomyrmex's ISO 8601 timestamps."""
        info = self._client.backup_wallet(user_id)
        info["created_at"] = iso_utc(info["created_at"])
        info["backup_ts"] = iso_utc(info["backup_ts"])
        return info

    def delete_wallet(self, user_id: str) -> bool:
        """Delete the wallet, its key and its ritual; WalletNotFoundError if there is none."""
        return self._client.delete_wallet(user_id)

    def list_wallets(self) -> dict[str, str]:
        """user id -> address for the wallets this uid may see (all of them for an admin)."""
        return self._client.list_wallets()

    def register_wallet(self, user_id: str, wallet_address: str) -> bool:
        """Whether the daemon holds ``user_id``'s wallet at ``wallet_address``.

        In Codomyrmex this taught a fresh manager about a key already on disk. A walletd
        manager already sees every wallet, so there is nothing to register: the answer is
        the check alone, read from the daemon.
        """
        return self._client.get_wallet_address(user_id) == wallet_address
