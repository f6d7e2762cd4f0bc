"""``codomyrmex.wallet.security.backup.BackupManager``, backed by walletd's backups.

Codomyrmex wrote JSON files into ``backup_dir`` and compared key hashes read from its key
store. walletd writes the same hash-only records into its own backup directory, tagged so a
tampered record is reported (BackupIntegrityError) instead of trusted. The records keep
Codomyrmex's keys, with ISO 8601 timestamps.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ...calls import BackupList
from ...client import WalletClient
from ...errors import InvalidArgumentError, WalletNotFoundError
from .._connect import Connected, iso_utc, warn_storage_ignored

__all__ = ["BackupManager"]

# The form of the ids walletd gives. Codomyrmex answered "not found" for any unknown id; the
# daemon refuses a malformed one as invalid_argument, so such an id is answered here.
_BACKUP_ID = re.compile(r"[0-9a-f]{32}")


class BackupManager(Connected):
    """Create, list, verify and delete a wallet's backup records in walletd.

    ``backup_dir`` and a ``key_manager`` that is not a walletd client are accepted and
    ignored with one warning (the daemon keeps both); ``WalletManager.key_manager`` is its
    client, so passing it shares the connection.
    """

    def __init__(
        self,
        backup_dir: str | os.PathLike[str] | None = None,
        key_manager: object | None = None,
        *,
        socket_path: str | os.PathLike[str] | None = None,
        client: WalletClient | None = None,
    ) -> None:
        if client is None and isinstance(key_manager, WalletClient):
            client = key_manager
        elif key_manager is not None and not isinstance(key_manager, WalletClient):
            warn_storage_ignored("key_manager")
        if backup_dir is not None:
            warn_storage_ignored("backup_dir")
        super().__init__(socket_path, client)
        #: Always None: the records live in the daemon's backup directory.
        self.backup_dir = None

    def create_backup(
        self, user_id: str, wallet_id: str, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A hash-only record of the wallet's current key, with ``metadata`` (plain JSON).

        ``wallet_id`` must be the wallet's current address: the daemon backs up the key it
        holds, and a record naming another address would be false.
        """
        address = self._client.get_wallet_address(user_id)
        if address is None:
            raise WalletNotFoundError(user_id, message="No wallet for user")
        if address != wallet_id:
            raise InvalidArgumentError(
                f"{wallet_id} is not the current address of user {user_id!r} ({address})"
            )
        return _codomyrmex_record(self._client.create_backup(user_id, metadata))

    def list_backups(self, user_id: str) -> list[dict[str, Any]]:
        """The user's records, newest first; [] for a user without a wallet.

        Records that fail their integrity check are left out of the list, and the daemon's
        account of them is on the result's ``problems`` attribute.
        """
        try:
            backups = self._client.list_backups(user_id)
        except WalletNotFoundError:
            return []
        return BackupList((_codomyrmex_record(b) for b in backups), backups.problems)

    def verify_backup(self, user_id: str, backup_id: str) -> bool:
        """True while the record matches the current key; False once the key has rotated.

        WalletNotFoundError when there is no such record (or no wallet).
        """
        if not _BACKUP_ID.fullmatch(backup_id):
            raise WalletNotFoundError(user_id, message=f"No backup {backup_id} for user")
        return self._client.verify_backup(user_id, backup_id)

    def delete_backup(self, user_id: str, backup_id: str) -> bool:
        """Delete one record; False when there was no such record (or no wallet)."""
        if not _BACKUP_ID.fullmatch(backup_id):
            return False
        try:
            return self._client.delete_backup(user_id, backup_id)
        except WalletNotFoundError:
            return False


def _codomyrmex_record(record: dict[str, Any]) -> dict[str, Any]:
    record["timestamp"] = iso_utc(record["timestamp"])
    return record
