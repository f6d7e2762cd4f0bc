"""Evaluating a signing request against the admin and owner layers, and charging limits.

Semantics:

- In each layer the first rule that matches decides: its ``when`` is active at ``now``, all its
  ``match`` conditions hold, and, if it has a ``limit``, that limit has a use left in the
  current window. A rule whose limit is used up does not match, so the next rule decides
  ("allow 100 an hour, then deny" is two rules). A layer where nothing matches, or that is
  empty, yields ``default`` (the daemon's ``[signing] default``).
- The layers combine as deny > review > allow: the more restrictive wins, so an owner can
  only tighten what an admin set. The combined decision names the layer that gave it (on a
  tie the one where a rule decided, the admin layer if both) and its rule and reason.
- ``evaluate`` consumes nothing (``explain_signing`` is exactly an ``evaluate``). The sign
  path runs the same decision compiled into one function per wallet, op and key type
  (``policy_compiled``): the two layer verdicts, and the charge when both allow, in one pass
  and without the explanation (the limits looked at, the combined Decision), which only a
  refusal needs. This module is the reference the compiled form is tested against.

What a signature charges (``charge``): one use of the limit of the deciding rule in EACH
layer, when that rule has a limit; nothing else. Rules examined before it (including limited
rules that were skipped because they were used up) and rules after it are not charged. The
daemon calls ``charge`` only when a signature is actually made: for ``allow`` after signing
is certain, for ``review`` when an approval lets it be signed; a refused request charges
nothing. A batch is decided item by item: evaluate item i, charge it if it is signed, then
evaluate item i+1, so the items of one batch see each other's uses.

Durability protocol for the daemon (see ``rate_window``): after ``evaluate``,
``reservations(decision, windows, now)`` lists the windows that need a reservation before
this charge; commit each ``reserve`` record, then evaluate AGAIN (the await may have let
other requests use the window) and ``charge`` with no await between the two. ``charge``
raises ``ReservationNeeded`` rather than go past what is durable.
"""

from __future__ import annotations

from .policy_request import SigningRequest
from .policy_rules import DEFAULT_VERDICTS, Action, Layer, Limit, Rule, Verdict
from .rate_window import RateWindow

ADMIN = "admin"
OWNER = "owner"


class Windows:
    """The rate windows of one wallet: one per limited rule per layer, by rule id.

    A window is created at the first charge of its rule (until then the rule has its whole
    count). ``rebind`` keeps or drops windows when a layer is replaced.
    """

    __slots__ = ("admin", "durable", "owner")

    def __init__(self, *, durable: bool = True) -> None:
        self.durable = durable
        self.admin: dict[str, RateWindow] = {}
        self.owner: dict[str, RateWindow] = {}

    def table(self, layer: str) -> dict[str, RateWindow]:
        return self.admin if layer == ADMIN else self.owner

    def window(self, layer: str, rule_id: str, limit: Limit) -> RateWindow:
        """The window of ``rule_id`` in ``layer``, created empty if it has none yet."""
        table = self.table(layer)
        w = table.get(rule_id)
        if w is None:
            w = table[rule_id] = RateWindow(limit.count, limit.window_s, durable=self.durable)
        return w

    def rebind(self, layer: str, new: Layer) -> list[str]:
        """Fit the windows of ``layer`` to its new rules; return the rule ids dropped.

        A rule id that stays keeps its uses (re-fitted if its limit changed, so a lowered
        limit counts what was already used); windows of rules gone or no longer limited are
        dropped (the daemon deletes their records).
        """
        table = self.table(layer)
        limits = new.limits()
        dropped = [rule_id for rule_id in table if rule_id not in limits]
        for rule_id in dropped:
            del table[rule_id]
        for rule_id, w in table.items():
            limit = limits[rule_id]
            if (w.count, w.window_s) != (limit.count, float(limit.window_s)):
                table[rule_id] = w.retarget(limit.count, limit.window_s)
        return dropped


