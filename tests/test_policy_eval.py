"""Evaluating signing requests: first match, layers, limits falling through, time windows
(DST included), typed-data conditions, message conditions and charging. The hypothesis
properties are in test_policy_properties.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from walletd.model.policy_eval import (
    ADMIN,
    OWNER,
    Decision,
    Windows,
    charge,
    evaluate,
    reservations,
)
from walletd.model.policy_request import SigningRequest, TypedFacts
from walletd.model.policy_rules import Action, Layer, compile_layer
from walletd.model.rate_window import ReservationNeeded

TZ = "Europe/Berlin"
NOW = 1_900_000_000.0  # 2030-03-17 (a Sunday) 17:46:40 UTC
ALLOW, REVIEW, DENY = Action.ALLOW, Action.REVIEW, Action.DENY
EMPTY = compile_layer([], timezone=TZ)
# The admin layer of most tests lets everything through, so that the default a test picks
# shows what the OWNER layer yields (an empty admin layer would yield the default too).
ADMIN_ALLOWS = compile_layer([{"id": "any", "action": "allow"}], timezone=TZ)
CONTRACT = "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01"


def layer(*rules: dict[str, Any]) -> Layer:
    return compile_layer(list(rules), timezone=TZ)


def msg(data: bytes, op: str = "sign_message", key_type: str = "hmac-sha256") -> SigningRequest:
    return SigningRequest(op, key_type, data)


def typed(**facts: Any) -> SigningRequest:
    return SigningRequest("sign_typed_data", "secp256k1", None, TypedFacts(**facts))


def decide(
    owner: Layer,
    request: SigningRequest,
    *,
    admin: Layer = ADMIN_ALLOWS,
    default: Action = ALLOW,
    now: float = NOW,
    windows: Windows | None = None,
) -> Decision:
    return evaluate(admin, owner, default, request, now, windows or Windows(durable=False))


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# ------------------------------------------------------------------- first match, layers


def test_first_matching_rule_decides() -> None:
    owner = layer(
        {"id": "cancel", "action": "deny", "match": {"prefix": "order:cancel"}},
        {"id": "orders", "action": "allow", "match": {"prefix": "order:"}},
        {"id": "rest", "action": "review"},
    )
    cases = [
        (b"order:cancel:1", DENY, "cancel"),
        (b"order:buy:1", ALLOW, "orders"),
        (b"hello", REVIEW, "rest"),
    ]
    for data, action, rule_id in cases:
        d = decide(owner, msg(data), admin=EMPTY)
        assert (d.action, d.layer, d.rule_id) == (action, OWNER, rule_id)
        assert d.owner.rule_id == rule_id and d.admin.rule_id is None


@pytest.mark.parametrize("default", list(Action))
def test_a_layer_where_nothing_matches_yields_the_default(default: Action) -> None:
    only_orders = layer({"id": "o", "action": "allow", "match": {"prefix": "order:"}})
    for owner in (EMPTY, only_orders):
        d = decide(owner, msg(b"hello"), admin=EMPTY, default=default)
        assert d.action is default
        assert d.rule_id is None and d.owner.rule_id is None and d.admin.rule_id is None


COMBINE = [
    (ALLOW, ALLOW, ALLOW, ADMIN),
    (ALLOW, REVIEW, REVIEW, OWNER),
    (ALLOW, DENY, DENY, OWNER),
    (REVIEW, ALLOW, REVIEW, ADMIN),
    (REVIEW, REVIEW, REVIEW, ADMIN),
    (REVIEW, DENY, DENY, OWNER),
    (DENY, ALLOW, DENY, ADMIN),
    (DENY, REVIEW, DENY, ADMIN),
    (DENY, DENY, DENY, ADMIN),
]


@pytest.mark.parametrize(("admin_says", "owner_says", "action", "by"), COMBINE)
def test_layers_combine_deny_over_review_over_allow(
    admin_says: Action, owner_says: Action, action: Action, by: str
) -> None:
    admin = layer({"id": "a", "action": admin_says.value, "reason": "admin says"})
    owner = layer({"id": "o", "action": owner_says.value, "reason": "owner says"})
    d = decide(owner, msg(b"x"), admin=admin)
    assert (d.action, d.layer) == (action, by)
    assert d.reason == ("admin says" if by == ADMIN else "owner says")
    assert d.as_dict()["admin_rule_id"] == "a" and d.as_dict()["owner_rule_id"] == "o"


def test_on_a_tie_the_layer_whose_rule_decided_is_named() -> None:
    owner = layer({"id": "o", "action": "allow"})
    d = decide(owner, msg(b"x"), admin=EMPTY)
    assert (d.action, d.layer, d.rule_id) == (ALLOW, OWNER, "o")


# ------------------------------------------------------------------------------ limits


def test_allow_n_an_hour_then_deny_is_two_rules() -> None:
    owner = layer(
        {"id": "hourly", "action": "allow", "limit": {"count": 3, "window_s": 3600}},
        {"id": "over", "action": "deny", "reason": "hourly limit"},
    )
    windows = Windows(durable=False)
    seen = []
    for k in range(5):
        now = NOW + k
        d = decide(owner, msg(b"x"), admin=EMPTY, now=now, windows=windows)
        seen.append((d.action, d.rule_id, [s.remaining for s in d.limits]))
        if d.action is ALLOW:
            assert charge(d, windows, now) == [(OWNER, "hourly")]
    assert seen == [
        (ALLOW, "hourly", [3]),
        (ALLOW, "hourly", [2]),
        (ALLOW, "hourly", [1]),
        (DENY, "over", [0]),
        (DENY, "over", [0]),
    ]
    later = decide(owner, msg(b"x"), admin=EMPTY, now=NOW + 3600 + 120, windows=windows)
    assert (later.action, later.rule_id) == (ALLOW, "hourly")


def test_evaluate_consumes_nothing() -> None:
    owner = layer({"id": "once", "action": "allow", "limit": {"count": 1, "window_s": 60}})
    windows = Windows(durable=False)
    for _ in range(10):
        assert decide(owner, msg(b"x"), windows=windows).action is ALLOW


def test_a_signature_charges_the_deciding_rule_in_each_layer_only() -> None:
    admin = layer(
        {"id": "tight", "action": "allow", "limit": {"count": 1, "window_s": 60}},
        {"id": "loose", "action": "allow", "limit": {"count": 10, "window_s": 60}},
    )
    owner = layer(
        {"id": "mine", "action": "allow", "limit": {"count": 5, "window_s": 60}},
        {"id": "never", "action": "allow", "limit": {"count": 5, "window_s": 60}},
    )
    windows = Windows(durable=False)
    for expected in ([(ADMIN, "tight"), (OWNER, "mine")], [(ADMIN, "loose"), (OWNER, "mine")]):
        d = decide(owner, msg(b"x"), admin=admin, windows=windows)
        assert charge(d, windows, NOW) == expected
    d = decide(owner, msg(b"x"), admin=admin, windows=windows)
    # tight (used up, skipped), loose, mine: every limit looked at, with what it has left.
    assert [(s.rule_id, s.remaining) for s in d.limits] == [("tight", 0), ("loose", 9), ("mine", 3)]
    assert "never" not in windows.owner


def test_charge_goes_no_further_than_durable_reservations() -> None:
    admin = layer({"id": "a", "action": "allow", "limit": {"count": 8, "window_s": 60}})
    owner = layer({"id": "o", "action": "allow", "limit": {"count": 100, "window_s": 60}})
    windows = Windows()  # durable
    d = decide(owner, msg(b"x"), admin=admin, windows=windows)
    with pytest.raises(ReservationNeeded):
        charge(d, windows, NOW)
    assert windows.admin["a"].used(NOW) == 0 and windows.owner["o"].used(NOW) == 0
    due = reservations(d, windows, NOW)
    assert [(layer_, rule_id) for layer_, rule_id, _ in due] == [(ADMIN, "a"), (OWNER, "o")]
    records = {(lay, rid): w.reserve(NOW) for lay, rid, w in due}  # the daemon commits these
    assert all(isinstance(r, bytes) for r in records.values())
    assert charge(decide(owner, msg(b"x"), admin=admin, windows=windows), windows, NOW)
    assert reservations(d, windows, NOW) == []


def test_a_batch_is_decided_item_by_item() -> None:
    owner = layer(
        {"id": "two", "action": "allow", "limit": {"count": 2, "window_s": 60}},
        {"id": "rest", "action": "deny"},
    )
    windows = Windows(durable=False)
    outcomes = []
    for item in (b"a", b"b", b"c"):
        d = decide(owner, msg(item, op="sign_batch"), windows=windows)
        if d.action is ALLOW:
            charge(d, windows, NOW)
        outcomes.append(d.action)
    assert outcomes == [ALLOW, ALLOW, DENY]


def test_lowering_a_limit_keeps_the_uses_already_made() -> None:
    doc = {"id": "n", "action": "allow", "limit": {"count": 10, "window_s": 60}}
    windows = Windows(durable=False)
    for _ in range(4):
        charge(decide(layer(doc), msg(b"x"), windows=windows), windows, NOW)
    lowered = layer({**doc, "limit": {"count": 3, "window_s": 60}})
    assert windows.rebind(OWNER, lowered) == []
    d = decide(lowered, msg(b"x"), windows=windows, default=DENY)
    assert d.action is DENY and d.limits[0].remaining == 0
    assert windows.rebind(OWNER, EMPTY) == ["n"]


# ------------------------------------------------------------------------ time windows


def test_not_before_and_not_after() -> None:
    owner = layer({"id": "t", "action": "allow", "when": {"not_before": 1000, "not_after": 2000}})
    cases = [(999.9, DENY), (1000, ALLOW), (1999.9, ALLOW), (2000, DENY)]
    for now, action in cases:
        assert decide(owner, msg(b"x"), now=now, default=DENY).action is action


WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "20:00"}

# Berlin leaves summer time (UTC+2) for UTC+1 on Sunday 2030-10-27 at 01:00 UTC.
DST_CASES = [
    ("2030-10-25T06:30", ALLOW),  # Friday 08:30 CEST
    ("2030-10-25T05:59", DENY),  # Friday 07:59 CEST
    ("2030-10-25T17:59", ALLOW),  # Friday 19:59 CEST
    ("2030-10-25T18:00", DENY),  # Friday 20:00 CEST: end is exclusive
    ("2030-10-26T10:00", DENY),  # Saturday
    ("2030-10-28T06:30", DENY),  # Monday 07:30 CET: same UTC time, now outside
    ("2030-10-28T07:00", ALLOW),  # Monday 08:00 CET
    ("2030-10-28T18:30", ALLOW),  # Monday 19:30 CET
]


@pytest.mark.parametrize(("utc", "action"), DST_CASES)
def test_weekly_hours_follow_the_wall_clock_across_dst(utc: str, action: Action) -> None:
    owner = layer({"id": "hours", "action": "allow", "when": {"weekly": [WEEKDAYS]}})
    assert decide(owner, msg(b"x"), now=at(utc), default=DENY).action is action


def test_the_repeated_autumn_hour_is_in_the_window_both_times() -> None:
    night = {"days": ["sun"], "start": "02:00", "end": "03:00"}
    owner = layer({"id": "n", "action": "allow", "when": {"weekly": [night]}})
    cases = [
        ("2030-10-26T23:59", DENY),  # 01:59 CEST
        ("2030-10-27T00:30", ALLOW),  # 02:30 CEST
        ("2030-10-27T01:30", ALLOW),  # 02:30 CET, the second time
        ("2030-10-27T02:00", DENY),  # 03:00 CET
    ]
    for utc, action in cases:
        assert decide(owner, msg(b"x"), now=at(utc), default=DENY).action is action, utc


def test_an_overnight_window_belongs_to_the_day_it_starts() -> None:
    overnight = {"days": ["fri"], "start": "22:00", "end": "06:00"}
    owner = layer({"id": "n", "action": "allow", "when": {"weekly": [overnight]}})
    cases = [
        ("2030-10-25T19:59", DENY),  # Friday 21:59 CEST
        ("2030-10-25T20:00", ALLOW),  # Friday 22:00
        ("2030-10-26T03:59", ALLOW),  # Saturday 05:59
        ("2030-10-26T04:00", DENY),  # Saturday 06:00
        ("2030-10-26T20:30", DENY),  # Saturday 22:30: not a Saturday window
    ]
    for utc, action in cases:
        assert decide(owner, msg(b"x"), now=at(utc), default=DENY).action is action, utc


def test_the_cached_local_minute_moves_with_the_clock() -> None:
    owner = layer({"id": "hours", "action": "allow", "when": {"weekly": [WEEKDAYS]}})
    start = at("2030-10-25T17:58")
    actions = [
        decide(owner, msg(b"x"), now=start + s, default=DENY).action for s in range(0, 180, 30)
    ]
    assert actions == [ALLOW] * 4 + [DENY] * 2


# ------------------------------------------------------------------ message conditions

MESSAGE_CASES = [
    ({"prefix": "order:"}, b"order:1", True),
    ({"prefix": "order:"}, b"orde", False),
    ({"prefix": {"hex": "ff00"}}, b"\xff\x00rest", True),
    ({"max_bytes": 4}, b"1234", True),
    ({"max_bytes": 4}, b"12345", False),
    ({"max_bytes": 0}, b"", True),
    ({"pattern": "order:[0-9]+"}, b"order:42", True),
    ({"pattern": "order:[0-9]+"}, b"order:42 and more", False),  # a full match
    ({"pattern": "order:[0-9]+"}, b"xorder:42", False),
    ({"pattern": "caf\u00e9.*"}, "caf\u00e9 au lait".encode(), True),
    ({"pattern": ".*"}, b"\xff\xfe", False),  # not UTF-8: no pattern matches
    ({"pattern": "a.b"}, b"a\nb", True),  # "." includes newlines: one message, one text
    ({"prefix": "order:", "max_bytes": 10, "pattern": "order:.*"}, b"order:1234", True),
    ({"prefix": "order:", "max_bytes": 9, "pattern": "order:.*"}, b"order:1234", False),
    ({"ops": ["sign_batch"]}, b"x", False),
    ({"key_types": "ed25519"}, b"x", False),
    ({"ops": "sign_message", "key_types": ["hmac-sha256"]}, b"x", True),
]


@pytest.mark.parametrize(("match", "data", "matches"), MESSAGE_CASES)
def test_message_conditions(match: dict[str, Any], data: bytes, matches: bool) -> None:
    owner = layer({"id": "m", "action": "allow", "match": match})
    assert (decide(owner, msg(data), default=DENY).action is ALLOW) is matches


def test_message_conditions_do_not_hold_without_a_message() -> None:
    for match in ({"prefix": "a"}, {"max_bytes": 100}, {"pattern": ".*"}):
        owner = layer({"id": "m", "action": "allow", "match": match})
        assert decide(owner, typed(chain_id=1), default=DENY).action is DENY


def test_a_pathological_pattern_is_decided_in_linear_time() -> None:
    owner = layer({"id": "evil", "action": "deny", "match": {"pattern": "(a+)+$"}})
    d = decide(owner, msg(b"a" * 10_000 + b"b"), default=ALLOW)
    assert d.action is ALLOW and d.owner.rule_id is None
    assert decide(owner, msg(b"a" * 10_000)).action is DENY


# -------------------------------------------------------------------- typed data

TYPED_CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"chain_id": 1}, {"chain_id": 1}, True),
    ({"chain_id": [1, "10"]}, {"chain_id": 10}, True),
    ({"chain_id": 1}, {"chain_id": 5}, False),
    ({"chain_id": 1}, {}, False),
    ({"verifying_contract": CONTRACT.lower()}, {"verifying_contract": CONTRACT}, True),
    ({"verifying_contract": CONTRACT}, {"verifying_contract": CONTRACT.upper()[2:]}, False),
    ({"verifying_contract": CONTRACT}, {"verifying_contract": "0x" + "0" * 40}, False),
    ({"primary_type": "Permit"}, {"primary_type": "Permit"}, True),
    ({"primary_type": "Permit"}, {"primary_type": "permit"}, False),
    ({"fields": {"value": {"le": str(10**24)}}}, {"fields": {"value": 10**24}}, True),
    ({"fields": {"value": {"le": str(10**24)}}}, {"fields": {"value": 10**24 + 1}}, False),
    ({"fields": {"value": {"lt": 10**18}}}, {"fields": {"value": 10**18}}, False),
    ({"fields": {"value": {"ge": "1", "le": "5"}}}, {"fields": {"value": 3}}, True),
    ({"fields": {"value": {"gt": 0}}}, {"fields": {"value": 0}}, False),
    ({"fields": {"value": {"le": 5}}}, {"fields": {"value": "3"}}, False),  # text is no int
    ({"fields": {"value": {"le": 5}}}, {"fields": {"value": True}}, False),  # nor a bool
    ({"fields": {"value": {"le": 5}}}, {"fields": {}}, False),  # missing field
    ({"fields": {"value": {"eq": "7"}}}, {"fields": {"value": 7}}, True),
    ({"fields": {"to": {"eq": CONTRACT}}}, {"fields": {"to": CONTRACT.lower()}}, True),
    ({"fields": {"to": {"in": [CONTRACT, "0x01"]}}}, {"fields": {"to": "0X01"}}, True),
    ({"fields": {"memo": {"eq": "Hi"}}}, {"fields": {"memo": "hi"}}, False),  # text: exact
    ({"fields": {"memo": {"ne": "hi"}}}, {"fields": {"memo": "yo"}}, True),
    ({"fields": {"memo": {"ne": "hi"}}}, {"fields": {}}, False),  # ne needs the field too
    ({"fields": {"ok": {"eq": True}}}, {"fields": {"ok": True}}, True),
    ({"fields": {"ok": {"eq": True}}}, {"fields": {"ok": 1}}, False),
    (
        {"chain_id": 1, "verifying_contract": CONTRACT, "fields": {"value": {"le": 10**18}}},
        {"chain_id": 1, "verifying_contract": CONTRACT, "fields": {"value": 10**17}},
        True,
    ),
]


@pytest.mark.parametrize(("match", "facts", "matches"), TYPED_CASES)
def test_typed_data_conditions(match: dict[str, Any], facts: dict[str, Any], matches: bool) -> None:
    owner = layer({"id": "t", "action": "allow", "match": match})
    assert (decide(owner, typed(**facts), default=DENY).action is ALLOW) is matches


def test_typed_conditions_do_not_hold_for_plain_messages() -> None:
    owner = layer({"id": "t", "action": "allow", "match": {"fields": {"v": {"ne": 1}}}})
    assert decide(owner, msg(b"x"), default=DENY).action is DENY


def test_reprs_hold_no_message_content() -> None:
    request = SigningRequest("sign_message", "ed25519", b"secret order 12345")
    facts = TypedFacts(chain_id=1, fields={"value": 123456789})
    assert "secret" not in repr(request) and "123456789" not in repr(facts)


def test_the_operator_policy_of_the_issue() -> None:
    """Messages starting with ``order:`` under 4 KiB, at most 100 an hour, weekdays 08-20;
    EIP-712 only for chain 1 and one contract with value <= 1 ETH; nothing else. The agent's
    own layer cannot loosen it."""
    admin = layer(
        {
            "id": "orders",
            "action": "allow",
            "match": {"ops": ["sign_message", "sign_batch"], "prefix": "order:", "max_bytes": 4095},
            "limit": {"count": 100, "window_s": 3600},
            "when": {"weekly": [WEEKDAYS]},
        },
        {
            "id": "eip712",
            "action": "allow",
            "match": {
                "ops": "sign_typed_data",
                "chain_id": 1,
                "verifying_contract": CONTRACT,
                "fields": {"value": {"le": str(10**18)}},
            },
        },
        {"id": "rest", "action": "deny", "reason": "not in the operator's policy"},
    )
    agent = layer({"id": "everything", "action": "allow"})
    monday_noon = at("2030-10-28T11:00")
    windows = Windows(durable=False)

    def says(request: SigningRequest, now: float = monday_noon) -> tuple[Action, str | None]:
        d = evaluate(admin, agent, DENY, request, now, windows)
        return d.action, d.rule_id

    assert says(msg(b"order:buy:1")) == (ALLOW, "orders")
    assert says(msg(b"order:" + b"x" * 4090)) == (DENY, "rest")
    assert says(msg(b"transfer:all")) == (DENY, "rest")
    assert says(msg(b"order:buy:1"), at("2030-10-26T11:00")) == (DENY, "rest")  # Saturday
    ok = typed(chain_id=1, verifying_contract=CONTRACT.lower(), fields={"value": 10**18})
    assert says(ok) == (ALLOW, "eip712")
    too_much = typed(chain_id=1, verifying_contract=CONTRACT, fields={"value": 10**18 + 1})
    assert says(too_much) == (DENY, "rest")
    assert says(typed(chain_id=5, verifying_contract=CONTRACT, fields={"value": 1})) == (
        DENY,
        "rest",
    )
    for _ in range(100):
        charge(
            evaluate(admin, agent, DENY, msg(b"order:x"), monday_noon, windows),
            windows,
            monday_noon,
        )
    assert says(msg(b"order:buy:1")) == (DENY, "rest")
