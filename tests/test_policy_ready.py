"""The gate's prepared admissions (``PolicyState.ready``) never outlive what they came from.

A watched wallet's request finds its policy and compiled admission in ``state.ready`` (one
dict lookup). Every change of layers, pauses, the default or the set of wallets empties it
(``PolicyState.refresh_watched``). These tests sign first, so that an entry exists, then
change the policy in each way the daemon can and require the next answer to follow the
change. The last one walks a seeded random sequence of changes and signatures and requires
every signature to be decided as ``explain_signing`` (the interpreted evaluator over the
live state, never the cache) said just before.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from wallet_client import AsyncWalletClient, PolicyDeniedError, SigningPausedError
from walletd.config import SigningConfig
from walletd.server.serve import Server

from .support import MakeConfig, StartServer

ORDERS_ONLY: list[dict[str, Any]] = [
    {"id": "orders", "action": "allow", "match": {"prefix": "order:"}},
    {"id": "rest", "action": "deny"},
]
NO_ORDERS: list[dict[str, Any]] = [
    {"id": "no-orders", "action": "deny", "match": {"prefix": "order:"}}
]
ANYTHING: list[dict[str, Any]] = [
    {"id": "any", "action": "allow", "limit": {"count": 10**6, "window_s": 60}}
]


def ready_keys(server: Server) -> set[tuple[str, str, str]]:
    return set(server.daemon.ctx.policy.ready)


async def test_a_signature_prepares_an_entry_and_a_new_layer_empties_them(
    client: AsyncWalletClient, server: Server
) -> None:
    await client.create_wallet("w")
    await client.set_signing_policy("w", "owner", ORDERS_ONLY, 0)
    assert await client.sign_message("w", b"order:1")
    assert ready_keys(server) == {("sign_message", "w", "hmac-sha256")}
    # Tighter: the prepared admission of the old layer must not answer.
    await client.set_signing_policy("w", "owner", NO_ORDERS, 1)
    assert ready_keys(server) == set()
    with pytest.raises(PolicyDeniedError, match="no-orders"):
        await client.sign_message("w", b"order:2")
    # And the admin layer, set over an owner layer already prepared again.
    assert await client.sign_message("w", b"transfer:1")
    await client.set_signing_policy("w", "admin", ORDERS_ONLY, 0)
    with pytest.raises(PolicyDeniedError, match="'rest'"):
        await client.sign_message("w", b"transfer:1")


async def test_batches_and_single_signatures_have_their_own_entries(
    client: AsyncWalletClient, server: Server
) -> None:
    await client.create_wallet("b")
    await client.set_signing_policy("b", "owner", ORDERS_ONLY, 0)
    items = await client.sign_batch("b", [b"order:1", b"x"])
    assert items[0].error is None and items[1].error is not None
    assert await client.sign_message("b", b"order:1")
    assert ready_keys(server) == {
        ("sign_batch", "b", "hmac-sha256"),
        ("sign_message", "b", "hmac-sha256"),
    }
    await client.set_signing_policy("b", "owner", NO_ORDERS, 1)
    items = await client.sign_batch("b", [b"order:1", b"x"])
    assert items[0].error is not None and items[1].error is None


async def test_a_pause_and_its_resume_are_followed_at_once(
    client: AsyncWalletClient, server: Server
) -> None:
    await client.create_wallet("p")
    await client.set_signing_policy("p", "owner", ANYTHING, 0)
    assert await client.sign_message("p", b"x")
    await client.pause_signing("wallet", user_id="p")
    assert ready_keys(server) == set()
    with pytest.raises(SigningPausedError):
        await client.sign_message("p", b"x")
    await client.resume_signing("wallet", user_id="p")
    assert await client.sign_message("p", b"x")


async def test_a_wallet_deleted_and_created_again_gets_its_new_policy_and_key_type(
    client: AsyncWalletClient, server: Server
) -> None:
    await client.create_wallet("d")
    await client.set_signing_policy("d", "owner", ANYTHING, 0)
    assert len(await client.sign_message("d", b"order:1")) == 32  # HMAC-SHA256
    await client.delete_wallet("d")
    assert ready_keys(server) == set()
    await client.create_wallet("d", "ed25519")
    await client.set_signing_policy("d", "owner", NO_ORDERS, 0)
    with pytest.raises(PolicyDeniedError, match="no-orders"):
        await client.sign_message("d", b"order:1")
    assert len(await client.sign_message("d", b"transfer:1")) == 64  # Ed25519
    assert ready_keys(server) == {("sign_message", "d", "ed25519")}


async def test_a_reloaded_default_is_followed_by_prepared_wallets(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    config = make_config(ephemeral=True)
    reloaded = make_config(ephemeral=True, signing=SigningConfig(default="deny"))
    server = await start_server(config, reload_config=lambda: reloaded)
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        await c.create_wallet("r")
        # No rule matches "x": the owner layer yields the daemon's default.
        await c.set_signing_policy("r", "owner", NO_ORDERS, 0)
        assert await c.sign_message("r", b"x")
        assert ready_keys(server) == {("sign_message", "r", "hmac-sha256")}
        server.reload()
        with pytest.raises(PolicyDeniedError, match="default"):
            await c.sign_message("r", b"x")


LAYERS: list[list[dict[str, Any]]] = [[], ORDERS_ONLY, NO_ORDERS, ANYTHING]


async def test_every_signature_is_decided_as_explained_across_random_changes(
    client: AsyncWalletClient, server: Server
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    versions = {("a", "admin"): 0, ("a", "owner"): 0, ("b", "admin"): 0, ("b", "owner"): 0}
    for user in ("a", "b"):
        await client.create_wallet(user)
    for step in range(120):
        user = rng.choice(["a", "b"])
        what = rng.random()
        if what < 0.25:
            layer = rng.choice(["admin", "owner"])
            await client.set_signing_policy(user, layer, rng.choice(LAYERS), versions[user, layer])
            versions[user, layer] += 1
        elif what < 0.32:
            await client.pause_signing("wallet", user_id=user)
        elif what < 0.4:
            await client.resume_signing("wallet", user_id=user)
        else:
            message = rng.choice([b"order:1", b"transfer:1", b"x"])
            said = await client.explain_signing(user, message)
            where = f"seed {seed}, step {step}: {user} {message!r} explained {said}"
            if said.paused:
                with pytest.raises(SigningPausedError):
                    await client.sign_message(user, message)
            elif said.action == "allow":
                assert await client.sign_message(user, message), where
            else:
                with pytest.raises(PolicyDeniedError):
                    await client.sign_message(user, message)
