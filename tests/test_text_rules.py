"""Text a person reads: ritual prompts and new user ids (issue 12, item 13).

On main before this change a prompt such as "\\x1b[2J" (clear the screen) was stored and shown
to whoever recovers, and "e\\u0301" and "alice\\u202e" were accepted as new user ids:
``test_prompt_with_control_characters_is_refused`` and ``test_new_user_ids_*`` failed then.
"""

from __future__ import annotations

import pytest

from wallet_client import AsyncWalletClient, InvalidArgumentError, RitualStep, hash_response
from walletd.errors import InvalidArgument
from walletd.model.validation import check_new_user_id, check_prompt, check_user_id

from .support import MakeConfig, StartServer

HASH = hash_response("Rex")

CONTROL_PROMPTS = [
    "\x1b[2JYour first pet?",  # an ANSI escape: clears the answering person's screen
    "Your first pet?\r\nAnswer: Rex",  # a carriage return rewrites the line
    "pet\x00?",
    "pet\x7f?",
    "pet\x9b?",  # C1 control (CSI)
    "Your \u202efirst pet?",  # right-to-left override reorders what is read
    "Your\u200bfirst pet?",  # zero-width space
    "Your first pet?\u2028Answer: Rex",  # line separator
]

INVISIBLE_IDS = ["alice\u202e", "al\u200bice", "\ufeffalice", "alice\u2029", "al\u2066ice"]


@pytest.mark.parametrize("prompt", CONTROL_PROMPTS)
def test_check_prompt_refuses_control_and_format_characters(prompt: str) -> None:
    with pytest.raises(InvalidArgument, match="control characters"):
        check_prompt(prompt, 1)


ORDINARY = ["Your first pet?", "Ваш первый питомец?", "最初のペット\uff1f", "\U0001f436?"]


@pytest.mark.parametrize("prompt", ORDINARY)
def test_check_prompt_accepts_ordinary_text(prompt: str) -> None:
    assert check_prompt(prompt, 1) == prompt


def test_check_prompt_keeps_its_size_rule() -> None:
    for bad in ("", "x" * 1025):
        with pytest.raises(InvalidArgument, match="1-1024 bytes"):
            check_prompt(bad, 2)


@pytest.mark.parametrize("user_id", INVISIBLE_IDS)
def test_new_user_ids_refuse_invisible_characters(user_id: str) -> None:
    with pytest.raises(InvalidArgument, match="invisible"):
        check_new_user_id(user_id)


def test_new_user_ids_must_be_nfc() -> None:
    decomposed = "jose\u0301"  # "josé" as e + combining acute
    with pytest.raises(InvalidArgument, match="NFC"):
        check_new_user_id(decomposed)
    assert check_new_user_id("jos\u00e9") == "jos\u00e9"
    # Looking an existing id up is exact: a wallet an older daemon made stays reachable.
    assert check_user_id(decomposed) == decomposed


def test_confusables_are_allowed_and_distinct() -> None:
    latin, cyrillic = "alice", "\u0430lice"  # Cyrillic a
    assert check_new_user_id(latin) != check_new_user_id(cyrillic)


async def test_over_the_wire(start_server: StartServer, make_config: MakeConfig) -> None:
    server = await start_server(make_config(ephemeral=True))
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        await c.create_wallet("alice")
        for prompt in CONTROL_PROMPTS:
            with pytest.raises(InvalidArgumentError, match="prompt 1 must not contain"):
                await c.register_ritual("alice", [RitualStep(prompt, HASH)])
        assert not await c.has_ritual("alice")  # nothing was stored
        for user_id in [*INVISIBLE_IDS, "jose\u0301"]:
            with pytest.raises(InvalidArgumentError, match="user_id must"):
                await c.create_wallet(user_id)
        # Confusables are separate wallets, as the uid that owns each is what counts.
        await c.create_wallet("\u0430lice")
        assert set(await c.list_wallets()) >= {"alice", "\u0430lice"}
