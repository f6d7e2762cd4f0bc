"""The finite, doubling lockout (issue 12, item 19): the pure rule, then over the wire.

Before this change the default ``lockout_seconds`` was unset, so five wrong answers from any
uid locked a ritual for good; ``test_default_lockout_is_finite_and_doubles`` failed then.
"""

from __future__ import annotations

import pytest

from wallet_client import AsyncWalletClient, RitualLockedError, RitualStep, hash_response
from walletd.config import Config, ConfigError, load_config
from walletd.model.lockout import LockoutRule

from .support import Clock, MakeConfig, StartServer

RIGHT = ["Rex"]
WRONG = ["nope"]


def test_default_settings() -> None:
    config = Config()
    assert config.lockout_seconds == 900.0
    assert config.lockout_max_seconds == 86400.0
    assert load_config(None, {"lockout_seconds": "until_reset"}).lockout_duration is None
    for bad in ({"lockout_max_seconds": 0}, {"lockout_seconds": "never"}):
        with pytest.raises(ConfigError):
            load_config(None, bad)


def test_rule_doubles_and_caps() -> None:
    rule = LockoutRule(max_attempts=5, lockout_seconds=900.0, lockout_max_seconds=3600.0)
    assert [rule.duration(n) for n in (5, 10, 15, 20, 25)] == [900, 1800, 3600, 3600, 3600]
    assert rule.starts_lockout(5) and rule.starts_lockout(10) and not rule.starts_lockout(6)
    assert rule.next_attempt(4, now=7.0) == (5, 7.0)
    assert rule.next_attempt(5, now=7.0) == (6, None)  # counting on after an expired lockout


def test_rule_locked_and_remaining() -> None:
    rule = LockoutRule(max_attempts=5, lockout_seconds=900.0, lockout_max_seconds=86400.0)
    assert not rule.locked(4, None, 0.0) and rule.remaining(4, None, 0.0) == 1
    assert rule.locked(5, 100.0, 999.0) and rule.remaining(5, 100.0, 999.0) == 0
    assert not rule.locked(5, 100.0, 1000.0) and rule.remaining(5, 100.0, 1000.0) == 5
    assert rule.remaining(7, None, 1000.0) == 3
    assert rule.locked(10, 2000.0, 3799.0) and not rule.locked(10, 2000.0, 3800.0)
    # A huge count (years of guessing) neither overflows nor lifts the cap.
    assert rule.duration(5 * 10**6) == 86400.0


def test_rule_without_lockout_seconds_is_for_good() -> None:
    rule = LockoutRule(max_attempts=2, lockout_seconds=None, lockout_max_seconds=86400.0)
    assert rule.duration(2) is None
    assert rule.locked(2, 0.0, 1e12) and rule.remaining(2, 0.0, 1e12) == 0


async def test_default_lockout_is_finite_and_doubles(
    start_server: StartServer, make_config: MakeConfig, clock: Clock
) -> None:
    server = await start_server(make_config(ephemeral=True))
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        await c.create_wallet("alice")
        await c.register_ritual("alice", [RitualStep("Your first pet?", hash_response("Rex"))])
        for _ in range(5):
            assert not await c.initiate_recovery("alice", WRONG)
        assert await c.is_locked("alice")
        clock.advance(899)
        with pytest.raises(RitualLockedError):
            await c.initiate_recovery("alice", RIGHT)
        clock.advance(1)  # the first lockout: 900 s
        assert not await c.is_locked("alice")
        assert await c.get_remaining_attempts("alice") == 5
        for _ in range(5):
            assert not await c.initiate_recovery("alice", WRONG)
        clock.advance(1799)
        assert await c.is_locked("alice")  # the second, in a row: 1800 s
        clock.advance(1)
        assert not await c.is_locked("alice")
        assert await c.initiate_recovery("alice", RIGHT)
        # A success starts the count again: the next lockout is 900 s again.
        for _ in range(5):
            assert not await c.initiate_recovery("alice", WRONG)
        clock.advance(900)
        assert not await c.is_locked("alice")
