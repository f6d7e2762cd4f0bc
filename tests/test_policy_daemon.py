"""The signing policy enforced by a real (in-process) daemon over its socket.

Time is the injected wall clock (``clock``, tests/support.Clock): limits, time windows and the
per-minute aggregation of denial records are driven by advancing it, never by sleeping.
"""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import trio

from wallet_client import (
    AsyncWalletClient,
    InvalidArgumentError,
    PendingApproval,
    PolicyDeniedError,
    SigningPausedError,
)
from walletd.config import ConfigError, SigningConfig, load_config
from walletd.server.serve import Server

from . import policy_children
from .support import ROOT, Clock, MakeConfig, StartServer, call_as_nobody, running, wait_until

ORDERS_ONLY: list[dict[str, Any]] = [
    {"id": "orders", "action": "allow", "match": {"prefix": "order:"}},
    {"id": "rest", "action": "deny", "reason": "orders only"},
]


#: The operator example of issue 15, as docs/OPERATIONS.md shows it (the same file).
EXAMPLE = ROOT / "docs" / "signing-policy.example.toml"
CONTRACT = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def OPERATOR_EXAMPLE() -> dict[str, Any]:
    with open(EXAMPLE, "rb") as f:
        return tomllib.load(f)


def permit(*, value: int, chain_id: int = 1, contract: str = CONTRACT) -> dict[str, Any]:
    """An EIP-712 document with a ``value`` field, for typed-data rules."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Payment": [
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
            ],
        },
        "primaryType": "Payment",
        "domain": {"name": "Shop", "chainId": chain_id, "verifyingContract": contract},
        "message": {"to": "0x" + "11" * 20, "value": value},
    }


async def open_client(server: Server) -> AsyncWalletClient:
    return AsyncWalletClient(server.config.socket, timeout=10)


async def test_a_wallet_without_rules_signs_as_before(
    client: AsyncWalletClient, server: Server
) -> None:
    await client.create_wallet("plain")
    # The sign path's one check: a wallet without rules is not watched.
    assert "plain" not in server.daemon.ctx.policy.watched
    policy = await client.get_signing_policy("plain")
    assert (policy.admin.version, policy.owner.version) == (0, 0)
    assert policy.admin.rules == [] and policy.default == "allow"
    assert await client.sign_message("plain", b"anything")


async def test_owner_rules_decide_and_name_the_rule_never_the_message(
    client: AsyncWalletClient,
) -> None:
    await client.create_wallet("agent")
    await client.set_signing_policy("agent", "owner", ORDERS_ONLY, 0)
    assert await client.sign_message("agent", b"order:1")
    with pytest.raises(PolicyDeniedError) as refused:
        await client.sign_message("agent", b"transfer:secret-content")
    assert "'rest'" in refused.value.message and "owner" in refused.value.message
    assert "secret-content" not in refused.value.message


async def test_compare_and_set_conflicts(client: AsyncWalletClient) -> None:
    await client.create_wallet("cas")
    first = await client.set_signing_policy("cas", "admin", ORDERS_ONLY, 0)
    assert first.admin.version == 1
    with pytest.raises(InvalidArgumentError, match="version 1"):
        await client.set_signing_policy("cas", "admin", [], 0)
    assert (await client.get_signing_policy("cas")).admin.rules == first.admin.rules
    second = await client.set_signing_policy("cas", "admin", [], 1)
    assert second.admin.version == 2 and second.admin.rules == []


# --------------------------------------------------------------------------- layers and uids


@pytest.fixture
async def shared_server(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> Server:
    """An in-process server whose socket other uids can reach."""
    run = open_tmp / "run"
    run.mkdir(mode=0o755)
    run.chmod(0o755)
    config = make_config(ephemeral=True, socket=str(run / "walletd.sock"), socket_mode=0o666)
    started: Server = await start_server(config)
    return started


@pytest.mark.root
async def test_the_owner_cannot_write_the_admin_layer_nor_loosen_it(shared_server: Server) -> None:
    path = shared_server.config.socket
    tried = await trio.to_thread.run_sync(
        lambda: call_as_nobody(policy_children.owner_tries_to_loosen, path, "agent")
    )
    assert tried == {"admin": "forbidden", "owner": ["ok", 1]}
    async with await open_client(shared_server) as admin:
        assert (await admin.get_signing_policy("agent")).admin.version == 0
        await admin.set_signing_policy("agent", "admin", ORDERS_ONLY, 0)
    signed = await trio.to_thread.run_sync(
        lambda: call_as_nobody(policy_children.sign_as_owner, path, "agent", "order:1")
    )
    assert signed[0] == "ok"
    # The owner's allow-everything rule does not loosen the admin's deny.
    refused = await trio.to_thread.run_sync(
        lambda: call_as_nobody(policy_children.sign_as_owner, path, "agent", "transfer")
    )
    assert refused[0] == "policy_denied" and "admin layer" in refused[1]
    paused = await trio.to_thread.run_sync(
        lambda: call_as_nobody(policy_children.owner_pauses, path)
    )
    assert paused[0] == "forbidden"


async def test_the_owner_layer_tightens_what_the_admin_allows(client: AsyncWalletClient) -> None:
    await client.create_wallet("w")
    await client.set_signing_policy("w", "admin", [{"id": "all", "action": "allow"}], 0)
    await client.set_signing_policy(
        "w", "owner", [{"id": "no-big", "action": "deny", "match": {"prefix": "big:"}}], 0
    )
    assert await client.sign_message("w", b"small:1")
    with pytest.raises(PolicyDeniedError, match="'no-big' of the owner layer"):
        await client.sign_message("w", b"big:1")


async def test_review_holds_the_signature_for_approval(client: AsyncWalletClient) -> None:
    await client.create_wallet("r")
    await client.set_signing_policy("r", "admin", [{"id": "ask", "action": "review"}], 0)
    explained = await client.explain_signing("r", b"x")
    assert (explained.action, explained.rule_id) == ("review", "ask")
    with pytest.raises(PendingApproval) as held:  # issue 16: held for a person, not refused
        await client.sign_message("r", b"x")
    assert [p.approval_id for p in await client.list_pending()] == [held.value.approval_id]
    # A batch cannot wait for a person: its item sent to review is refused on its own.
    (item,) = await client.sign_batch("r", [b"x"])
    assert item.error is not None and item.error.code == "policy_denied"


async def test_default_deny_refuses_wallets_without_rules(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config(ephemeral=True, signing=SigningConfig(default="deny")))
    async with await open_client(server) as c:
        await c.create_wallet("d")
        with pytest.raises(PolicyDeniedError, match="default"):
            await c.sign_message("d", b"x")
        await c.set_signing_policy("d", "admin", ORDERS_ONLY[:1], 0)
        await c.set_signing_policy("d", "owner", ORDERS_ONLY[:1], 0)
        assert await c.sign_message("d", b"order:1")


# --------------------------------------------------------------------------- bad documents

BAD_DOCUMENTS: list[tuple[str, Any]] = [
    ("not a map", ["allow"]),
    ("unknown field", [{"id": "a", "action": "allow", "colour": "red"}]),
    ("wrong type", [{"id": "a", "action": "allow", "match": {"max_bytes": "big"}}]),
    ("bad pattern", [{"id": "a", "action": "allow", "match": {"pattern": "(a"}}]),
    ("backreference", [{"id": "a", "action": "allow", "match": {"pattern": "(a)\\1"}}]),
    ("negative count", [{"id": "a", "action": "allow", "limit": {"count": -1, "window_s": 60}}]),
    ("zero window", [{"id": "a", "action": "allow", "limit": {"count": 1, "window_s": 0}}]),
    (
        "impossible window",
        [{"id": "a", "action": "allow", "when": {"not_before": 200, "not_after": 100}}],
    ),
    ("bad weekday", [{"id": "a", "action": "allow", "when": {"weekly": [{"days": ["xyz"]}]}}]),
    ("limit on deny", [{"id": "a", "action": "deny", "limit": {"count": 1, "window_s": 60}}]),
    ("duplicate id", [{"id": "a", "action": "allow"}, {"id": "a", "action": "deny"}]),
    ("unknown action", [{"id": "a", "action": "maybe"}]),
    ("too many rules", [{"id": f"r{i}", "action": "allow"} for i in range(65)]),
    ("bad id", [{"id": "", "action": "allow"}]),
]


@pytest.mark.parametrize(("what", "rules"), BAD_DOCUMENTS, ids=[b[0] for b in BAD_DOCUMENTS])
async def test_bad_documents_are_invalid_argument_and_change_nothing(
    client: AsyncWalletClient, what: str, rules: Any
) -> None:
    await client.create_wallet("bad")
    before = await client.set_signing_policy("bad", "owner", ORDERS_ONLY, 0)
    with pytest.raises(InvalidArgumentError, match="invalid signing policy"):
        await client.set_signing_policy("bad", "owner", rules, 1)
    after = await client.get_signing_policy("bad")
    assert after.owner == before.owner
    assert await client.sign_message("bad", b"order:still")


async def test_a_bad_layer_name_is_invalid_argument(client: AsyncWalletClient) -> None:
    await client.create_wallet("l")
    with pytest.raises(InvalidArgumentError, match="layer"):
        await client.set_signing_policy("l", "root", [], 0)


# --------------------------------------------------------------------------- limits, batches


HOURLY: list[dict[str, Any]] = [
    {"id": "hourly", "action": "allow", "limit": {"count": 3, "window_s": 3600}},
    {"id": "over", "action": "deny", "reason": "hourly limit used up"},
]


async def test_a_used_up_limit_falls_through_and_explain_consumes_nothing(
    client: AsyncWalletClient, clock: Clock
) -> None:
    await client.create_wallet("lim")
    await client.set_signing_policy("lim", "owner", HOURLY, 0)
    for _ in range(5):
        explained = await client.explain_signing("lim", b"m")
        assert explained.action == "allow"
        assert [(x.rule_id, x.remaining) for x in explained.limits] == [("hourly", 3)]
    for left in (2, 1, 0):
        assert await client.sign_message("lim", b"m")
        assert (await client.explain_signing("lim", b"m")).limits[0].remaining == left
    with pytest.raises(PolicyDeniedError, match="'over'"):
        await client.sign_message("lim", b"m")
    explained = await client.explain_signing("lim", b"m")
    assert (explained.action, explained.rule_id, explained.limits[0].remaining) == (
        "deny",
        "over",
        0,
    )
    clock.advance(3600 + 61)  # the window (conservative by one bucket) has passed
    assert await client.sign_message("lim", b"m")


async def test_a_batch_with_mixed_decisions_signs_the_allowed_items(
    client: AsyncWalletClient,
) -> None:
    await client.create_wallet("b")
    rules = [
        {
            "id": "orders",
            "action": "allow",
            "match": {"prefix": "order:"},
            "limit": {"count": 2, "window_s": 60},
        },
        {"id": "rest", "action": "deny"},
    ]
    await client.set_signing_policy("b", "owner", rules, 0)
    items = await client.sign_batch("b", [b"order:1", b"nope", b"order:2", b"order:3"])
    assert [i.error.code if i.error else "signed" for i in items] == [
        "signed",
        "policy_denied",
        "signed",
        "policy_denied",
    ]
    assert items[0].signature and items[2].signature
    assert await client.verify_signature("b", b"order:1", items[0].signature)
    assert items[3].error is not None and "'rest'" in items[3].error.message


async def test_typed_data_rules(client: AsyncWalletClient) -> None:
    await client.create_wallet("eth", "secp256k1")
    await client.set_signing_policy("eth", "owner", OPERATOR_EXAMPLE()["rules"], 0)
    assert await client.sign_typed_data("eth", permit(value=10**18))
    with pytest.raises(PolicyDeniedError, match="'rest'"):
        await client.sign_typed_data("eth", permit(value=10**18 + 1))
    with pytest.raises(PolicyDeniedError):
        await client.sign_typed_data("eth", permit(value=1, chain_id=5))
    explained = await client.explain_signing("eth", typed_data=permit(value=1))
    assert (explained.action, explained.rule_id) == ("allow", "eip712-permits")


# --------------------------------------------------------------------------- pause / resume


async def test_pause_and_resume_by_scope_durable_across_restart(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    async with running(config, clock) as server:
        async with await open_client(server) as c:
            for user in ("a", "b"):
                await c.create_wallet(user)
            assert [p.scope for p in await c.pause_signing("wallet", user_id="a")] == ["wallet"]
            with pytest.raises(SigningPausedError):
                await c.sign_message("a", b"x")
            assert await c.sign_message("b", b"x")
            await c.pause_signing("uid", uid=os.getuid())
            with pytest.raises(SigningPausedError):
                await c.sign_message("b", b"x")
            with pytest.raises(SigningPausedError):  # a batch is refused whole
                await c.sign_batch("b", [b"x"])
    async with running(config, clock) as server:
        async with await open_client(server) as c:
            with pytest.raises(SigningPausedError):
                await c.sign_message("b", b"x")
            assert (await c.get_signing_policy("a")).paused
            left = await c.resume_signing("uid", uid=os.getuid())
            assert [(p.scope, p.user_id) for p in left] == [("wallet", "a")]
            assert await c.sign_message("b", b"x")
            with pytest.raises(SigningPausedError):
                await c.sign_message("a", b"x")
            await c.pause_signing()
            with pytest.raises(SigningPausedError):
                await c.sign_message("b", b"x")
            await c.resume_signing()
            await c.resume_signing("wallet", user_id="a")
            assert await c.sign_message("a", b"x")
            with pytest.raises(InvalidArgumentError, match="scope"):
                await c.pause_signing("uid")
            records = [r.event for r in await c.audit_log()]
            assert records.count("signing_paused") == 3 and records.count("signing_resumed") == 3


# --------------------------------------------------------------------------- durable limits


async def test_limits_survive_a_clean_restart(make_config: MakeConfig, clock: Clock) -> None:
    config = make_config()
    async with running(config, clock) as server:
        async with await open_client(server) as c:
            await c.create_wallet("d")
            await c.set_signing_policy("d", "owner", HOURLY, 0)
            await c.sign_message("d", b"1")
            await c.sign_message("d", b"2")
    async with running(config, clock) as server:
        async with await open_client(server) as c:
            assert (await c.explain_signing("d", b"3")).limits[0].remaining == 1
            await c.sign_message("d", b"3")
            with pytest.raises(PolicyDeniedError):
                await c.sign_message("d", b"4")


# --------------------------------------------------------------------------- audit


async def test_policy_changes_and_denials_are_audited_with_aggregation(
    client: AsyncWalletClient, clock: Clock, server: Server
) -> None:
    clock.now = 1_800_000_000.0 - (1_800_000_000.0 % 60)  # the start of a minute
    await client.create_wallet("au")
    await client.set_signing_policy("au", "owner", ORDERS_ONLY, 0)
    await client.set_signing_policy("au", "owner", ORDERS_ONLY, 1)
    changed = [r for r in await client.audit_log("au") if r.event == "signing_policy_changed"]
    versions = [
        (r.detail["layer"], r.detail["old_version"], r.detail["new_version"]) for r in changed
    ]
    assert versions == [("owner", 0, 1), ("owner", 1, 2)]
    assert changed[0].actor_uid == os.getuid()
    for _ in range(5):
        with pytest.raises(PolicyDeniedError):
            await client.sign_message("au", b"loop")
        clock.advance(1)

    def denials() -> list[dict[str, Any]]:
        return [dict(r.detail) for r in records if r.event == "signing_denied"]

    records = await client.audit_log("au")
    assert denials() == [{"rule_id": "rest", "layer": "owner", "action": "deny", "count": 1}]
    clock.advance(60)  # the minute has ended: the background flusher writes the aggregate
    await wait_until(lambda: not server.daemon.ctx.policy.denials.get(("au", "owner", "rest")))
    records = await client.audit_log("au")
    (first, aggregate) = denials()
    assert first["count"] == 1
    assert aggregate["count"] == 4 and aggregate["aggregated"] is True
    assert aggregate["uids"] == [os.getuid()]
    assert (await client.audit_verify()).ok
    for record in records:  # nothing signed appears in any record
        assert "loop" not in str(record.detail)


async def test_a_clean_stop_flushes_the_pending_aggregate(
    make_config: MakeConfig, clock: Clock
) -> None:
    config = make_config()
    clock.now = 1_800_000_000.0 - (1_800_000_000.0 % 60)
    async with running(config, clock) as server:
        async with await open_client(server) as c:
            await c.create_wallet("st")
            await c.set_signing_policy("st", "owner", ORDERS_ONLY, 0)
            for _ in range(3):
                with pytest.raises(PolicyDeniedError):
                    await c.sign_message("st", b"no")
    async with running(config, clock) as server:
        async with await open_client(server) as c:
            counts = [
                r.detail["count"] for r in await c.audit_log("st") if r.event == "signing_denied"
            ]
            assert counts == [1, 2]


# --------------------------------------------------------------------------- the example


async def test_the_operator_example_end_to_end(make_config: MakeConfig, clock: Clock) -> None:
    """docs/signing-policy.example.toml: orders under 4 KiB, 100 an hour, weekdays 08-20;
    EIP-712 only for chain 1 and the contract, value <= 1 ETH; not loosened by the owner;
    not reset by a restart; explained; stopped by a pause."""
    example = OPERATOR_EXAMPLE()["rules"]
    clock.now = 1_800_000_000.0  # Friday 2027-01-15 08:00 UTC
    config = make_config()
    async with running(config, clock) as server:
        async with await open_client(server) as c:
            await c.create_wallet("agent")
            await c.create_wallet("agent-eth", "secp256k1")
            for user in ("agent", "agent-eth"):
                await c.set_signing_policy(user, "admin", example, 0)
                await c.set_signing_policy(user, "owner", [{"id": "yes", "action": "allow"}], 0)
            assert await c.sign_message("agent", b"order:1")
            with pytest.raises(PolicyDeniedError, match="'rest' of the admin layer"):
                await c.sign_message("agent", b"order:" + b"x" * 4096)
            with pytest.raises(PolicyDeniedError):
                await c.sign_message("agent", b"transfer everything")
            assert await c.sign_typed_data("agent-eth", permit(value=10**18))
            for bad in (
                permit(value=10**18 + 1),
                permit(value=1, chain_id=5),
                permit(value=1, contract="0x" + "22" * 20),
            ):
                with pytest.raises(PolicyDeniedError):
                    await c.sign_typed_data("agent-eth", bad)
            items = await c.sign_batch("agent", [b"order:%d" % i for i in range(2, 101)])
            assert all(i.signature for i in items)  # 100 in this hour
            explained = await c.explain_signing("agent", b"order:101")
            assert (explained.action, explained.rule_id) == ("deny", "rest")
            assert [(x.rule_id, x.remaining) for x in explained.limits] == [("orders", 0)]
            with pytest.raises(PolicyDeniedError):
                await c.sign_message("agent", b"order:101")
    clock.advance(1800)
    async with running(config, clock) as server:  # a restart does not reset the hour
        async with await open_client(server) as c:
            with pytest.raises(PolicyDeniedError):
                await c.sign_message("agent", b"order:102")
            clock.advance(3600)  # 09:30: a new hour
            assert await c.sign_message("agent", b"order:103")
            clock.advance(86400)  # Saturday: outside the weekly hours
            explained = await c.explain_signing("agent", b"order:104")
            assert (explained.action, explained.rule_id) == ("deny", "rest")
            clock.advance(2 * 86400)  # Monday 09:30
            assert await c.sign_message("agent", b"order:105")
            await c.pause_signing()
            with pytest.raises(SigningPausedError):
                await c.sign_message("agent", b"order:106")
            with pytest.raises(SigningPausedError):
                await c.sign_typed_data("agent-eth", permit(value=1))
            assert (await c.explain_signing("agent", b"order:106")).paused


# --------------------------------------------------------------------------- patterns


async def test_a_pathological_pattern_does_not_stall_another_connection(
    client: AsyncWalletClient, server: Server
) -> None:
    """RE2 is linear: a pattern that makes a backtracking engine take exponential time
    matches a 1 MiB-class message in linear time while another connection keeps signing."""
    await client.create_wallet("evil")
    await client.create_wallet("other")
    evil = [
        {"id": "evil", "action": "allow", "match": {"pattern": "(a+)+$"}},
        {"id": "rest", "action": "deny"},
    ]
    await client.set_signing_policy("evil", "owner", evil, 0)
    message = b"a" * 200_000 + b"!"  # the classic catastrophic input for (a+)+$
    latencies: list[float] = []

    async def bystander(done: trio.Event) -> None:
        async with await open_client(server) as other:
            while not done.is_set():
                started = time.perf_counter()
                await other.sign_message("other", b"hello")
                latencies.append(time.perf_counter() - started)

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bystander, done)
        for _ in range(20):
            with pytest.raises(PolicyDeniedError):
                await client.sign_message("evil", message)
        done.set()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"\nbystander: {len(latencies)} signatures, p99 {p99 * 1000:.2f} ms")
    assert latencies, "the other connection was served"


# --------------------------------------------------------------------------- configuration


def test_the_signing_table_refuses_an_unknown_timezone_or_default(tmp_path: Path) -> None:
    path = tmp_path / "walletd.toml"
    path.write_text('[signing]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="timezone"):
        load_config(str(path), {})
    path.write_text('[signing]\ndefault = "maybe"\n')
    with pytest.raises(ConfigError, match=r"signing\.default"):
        load_config(str(path), {})


async def test_reload_applies_the_signing_table_live(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    config = make_config(ephemeral=True)
    reloaded = make_config(ephemeral=True, signing=SigningConfig(default="deny"))
    server = await start_server(config, reload_config=lambda: reloaded)
    async with await open_client(server) as c:
        await c.create_wallet("r")
        assert await c.sign_message("r", b"x")
        server.reload()
        with pytest.raises(PolicyDeniedError, match="default"):
            await c.sign_message("r", b"x")
        assert (await c.get_signing_policy("r")).default == "deny"


async def test_a_kept_rule_id_keeps_its_uses_and_a_deleted_wallet_forgets_its_policy(
    client: AsyncWalletClient,
) -> None:
    await client.create_wallet("k")
    await client.set_signing_policy("k", "owner", HOURLY, 0)
    await client.sign_message("k", b"1")
    lowered = [{**HOURLY[0], "limit": {"count": 2, "window_s": 3600}}, HOURLY[1]]
    await client.set_signing_policy("k", "owner", lowered, 1)
    assert (await client.explain_signing("k", b"2")).limits[0].remaining == 1
    await client.delete_wallet("k")
    await client.create_wallet("k")
    policy = await client.get_signing_policy("k")
    assert (policy.owner.version, policy.owner.rules) == (0, [])
