"""Quotas between uids and the backup index (issue 12, item 7).

Non-admin peers are driven through the daemon's dispatcher with a Peer of another uid (the
kernel-checked identity is covered by tests/test_authz.py); admins through a real client.
On main before this change, ``test_wallets_per_uid``, ``test_backups_per_wallet``,
``test_backup_bytes_per_wallet`` and ``test_other_uids_listing_reads_no_one_elses_files``
failed (no quota; every listing read every file), as did ``test_rotation_history_pages``
(no ``limit``/``before_seq``, every record in one answer).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

import walletd_wire as wire
from wallet_client import AsyncWalletClient, WalletNotFoundError
from walletd.config import Config, QuotaConfig
from walletd.model.peer import Peer
from walletd.ops.backups import Backups, DirectoryVault
from walletd.server.serve import Server

from .support import Clock, MakeConfig, StartServer, running

ALICE_UID, BOB_UID = 4001, 4002
ALICE = Peer(uid=ALICE_UID, gid=ALICE_UID, pid=1, is_admin=False)
BOB = Peer(uid=BOB_UID, gid=BOB_UID, pid=2, is_admin=False)
ADMIN = Peer(uid=0, gid=0, pid=3, is_admin=True)


async def call(server: Server, peer: Peer, request: wire.Request) -> Any:
    """The result of ``request`` as ``peer``; a wire error comes back as the ErrorBody."""
    response = server.daemon.dispatcher.run(peer, request)
    if not isinstance(response, wire.OkResponse | wire.ErrorResponse):
        response = await response
    if isinstance(response, wire.ErrorResponse):
        return response.error
    return response.result


def backups_of(server: Server) -> Backups:
    handler = server.daemon.dispatcher._handlers[wire.ListBackups]
    owner = handler.__self__  # type: ignore[attr-defined]
    assert isinstance(owner, Backups)
    return owner


def with_quotas(make_config: MakeConfig, **quotas: int) -> Config:
    return make_config(quotas=QuotaConfig(**quotas))


def test_defaults_are_far_above_what_a_person_does() -> None:
    quotas = Config().quotas
    assert quotas.wallets_per_uid >= 1000
    assert quotas.backups_per_wallet >= 1000
    assert quotas.backup_bytes_per_wallet == 8 << 20


async def test_wallets_per_uid(start_server: StartServer, make_config: MakeConfig) -> None:
    server = await start_server(with_quotas(make_config, wallets_per_uid=3))
    for n in range(3):
        assert isinstance(
            await call(server, ALICE, wire.CreateWallet(id=1, user_id=f"a{n}")), wire.AddressResult
        )
    refused = await call(server, ALICE, wire.CreateWallet(id=1, user_id="a3"))
    assert refused.code == "quota_exceeded"
    assert "quotas.wallets_per_uid" in refused.message and "3" in refused.message
    assert "a3" not in server.daemon.ctx.book.wallets  # nothing was made
    # Another uid has its own quota; admins have none.
    assert isinstance(
        await call(server, BOB, wire.CreateWallet(id=1, user_id="b0")), wire.AddressResult
    )
    for n in range(5):
        assert isinstance(
            await call(server, ADMIN, wire.CreateWallet(id=1, user_id=f"r{n}")), wire.AddressResult
        )
    # Deleting one makes room again.
    assert (await call(server, ALICE, wire.DeleteWallet(id=1, user_id="a0"))).deleted
    assert isinstance(
        await call(server, ALICE, wire.CreateWallet(id=1, user_id="a3")), wire.AddressResult
    )


async def test_backups_per_wallet(start_server: StartServer, make_config: MakeConfig) -> None:
    server = await start_server(with_quotas(make_config, backups_per_wallet=2))
    await call(server, ALICE, wire.CreateWallet(id=1, user_id="alice"))
    made = [await call(server, ALICE, wire.CreateBackup(id=1, user_id="alice")) for _ in range(2)]
    assert all(isinstance(r, wire.BackupRecord) for r in made)
    directory = Path(server.config.backups_path)
    files = sorted(directory.iterdir())
    audit_before = len((await call(server, ADMIN, wire.AuditLog(id=1))).records)
    refused = await call(server, ALICE, wire.CreateBackup(id=1, user_id="alice"))
    assert refused.code == "quota_exceeded" and "quotas.backups_per_wallet" in refused.message
    assert sorted(directory.iterdir()) == files  # nothing written
    assert len((await call(server, ADMIN, wire.AuditLog(id=1))).records) == audit_before
    # Admins are exempt; a deletion makes room.
    assert isinstance(
        await call(server, ADMIN, wire.CreateBackup(id=1, user_id="alice")), wire.BackupRecord
    )
    for record in made:
        assert (
            await call(
                server, ALICE, wire.DeleteBackup(id=1, user_id="alice", backup_id=record.backup_id)
            )
        ).deleted
    assert isinstance(
        await call(server, ALICE, wire.CreateBackup(id=1, user_id="alice")), wire.BackupRecord
    )


async def test_backup_bytes_per_wallet(start_server: StartServer, make_config: MakeConfig) -> None:
    quota = 64 << 10
    server = await start_server(with_quotas(make_config, backup_bytes_per_wallet=quota))
    await call(server, ALICE, wire.CreateWallet(id=1, user_id="alice"))
    big = {"notes": "x" * 15_000}
    outcomes = [
        await call(server, ALICE, wire.CreateBackup(id=1, user_id="alice", metadata=big))
        for _ in range(6)
    ]
    codes = [getattr(o, "code", "ok") for o in outcomes]
    assert codes[:4] == ["ok"] * 4 and set(codes[4:]) == {"quota_exceeded"}
    assert "quotas.backup_bytes_per_wallet" in outcomes[-1].message
    used = sum(p.stat().st_size for p in Path(server.config.backups_path).iterdir())
    assert used <= quota  # the bound is on the bytes on disk, not on an estimate
    # Small records still fit when big ones do not.
    assert isinstance(
        await call(server, ALICE, wire.CreateBackup(id=1, user_id="alice")), wire.BackupRecord
    )


class CountingVault(DirectoryVault):
    """The real directory vault, counting the files it reads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0

    def read(self, backup_id: str) -> bytes | None:
        self.reads += 1
        return super().read(backup_id)


