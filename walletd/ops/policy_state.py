"""The signing policy as the running daemon holds it: every wallet's two compiled layers with
their versions and rate windows, the pauses of the kill switch, and the denials waiting to be
written to the audit chain.

Only data and decisions live here (no commit, no await); :mod:`walletd.ops.policy_gate`
applies them to the sign paths and :mod:`walletd.ops.policy` answers the policy ops.

The hot path's question is ``user_id in state.watched``: one set lookup. ``watched`` holds
the wallets that have at least one rule in either layer; it becomes :data:`EVERYTHING` (a
container that holds every id) while some pause exists or the daemon's default is ``deny``,
because then every wallet needs the slow path. A wallet with no rules on a default-allow
daemon with no pauses therefore signs exactly as it did before policies existed.

``ready`` holds, per (op, wallet, key type), the wallet's policy and compiled admission as
the gate last found them, so a watched wallet's request finds them with one dict lookup
instead of two and three identity checks (``Admissions.get``): 39 of the 174 bytecodes a
10-rule layer added to a request. It is emptied whenever ``watched`` is recomputed, which
every change of layers, pauses, the default or the set of wallets already must do
(``refresh_watched``): an entry never outlives what it was prepared from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from walletd.config import SigningConfig
from walletd.errors import StartupError
from walletd.model.policy_compiled import Admission, Admissions
from walletd.model.policy_eval import ADMIN, OWNER, Windows
from walletd.model.policy_rules import Action, Layer, PolicyError, compile_layer
from walletd.model.rate_window import RateWindow, RecordError

__all__ = [
    "EVERYTHING",
    "LAYERS",
    "DenialBucket",
    "PolicyState",
    "WalletPolicy",
    "pause_key",
]

LAYERS = (ADMIN, OWNER)
#: The width of one aggregation bucket of ``signing_denied`` audit records (seconds).
DENIAL_MINUTE = 60.0


class _Everything(Container[str]):
    """Contains every wallet id: while anything is paused or the default is deny."""

    def __contains__(self, item: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "EVERYTHING"


EVERYTHING = _Everything()


def pause_key(scope: str, uid: int | None, user_id: str | None) -> str:
    """The stored key of a pause: ``all``, ``uid:<n>`` or ``wallet:<user_id>``."""
    if scope == "uid":
        return f"uid:{uid}"
    if scope == "wallet":
        return f"wallet:{user_id}"
    return "all"


@dataclass(slots=True)
class LayerMeta:
    version: int = 0
    updated_at: float | None = None
    updated_by_uid: int | None = None


@dataclass(slots=True)
class WalletPolicy:
    """One wallet's two layers, their compare-and-set versions, its rate windows, and the
    sign path's admissions compiled from the layers (``walletd.model.policy_compiled``)."""

    admin: Layer
    owner: Layer
    meta: dict[str, LayerMeta]
    windows: Windows
    admissions: Admissions = field(default_factory=Admissions)

    def layer(self, name: str) -> Layer:
        return self.admin if name == ADMIN else self.owner

    def version_of(self, name: str) -> int:
        """The layer's compare-and-set version (0 while it was never set); leases name it."""
        meta = self.meta.get(name)
        return 0 if meta is None else meta.version

    def has_rules(self) -> bool:
        return bool(len(self.admin) or len(self.owner))


@dataclass(slots=True)
class DenialBucket:
    """Denials of one wallet by one rule within one minute, after the first (written at once)."""

    minute: int
    count: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    uids: set[int] = field(default_factory=set)
    address: str = ""
    action: str = "deny"


