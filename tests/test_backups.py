"""Hash-only backup records: what they hold, how they are written, validated, listed, verified
and deleted, how damaged files are reported, and who may touch them."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import trio

import walletd_wire as wire
from wallet_client import (
    AsyncWalletClient,
    BackupIntegrityError,
    InvalidArgumentError,
    ProtocolError,
    WalletClient,
    WalletNotFoundError,
)
from wallet_client.calls import Call
from walletd.server.serve import Server

from . import visibility_children
from .support import Clock, DaemonFactory, MakeConfig, StartServer, call_as_nobody, wallet_in

DAY = 86400.0
RECORD_FIELDS = {"backup_id", "user_id", "wallet_id", "key_hash", "timestamp", "metadata"}


@pytest.fixture
async def disk(start_server: StartServer, make_config: MakeConfig) -> Server:
    """A non-ephemeral in-process server: backups go to <state_dir>/backups."""
    server: Server = await start_server(make_config())
    return server


def backup_dir(server: Server) -> Path:
    return Path(server.config.state_dir) / "backups"


def key_hash_of(server: Server, user_id: str) -> str:
    return hashlib.sha256(wallet_in(server, user_id).key).hexdigest()


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def rewrite(path: Path, change: Any) -> None:
    """Edit a backup file's JSON the way someone with write access to it would."""
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


# --------------------------------------------------------------------------- contents


async def test_backup_wallet_describes_without_writing(disk: Server, clock: Clock) -> None:
    async with AsyncWalletClient(disk.config.socket) as c:
        address = await c.create_wallet("alice")
        created = clock.now
        clock.advance(3 * DAY)
        info = await c.backup_wallet("alice")
        assert info == {
            "user_id": "alice",
            "wallet_id": address,
            "key_hash": key_hash_of(disk, "alice"),
            "created_at": created,
            "backup_ts": clock.now,
        }
        assert [r.event for r in await c.audit_log()] == ["wallet_created"]
        assert await c.list_backups("alice") == []
    assert not backup_dir(disk).exists()


