"""Many clients at once: no errors, no lost or doubled wallets, consistent answers."""

from __future__ import annotations

import trio
import trio.testing

from wallet_client import AsyncWalletClient, WalletExistsError
from walletd.server.serve import Server

CLIENTS = 100


async def test_hundred_clients_create_and_sign(server: Server) -> None:
    path = server.config.socket
    results: dict[str, tuple[str, bytes, bytes, bool]] = {}
    all_open = trio.Event()
    opened = 0

    async def agent(n: int) -> None:
        nonlocal opened
        user = f"agent-{n}"
        async with AsyncWalletClient(path, timeout=30) as c:
            await c.hello()  # connected
            opened += 1
            if opened == CLIENTS:
                all_open.set()
            await all_open.wait()  # every connection is open before any wallet is made
            address = await c.create_wallet(user)
            first = await c.sign_message(user, user.encode())
            again = await c.sign_message(user, user.encode())
            valid = await c.verify_signature(user, user.encode(), first)
            assert await c.get_wallet_address(user) == address
            results[user] = (address, first, again, valid)

    async with trio.open_nursery() as nursery:
        for n in range(CLIENTS):
            nursery.start_soon(agent, n)

    assert len(results) == CLIENTS
    addresses = {address for address, _, _, _ in results.values()}
    signatures = {first for _, first, _, _ in results.values()}
    assert len(addresses) == len(signatures) == CLIENTS  # every wallet has its own key
    assert all(first == again and valid for _, first, again, valid in results.values())
    async with AsyncWalletClient(path) as c:
        assert await c.list_wallets() == {user: r[0] for user, r in results.items()}
        # Signatures made concurrently are the ones the wallet makes now.
        for user in ("agent-0", "agent-50", "agent-99"):
            assert await c.sign_message(user, user.encode()) == results[user][1]
        assert (await c.status()).wallets == CLIENTS


async def test_concurrent_creates_of_one_user_make_one_wallet(server: Server) -> None:
    path = server.config.socket

    async def create(user: str, outcomes: list[str | None], ready: trio.Event) -> None:
        async with AsyncWalletClient(path, timeout=30) as c:
            await c.hello()
            await ready.wait()
            try:
                outcomes.append(await c.create_wallet(user))
            except WalletExistsError:
                outcomes.append(None)

    for round_ in range(20):
        user = f"contested-{round_}"
        outcomes: list[str | None] = []
        ready = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(create, user, outcomes, ready)
            nursery.start_soon(create, user, outcomes, ready)
            await trio.testing.wait_all_tasks_blocked()
            ready.set()
        winners = [o for o in outcomes if o is not None]
        assert len(outcomes) == 2 and len(winners) == 1, outcomes
        async with AsyncWalletClient(path) as c:
            assert await c.get_wallet_address(user) == winners[0]
    async with AsyncWalletClient(path) as c:
        assert len(await c.list_wallets()) == 20


async def test_one_client_shared_by_many_tasks(client: AsyncWalletClient) -> None:
    # Concurrent callers of one AsyncWalletClient take turns on its connection; each gets its
    # own answer, never a neighbour's.
    await client.create_wallet("shared")
    expected = {n: await client.sign_message("shared", b"%d" % n) for n in range(50)}
    got: dict[int, bytes] = {}

    async def sign(n: int) -> None:
        got[n] = await client.sign_message("shared", b"%d" % n)

    async with trio.open_nursery() as nursery:
        for n in range(50):
            nursery.start_soon(sign, n)
    assert got == expected
