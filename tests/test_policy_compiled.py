"""The compiled sign-path admission (walletd.model.policy_compiled) against the interpreted
reference (policy_eval.evaluate, then charge when it allows): on random layers, defaults,
windows and request sequences both give the same verdicts (the very same Verdict objects),
charge the same windows by the same amounts, and refuse an unreserved durable use alike,
changing nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walletd.model.policy_compiled import Admissions, compile_admission
from walletd.model.policy_eval import (
    ADMIN,
    OWNER,
    Windows,
    charge,
    evaluate,
    reservations,
)
from walletd.model.policy_request import KEY_TYPES, OPS, SigningRequest, TypedFacts
from walletd.model.policy_rules import Action, Layer
from walletd.model.rate_window import RateWindow, ReservationNeeded

from .test_policy_eval import EMPTY, NOW, layer

MATCHES = st.fixed_dictionaries(
    {},
    optional={
        "ops": st.sampled_from(
            [["sign_message"], ["sign_batch", "sign_message"], ["sign_typed_data"]]
        ),
        "key_types": st.sampled_from([["hmac-sha256"], ["ed25519", "secp256k1"]]),
        "prefix": st.sampled_from(["a", "ab", "b", {"hex": "00ff"}]),
        "max_bytes": st.sampled_from([0, 1, 2, 4]),
        "pattern": st.sampled_from(["a.*", "[ab]*", "b+"]),
        "chain_id": st.sampled_from([1, [1, 10]]),
        "primary_type": st.just("Order"),
        "fields": st.just({"value": {"le": 5}}),
    },
)
WHEN = st.sampled_from(
    [
        {"not_before": int(NOW) + 5},
        {"not_after": int(NOW) + 5},
        {"not_before": int(NOW) - 100, "not_after": int(NOW) + 100},
    ]
)


@st.composite
def rules(draw: st.DrawFn, prefix: str) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["allow", "allow", "review", "deny"]))
        r: dict[str, Any] = {"id": f"{prefix}{i}", "action": action}
        match = draw(MATCHES)
        if match:
            r["match"] = match
        if action != "deny" and draw(st.booleans()):
            r["limit"] = {
                "count": draw(st.integers(1, 3)),
                "window_s": draw(st.sampled_from([1, 60])),
            }
        if draw(st.integers(0, 4)) == 0:
            r["when"] = draw(WHEN)
        out.append(r)
    return out


MESSAGES = st.binary(max_size=4).map(lambda b: bytes(c % 3 + 97 if c < 250 else c for c in b))
TYPED = st.builds(
    TypedFacts,
    chain_id=st.sampled_from([None, 1, 10, 137]),
    primary_type=st.sampled_from([None, "Order", "Mail"]),
    fields=st.sampled_from([None, {"value": 3}, {"value": 9}]),
)


@st.composite
def requests(draw: st.DrawFn) -> SigningRequest:
    op = draw(st.sampled_from(OPS))
    key_type = draw(st.sampled_from(KEY_TYPES))
    if op == "sign_typed_data":
        message = draw(st.none() | MESSAGES)
        return SigningRequest(op, key_type, message, draw(TYPED))
    return SigningRequest(op, key_type, draw(MESSAGES))


# A step: a request, and how far the clock moves before it (seconds).
STEPS = st.lists(st.tuples(requests(), st.sampled_from([0.0, 0.0, 0.4, 3.0, 70.0])), max_size=25)


def remaining(admin: Layer, owner: Layer, windows: Windows, now: float) -> dict[Any, Any]:
    """Every limited rule's (remaining uses, reserved uses left) at ``now``."""
    out = {}
    for name, lay in ((ADMIN, admin), (OWNER, owner)):
        for rule_id, limit in lay.limits().items():
            w = windows.table(name).get(rule_id)
            out[name, rule_id] = (
                (limit.count, 0)
                if w is None
                else (w.remaining(now), w._res_left if w.durable else 0)
            )
    return out


def subject(request: SigningRequest) -> bytes | SigningRequest:
    """What a compiled admission takes: the message for a message op (always there), the
    request for typed data."""
    if request.op == "sign_typed_data":
        return request
    assert request.message is not None
    return request.message


def reserve(windows: Windows, layer_name: str, rule_id: str, limit: Any, now: float) -> None:
    windows.window(layer_name, rule_id, limit).reserve(now)


def agree(
    admin: Layer,
    owner: Layer,
    default: Action,
    steps: list[tuple[SigningRequest, float]],
    durable: bool,
) -> None:
    reference, compiled = Windows(durable=durable), Windows(durable=durable)
    admissions = Admissions()
    now = NOW
    for request, advance in steps:
        now += advance
        for _attempt in range(2):
            decision = evaluate(admin, owner, default, request, now, reference)
            admission = admissions.get(admin, owner, default, request.op, request.key_type)
            needed = (
                reservations(decision, reference, now) if decision.action is Action.ALLOW else []
            )
            before = remaining(admin, owner, compiled, now)
            if needed:
                with pytest.raises(ReservationNeeded):  # it must not charge an unreserved use
                    admission(subject(request), now, compiled)
                assert remaining(admin, owner, compiled, now) == before  # nothing charged
                for layer_name, rule_id, _window in needed:
                    limit = (admin if layer_name == ADMIN else owner).limits()[rule_id]
                    reserve(reference, layer_name, rule_id, limit, now)
                    reserve(compiled, layer_name, rule_id, limit, now)
                continue  # evaluate again, now covered
            got = admission(subject(request), now, compiled)
            if decision.action is Action.ALLOW:
                charge(decision, reference, now)
                assert got is None, (request, decision)
            else:
                assert got is not None, (request, decision)
                assert got.admin is decision.admin and got.owner is decision.owner, request
                assert (got.action, got.layer, got.rule_id) == (
                    decision.action,
                    decision.layer,
                    decision.rule_id,
                )
            break
        assert remaining(admin, owner, compiled, now) == remaining(admin, owner, reference, now)


