"""Hypothesis properties of the signing policy: an owner rule never loosens the admin layer,
and tightening a policy (a deny rule anywhere, a lower limit) never lets a request through
that was not let through before, given the same uses already made.

The properties hold per decision, with the uses so far fixed. They do not hold per timeline
with two layers, and are not meant to: a lower admin limit denies a request sooner, which
leaves the owner's limit a use that a later, different request may then take.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from walletd.model.policy_eval import ADMIN, OWNER, Windows, evaluate
from walletd.model.policy_request import KEY_TYPES, OPS, SigningRequest
from walletd.model.policy_rules import Action, Layer

from .test_policy_eval import DENY, EMPTY, NOW, layer

MATCHES = st.fixed_dictionaries(
    {},
    optional={
        "ops": st.sampled_from([["sign_message"], ["sign_batch", "sign_message"]]),
        "key_types": st.sampled_from([["hmac-sha256"], ["ed25519", "secp256k1"]]),
        "prefix": st.sampled_from(["a", "ab", "b"]),
        "max_bytes": st.sampled_from([1, 2, 4]),
        "pattern": st.sampled_from(["a.*", "[ab]*", "b+"]),
    },
)


@st.composite
def rules(draw: st.DrawFn, prefix: str) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(0, 5))):
        action = draw(st.sampled_from(["allow", "allow", "review", "deny"]))
        r: dict[str, Any] = {"id": f"{prefix}{i}", "action": action, "match": draw(MATCHES)}
        if action == "allow" and draw(st.booleans()):
            r["limit"] = {"count": draw(st.integers(1, 3)), "window_s": 60}
        out.append(r)
    return out


REQUESTS = st.lists(
    st.builds(
        SigningRequest,
        st.sampled_from(OPS[:2]),
        st.sampled_from(KEY_TYPES),
        st.binary(max_size=4).map(lambda b: bytes(c % 3 + 97 if c < 250 else c for c in b)),
    ),
    min_size=1,
    max_size=12,
)


def used(admin: Layer, owner: Layer, uses: list[int]) -> Windows:
    """Windows with some uses already made of each limited rule."""
    windows = Windows(durable=False)
    k = iter(uses * 20)
    for name, lay in ((ADMIN, admin), (OWNER, owner)):
        for rule_id, limit in lay.limits().items():
            w = windows.window(name, rule_id, limit)
            for _ in range(min(next(k), limit.count)):
                w.use(NOW)
    return windows


@settings(max_examples=100, deadline=None)
@given(
    admin=rules("a"),
    owner=rules("o"),
    extra=rules("x"),
    at_=st.integers(0, 5),
    requests=REQUESTS,
    uses=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    default=st.sampled_from(list(Action)),
)
def test_an_owner_rule_never_allows_what_the_admin_layer_denied(
    admin: list[dict[str, Any]],
    owner: list[dict[str, Any]],
    extra: list[dict[str, Any]],
    at_: int,
    requests: list[SigningRequest],
    uses: list[int],
    default: Action,
) -> None:
    admin_l = layer(*admin)
    alone = used(admin_l, EMPTY, uses)
    added = owner[:at_] + extra[:1] + owner[at_:]
    owner_l = layer(*added)
    both = used(admin_l, owner_l, uses)
    for request in requests:
        # What the admin layer alone says of the request (its own verdict, not combined
        # with an empty owner layer, which would yield the default).
        admin_says = evaluate(admin_l, EMPTY, default, request, NOW, alone).admin.action
        after = evaluate(admin_l, owner_l, default, request, NOW, both)
        assert after.action.severity >= admin_says.severity
        if admin_says is DENY:
            assert after.action is DENY


def tightening_holds(
    admin: list[dict[str, Any]],
    owner: list[dict[str, Any]],
    tighter_admin: list[dict[str, Any]],
    tighter_owner: list[dict[str, Any]],
    requests: list[SigningRequest],
    uses: list[int],
    default: Action,
) -> None:
    """With the same uses already made, no request gets a less restrictive action."""
    a, o = layer(*admin), layer(*owner)
    ta, to = layer(*tighter_admin), layer(*tighter_owner)
    windows = used(a, o, uses)
    tighter = used(a, o, uses)
    tighter.rebind(ADMIN, ta)
    tighter.rebind(OWNER, to)
    for request in requests:
        before = evaluate(a, o, default, request, NOW, windows)
        after = evaluate(ta, to, default, request, NOW, tighter)
        assert after.action.severity >= before.action.severity, request


@settings(max_examples=100, deadline=None)
@given(
    admin=rules("a"),
    owner=rules("o"),
    deny=MATCHES,
    where=st.sampled_from([ADMIN, OWNER]),
    at_=st.integers(0, 5),
    requests=REQUESTS,
    uses=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    default=st.sampled_from(list(Action)),
)
def test_adding_a_deny_rule_anywhere_never_allows_more(
    admin: list[dict[str, Any]],
    owner: list[dict[str, Any]],
    deny: dict[str, Any],
    where: str,
    at_: int,
    requests: list[SigningRequest],
    uses: list[int],
    default: Action,
) -> None:
    rule = {"id": "added-deny", "action": "deny", "match": deny}
    target = admin if where == ADMIN else owner
    tighter = [*target[:at_], rule, *target[at_:]]
    tightening_holds(
        admin,
        owner,
        tighter if where == ADMIN else admin,
        tighter if where == OWNER else owner,
        requests,
        uses,
        default,
    )


@settings(max_examples=100, deadline=None)
@given(
    admin=rules("a"),
    owner=rules("o"),
    where=st.sampled_from([ADMIN, OWNER]),
    pick=st.integers(0, 10),
    requests=REQUESTS,
    uses=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    default=st.sampled_from(list(Action)),
)
def test_lowering_a_limit_of_an_allow_rule_never_allows_more(
    admin: list[dict[str, Any]],
    owner: list[dict[str, Any]],
    where: str,
    pick: int,
    requests: list[SigningRequest],
    uses: list[int],
    default: Action,
) -> None:
    """Also for a rule that had no limit: adding one is lowering it from infinity. (Limits
    on ``review`` rules are left out on purpose: when the next rule allows, a used-up review
    falls through to an allow, and that is what such a policy says.)"""
    target = admin if where == ADMIN else owner
    allows = [i for i, r in enumerate(target) if r["action"] == "allow"]
    if not allows:
        return
    i = allows[pick % len(allows)]
    old = target[i].get("limit", {"count": 4, "window_s": 60})
    lowered = [dict(r) for r in target]
    lowered[i]["limit"] = {"count": max(1, old["count"] - 1), "window_s": 60}
    tightening_holds(
        admin,
        owner,
        lowered if where == ADMIN else admin,
        lowered if where == OWNER else owner,
        requests,
        uses,
        default,
    )
