"""The in-memory domain: wallets, their keys and their effective rotation policy.

Plain Python, no I/O. :class:`WalletBook` is the single owner of wallet state; the service
layer changes it only after the store has committed the same change.
"""

from __future__ import annotations

from dataclasses import dataclass
from hmac import compare_digest

from walletd.model.key_material import (
    KeyType,
    PublicSigner,
    key_hash,
    message_signer,
    new_address,
    new_key,
)
from walletd.model.signer import Signer
from walletd_wire import RotationPolicy

__all__ = [
    "NO_LIMIT",
    "PolicyOverride",
    "Wallet",
    "WalletBook",
    "key_hash",
    "new_address",
    "new_key",
]

NO_LIMIT = 1 << 62


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
    """One user's wallet. ``key`` is a bytearray so it can be zeroed when it is replaced.

    ``signer`` is the one "sign this message" callable of the current key, whatever its type
    (see walletd.model.key_material), built at its first use; ``version`` counts the wallet's
    keys, 1 at creation.
    """

    __slots__ = (
        "_public",
        "_sign",
        "address",
        "created_at",
        "hard_limit",
        "key",
        "key_created_at",
        "key_type",
        "override",
        "owner_uid",
        "policy",
        "quiet_end",
        "reserved",
        "signature_count",
        "tenure",
        "user_id",
        "version",
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
        key_type: KeyType = KeyType.HMAC_SHA256,
        version: int = 1,
    ) -> None:
        self.user_id = user_id
        self.address = address
        self.owner_uid = owner_uid
        # Counts changes of hands (recoveries); see walletd.ops.ownership.Claim.
        self.tenure = 0
        self.key = key
        self.key_type = key_type
        self.version = version
        # The signer (HMAC pad states, the Ed25519 or secp256k1 key object) is built at the
        # first signature, not at load: startup with many wallets stays fast and small, and
        # idle wallets never hold them.
        self._sign: Signer | None = None
        self._public: PublicSigner | None = None
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
        """The signature of ``message``, counted. Callers check the policy (quiet_end) first."""
        self.signature_count += 1
        return self.signer(message)

    @property
    def signer(self) -> Signer:
        """``sign(message) -> signature`` with the current key (built now if it is not yet)."""
        sign = self._sign
        return sign if sign is not None else self._build_signer()

    def discard_key(self) -> None:
        """Zero the key and drop the signer (whose key copies are cleared as they are freed)."""
        zero(self.key)
        self._sign = _discarded
        self._public = None

    def _build_signer(self) -> Signer:
        sign, self._public = message_signer(self.key_type, self.key)
        self._sign = sign
        return sign

    def public_signer(self) -> PublicSigner:
        """The current key's public-key signer; ValueError for an hmac-sha256 wallet."""
        if self.key_type is KeyType.HMAC_SHA256:
            raise ValueError("hmac-sha256 wallets have no public key")
        if self._public is None:
            self._build_signer()
        assert self._public is not None
        return self._public

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is the current key's over ``message``."""
        if self.key_type is KeyType.HMAC_SHA256:
            return compare_digest(self.signer(message), signature)
        return self.public_signer().verify_message(message, signature)

    def mark_warned(self) -> None:
        self.warned = True
        self.requiet()

    def replace_key(self, key: bytearray, address: str, now: float) -> None:
        """A rotation: the next version's key (same type); the old key is zeroed."""
        old = self.key
        self.key = key
        self.version += 1
        self._sign = None
        self._public = None
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