class LimitState:
    """A limit the evaluation looked at: whose it is and how many uses it has left."""

    __slots__ = ("count", "layer", "remaining", "rule_id", "window_s")

    def __init__(self, layer: str, rule_id: str, limit: Limit, remaining: int) -> None:
        self.layer = layer
        self.rule_id = rule_id
        self.count = limit.count
        self.window_s = limit.window_s
        self.remaining = remaining

    def as_dict(self) -> dict[str, object]:
        return {
            "layer": self.layer,
            "rule_id": self.rule_id,
            "count": self.count,
            "window_s": self.window_s,
            "remaining": self.remaining,
        }

    def __repr__(self) -> str:
        return f"LimitState({self.layer}:{self.rule_id} {self.remaining}/{self.count})"


_NO_LIMITS: tuple[LimitState, ...] = ()


class Decision:
    """The outcome of ``evaluate``.

    ``action`` is the combined action; ``layer`` names the layer that gave it (on a tie
    the one whose rule decided, the admin layer if both) and ``rule_id`` / ``reason`` are
    that layer's (``rule_id`` is ``None`` when it was the default). ``admin`` / ``owner``
    are each layer's own ``Verdict``. ``limits`` lists every limit the evaluation looked
    at, in order (a used-up one that was skipped, then the deciding rule's), with its
    ``remaining`` uses at ``now`` before this request.
    """

    __slots__ = (
        "action",
        "admin",
        "layer",
        "limited",
        "limits",
        "owner",
        "reason",
        "rule_id",
        "verdict",
    )

    def __init__(
        self, admin: Verdict, owner: Verdict, limits: tuple[LimitState, ...] = _NO_LIMITS
    ) -> None:
        self.admin = admin
        self.owner = owner
        self.limits = limits
        a, o = admin.severity, owner.severity
        # On a tie the layer whose rule decided is named (the admin's if both had one).
        if o > a or (o == a and admin.rule_id is None and owner.rule_id is not None):
            self.verdict, self.layer = owner, OWNER
        else:
            self.verdict, self.layer = admin, ADMIN
        # Plain attributes, never changed: the sign path builds its decisions at compile
        # time (policy_compiled) and reads them on every refused or reviewed request.
        self.action = self.verdict.action
        self.rule_id = self.verdict.rule_id
        self.reason = self.verdict.reason
        # Whether a signature under it charges a window (then a lease must reserve first).
        self.limited = admin.limit is not None or owner.limit is not None

    def as_dict(self) -> dict[str, object]:
        """A plain form for ``explain_signing`` results and audit records."""
        return {
            "action": self.action.value,
            "layer": self.layer,
            "rule_id": self.rule_id,
            "reason": self.reason,
            "admin_rule_id": self.admin.rule_id,
            "owner_rule_id": self.owner.rule_id,
            "limits": [s.as_dict() for s in self.limits],
        }

    def __repr__(self) -> str:
        return f"Decision({self.action.value}, {self.layer}:{self.rule_id!r})"


def _decide(
    rules: tuple[Rule, ...],
    table: dict[str, RateWindow],
    layer: str,
    request: SigningRequest,
    size: int,
    now: float,
    default: Verdict,
    seen: list[LimitState],
) -> Verdict:
    """The verdict of one layer's rules; each limit looked at goes into ``seen``."""
    # The conditions in the order the compiled sign path checks them (policy_compiled), so
    # the two can be compared step by step: prefix, size, time, then the closures.
    message = request.message
    for rule in rules:
        prefix = rule.prefix
        if prefix is not None and (message is None or not message.startswith(prefix)):
            continue
        max_bytes = rule.max_bytes
        if max_bytes is not None and not 0 <= size <= max_bytes:
            continue
        active = rule.active
        if active is not None and not active(now):
            continue
        for test in rule.tests:
            if not test(request):
                break
        else:
            limit = rule.limit
            if limit is None:
                return rule.verdict
            w = table.get(rule.id)
            remaining = limit.count if w is None else w.remaining(now)
            seen.append(LimitState(layer, rule.id, limit, remaining))
            if remaining > 0:
                return rule.verdict
    return default


