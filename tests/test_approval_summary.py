"""The approver's summary: text only when it is safe to show, typed data decoded, bounded."""

from __future__ import annotations

import hashlib
import json

import pytest

from walletd.model.approval_summary import printable, summarize_message, summarize_typed
from walletd_wire.eip712 import parse_typed_data


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (b"order:buy 1 BTC", "text"),
        (b"Sign in to example.org\nNonce: 42\tok", "text"),  # SIWE-style lines are text
        ("caf\u00e9 \u2603".encode(), "text"),
        (b"", "text"),
        (b"\xff\xfe\x00binary", "binary"),  # not UTF-8
        (b"clear\x1b[2J\x1b[Hthe screen", "binary"),  # an escape sequence for the terminal
        ("pay \u202eHTE 5\u202c".encode(), "binary"),  # a bidi override reorders what is shown
        ("zero\u200bwidth".encode(), "binary"),  # an invisible character
        (b"nul\x00inside", "binary"),
        (b"bell\x07", "binary"),
    ],
)
def test_only_printable_utf8_is_shown_as_text(message: bytes, kind: str) -> None:
    summary = summarize_message(message)
    assert summary["kind"] == kind
    assert summary["length"] == len(message)
    assert summary["sha256"] == hashlib.sha256(message).hexdigest()
    if kind == "text":
        assert summary["text"] == message.decode() and summary["truncated"] is False
    else:
        assert "text" not in summary


@pytest.mark.parametrize(
    ("message", "max_text", "max_bytes"),
    [
        (b"a" * 5000, 1024, 4096),  # cut by characters
        ("\u2603".encode() * 3000, 3000, 4096),  # 3 bytes each: cut by bytes
        ("\U0001f600".encode() * 2000, 2000, 1000),  # never cut inside a character
    ],
)
def test_long_text_is_cut_and_the_summary_stays_bounded(
    message: bytes, max_text: int, max_bytes: int
) -> None:
    summary = summarize_message(message, max_text=max_text, max_bytes=max_bytes)
    text = summary["text"]
    assert isinstance(text, str) and summary["truncated"] is True
    assert message.decode().startswith(text)
    assert len(text) <= max_text
    assert len(json.dumps(summary, ensure_ascii=False).encode()) <= max_bytes


def _doc(message: dict[str, object], **types: list[dict[str, str]]) -> dict[str, object]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **types,
        },
        "primaryType": "Transfer",
        "domain": {
            "name": "Pay\x1b[31m",
            "chainId": 1,
            "verifyingContract": "0x" + "ab" * 20,
        },
        "message": message,
    }


TRANSFER = [
    {"name": "to", "type": "Party"},
    {"name": "value", "type": "uint256"},
    {"name": "memo", "type": "bytes"},
    {"name": "tags", "type": "string[]"},
]
PARTY = [{"name": "wallet", "type": "address"}, {"name": "name", "type": "string"}]


def test_typed_data_shows_domain_primary_type_and_flattened_fields() -> None:
    typed = parse_typed_data(
        _doc(
            {
                "to": {"wallet": "0x" + "cd" * 20, "name": "Bob\u202e"},
                "value": 10**30,
                "memo": "0x00ff",
                "tags": ["a", "b"],
            },
            Transfer=TRANSFER,
            Party=PARTY,
        )
    )
    summary = summarize_typed(
        primary_type=typed.primary_type,
        domain=typed.domain,
        message=typed.message,
        digest=typed.digest(),
    )
    assert summary["kind"] == "typed_data" and summary["primary_type"] == "Transfer"
    assert summary["digest"] == "0x" + typed.digest().hex()
    domain = summary["domain"]
    assert isinstance(domain, dict)
    assert domain["chainId"] == "1"
    assert domain["name"] == "Pay\\x1b[31m"  # escaped, so the terminal shows it as is
    fields = summary["fields"]
    assert isinstance(fields, dict)
    assert fields["value"] == str(10**30)  # decimal, whatever its size
    assert fields["to.name"] == "Bob\\u202e"
    assert fields["memo"] == "0x00ff"
    assert fields["tags"] == "[2 items]" and fields["tags[1]"] == "b"
    assert fields["to.wallet"].lower() == "0x" + "cd" * 20
    assert summary["omitted_fields"] == 0


def test_typed_data_past_the_bound_omits_fields_and_counts_them() -> None:
    many = [{"name": f"f{i}", "type": "string"} for i in range(60)]
    typed = parse_typed_data(_doc({f"f{i}": "x" * 150 for i in range(60)}, Transfer=many))
    summary = summarize_typed(
        primary_type=typed.primary_type, domain=typed.domain, message=typed.message, max_bytes=2048
    )
    fields = summary["fields"]
    assert isinstance(fields, dict)
    assert 0 < len(fields) < 60
    assert summary["omitted_fields"] == 60 - len(fields)
    assert len(json.dumps(summary).encode()) <= 2048 + 512  # bounded (json adds escapes)


def test_a_long_typed_value_is_cut() -> None:
    typed = parse_typed_data(_doc({"s": "y" * 1000}, Transfer=[{"name": "s", "type": "string"}]))
    summary = summarize_typed(
        primary_type=typed.primary_type, domain=typed.domain, message=typed.message, max_value=50
    )
    fields = summary["fields"]
    assert isinstance(fields, dict)
    assert fields["s"] == "y" * 50 + "…"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain", "plain"),
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
        ("a\nb", "a\\x0ab"),  # one line in the watch view
        ("\u202e", "\\u202e"),
        ("\U000e0001", "\\U000e0001"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_cuts_at_its_limit() -> None:
    assert printable("x" * 10, 4) == "xxxx…"
