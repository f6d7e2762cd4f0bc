"""``codomyrmex.wallet.security.recovery``: the Natural Ritual, held by walletd.

The daemon stores each answer's hash only as salted scrypt, counts every attempt durably
before checking it, and rotates the key when a recovery succeeds. What stays on this side is
Codomyrmex's vocabulary: answers go in as typed (the client hashes them), "no ritual" reads as
``False`` where Codomyrmex returned ``False``, and its error messages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from walletd_wire import ErrorCode, RitualStep

from ...calls import hash_response
from ...client import WalletClient
from ...errors import (
    InvalidArgumentError,
    ProtocolError,
    RitualError,
    RitualLockedError,
    WalletNotFoundError,
)
from .._connect import Connected

__all__ = ["MaxAttemptsError", "NaturalRitualRecovery", "RitualStep", "hash_response"]


class MaxAttemptsError(InvalidArgumentError, ValueError):
    """``max_attempts`` was set to a value other than the daemon's.

    The lockout threshold is the daemon's configuration (``max_attempts`` in walletd.toml),
    the same for every ritual, so a client cannot loosen it for itself. Also a ValueError,
    which is what Codomyrmex's setter raised for a value it would not take.
    """


def _no_ritual(exc: RitualError) -> bool:
    return exc.code == ErrorCode.NO_RITUAL


class NaturalRitualRecovery(Connected):
    """Register, read and enact recovery rituals in walletd.

    A ritual belongs to a wallet: ``register_ritual`` for a user without a wallet is
    WalletNotFoundError (Codomyrmex kept rituals for any name).
    """

    def __init__(
        self,
        *,
        socket_path: str | os.PathLike[str] | None = None,
        client: WalletClient | None = None,
    ) -> None:
        super().__init__(socket_path, client)

    @property
    def max_attempts(self) -> int:
        """The daemon's lockout threshold, read from it on every access (it may be reloaded)."""
        value = self._client.status().max_attempts
        if value < 1:  # the field's default: a daemon from before it was added
            raise ProtocolError("this walletd is too old to report max_attempts in status")
        return value

    @max_attempts.setter
    def max_attempts(self, value: int) -> None:
        if value < 1:
            raise ValueError("max_attempts must be at least 1")
        current = self.max_attempts
        if value != current:
            raise MaxAttemptsError(
                f"max_attempts is walletd's configuration ({current}); set max_attempts in the "
                "daemon's config file, a client cannot change it"
            )

    def register_ritual(self, user_id: str, steps: Sequence[RitualStep]) -> None:
        """Replace the user's ritual; a new ritual starts with every attempt available.

        ``steps`` carry ``hash_response`` of each answer (Codomyrmex's RitualStep objects
        work as well: only ``prompt`` and ``expected_response_hash`` are read).
        """
        if not steps:
            raise RitualError("Ritual must have at least one step", code=ErrorCode.INVALID_ARGUMENT)
        self._client.register_ritual(user_id, steps)

    def has_ritual(self, user_id: str) -> bool:
        return self._client.has_ritual(user_id)

    def get_prompts(self, user_id: str) -> list[str]:
        try:
            return self._client.get_prompts(user_id)
        except RitualError as exc:
            if not _no_ritual(exc):
                raise
            raise RitualError(f"No ritual defined for user {user_id}", code=exc.code) from None

    def get_remaining_attempts(self, user_id: str) -> int:
        """Attempts left before the lockout; all of them when the user has no ritual."""
        try:
            return self._client.get_remaining_attempts(user_id)
        except RitualError as exc:
            if not _no_ritual(exc):
                raise
            return self.max_attempts  # nothing has been attempted, as Codomyrmex counted

    def is_locked(self, user_id: str) -> bool:
        try:
            return self._client.is_locked(user_id)
        except RitualError as exc:
            if not _no_ritual(exc):
                raise
            return False

    def reset_attempts(self, user_id: str) -> None:
        """Clear the lockout. walletd allows this to admins only (PermissionDeniedError)."""
        try:
            self._client.reset_attempts(user_id)
        except RitualError as exc:
            if not _no_ritual(exc):
                raise  # no ritual: no attempts to reset, as in Codomyrmex

    def initiate_recovery(self, user_id: str, responses: Sequence[str]) -> bool:
        """Enact the ritual with the answers as typed; True when every answer matched.

        On success walletd rotates the wallet's key (new address) and gives the wallet to the
        caller's uid. RitualError (RitualLockedError) when attempts are exhausted;
        InvalidArgumentError for an answer that is not a string, before anything is sent.
        """
        try:
            return self._client.initiate_recovery(user_id, responses)
        except RitualLockedError:
            raise RitualLockedError(
                f"User {user_id} is locked out: too many recovery attempts"
            ) from None
        except RitualError as exc:
            if not _no_ritual(exc):
                raise
            return False  # no ritual to answer: Codomyrmex's False, nothing counted

    def unregister_ritual(self, user_id: str) -> bool:
        """Remove the ritual; False when there was none (or no wallet)."""
        try:
            return self._client.unregister_ritual(user_id)
        except WalletNotFoundError:
            return False