def evaluate(
    admin: Layer,
    owner: Layer,
    default: Action,
    request: SigningRequest,
    now: float,
    windows: Windows,
) -> Decision:
    """Decide ``request`` at ``now`` (Unix seconds, wall clock), listing every limit looked
    at; consumes nothing. What ``explain_signing`` answers, the slow path decides with, and
    the compiled sign path (``policy_compiled``) is tested against."""
    op, key_type = request.op, request.key_type
    try:
        admin_rules = admin.index[op][key_type]
        owner_rules = owner.index[op][key_type]
    except KeyError:  # an op or key type no rule names: only unconstrained rules apply
        admin_rules = admin.candidates(op, key_type)
        owner_rules = owner.candidates(op, key_type)
    a = o = DEFAULT_VERDICTS[default]
    seen: list[LimitState] = []
    if admin_rules or owner_rules:
        message = request.message
        size = -1 if message is None else len(message)
        if admin_rules:
            a = _decide(admin_rules, windows.admin, ADMIN, request, size, now, a, seen)
        if owner_rules:
            o = _decide(owner_rules, windows.owner, OWNER, request, size, now, o, seen)
    return Decision(a, o, tuple(seen) if seen else _NO_LIMITS)


def _charged(admin: Verdict, owner: Verdict, windows: Windows) -> list[tuple[str, str, RateWindow]]:
    """``(layer, rule_id, window)`` of each layer's deciding rule that has a limit."""
    out = []
    for layer, verdict in ((ADMIN, admin), (OWNER, owner)):
        limit, rule_id = verdict.limit, verdict.rule_id
        if limit is not None and rule_id is not None:
            out.append((layer, rule_id, windows.window(layer, rule_id, limit)))
    return out


def reservations(
    decision: Decision, windows: Windows, now: float, uses: int = 1
) -> list[tuple[str, str, RateWindow]]:
    """The windows ``charge(decision, ...)`` would use that need a reservation first, as
    ``(layer, rule_id, window)``; the daemon commits ``window.reserve(now, uses)`` for each."""
    if decision.admin.limit is None and decision.owner.limit is None:
        return []
    charged = _charged(decision.admin, decision.owner, windows)
    return [c for c in charged if c[2].needs_reservation(now, uses)]


def charge(decision: Decision, windows: Windows, now: float) -> list[tuple[str, str]]:
    """Consume one use from the limit of each layer's deciding rule (see the module
    docstring); return the ``(layer, rule_id)`` charged. Call it only for a signature that
    is made, right after an ``evaluate`` with no await between them.

    All or nothing: every window is checked before any is charged, so a ``ReservationNeeded``
    leaves all of them as they were.
    """
    return charge_verdicts(decision.admin, decision.owner, windows, now)


def charge_verdicts(
    admin: Verdict, owner: Verdict, windows: Windows, now: float
) -> list[tuple[str, str]]:
    """``charge`` for the two verdicts of ``verdicts(...)``."""
    if admin.limit is None or owner.limit is None:
        # At most one window (the common case): ``use`` checks before it changes anything.
        if admin.limit is None:
            verdict, layer, table = owner, OWNER, windows.owner
        else:
            verdict, layer, table = admin, ADMIN, windows.admin
        limit, rule_id = verdict.limit, verdict.rule_id
        if limit is None or rule_id is None:
            return []
        w = table.get(rule_id)
        if w is None:
            w = windows.window(layer, rule_id, limit)
        w.use(now)
        return [(layer, rule_id)]
    charged = _charged(admin, owner, windows)
    for _, _, w in charged:
        if not w.can_use(now):
            w.use(now)  # raises ReservationNeeded with the reason
    for _, _, w in charged:
        w.use(now)
    return [(layer, rule_id) for layer, rule_id, _ in charged]


def is_allowed(decision: Decision) -> bool:
    return decision.action is Action.ALLOW