async def test_create_backup_writes_a_private_tagged_file(disk: Server, clock: Clock) -> None:
    async with AsyncWalletClient(disk.config.socket) as c:
        address = await c.create_wallet("alice")
        metadata = {"host": "build-7", "n": 3, "ok": True, "x": None, "nested": {"l": [1.5, "a"]}}
        record = await c.create_backup("alice", metadata)
    assert set(record) == RECORD_FIELDS
    assert len(record["backup_id"]) == 32
    assert int(record["backup_id"], 16) >= 0
    assert record["user_id"] == "alice"
    assert record["wallet_id"] == address
    assert record["key_hash"] == key_hash_of(disk, "alice")
    assert record["timestamp"] == clock.now
    assert record["metadata"] == metadata
    directory = backup_dir(disk)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    # Named by the random id only; no temp file left behind.
    assert os.listdir(directory) == [record["backup_id"] + ".json"]
    path = directory / (record["backup_id"] + ".json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert set(doc) == {"format", "record", "tag"}
    assert doc["format"] == "walletd-backup-v1"
    assert doc["record"] == record
    assert len(doc["tag"]) == 64


async def test_backup_dir_option(
    start_server: StartServer, make_config: MakeConfig, tmp_path: Path
) -> None:
    where = tmp_path / "elsewhere" / "backups"
    server = await start_server(make_config(backup_dir=str(where)))
    async with AsyncWalletClient(server.config.socket) as c:
        await c.create_wallet("alice")
        record = await c.create_backup("alice")
    assert (where / (record["backup_id"] + ".json")).is_file()
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert not backup_dir(server).exists()


async def test_ephemeral_backups_live_in_memory(server: Server, client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    record = await client.create_backup("alice", {"a": 1})
    assert await client.list_backups("alice") == [record]
    assert await client.verify_backup("alice", record["backup_id"])
    assert await client.delete_backup("alice", record["backup_id"])
    assert await client.list_backups("alice") == []
    assert not backup_dir(server).exists()


# --------------------------------------------------------------------------- metadata


async def test_metadata_up_to_16_kib(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    at_limit = {"k": "x" * (16 * 1024 - overhead)}
    record = await client.create_backup("alice", at_limit)
    assert record["metadata"] == at_limit
    with pytest.raises(InvalidArgumentError):
        await client.create_backup("alice", {"k": "x" * (16 * 1024 - overhead + 1)})
    assert (await client.create_backup("alice", None))["metadata"] == {}
    assert len(await client.list_backups("alice")) == 2


@pytest.mark.parametrize(
    "metadata",
    [{"nan": float("nan")}, {"inf": [float("inf")]}],
    ids=["nan", "inf"],
)
async def test_metadata_must_be_plain_values(client: AsyncWalletClient, metadata: Any) -> None:
    await client.create_wallet("alice")
    with pytest.raises(InvalidArgumentError):
        await client.create_backup("alice", metadata)
    assert await client.list_backups("alice") == []
    assert [r.event for r in await client.audit_log()] == ["wallet_created"]


@pytest.mark.parametrize(
    "metadata",
    [
        {"blob": b"\x00\x01"},
        {"nested": {"deeper": [1, bytearray(b"x")]}},
        {"nested": {1: "integer key"}},
        {"mixed": {1: "a", "b": "c"}},
        {"when": datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)},
        {"deep": nested(900)},
        {"three": {"levels": {"deep": {"too": 1}}}},
        {str(i): i for i in range(wire.MAX_METADATA_ENTRIES + 1)},
    ],
    ids=["bytes", "nested-bytes", "int-key", "mixed-keys", "datetime", "deep", "depth-4", "wide"],
)
async def test_metadata_outside_the_wire_type(client: AsyncWalletClient, metadata: Any) -> None:
    """Not plain JSON, deeper than 3 levels or wider than 64 entries: the decoder refuses it
    (bad_request, see walletd_wire.bounded) before anything of it is built."""
    await client.create_wallet("alice")
    with pytest.raises(ProtocolError) as info:
        await client.create_backup("alice", metadata)
    assert info.value.code == "bad_request"
    assert await client.list_backups("alice") == []
    assert [r.event for r in await client.audit_log()] == ["wallet_created"]


async def test_metadata_must_be_a_string_keyed_map(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    for metadata in ([1, 2], {1: "x"}, "text"):
        # Sent as is (the client itself would refuse some of these before sending).
        request = wire.CreateBackup(id=0, user_id="alice", metadata=metadata)  # type: ignore[arg-type]
        with pytest.raises(ProtocolError) as info:
            await client._call(Call(request, wire.BackupRecord, dict))
        assert info.value.code == "bad_request"
    assert await client.list_backups("alice") == []


# --------------------------------------------------------------------------- list / verify / delete


async def test_list_is_newest_first_and_attributed_by_the_record(
    client: AsyncWalletClient, clock: Clock
) -> None:
    await client.create_wallet("alice")
    await client.create_wallet("alice_x")
    ids = []
    for i in range(3):
        clock.advance(60)
        ids.append((await client.create_backup("alice", {"i": i}))["backup_id"])
        clock.advance(60)
        await client.create_backup("alice_x")
    listed = await client.list_backups("alice")
    assert [b["backup_id"] for b in listed] == ids[::-1]
    assert [b["metadata"] for b in listed] == [{"i": 2}, {"i": 1}, {"i": 0}]
    assert listed.problems == []
    assert all(b["user_id"] == "alice_x" for b in await client.list_backups("alice_x"))
    assert len(await client.list_backups("alice_x")) == 3


async def test_verify_backup(client: AsyncWalletClient) -> None:
    await client.create_wallet("alice")
    await client.create_wallet("bob")
    record = await client.create_backup("alice")
    backup_id = record["backup_id"]
    assert await client.verify_backup("alice", backup_id) is True
    await client.rotate_keys("alice")
    assert await client.verify_backup("alice", backup_id) is False  # stale: the key changed
    fresh = await client.create_backup("alice")
    assert await client.verify_backup("alice", fresh["backup_id"]) is True
    with pytest.raises(WalletNotFoundError):
        await client.verify_backup("alice", "0" * 32)
    with pytest.raises(WalletNotFoundError):
        await client.verify_backup("bob", backup_id)  # alice's backup is not bob's
    with pytest.raises(InvalidArgumentError):
        await client.verify_backup("alice", "../../etc/passwd")


async def test_delete_backup(disk: Server) -> None:
    async with AsyncWalletClient(disk.config.socket) as c:
        await c.create_wallet("alice")
        await c.create_wallet("bob")
        keep = await c.create_backup("alice")
        gone = await c.create_backup("alice")
        assert await c.delete_backup("bob", keep["backup_id"]) is False  # not bob's
        assert await c.delete_backup("alice", gone["backup_id"]) is True
        assert await c.delete_backup("alice", gone["backup_id"]) is False
        assert await c.delete_backup("alice", "f" * 32) is False
        assert [b["backup_id"] for b in await c.list_backups("alice")] == [keep["backup_id"]]
        events = [(r.event, r.detail) for r in await c.audit_log("alice")]
    assert os.listdir(backup_dir(disk)) == [keep["backup_id"] + ".json"]
    assert events[-1] == ("backup_deleted", {"backup_id": gone["backup_id"]})
    assert [e for e, _ in events].count("backup_deleted") == 1


async def test_damaged_files_are_reported_not_skipped(disk: Server) -> None:
    async with AsyncWalletClient(disk.config.socket) as c:
        await c.create_wallet("alice")
        await c.create_wallet("alice_x")
        good = await c.create_backup("alice")
        tampered = await c.create_backup("alice")
        stolen = await c.create_backup("alice")
        directory = backup_dir(disk)
        rewrite(
            directory / f"{tampered['backup_id']}.json",
            lambda d: d["record"].update(key_hash="0" * 64),
        )
        # Re-attributing a record to another user breaks its tag: it is nobody's backup.
        rewrite(
            directory / f"{stolen['backup_id']}.json",
            lambda d: d["record"].update(user_id="alice_x"),
        )
        (directory / f"{'1' * 32}.json").write_text("not json")
        (directory / f"{'2' * 32}.json").mkdir()  # unreadable as a file
        copy = directory / f"{'3' * 32}.json"
        copy.write_bytes((directory / f"{good['backup_id']}.json").read_bytes())

        listed = await c.list_backups("alice")
        assert [b["backup_id"] for b in listed] == [good["backup_id"]]
        problems = {p["backup_id"]: p["problem"] for p in listed.problems}
        assert set(problems) == {
            tampered["backup_id"],
            stolen["backup_id"],
            "1" * 32,
            "2" * 32,
            "3" * 32,
        }
        assert "integrity tag" in problems[tampered["backup_id"]]
        assert "name" in problems["3" * 32]
        assert await c.list_backups("alice_x") == []  # the re-attributed record is not listed
        with pytest.raises(BackupIntegrityError) as info:
            await c.verify_backup("alice", tampered["backup_id"])
        assert info.value.code == "integrity_error"
        with pytest.raises(BackupIntegrityError):
            await c.verify_backup("alice_x", stolen["backup_id"])
        assert await c.verify_backup("alice", good["backup_id"])


@pytest.mark.root
async def test_others_see_only_problems_that_may_be_theirs(
    start_server: StartServer, make_config: MakeConfig, open_tmp: Path
) -> None:
    config = make_config(socket=str(open_tmp / "walletd.sock"), socket_mode=0o666)
    server = await start_server(config)
    sock = str(server.config.socket)
    async with AsyncWalletClient(sock) as admin:
        await admin.create_wallet("roots")
        roots = await admin.create_backup("roots")
    mine = await trio.to_thread.run_sync(
        lambda: call_as_nobody(visibility_children.create_with_backup, sock, "mine")
    )
    directory = backup_dir(server)
    # An unreadable entry may be anyone's, so everyone is told of it.
    (directory / f"{'2' * 32}.json").mkdir()
    listed = await trio.to_thread.run_sync(
        lambda: call_as_nobody(visibility_children.backups_and_problems, sock, "mine")
    )
    assert listed == [[mine], ["2" * 32]]
    # A damaged record that claims another user is that user's (and admins') business.
    rewrite(
        directory / f"{roots['backup_id']}.json", lambda d: d["record"].update(key_hash="0" * 64)
    )
    rewrite(directory / f"{mine}.json", lambda d: d["record"].update(timestamp=1.0))
    listed = await trio.to_thread.run_sync(
        lambda: call_as_nobody(visibility_children.backups_and_problems, sock, "mine")
    )
    assert listed == [[], sorted(["2" * 32, mine])]


# --------------------------------------------------------------------------- who may


@pytest.mark.root
@pytest.mark.slow
def test_other_uids_are_refused_on_every_family(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("alice")
        backup = c.create_backup("alice")
        audit_before = c.audit_log()
    result = call_as_nobody(
        visibility_children.every_family_on,
        str(proc.socket_path),
        "alice",
        backup["backup_id"],
    )
    assert result.pop("audit_log_all") == 0
    assert result == dict.fromkeys(result, "forbidden")
    assert len(result) == 15
    with WalletClient(proc.socket_path) as c:
        # Nothing the other uid tried changed anything.
        assert c.audit_log() == audit_before
        assert c.verify_backup("alice", backup["backup_id"])
        assert c.get_policy("alice").max_signatures == 10000
    assert proc.stop() == 0


@pytest.mark.root
@pytest.mark.slow
def test_backup_ops_on_a_user_without_a_wallet_are_not_found(daemon: DaemonFactory) -> None:
    proc = daemon().start()
    codes = call_as_nobody(visibility_children.backup_ops_codes, str(proc.socket_path), "ghost")
    assert codes == ["not_found"] * 3