async def test_other_uids_listing_reads_no_one_elses_files(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config())
    backups = backups_of(server)
    vault = CountingVault(server.config.backups_path)
    backups.vault = vault
    await call(server, ALICE, wire.CreateWallet(id=1, user_id="alice"))
    await call(server, BOB, wire.CreateWallet(id=1, user_id="bob"))
    mine = await call(server, BOB, wire.CreateBackup(id=1, user_id="bob"))
    for _ in range(200):
        await call(server, ALICE, wire.CreateBackup(id=1, user_id="alice"))
    vault.reads = 0
    listed = await call(server, BOB, wire.ListBackups(id=1, user_id="bob"))
    assert [r.backup_id for r in listed.backups] == [mine.backup_id]
    assert vault.reads == 1  # bob's own file, re-verified; none of alice's 200
    assert len((await call(server, ALICE, wire.ListBackups(id=1, user_id="alice"))).backups) == 200


async def test_index_follows_changes_made_outside_the_daemon(
    start_server: StartServer, make_config: MakeConfig
) -> None:
    server = await start_server(make_config())
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        await c.create_wallet("alice")
        first = await c.create_backup("alice")
        second = await c.create_backup("alice")
        directory = Path(server.config.backups_path)
        # An operator removes one file and restores a copy of another under its own name.
        saved = (directory / f"{second['backup_id']}.json").read_bytes()
        os.unlink(directory / f"{first['backup_id']}.json")
        os.unlink(directory / f"{second['backup_id']}.json")
        assert await c.list_backups("alice") == []
        (directory / f"{second['backup_id']}.json").write_bytes(saved)
        assert [b["backup_id"] for b in await c.list_backups("alice")] == [second["backup_id"]]


async def test_index_is_rebuilt_at_startup(make_config: MakeConfig, clock: Clock) -> None:
    config = make_config(quotas=QuotaConfig(backups_per_wallet=2))
    async with running(config, clock) as first:
        await call(first, ALICE, wire.CreateWallet(id=1, user_id="alice"))
        for _ in range(2):
            await call(first, ALICE, wire.CreateBackup(id=1, user_id="alice"))
    async with running(config, clock) as second:
        refused = await call(second, ALICE, wire.CreateBackup(id=1, user_id="alice"))
        assert refused.code == "quota_exceeded"  # the records on disk were counted
        assert (
            len((await call(second, ALICE, wire.ListBackups(id=1, user_id="alice"))).backups) == 2
        )


async def test_admin_typo_is_not_found(start_server: StartServer, make_config: MakeConfig) -> None:
    server = await start_server(make_config())
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        with pytest.raises(WalletNotFoundError):
            await c.list_backups("ghost")
        await c.create_wallet("gone")
        kept = await c.create_backup("gone")
        assert await c.delete_wallet("gone")
        # A deleted wallet's records stay listable to admins.
        assert [b["backup_id"] for b in await c.list_backups("gone")] == [kept["backup_id"]]


async def test_rotation_history_pages(start_server: StartServer, make_config: MakeConfig) -> None:
    server = await start_server(make_config(ephemeral=True))
    async with AsyncWalletClient(server.config.socket, timeout=10) as c:
        await c.create_wallet("alice")
        for _ in range(7):
            await c.rotate_keys("alice")
        everything = await c.rotation_history("alice")
        assert len(everything) == 7
        seqs = [r.seq for r in everything]
        assert seqs == sorted(seqs)
        newest = await c.rotation_history("alice", limit=3)
        assert newest == everything[-3:]
        older = await c.rotation_history("alice", limit=3, before_seq=newest[0].seq)
        assert older == everything[1:4]
        oldest = await c.rotation_history("alice", limit=3, before_seq=older[0].seq)
        assert oldest == everything[:1]  # fewer than limit: the last page
        for bad in (0, 10_001):
            reply = await call(
                server, ADMIN, wire.RotationHistory(id=1, user_id="alice", limit=bad)
            )
            assert reply.code == "invalid_argument"
    assert msgspec.structs.asdict(wire.RotationHistory(id=1, user_id="u"))["limit"] == 1000
