"""Client for walletd, the local signing daemon.

``WalletClient`` (blocking) and ``AsyncWalletClient`` (trio) speak the protocol in
:mod:`walletd_wire`; their method names mirror the in-process wallet library that
walletd replaces. ``Wallet`` is a facade bound to one user id.
"""

from __future__ import annotations

from walletd_wire import RitualStep, RotationPolicy, RotationRecord, SignedItem

from .aio import AsyncWalletClient
from .approval_calls import PendingApproval
from .calls import BackupList, hash_response
from .client import WalletClient
from .errors import (
    ApprovalDeniedError,
    ApprovalTimeoutError,
    BackupIntegrityError,
    DaemonUnavailableError,
    InvalidArgumentError,
    PermissionDeniedError,
    PolicyDeniedError,
    ProtocolError,
    QuotaExceededError,
    RitualError,
    RitualLockedError,
    SigningPausedError,
    StorageError,
    WalletError,
    WalletExistsError,
    WalletKeyError,
    WalletNotFoundError,
)
from .verify import verify
from .wallet import Wallet

__version__ = "0.1.0"

__all__ = [
    "ApprovalDeniedError",
    "ApprovalTimeoutError",
    "AsyncWalletClient",
    "BackupIntegrityError",
    "BackupList",
    "DaemonUnavailableError",
    "InvalidArgumentError",
    "PendingApproval",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "ProtocolError",
    "QuotaExceededError",
    "RitualError",
    "RitualLockedError",
    "RitualStep",
    "RotationPolicy",
    "RotationRecord",
    "SignedItem",
    "SigningPausedError",
    "StorageError",
    "Wallet",
    "WalletClient",
    "WalletError",
    "WalletExistsError",
    "WalletKeyError",
    "WalletNotFoundError",
    "hash_response",
    "verify",
]
