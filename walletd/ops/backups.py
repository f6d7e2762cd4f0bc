"""Hash-only backup records: proof of which key a wallet had, never the key itself.

A record ``{backup_id, user_id, wallet_id, key_hash, timestamp, metadata}`` is written to the
backup directory as ``<backup_id>.json`` (named by the random id only, never by user id) via
write-to-temp, fsync and rename, with mode 0600, and carries an integrity tag: HMAC-SHA256 under
a random key kept sealed under the master key (so it survives a rekey). A record is attributed
to a user by the user id *inside* the verified record, so ``alice`` never sees ``alice_x``'s
backups. In ephemeral mode the records
live in memory.

A user id is not an identity over time: deleted and created again (perhaps by another uid), it
names another wallet. A record belongs to the wallet that made it, known by the address it
names (``wallet_id``): addresses are random and never reused, and a wallet's addresses are its
current one and those its rotations replaced (the rotations table, as ``rotation_history``
follows them). An owner sees and acts on only its own wallet's records; an earlier wallet's
are ``not_found`` to it (``deleted: false`` for ``delete_backup``, as for any unknown id).
Admins see every record stored under the user id, the earlier wallets' included: they are the
operator's evidence of what existed.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import uuid
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio

import walletd_wire as wire
from walletd.errors import IntegrityFailure, RequestError, StorageFailure, invalid, not_found
from walletd.model.peer import Actor, Peer
from walletd.model.validation import check_metadata, check_user_id
from walletd.model.wallets import key_hash
from walletd.ops.context import Context
from walletd.ops.ownership import Claim
from walletd.ops.rotation import current_chain
from walletd.storage import sql

FORMAT = "walletd-backup-v1"
SUFFIX = ".json"


class Vault(Protocol):
    """Where backup records live; implementations block, callers use a worker thread."""

    def write(self, backup_id: str, data: bytes) -> None: ...
    def read(self, backup_id: str) -> bytes | None: ...
    def list_ids(self) -> list[str]: ...
    def delete(self, backup_id: str) -> bool: ...


class MemoryVault:
    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}

    def write(self, backup_id: str, data: bytes) -> None:
        self._records[backup_id] = data

    def read(self, backup_id: str) -> bytes | None:
        return self._records.get(backup_id)

    def list_ids(self) -> list[str]:
        return list(self._records)

    def delete(self, backup_id: str) -> bool:
        return self._records.pop(backup_id, None) is not None


class DirectoryVault:
    def __init__(self, path: Path) -> None:
        self.path = path

    def ensure(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write(self, backup_id: str, data: bytes) -> None:
        self.ensure()
        final = self.path / (backup_id + SUFFIX)
        temp = self.path / f".{backup_id}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:  # os.write may write less than asked (a full disk, a signal)
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)  # no half-written leftovers
            raise
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a crash
        finally:
            os.close(dir_fd)

    def read(self, backup_id: str) -> bytes | None:
        try:
            return (self.path / (backup_id + SUFFIX)).read_bytes()
        except FileNotFoundError:
            return None

    def list_ids(self) -> list[str]:
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return [n[: -len(SUFFIX)] for n in names if n.endswith(SUFFIX) and not n.startswith(".")]

    def delete(self, backup_id: str) -> bool:
        try:
            os.unlink(self.path / (backup_id + SUFFIX))
        except FileNotFoundError:
            return False
        return True


class TamperedError(Exception):
    pass


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


class Backups:
    def __init__(self, ctx: Context, vault: Vault, tag_key: bytes) -> None:
        self.ctx = ctx
        self.vault = vault
        self._tag_key = tag_key

    def _tag(self, record: dict[str, Any]) -> str:
        return hmac.new(self._tag_key, _canonical(record), "sha256").hexdigest()

    def _open(self, data: bytes) -> wire.BackupRecord:
        """The verified record in ``data``, or TamperedError."""
        try:
            doc = json.loads(data)
            record, tag = doc["record"], doc["tag"]
            if doc.get("format") != FORMAT or not isinstance(tag, str):
                raise TamperedError("not a walletd backup record")
            if not hmac.compare_digest(self._tag(record), tag):
                raise TamperedError("the integrity tag does not match the record")
            return msgspec.convert(record, wire.BackupRecord)
        except (ValueError, KeyError, TypeError, msgspec.ValidationError) as exc:
            raise TamperedError(f"the record is unreadable ({type(exc).__name__})") from exc

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await trio.to_thread.run_sync(fn, *args)
        except OSError as exc:
            raise StorageFailure(f"backup storage failed: {exc.strerror}") from exc

    # ------------------------------------------------------------------ operations

    def backup_wallet(self, peer: Peer, req: wire.BackupWallet) -> wire.BackupInfo:
        wallet = self.ctx.wallet_for(peer, req.user_id)
        return wire.BackupInfo(
            wallet.user_id, wallet.address, key_hash(wallet.key), wallet.created_at, self.ctx.now()
        )

    async def create_backup(self, peer: Peer, req: wire.CreateBackup) -> wire.BackupRecord:
        metadata = check_metadata(req.metadata)  # plain JSON only: it must survive the file
        ctx = self.ctx
        async with ctx.writer:
            wallet = ctx.wallet_for(peer, req.user_id)
            record = wire.BackupRecord(
                uuid.uuid4().hex,
                wallet.user_id,
                wallet.address,
                key_hash(wallet.key),
                ctx.now(),
                metadata,
            )
            plain = msgspec.to_builtins(record)
            data = json.dumps(
                {"format": FORMAT, "record": plain, "tag": self._tag(plain)}, indent=1
            ).encode()
            await self._run(self.vault.write, record.backup_id, data)
            entry = ctx.audit(
                "backup_created",
                wallet.user_id,
                [wallet.address],
                Actor.of(peer),
                detail={"backup_id": record.backup_id},
            )
            try:
                await ctx.commit([], entry)
            except BaseException:
                await self._run(self.vault.delete, record.backup_id)
                raise
        return record

    async def _own_addresses(self, peer: Peer, user_id: str) -> set[str] | None:
        """The addresses of the wallet ``peer`` owns under ``user_id`` (None: an admin, who
        sees every record of the id), re-checked after the read."""
        if peer.is_admin:
            return None
        claim = Claim.of(peer, self.ctx.wallet_for(peer, user_id))
        rows = await self.ctx.store.query(sql.SELECT_ROTATIONS, (user_id,))
        wallet = claim.recheck(self.ctx.book)
        return {wallet.address, *(row[1] for row in current_chain(rows, wallet.address))}

    async def list_backups(self, peer: Peer, req: wire.ListBackups) -> wire.BackupListResult:
        self._authorize(peer, req.user_id)
        addresses = await self._own_addresses(peer, req.user_id)
        records, problems = await self._run(self._scan, req.user_id, peer.is_admin)
        if addresses is not None:
            records = [r for r in records if r.wallet_id in addresses]
        records.sort(key=lambda r: r.timestamp, reverse=True)
        return wire.BackupListResult(records, problems)

    def _scan(
        self, user_id: str, admin: bool
    ) -> tuple[list[wire.BackupRecord], list[wire.BackupProblem]]:
        """``user_id``'s verified records, and the files that failed to verify.

        A problem is shown to admins, and to the user the file claims to belong to; a file that
        claims no one (unreadable, not JSON) is shown to everyone, since it may be anyone's.
        """
        records: list[wire.BackupRecord] = []
        problems: list[wire.BackupProblem] = []
        for backup_id in self.vault.list_ids():
            data: bytes | None = None
            try:
                data = self.vault.read(backup_id)
                if data is None:
                    continue  # deleted while we listed
                record = self._open(data)
            except (OSError, TamperedError) as exc:
                claimed = _claimed_user(data)
                if admin or claimed is None or claimed == user_id:
                    reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                    problems.append(wire.BackupProblem(backup_id, str(reason)))
                continue
            if record.backup_id != backup_id:
                # A verified record under another file name (a copy): it is not the backup the
                # name promises, and verify/delete by that name would not find it.
                if admin or record.user_id == user_id:
                    problems.append(
                        wire.BackupProblem(backup_id, "the file name does not match the record")
                    )
                continue
            if record.user_id == user_id:
                records.append(record)
        return records, problems

    async def _load(self, peer: Peer, user_id: str, backup_id: str) -> wire.BackupRecord:
        self._authorize(peer, user_id)
        if not _valid_backup_id(backup_id):
            raise invalid("backup_id must be the 32 hex digits a backup was given")
        data = await self._run(self.vault.read, backup_id)
        if data is None:
            raise not_found(f"no backup {backup_id} for user {user_id!r}")
        try:
            record = self._open(data)
        except TamperedError as exc:
            raise IntegrityFailure(
                f"backup {backup_id} failed its integrity check: {exc}",
            ) from exc
        if record.user_id != user_id or record.backup_id != backup_id:
            raise not_found(f"no backup {backup_id} for user {user_id!r}")
        addresses = await self._own_addresses(peer, user_id)
        if addresses is not None and record.wallet_id not in addresses:
            # An earlier wallet's record under the same user id: not this owner's.
            raise not_found(f"no backup {backup_id} for user {user_id!r}")
        return record

    async def verify_backup(self, peer: Peer, req: wire.VerifyBackup) -> wire.BackupVerifyResult:
        record = await self._load(peer, req.user_id, req.backup_id)
        wallet = self.ctx.wallet_for(peer, req.user_id)
        current = hmac.compare_digest(record.key_hash, key_hash(wallet.key))
        return wire.BackupVerifyResult(current, "valid" if current else "stale")

    async def delete_backup(self, peer: Peer, req: wire.DeleteBackup) -> wire.DeletedResult:
        ctx = self.ctx
        self._authorize(peer, req.user_id)  # no wallet is not_found, as for the other ops
        async with ctx.writer:
            try:
                record = await self._load(peer, req.user_id, req.backup_id)
            except RequestError as exc:
                if exc.code == wire.ErrorCode.NOT_FOUND:
                    return wire.DeletedResult(False)
                raise
            entry = ctx.audit(
                "backup_deleted",
                record.user_id,
                [record.wallet_id],
                Actor.of(peer),
                detail={"backup_id": record.backup_id},
            )
            await ctx.commit([], entry)
            deleted = await self._run(self.vault.delete, record.backup_id)
        return wire.DeletedResult(deleted)

    def _authorize(self, peer: Peer, user_id: str) -> None:
        # Backups of a deleted wallet stay readable to admins only.
        if user_id in self.ctx.book.wallets or not peer.is_admin:
            self.ctx.wallet_for(peer, user_id)
        else:
            check_user_id(user_id)


def _valid_backup_id(backup_id: str) -> bool:
    return len(backup_id) == 32 and all(c in "0123456789abcdef" for c in backup_id)


def _claimed_user(data: bytes | None) -> str | None:
    """The user id an unverified file claims, or None when it claims none."""
    try:
        claimed = json.loads(data or b"")["record"]["user_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return claimed if isinstance(claimed, str) else None
