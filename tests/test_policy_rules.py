"""Compiling signing-policy documents: every kind of bad document is a PolicyError naming the
rule and the field; good documents normalise and round-trip through ``to_document``."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walletd.model.policy_pattern import MAX_PATTERN_CHARS, is_utf8
from walletd.model.policy_rules import MAX_RULES, PolicyError, compile_layer

TZ = "Europe/Berlin"


def rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r", "action": "allow", **fields}


# (document, text the message must contain)
BAD: list[tuple[Any, str]] = [
    ({"id": "r"}, "must be a list of rules"),
    ([["not", "a", "map"]], "rule [0]: must be a map"),
    ([{"action": "allow"}], "rule [0]: id must be"),
    ([{"id": 7, "action": "allow"}], "rule [0]: id must be"),
    ([{"id": "has space", "action": "allow"}], "rule [0]: id must be"),
    ([{"id": "x" * 65, "action": "allow"}], "rule [0]: id must be"),
    ([rule(), rule()], "rule 'r': id is used by an earlier rule"),
    ([{"id": "r"}], "rule 'r': action must be one of allow, deny, review"),
    ([rule(action="permit")], "rule 'r': action must be one of"),
    ([rule(action=["allow"])], "rule 'r': action must be one of"),
    ([rule(colour="red")], "rule 'r': unknown field 'colour'"),
    ([rule(reason="")], "rule 'r': reason must be text of 1-256"),
    ([rule(reason="a\nb")], "rule 'r': reason must not contain control characters"),
    ([rule(match=[])], "rule 'r': match must be a map"),
    ([rule(match={"size": 3})], "rule 'r': match has unknown field 'size'"),
    ([rule(match={"ops": ["sign_everything"]})], "rule 'r': match.ops must name one of"),
    ([rule(match={"ops": []})], "rule 'r': match.ops must be a value or a list"),
    ([rule(match={"key_types": "rsa"})], "rule 'r': match.key_types must name one of"),
    ([rule(match={"max_bytes": -1})], "rule 'r': match.max_bytes must be an integer of at least 0"),
    ([rule(match={"max_bytes": "lots"})], "rule 'r': match.max_bytes must be an integer"),
    ([rule(match={"max_bytes": True})], "rule 'r': match.max_bytes must be an integer"),
    ([rule(match={"prefix": 5})], "rule 'r': match.prefix must be text or"),
    ([rule(match={"prefix": {"hex": "abc"}})], "rule 'r': match.prefix hex must be an even"),
    ([rule(match={"prefix": {"hex": "zz"}})], "rule 'r': match.prefix hex must be an even"),
    ([rule(match={"prefix": "x" * 1025})], "rule 'r': match.prefix must be 1-1024 bytes"),
    ([rule(match={"prefix": ""})], "rule 'r': match.prefix must be 1-1024 bytes"),
    ([rule(match={"pattern": 5})], "rule 'r': match.pattern must be text"),
    ([rule(match={"pattern": "(a)\\1"})], "rule 'r': match.pattern invalid escape sequence"),
    ([rule(match={"pattern": "(?=x)y"})], "rule 'r': match.pattern invalid perl operator"),
    ([rule(match={"pattern": "a" * (MAX_PATTERN_CHARS + 1)})], "match.pattern longer than 1024"),
    ([rule(match={"pattern": "((((a{100}){100}){100}){100})"})], "rule 'r': match.pattern"),
    ([rule(match={"chain_id": "one"})], "rule 'r': match.chain_id must be an integer"),
    ([rule(match={"chain_id": 0})], "rule 'r': match.chain_id must be an integer of at least 1"),
    ([rule(match={"verifying_contract": "0x12"})], "rule 'r': match.verifying_contract must be"),
    ([rule(match={"primary_type": ""})], "rule 'r': match.primary_type must be text"),
    ([rule(match={"fields": {}})], "rule 'r': match.fields must be a map of 1-32"),
    ([rule(match={"fields": {"value": 5}})], "rule 'r': match.fields.value must be a map of"),
    (
        [rule(match={"fields": {"value": {"between": [1, 2]}}})],
        "rule 'r': match.fields.value.between unknown condition 'between'",
    ),
    (
        [rule(match={"fields": {"value": {"le": "1e18"}}})],
        "rule 'r': match.fields.value.le must be an integer",
    ),
    (
        [rule(match={"fields": {"value": {"lt": True}}})],
        "rule 'r': match.fields.value.lt must be an integer",
    ),
    (
        [rule(match={"fields": {"to": {"in": "0xabc"}}})],
        "rule 'r': match.fields.to.in in must be a list",
    ),
    ([rule(match={"fields": {"to": {"eq": [1]}}})], "match.fields.to.eq operands are integers"),
    ([rule(limit={"count": 0, "window_s": 60})], "rule 'r': limit.count must be a positive"),
    ([rule(limit={"count": -5, "window_s": 60})], "rule 'r': limit.count must be a positive"),
    ([rule(limit={"count": "5", "window_s": 60})], "rule 'r': limit.count must be a positive"),
    ([rule(limit={"count": 5})], "rule 'r': limit.window_s must be a whole number"),
    ([rule(limit={"count": 5, "window_s": 0.5})], "rule 'r': limit.window_s must be a whole"),
    ([rule(limit={"count": 5, "window_s": 60, "burst": 2})], "limit has unknown field 'burst'"),
    ([rule(limit=5)], "rule 'r': limit must be a map"),
    (
        [rule(action="deny", limit={"count": 5, "window_s": 60})],
        "rule 'r': limit is only for allow and review rules",
    ),
    ([rule(when={})], "rule 'r': when must be a map"),
    ([rule(when={"after": 1})], "rule 'r': when has unknown field 'after'"),
    (
        [rule(when={"not_before": 2000, "not_after": 1000})],
        "rule 'r': when.not_after must be later than when.not_before",
    ),
    (
        [rule(when={"not_before": "2030-01-02T00:00:00Z", "not_after": "2030-01-01"})],
        "rule 'r': when.not_after must be later",
    ),
    ([rule(when={"not_before": "next tuesday"})], "rule 'r': when.not_before is not ISO 8601"),
    ([rule(when={"not_after": -1})], "rule 'r': when.not_after must be between 0 and"),
    ([rule(when={"not_after": True})], "rule 'r': when.not_after must be Unix seconds"),
    ([rule(when={"weekly": []})], "rule 'r': when.weekly must be a list of 1-32 maps"),
    (
        [rule(when={"weekly": [{"days": ["funday"], "start": "08:00", "end": "20:00"}]})],
        "rule 'r': when.weekly[0].days: 'funday' is not a day name",
    ),
    (
        [rule(when={"weekly": [{"days": ["mon"], "start": "25:00", "end": "20:00"}]})],
        "rule 'r': when.weekly[0].start must be HH:MM",
    ),
    (
        [rule(when={"weekly": [{"days": ["mon"], "start": "8:00", "end": "20:00"}]})],
        "rule 'r': when.weekly[0].start must be HH:MM",
    ),
    (
        [rule(when={"weekly": [{"days": ["mon"], "start": "08:00", "end": "08:00"}]})],
        "rule 'r': when.weekly[0]: start equals end",
    ),
    (
        [rule(when={"weekly": [{"days": ["mon"], "start": "24:00", "end": "08:00"}]})],
        "rule 'r': when.weekly[0].start must be before 24:00",
    ),
    (
        [rule(when={"weekly": [{"days": ["mon"], "start": "08:00", "end": "20:00", "tz": "UTC"}]})],
        "rule 'r': when.weekly[0] has unknown field 'tz'",
    ),
    ([rule(id=f"r{i}") for i in range(MAX_RULES + 1)], "at most 64 rules, got 65"),
]


@pytest.mark.parametrize(("document", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_documents_are_policy_errors(document: Any, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        compile_layer(document, timezone=TZ)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_an_error_names_the_first_bad_rule_by_id() -> None:
    doc = [rule(id="fine"), rule(id="orders", limit={"count": 0, "window_s": 60})]
    with pytest.raises(PolicyError, match=r"^rule 'orders': limit\.count must be a positive"):
        compile_layer(doc, timezone=TZ)


def test_unknown_timezone_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="timezone 'Mars/Olympus' is not known"):
        compile_layer([], timezone="Mars/Olympus")


def test_an_empty_layer_compiles() -> None:
    layer = compile_layer([], timezone=TZ)
    assert len(layer) == 0
    assert layer.to_document() == []


FULL = [
    {
        "id": "orders",
        "action": "allow",
        "reason": "agent orders",
        "match": {
            "ops": "sign_message",
            "key_types": ["hmac-sha256", "ed25519", "hmac-sha256"],
            "max_bytes": "4096",
            "prefix": "order:",
            "pattern": "order:[a-z0-9:]+",
        },
        "limit": {"count": 100, "window_s": 3600},
        "when": {
            "not_before": "2030-01-01T00:00:00+00:00",
            "not_after": 1_950_000_000,
            "weekly": [{"days": ["FRI", "mon", "mon"], "start": "08:00", "end": "20:00"}],
        },
    },
    {
        "id": "eip712",
        "action": "review",
        "match": {
            "ops": ["sign_typed_data"],
            "chain_id": "1",
            "verifying_contract": "0xAbCdEf0123456789aBcDeF0123456789AbCdEf01",
            "primary_type": ["Order", "Permit"],
            "fields": {
                "value": {"le": str(10**24), "gt": 0},
                "to": {"in": ["0xAA", 5, True]},
                "memo": {"ne": "x"},
            },
        },
    },
    {"id": "bin", "action": "deny", "match": {"prefix": {"hex": "DEADbeef"}}},
]


def test_to_document_normalises() -> None:
    doc = compile_layer(FULL, timezone=TZ).to_document()
    orders, eip712, binary = doc
    assert orders["match"] == {
        "ops": ["sign_message"],
        "key_types": ["hmac-sha256", "ed25519"],
        "max_bytes": 4096,
        "prefix": "order:",
        "pattern": "order:[a-z0-9:]+",
    }
    assert orders["when"] == {
        "not_before": 1_893_456_000,
        "not_after": 1_950_000_000,
        "weekly": [{"days": ["mon", "fri"], "start": "08:00", "end": "20:00"}],
    }
    assert eip712["match"]["chain_id"] == [1]
    assert eip712["match"]["verifying_contract"] == ["0xabcdef0123456789abcdef0123456789abcdef01"]
    # Big integers come back as decimal text: MessagePack ints stop at 64 bits.
    assert eip712["match"]["fields"]["value"] == {"le": str(10**24), "gt": 0}
    assert eip712["match"]["fields"]["to"] == {"in": ["0xAA", 5, True]}
    assert binary == {"id": "bin", "action": "deny", "match": {"prefix": {"hex": "deadbeef"}}}


def test_to_document_round_trips() -> None:
    once = compile_layer(FULL, timezone=TZ).to_document()
    assert compile_layer(once, timezone=TZ).to_document() == once


def test_to_document_is_a_copy() -> None:
    layer = compile_layer(FULL, timezone=TZ)
    layer.to_document()[0]["id"] = "changed"
    assert layer.to_document()[0]["id"] == "orders"


def test_naive_iso_times_are_read_in_the_configured_timezone() -> None:
    doc = [rule(when={"not_before": "2030-07-01T12:00:00"})]
    berlin = compile_layer(doc, timezone="Europe/Berlin").to_document()[0]["when"]
    utc = compile_layer(doc, timezone="UTC").to_document()[0]["when"]
    assert utc["not_before"] - berlin["not_before"] == 2 * 3600  # CEST is UTC+2


def test_the_input_document_is_not_changed() -> None:
    import copy

    before = copy.deepcopy(FULL)
    compile_layer(FULL, timezone=TZ)
    assert before == FULL


def test_the_policy_model_imports_no_io() -> None:
    """walletd.model is pure: no trio, sqlite3 or socket, nothing of walletd outside it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import walletd.model.policy_eval, walletd.model.policy_rules, walletd.model.rate_window\n"
        "bad = [m for m in ('trio', 'sqlite3', 'socket') if m in sys.modules]\n"
        "bad += [m for m in sys.modules if m.startswith('walletd.')"
        " and not m.startswith('walletd.model')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _strict_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(
    parts=st.lists(
        st.one_of(
            st.binary(max_size=8),
            st.text(max_size=4).map(lambda t: t.encode("utf-8", "surrogatepass")),
            st.sampled_from([b"\xef\xbf\xbd", b"\xef\xbf", b"\xbd", b"\xed\xa0\x80", b"\xf4\x90"]),
        ),
        max_size=6,
    )
)
def test_the_utf8_check_agrees_with_the_strict_decoder(parts: list[bytes]) -> None:
    # Without raising: real U+FFFD characters, broken ones, surrogates and out-of-range
    # code points spelled in UTF-8, and random bytes around them.
    data = b"".join(parts)
    assert is_utf8(data) is _strict_utf8(data)
