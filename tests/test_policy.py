"""The rotation policy: defaults from the configuration, per-wallet overrides, validation,
what needs_rotation / rotation_status report, and the audit trail of policy changes."""

from __future__ import annotations

from typing import Any

import pytest

from wallet_client import (
    AsyncWalletClient,
    InvalidArgumentError,
    ProtocolError,
    WalletError,
    WalletNotFoundError,
)
from walletd_wire import RotationPolicy

from .support import Clock, MakeConfig, StartServer, running

DAY = 86400.0


async def test_default_policy(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    assert await client.get_policy("alice") == RotationPolicy(90, 10000, False)
    status = await client.rotation_status("alice")
    assert status.policy == RotationPolicy(90, 10000, False)
    assert not status.needs_rotation
    assert status.reasons == []
    assert not await client.needs_rotation("alice")


async def test_default_policy_comes_from_the_configuration(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    config = make_config(
        ephemeral=True,
        rotation_max_age_days=7,
        rotation_max_signatures=50,
        rotation_auto_rotate=True,
    )
    server = await start_server(config)
    async with AsyncWalletClient(server.config.socket) as c:
        await c.create_wallet("alice")
        assert await c.get_policy("alice") == RotationPolicy(7, 50, True)


async def test_set_policy_changes_only_what_is_given(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    await client.create_wallet("bob")
    assert await client.set_policy("alice", max_signatures=5) == RotationPolicy(90, 5, False)
    assert await client.set_policy("alice", auto_rotate=True) == RotationPolicy(90, 5, True)
    assert await client.set_policy("alice", max_age_days=30) == RotationPolicy(30, 5, True)
    assert await client.set_policy("alice") == RotationPolicy(30, 5, True)
    assert await client.get_policy("alice") == RotationPolicy(30, 5, True)
    assert await client.get_policy("bob") == RotationPolicy(90, 10000, False)  # untouched


@pytest.mark.parametrize(
    "values",
    [
        {"max_signatures": 0},
        {"max_signatures": -1},
        {"max_signatures": 10**12 + 1},
        {"max_age_days": 0},
        {"max_age_days": -5},
        {"max_age_days": 36501},
        {"max_age_days": 30, "max_signatures": 0},  # one bad value refuses the whole change
    ],
)
async def test_invalid_values_are_refused(
    client: AsyncWalletClient, values: dict[str, Any]
) -> None:
    await client.create_wallet("alice")
    with pytest.raises(InvalidArgumentError):
        await client.set_policy("alice", **values)
    assert await client.get_policy("alice") == RotationPolicy(90, 10000, False)


async def test_values_of_the_wrong_type_are_refused(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    for values in ({"max_signatures": 5.5}, {"max_age_days": "30"}, {"auto_rotate": "yes"}):
        with pytest.raises(ProtocolError) as info:
            await client.set_policy("alice", **values)
        assert info.value.code == "bad_request"
    assert await client.get_policy("alice") == RotationPolicy(90, 10000, False)


async def test_bounds_are_accepted(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    assert await client.set_policy("alice", max_age_days=36500, max_signatures=10**12) == (
        RotationPolicy(36500, 10**12, False)
    )
    assert await client.set_policy("alice", max_age_days=1, max_signatures=1) == (
        RotationPolicy(1, 1, False)
    )


async def test_policy_of_unknown_wallet(client: AsyncWalletClient) -> None:
    with pytest.raises(WalletNotFoundError):
        await client.get_policy("ghost")
    with pytest.raises(WalletNotFoundError):
        await client.set_policy("ghost", max_signatures=3)
    with pytest.raises(WalletNotFoundError):
        await client.needs_rotation("ghost")
    with pytest.raises(WalletError) as info:
        await client.rotation_status("bad\x00id")
    assert info.value.code == "invalid_argument"


async def test_rotation_status_reports_both_reasons(
    client: AsyncWalletClient, clock: Clock
) -> None:
    await client.create_wallet("alice")
    await client.set_policy("alice", max_age_days=10, max_signatures=2)
    await client.sign_message("alice", b"1")
    clock.advance(2.5 * DAY)
    status = await client.rotation_status("alice")
    assert not status.needs_rotation
    assert status.signature_count == 1
    assert status.key_age_days == 2.5
    await client.sign_message("alice", b"2")
    assert (await client.rotation_status("alice")).reasons == ["max_signatures"]
    clock.advance(7.5 * DAY)
    status = await client.rotation_status("alice")
    assert status.reasons == ["max_age", "max_signatures"]
    assert status.needs_rotation
    assert status.policy == RotationPolicy(10, 2, False)
    # Raising the limits clears the breach without a rotation.
    await client.set_policy("alice", max_age_days=11, max_signatures=3)
    assert not await client.needs_rotation("alice")


async def test_lowering_the_limit_below_the_count_rotates_at_once(
    client: AsyncWalletClient,
) -> None:
    address = await client.create_wallet("alice")
    for i in range(4):
        await client.sign_message("alice", b"%d" % i)
    await client.set_policy("alice", max_signatures=3)  # auto_rotate off: reported only
    assert await client.get_wallet_address("alice") == address
    assert await client.needs_rotation("alice")
    await client.set_policy("alice", auto_rotate=True)  # now enforced: the key may not sign
    new_address = await client.get_wallet_address("alice")
    assert new_address != address
    [record] = await client.rotation_history("alice")
    assert (record.old_wallet_id, record.new_wallet_id) == (address, new_address)
    assert record.reason == "policy:max_signatures"
    assert not await client.needs_rotation("alice")


async def test_policy_changes_are_audited(client: AsyncWalletClient) -> None:
    address = await client.create_wallet("alice")
    await client.set_policy("alice", max_signatures=5, auto_rotate=True)
    await client.set_policy("alice")  # nothing given: nothing changes, nothing is recorded
    records = await client.audit_log("alice")
    assert [r.event for r in records] == ["wallet_created", "policy_changed"]
    change = records[1]
    assert change.addresses == [address]
    assert change.detail == {"max_age_days": 90, "max_signatures": 5, "auto_rotate": True}
    assert change.outcome == "ok"
    with pytest.raises(InvalidArgumentError):
        await client.set_policy("alice", max_signatures=0)
    assert len(await client.audit_log("alice")) == 2  # a refused change is not a change


async def test_overrides_survive_a_restart_and_defaults_follow_the_config(
    make_config: MakeConfig, clock: Clock
) -> None:
    async with running(make_config(), clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            await c.create_wallet("alice")
            await c.create_wallet("bob")
            await c.set_policy("alice", max_signatures=5, auto_rotate=True)
    config = make_config(rotation_max_age_days=45, rotation_max_signatures=700)
    async with running(config, clock) as server:
        async with AsyncWalletClient(server.config.socket) as c:
            assert await c.get_policy("alice") == RotationPolicy(45, 5, True)
            assert await c.get_policy("bob") == RotationPolicy(45, 700, False)
