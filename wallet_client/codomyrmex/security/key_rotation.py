"""``codomyrmex.wallet.security.key_rotation``, read from walletd.

Codomyrmex's KeyRotation was a ledger its caller kept up to date: ``record_signature`` after
each signature, ``record_rotation`` after each rotation. walletd keeps that ledger itself: it
counts every signature it makes and records every rotation in a durable history. So here the
reads (``needs_rotation``, ``get_rotation_history``) come from the daemon, ``record_rotation``
returns the daemon's record of a rotation that happened, and ``record_signature`` adds
nothing (the daemon already counted). ``rotate_keys`` rotates through the daemon with the
pre- and post-rotate hooks run around it, here in the client.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import walletd_wire as wire
from walletd_wire import RotationPolicy

from ...client import WalletClient
from ...errors import WalletNotFoundError
from .._connect import Connected, iso_utc

__all__ = ["KeyRotation", "RotationPolicy", "RotationRecord"]

logger = logging.getLogger(__name__)

PreRotateHook = Callable[[str, str], object]
PostRotateHook = Callable[["RotationRecord"], object]


@dataclass
class RotationRecord:
    """One rotation, as Codomyrmex shaped it: ISO 8601 ``timestamp``, ``reason``.

    ``actor_uid`` is walletd's addition: the uid that rotated (None for a record built here).
    """

    user_id: str
    old_wallet_id: str
    new_wallet_id: str
    timestamp: str
    reason: str = "scheduled"
    actor_uid: int | None = None

    @classmethod
    def from_wire(cls, record: wire.RotationRecord) -> RotationRecord:
        return cls(
            record.user_id,
            record.old_wallet_id,
            record.new_wallet_id,
            iso_utc(record.timestamp),
            record.reason,
            record.actor_uid,
        )


class KeyRotation(Connected):
    """Rotation policy, status and history of wallets held by walletd.

    A ``policy`` given here is applied to each wallet passed to :meth:`register_wallet` (the
    daemon then enforces it, auto-rotation included); without one, wallets keep the daemon's
    policy and ``self.policy`` shows Codomyrmex's defaults.
    """

    def __init__(
        self,
        policy: RotationPolicy | None = None,
        *,
        socket_path: str | os.PathLike[str] | None = None,
        client: WalletClient | None = None,
    ) -> None:
        super().__init__(socket_path, client)
        self._apply_policy = policy is not None
        self.policy = policy if policy is not None else RotationPolicy()
        self._pre_rotate_hooks: list[PreRotateHook] = []
        self._post_rotate_hooks: list[PostRotateHook] = []

    def register_wallet(self, user_id: str, wallet_id: str) -> None:
        """Track a wallet the daemon holds at ``wallet_id``; apply this tracker's policy.

        WalletNotFoundError when the daemon has no such wallet at that address: there is no
        counting a wallet that does not exist.
        """
        address = self._client.get_wallet_address(user_id)
        if address != wallet_id:
            raise WalletNotFoundError(user_id, message=f"No wallet {wallet_id} in walletd for user")
        if self._apply_policy:
            self._client.set_policy(
                user_id,
                max_age_days=self.policy.max_age_days,
                max_signatures=self.policy.max_signatures,
                auto_rotate=self.policy.auto_rotate,
            )

    def record_signature(self, user_id: str) -> None:
        """Nothing to record: walletd counted the signature when it made it.

        Checks that the wallet exists (WalletNotFoundError otherwise) and warns once that the
        call adds nothing, so a count that a test drives by hand is not silently believed.
        """
        if not self._client.has_wallet(user_id):
            raise WalletNotFoundError(user_id)
        _warn_counted_by_daemon()

    def signature_count(self, user_id: str) -> int:
        """Signatures made with the current key, as the daemon counted them."""
        return self._client.rotation_status(user_id).signature_count

    def needs_rotation(self, user_id: str) -> bool:
        """The daemon's answer under the wallet's policy; False for a user without a wallet."""
        try:
            return self._client.needs_rotation(user_id)
        except WalletNotFoundError:
            return False

    def rotate_keys(self, user_id: str, reason: str = "manual") -> RotationRecord:
        """Rotate in the daemon, with the hooks around it.

        Pre-rotate hooks get ``(user_id, old_address)`` and may stop the rotation by raising;
        post-rotate hooks get the record, and their errors are logged, as in Codomyrmex.
        """
        old = self._client.get_wallet_address(user_id)
        if old is None:
            raise WalletNotFoundError(user_id)
        for pre in self._pre_rotate_hooks:
            pre(user_id, old)
        new = self._client.rotate_keys(user_id, reason)
        return self._recorded(user_id, old, new)

    def record_rotation(
        self, user_id: str, old_wallet_id: str, new_wallet_id: str, reason: str = "scheduled"
    ) -> RotationRecord:
        """The daemon's record of the rotation ``old -> new``; post-rotate hooks run on it.

        walletd records rotations itself, so this looks the rotation up rather than writing
        one: WalletNotFoundError when the daemon has no such rotation. The daemon's reason
        is the one returned (``reason`` is accepted for compatibility).
        """
        del reason
        return self._recorded(user_id, old_wallet_id, new_wallet_id)

    def get_rotation_history(self, user_id: str) -> list[RotationRecord]:
        """Every rotation the daemon recorded for the user, oldest first."""
        return [RotationRecord.from_wire(r) for r in self._client.rotation_history(user_id)]

    def add_pre_rotate_hook(self, hook: PreRotateHook) -> None:
        self._pre_rotate_hooks.append(hook)

    def add_post_rotate_hook(self, hook: PostRotateHook) -> None:
        self._post_rotate_hooks.append(hook)

    def _recorded(self, user_id: str, old: str, new: str) -> RotationRecord:
        for received in reversed(self._client.rotation_history(user_id)):
            if received.old_wallet_id == old and received.new_wallet_id == new:
                record = RotationRecord.from_wire(received)
                break
        else:
            raise WalletNotFoundError(
                user_id, message=f"walletd recorded no rotation {old} -> {new} for user"
            )
        for post in self._post_rotate_hooks:
            try:
                post(record)
            except Exception as exc:  # a hook must not undo a rotation that happened
                logger.warning("post-rotate hook failed: %s", type(exc).__name__)
        return record


_warned_counting = False


def _warn_counted_by_daemon() -> None:
    global _warned_counting
    if not _warned_counting:
        _warned_counting = True
        warnings.warn(
            "KeyRotation.record_signature adds nothing: walletd counts each signature it "
            "makes (see docs/MIGRATING.md)",
            UserWarning,
            stacklevel=3,
        )
