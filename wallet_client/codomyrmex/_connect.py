"""What every shim object shares: finding the daemon, and the storage-path warning.

Codomyrmex's objects each kept their own state (a key directory, a backup directory, dicts in
memory). Under walletd the state is the daemon's, so each shim object holds a blocking
:class:`~wallet_client.WalletClient` instead. The socket is resolved when the object is built
(the argument, ``$WALLETD_SOCKET``, then the system socket); the client connects lazily, on
the first call, so neither importing nor constructing touches the daemon.
"""

from __future__ import annotations

import os
import warnings
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from ..client import WalletClient

__all__ = ["Connected", "StorageIgnoredWarning", "iso_utc", "warn_storage_ignored"]

_warned = False


def iso_utc(timestamp: float) -> str:
    """A daemon timestamp (Unix seconds) as Codomyrmex wrote its own: ISO 8601 in UTC.

    Always with microseconds, so that the strings sort as the times do.
    """
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")


class StorageIgnoredWarning(UserWarning):
    """A storage location was passed where walletd keeps the state itself."""


def warn_storage_ignored(what: str) -> None:
    """Warn, once per process, that ``what`` (a path or key store) is not used.

    Once, not per object: a Codomyrmex program typically builds many managers with the same
    path, and one line says everything there is to say.
    """
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f"{what} is ignored: walletd keeps wallets, keys and backups in its own state "
        "directory (see docs/MIGRATING.md)",
        StorageIgnoredWarning,
        stacklevel=3,
    )


class Connected:
    """Base of the shim objects: owns or borrows one WalletClient."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        client: WalletClient | None = None,
    ) -> None:
        self._owns_client = client is None
        self._client = client if client is not None else WalletClient(socket_path)

    @property
    def client(self) -> WalletClient:
        """The walletd client this object speaks through."""
        return self._client

    def close(self) -> None:
        """Close the connection, if this object opened it (a borrowed client stays open)."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(socket_path={self._client.socket_path!r})"