class PolicyState:
    """Every wallet's policy, the pauses and the pending denial aggregates, in memory."""

    def __init__(self, signing: SigningConfig, *, durable: bool) -> None:
        self.durable = durable
        self.default = Action(signing.default)
        self.timezone = signing.timezone
        self.policy_group = signing.policy_group
        self.empty = compile_layer([], timezone=self.timezone)
        self.wallets: dict[str, WalletPolicy] = {}
        # The policy the sign path reads for a wallet with none stored (watched only while
        # something is paused or the default is deny). Shared and never stored or changed:
        # its layers are empty, so nothing charges a window of it, and its compiled
        # admissions are kept across requests instead of compiled per request.
        self.unset = self._fresh()
        self.pauses: dict[str, tuple[float, int]] = {}  # pause key -> (since, actor uid)
        # (user_id, layer, rule_id) -> the aggregate of this minute's later denials.
        self.denials: dict[tuple[str, str, str], DenialBucket] = {}
        self.watched: Container[str] = set()
        # (op, user_id, key_type) -> (policy, admission), prepared by the gate; emptied by
        # refresh_watched (see the module docstring).
        self.ready: dict[tuple[str, str, str], tuple[WalletPolicy, Admission]] = {}
        # Called with (uid, user_id) of each new pause (both None: everything); human
        # approval ends the leases a pause covers (walletd.ops.approvals).
        self.pause_hooks: list[Callable[[int | None, str | None], None]] = []

    # ------------------------------------------------------------------ lookups

    def policy_of(self, user_id: str) -> WalletPolicy:
        """The wallet's policy; a fresh empty one (not stored) when it has none yet."""
        found = self.wallets.get(user_id)
        return self._fresh() if found is None else found

    def _fresh(self) -> WalletPolicy:
        return WalletPolicy(
            self.empty,
            self.empty,
            {ADMIN: LayerMeta(), OWNER: LayerMeta()},
            Windows(durable=self.durable),
        )

    def paused_for(self, user_id: str, owner_uid: int) -> bool:
        pauses = self.pauses
        if not pauses:
            return False
        return "all" in pauses or f"uid:{owner_uid}" in pauses or f"wallet:{user_id}" in pauses

    def refresh_watched(self) -> None:
        """Recompute ``watched`` after any change of layers, pauses or the default, and
        forget every prepared admission (``ready``)."""
        self.ready = {}
        if self.pauses or self.default is Action.DENY:
            self.watched = EVERYTHING
        else:
            self.watched = {u for u, p in self.wallets.items() if p.has_rules()}

    # ------------------------------------------------------------------ changes (after commit)

    def install(
        self, user_id: str, layer: str, compiled: Layer, meta: LayerMeta, policy: WalletPolicy
    ) -> list[str]:
        """Put a committed layer in place; returns the rule ids whose windows were dropped."""
        if layer == ADMIN:
            policy.admin = compiled
        else:
            policy.owner = compiled
        policy.meta[layer] = meta
        dropped = policy.windows.rebind(layer, compiled)
        self.wallets[user_id] = policy
        self.refresh_watched()
        return dropped

    def forget(self, user_id: str) -> None:
        """A deleted wallet: its policy, windows and pending denial counts go with it."""
        self.wallets.pop(user_id, None)
        for key in [k for k in self.denials if k[0] == user_id]:
            del self.denials[key]
        self.refresh_watched()

    def reconfigure(self, signing: SigningConfig) -> None:
        """Apply a reloaded ``[signing]`` table; raises PolicyError (changing nothing) when a
        stored layer does not compile in the new timezone."""
        recompiled: dict[tuple[str, str], Layer] = {}
        if signing.timezone != self.timezone:
            for user_id, policy in self.wallets.items():
                for name in LAYERS:
                    document = policy.layer(name).to_document()
                    recompiled[user_id, name] = compile_layer(document, timezone=signing.timezone)
            self.empty = compile_layer([], timezone=signing.timezone)
            self.unset = self._fresh()
        for (user_id, name), layer in recompiled.items():
            policy = self.wallets[user_id]
            if name == ADMIN:
                policy.admin = layer
            else:
                policy.owner = layer
        self.default = Action(signing.default)
        self.timezone = signing.timezone
        self.policy_group = signing.policy_group
        self.refresh_watched()

    # ------------------------------------------------------------------ loading

    def load(
        self,
        policies: Iterable[tuple[Any, ...]],
        windows: Iterable[tuple[Any, ...]],
        pauses: Iterable[tuple[Any, ...]],
        wallet_ids: Container[str],
    ) -> None:
        """Fill the state from the store's rows (at startup); StartupError if one is unusable."""
        for user_id, layer, version, document, updated_at, actor_uid in policies:
            if user_id not in wallet_ids or layer not in LAYERS:
                continue  # left behind by a wallet deleted before this schema: harmless
            try:
                compiled = compile_layer(json.loads(document), timezone=self.timezone)
            except (PolicyError, ValueError) as exc:
                raise StartupError(
                    f"the stored {layer} signing policy of user {user_id!r} does not compile "
                    f"({exc}); walletd changed nothing. Check [signing] timezone"
                ) from None
            policy = self.policy_of(user_id)
            if layer == ADMIN:
                policy.admin = compiled
            else:
                policy.owner = compiled
            policy.meta[layer] = LayerMeta(version, updated_at, actor_uid)
            self.wallets[user_id] = policy
        for user_id, layer, rule_id, record in windows:
            found = self.wallets.get(user_id)
            if found is None or layer not in LAYERS:
                continue
            limit = found.layer(layer).limits().get(rule_id)
            if limit is None:
                continue  # the rule lost its limit; its record is deleted at the next set
            try:
                window = RateWindow.from_record(
                    bytes(record), count=limit.count, window_s=limit.window_s, durable=self.durable
                )
            except RecordError as exc:
                # Never guess a count down: refuse to start rather than reset a limit.
                raise StartupError(
                    f"the rate window of rule {rule_id!r} ({layer} layer) of user {user_id!r} "
                    f"cannot be read ({exc}); walletd changed nothing"
                ) from None
            found.windows.table(layer)[rule_id] = window
        for scope, since, actor_uid in pauses:
            self.pauses[str(scope)] = (float(since), int(actor_uid))
        self.refresh_watched()

    def exact_records(self) -> list[tuple[str, str, str, bytes]]:
        """``(user_id, layer, rule_id, record)`` of every window, exact: for a clean stop."""
        out = []
        for user_id, policy in self.wallets.items():
            for name in LAYERS:
                for rule_id, window in policy.windows.table(name).items():
                    out.append((user_id, name, rule_id, window.exact_record()))
        return out
