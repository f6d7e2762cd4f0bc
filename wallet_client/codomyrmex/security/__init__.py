"""``codomyrmex.wallet.security``: backup, key rotation and recovery, backed by walletd.

Codomyrmex's ``encrypted_storage`` has no counterpart: walletd seals its keys itself.
"""

from __future__ import annotations

from .backup import BackupManager
from .key_rotation import KeyRotation, RotationPolicy, RotationRecord
from .recovery import MaxAttemptsError, NaturalRitualRecovery, RitualStep, hash_response

__all__ = [
    "BackupManager",
    "KeyRotation",
    "MaxAttemptsError",
    "NaturalRitualRecovery",
    "RitualStep",
    "RotationPolicy",
    "RotationRecord",
    "hash_response",
]