@settings(max_examples=300, deadline=None)
@given(
    admin=rules("a"),
    owner=rules("o"),
    default=st.sampled_from(list(Action)),
    steps=STEPS,
    durable=st.booleans(),
)
def test_the_compiled_admission_decides_and_charges_as_the_reference(
    admin: list[dict[str, Any]],
    owner: list[dict[str, Any]],
    default: Action,
    steps: list[tuple[SigningRequest, float]],
    durable: bool,
) -> None:
    agree(layer(*admin), layer(*owner), default, steps, durable)


@settings(max_examples=150, deadline=None)
@given(
    owner=rules("o"),
    steps=STEPS,
    durable=st.booleans(),
    where=st.sampled_from([ADMIN, OWNER]),
)
def test_one_layer_alone_charges_as_the_reference(
    owner: list[dict[str, Any]],
    steps: list[tuple[SigningRequest, float]],
    durable: bool,
    where: str,
) -> None:
    # The fused check-and-charge path: the other layer is empty and the default allows.
    rules_layer = layer(*owner)
    admin, own = (rules_layer, EMPTY) if where == ADMIN else (EMPTY, rules_layer)
    agree(admin, own, Action.ALLOW, steps, durable)


def test_the_bench_shape_agrees_across_a_full_window() -> None:
    # Ten rules of the bench's shape, a limit of 3 per second on the deciding rule: the
    # fourth request in a second falls to the last rule, and a new second frees the window.
    ten = layer(
        {"id": "no-transfer", "action": "deny", "match": {"prefix": "transfer:"}},
        {"id": "no-keys", "action": "deny", "match": {"pattern": "(?i).*private key.*"}},
        {"id": "small", "action": "deny", "match": {"key_types": "ed25519", "max_bytes": 8}},
        {"id": "orders", "action": "allow", "match": {"prefix": "order:"}},
        {"id": "per-second", "action": "allow", "limit": {"count": 3, "window_s": 1}},
        {"id": "rest", "action": "deny"},
    )
    message = SigningRequest("sign_message", "hmac-sha256", b"x" * 64)
    steps = [(message, 0.0)] * 5 + [(message, 1.5)] + [(message, 0.0)] * 3
    steps += [(SigningRequest("sign_message", "hmac-sha256", b"a private KEY"), 0.0)]
    agree(EMPTY, ten, Action.ALLOW, steps, durable=False)
    agree(EMPTY, ten, Action.ALLOW, steps, durable=True)


def test_an_admission_is_recompiled_when_a_layer_or_the_default_changes() -> None:
    admissions = Admissions()
    allow = layer({"id": "all", "action": "allow"})
    deny = layer({"id": "none", "action": "deny"})
    windows = Windows(durable=False)
    first = admissions.get(EMPTY, allow, Action.ALLOW, "sign_message", "hmac-sha256")
    assert admissions.get(EMPTY, allow, Action.ALLOW, "sign_message", "hmac-sha256") is first
    assert first(b"m", NOW, windows) is None
    refused = admissions.get(EMPTY, deny, Action.ALLOW, "sign_message", "hmac-sha256")
    assert refused(b"m", NOW, windows) is not None
    # The same layers under a default-deny daemon: the empty admin layer now denies.
    under_deny = admissions.get(EMPTY, allow, Action.DENY, "sign_message", "hmac-sha256")
    got = under_deny(b"m", NOW, windows)
    assert got is not None and got.admin.action is Action.DENY and got.owner.rule_id == "all"


def test_no_policy_text_becomes_code() -> None:
    # A prefix and a rule id that would be code if they were pasted into the source are
    # only ever values: the admission matches the prefix as bytes, nothing runs.
    prefix = '")\n    raise SystemExit("'
    hostile = layer({"id": "x.y:z-1", "action": "deny", "match": {"prefix": prefix}})
    admission = compile_admission(
        EMPTY.candidates("sign_message", "hmac-sha256"),
        hostile.candidates("sign_message", "hmac-sha256"),
        Action.ALLOW,
        "sign_message",
    )
    windows = Windows(durable=False)
    assert admission(b"ok", NOW, windows) is None
    got = admission(prefix.encode() + b"!", NOW, windows)
    assert got is not None and got.owner.rule_id == "x.y:z-1"
    assert prefix not in repr(admission.__code__.co_consts)


def test_take_is_remaining_then_use() -> None:
    w = RateWindow(2, 60, durable=False)
    assert w.take(NOW) and w.take(NOW)
    assert not w.take(NOW)  # full: nothing changes
    assert w.remaining(NOW) == 0
    assert w.take(NOW + 61)  # the old uses left the window
    durable = RateWindow(2, 60, durable=True)
    with pytest.raises(ReservationNeeded):  # an unreserved durable use is never taken
        durable.take(NOW)
    assert durable.remaining(NOW) == 2
    durable.reserve(NOW)
    assert durable.take(NOW) and durable.remaining(NOW) == 1
