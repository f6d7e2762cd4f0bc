"""``codomyrmex.wallet``, served by walletd: switch with one import line.

::

    from codomyrmex.wallet import WalletManager        # before
    from wallet_client.codomyrmex import WalletManager  # after

The same public names and submodule paths (``core``, ``wallet``, ``exceptions``,
``security.key_rotation``, ``security.backup``, ``security.recovery``), each a thin mapping
onto the blocking :class:`~wallet_client.WalletClient`. Nothing connects at import time;
objects find the daemon when they are built (``socket_path=``, ``$WALLETD_SOCKET``, then the
system socket) and connect on their first call. What deliberately differs, and why, is listed
in docs/MIGRATING.md.

Codomyrmex's ZK-proof, contract and MCP-tool layers are not copied here: they are written
against a WalletManager and run unchanged when given this one.
"""

from __future__ import annotations

import os

from . import security
from ._connect import StorageIgnoredWarning
from .core import WalletManager
from .exceptions import (
    ContractError,
    GasEstimationError,
    InsufficientFundsError,
    RitualError,
    TransactionError,
    WalletError,
    WalletKeyError,
    WalletNotFoundError,
)
from .security.backup import BackupManager
from .security.key_rotation import KeyRotation, RotationPolicy, RotationRecord
from .security.recovery import NaturalRitualRecovery, RitualStep, hash_response
from .wallet import Wallet

__version__ = "0.1.0"  # the Codomyrmex wallet API version this mirrors

__all__ = [
    "BackupManager",
    "ContractError",
    "GasEstimationError",
    "InsufficientFundsError",
    "KeyRotation",
    "NaturalRitualRecovery",
    "RitualError",
    "RitualStep",
    "RotationPolicy",
    "RotationRecord",
    "StorageIgnoredWarning",
    "TransactionError",
    "Wallet",
    "WalletError",
    "WalletKeyError",
    "WalletManager",
    "WalletNotFoundError",
    "create_wallet",
    "get_wallet_manager",
    "hash_response",
    "security",
]


def create_wallet(user_id: str, storage_path: str | os.PathLike[str] | None = None) -> str:
    """Create a wallet for ``user_id`` in walletd and return its address."""
    with WalletManager(storage_path=storage_path) as manager:
        return manager.create_wallet(user_id)


def get_wallet_manager(storage_path: str | os.PathLike[str] | None = None) -> WalletManager:
    """A WalletManager for the daemon at ``$WALLETD_SOCKET`` (or the system socket)."""
    return WalletManager(storage_path=storage_path)
