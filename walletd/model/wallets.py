"""The in-memory domain: wallets, their keys and their effective rotation policy.

Plain Python, no I/O. :class:`WalletBook` is the single owner of wallet state; the service
layer changes it only after the store has committed the same change.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from hmac import compare_digest

from walletd.model.signer import Signer, hmac_sha256_signer
from walletd_wire import RotationPolicy

__all__ = ["NO_LIMIT", "PolicyOverride", "Wallet", "WalletBook", "new_address", "new_key"]

KEY_BYTES = 32
NO_LIMIT = 1 << 62


def new_key() -> bytearray:
    return bytearray(secrets.token_bytes(KEY_BYTES))


def new_address() -> str:
    """``0x`` + the 32 lowercase hex digits of a uuid4, as in the library walletd replaces."""
    return "0x" + uuid.uuid4().hex


def key_hash(key: bytes | bytearray) -> str:
    return hashlib.sha256(key).hexdigest()


@dataclass(frozen=True, slots=True)
class PolicyOverride:
    """A wallet's own policy values; None means "the daemon default"."""

    max_age_days: int | None = None
    max_signatures: int | None = None
    auto_rotate: bool | None = None

    def apply(self, default: RotationPolicy) -> RotationPolicy:
        return RotationPolicy(
            max_age_days=default.max_age_days if self.max_age_days is None else self.max_age_days,
            max_signatures=(
                default.max_signatures if self.max_signatures is None else self.max_signatures
            ),
            auto_rotate=default.auto_rotate if self.auto_rotate is None else self.auto_rotate,
        )


class Wallet:
    """One user's wallet. ``key`` is a bytearray so it can be zeroed when it is replaced."""

    __slots__ = (
        "address",
        "created_at",
        "hard_limit",
        "hmac",
        "key",
        "key_created_at",
        "override",
        "owner_uid",
        "policy",
        "quiet_end",
        "reserved",
        "signature_count",
        "user_id",
        "warned",
    )

    def __init__(
        self,
        user_id: str,
        address: str,
        owner_uid: int,
        key: bytearray,
        created_at: float,
        key_created_at: float,
        signature_count: int = 0,
        override: PolicyOverride | None = None,
        reserved: int = 0,
    ) -> None:
        self.user_id = user_id
        self.address = address
        self.owner_uid = owner_uid
        self.key = key
        # The HMAC pad states are built at the first signature, not at load: startup with many
        # wallets stays fast and small, and idle wallets never hold them.
        self.hmac: Signer = self._first_signature
        self.created_at = created_at
        self.key_created_at = key_created_at
        # A reservation still on disk at load means walletd did not stop cleanly (a clean stop
        # writes exact counts and clears them): the reserved counts are taken as used.
        self.signature_count = max(signature_count, reserved)
        self.override = override or PolicyOverride()
        self.warned = False  # the "policy breached, auto-rotate off" warning was logged
        # Signatures this key may make before a count has to be reserved durably (auto-rotate
        # only; see walletd.rotation). A count loaded from disk is never below it.
        self.reserved = self.signature_count
        # Set by apply_policy; placeholders until then.
        self.policy = RotationPolicy(1, 1, False)
        self.hard_limit = NO_LIMIT
        self.quiet_end = 0

    def apply_policy(self, default: RotationPolicy) -> None:
        """Recompute the effective policy; called on load, on change and on reload."""
        self.policy = self.override.apply(default)
        # With auto-rotate on, no key may sign more than max_signatures messages.
        self.hard_limit = self.policy.max_signatures if self.policy.auto_rotate else NO_LIMIT
        self.requiet()

    def requiet(self) -> None:
        """Recompute ``quiet_end``: while signature_count < quiet_end, a signature needs no
        policy work at all (no rotation, reservation or warning is due at the next count), so
        the sign path decides with one integer comparison."""
        policy = self.policy
        if policy.auto_rotate:
            self.quiet_end = min(self.reserved, policy.max_signatures - 1)
        elif not self.warned:
            self.quiet_end = policy.max_signatures - 1
        else:
            self.quiet_end = NO_LIMIT

    def sign(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message``, counted. Callers check the policy (quiet_end) first."""
        self.signature_count += 1
        return self.hmac(message)

    def discard_key(self) -> None:
        """Zero the key and drop the hash states (OpenSSL clears them as they are freed).

        This also breaks the wallet -> bound method -> wallet cycle of ``_first_signature``,
        so a deleted wallet is freed at once (objects from before gc.freeze() are never
        collected by the cycle collector)."""
        zero(self.key)
        self.hmac = _discarded

    def _first_signature(self, message: bytes) -> bytes:
        sign = self.hmac = hmac_sha256_signer(self.key)
        return sign(message)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return compare_digest(self.hmac(message), signature)

    def mark_warned(self) -> None:
        self.warned = True
        self.requiet()

    def replace_key(self, key: bytearray, address: str, now: float) -> None:
        old = self.key
        self.key = key
        self.hmac = self._first_signature
        self.address = address
        self.key_created_at = now
        self.signature_count = 0
        self.reserved = 0
        self.warned = False
        self.requiet()
        zero(old)

    def key_age_days(self, now: float) -> float:
        return max(0.0, now - self.key_created_at) / 86400.0

    def breaches(self, now: float) -> list[str]:
        """Which policy limits this key has reached: "max_age", "max_signatures"."""
        reasons = []
        if self.key_age_days(now) >= self.policy.max_age_days:
            reasons.append("max_age")
        if self.signature_count >= self.policy.max_signatures:
            reasons.append("max_signatures")
        return reasons


def _discarded(message: bytes) -> bytes:
    raise RuntimeError("this wallet's key was discarded")


def zero(buffer: bytearray) -> None:
    buffer[:] = bytes(len(buffer))


class WalletBook:
    """user_id -> Wallet, plus the signature counters not yet written to the store."""

    def __init__(self, default_policy: RotationPolicy) -> None:
        self.wallets: dict[str, Wallet] = {}
        self.default_policy = default_policy
        self.unflushed: set[Wallet] = set()

    def __len__(self) -> int:
        return len(self.wallets)

    def get(self, user_id: str) -> Wallet | None:
        return self.wallets.get(user_id)

    def add(self, wallet: Wallet) -> None:
        wallet.apply_policy(self.default_policy)
        self.wallets[wallet.user_id] = wallet

    def remove(self, user_id: str) -> Wallet | None:
        wallet = self.wallets.pop(user_id, None)
        if wallet is not None:
            self.unflushed.discard(wallet)
            wallet.discard_key()
        return wallet

    def set_default_policy(self, policy: RotationPolicy) -> None:
        self.default_policy = policy
        for wallet in self.wallets.values():
            wallet.apply_policy(policy)

    def owned_by(self, uid: int) -> list[Wallet]:
        return [w for w in self.wallets.values() if w.owner_uid == uid]
