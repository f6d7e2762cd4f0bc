"""Opening the state: checks first, then load, then the objects that serve requests.

Startup refuses, with a message saying why and what to do, and without changing any file:
an unsafe state directory, a state directory another walletd is using, a corrupt or truncated
database, a database from a newer walletd, a missing or wrong master key, or a key that fails
to unseal. Every check and the whole load run on a read-only view of the database (see
:meth:`walletd.store.Store.open_readonly`); it is opened for writing only after all passed.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from walletd.config import Config
from walletd.errors import StartupError
from walletd.model.audit_chain import GENESIS_HASH, HEAD_KEY, HEAD_TAG_KEY, AuditChain
from walletd.model.audit_state import missing_head
from walletd.model.key_material import KeyType
from walletd.model.ritual import Ritual, decode_steps
from walletd.model.wallets import PolicyOverride, Wallet, zero
from walletd.storage import sql
from walletd.storage.row_tagging import RowTagger, tag_problems
from walletd.storage.schema import SCHEMA_VERSION
from walletd.storage.sealing import (
    MasterKey,
    Sealer,
    UnsealError,
    legacy_wallet_aad,
    load_master_key,
    wallet_aad,
)
from walletd.storage.statedir import StateLock, check_state_dir, tighten_state_files
from walletd.storage.store import DB_NAME, Statement, Store

log = structlog.get_logger("walletd")

CHECK_KEY = "master_key_check"
# Random sub-keys, sealed under the master key, so that a rekey re-seals them instead of
# changing them (which would break every audit hash and backup tag made before).
AUDIT_KEY = "audit_key"
BACKUP_KEY = "backup_key"
ROW_TAG_KEY = "row_tag_key"  # walletd.model.row_tags; since schema 5
SUBKEYS = (AUDIT_KEY, BACKUP_KEY, ROW_TAG_KEY)
#: The schema that introduced row tags: an older database gets its tags at its first start.
ROW_TAGS_SINCE = 5
# The database and its side files: a restored copy with loose modes is tightened at start.
STATE_FILES = (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")


def subkey_aad(name: str) -> bytes:
    return b"walletd:subkey:v1\x00" + name.encode()


@dataclass
class LoadedState:
    wallets: list[Wallet]
    rituals: dict[str, Ritual]
    chain_head: tuple[int, str]
    subkeys: dict[str, bytes]
    #: What the schema-5 migration of an older database inserts into meta (see RowTagger).
    migration: dict[str, bytes] = field(default_factory=dict)

    def tagger(self) -> RowTagger:
        """The row tagger every writable connection to this state is opened with."""
        return RowTagger(self.subkeys[ROW_TAG_KEY], self.migration)


def fresh_subkeys() -> dict[str, bytes]:
    return {name: secrets.token_bytes(32) for name in SUBKEYS}


def empty_state() -> LoadedState:
    return LoadedState([], {}, (0, GENESIS_HASH), fresh_subkeys())


def open_store(config: Config) -> tuple[Store, MasterKey, LoadedState]:
    """The database, checked and loaded, and the master key that opens it.

    The returned store holds the state directory's lock until it is closed.
    """
    if config.ephemeral:
        key = MasterKey(secrets.token_bytes(32), "ephemeral (memory only)")
        state = empty_state()
        return Store.open_memory(state.tagger()), key, state
    state_dir = Path(config.state_dir)
    check_state_dir(state_dir)
    lock = StateLock.acquire(state_dir)
    try:
        for loose in tighten_state_files(state_dir, STATE_FILES):
            log.warning("state_file_mode_fixed", file=loose, now="0600")
        store, master, state = _open_locked(config, state_dir / DB_NAME)
    except BaseException:
        lock.release()
        raise
    store.lock = lock
    return store, master, state


def _open_locked(config: Config, db_path: Path) -> tuple[Store, MasterKey, LoadedState]:
    existing = db_path.exists()
    if not existing:
        _refuse_orphaned_log(db_path)
    master = load_master_key(
        db_path.parent,
        config.master_key_file,
        require_external=config.require_external_master_key,
        may_generate=not existing,
    )
    if not existing:
        state = empty_state()
        try:
            store = Store.create(
                db_path, initial_rows(master.sealer(), state.subkeys), state.tagger()
            )
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"cannot create a new state in {db_path.parent}: {exc}") from exc
        return store, master, state
    # Check and load everything read-only first, so that a refusal leaves the files
    # byte-for-byte unchanged; only then open for writing.
    state = preflight(db_path, master)
    return Store.open_writable(db_path, state.tagger()), master, state


def _refuse_orphaned_log(db_path: Path) -> None:
    # A new database next to an old write-ahead log would have the log's pages replayed
    # into it: whatever happened to the database, starting afresh here would make it worse.
    wal = db_path.with_name(db_path.name + "-wal")
    if wal.exists():
        raise StartupError(
            f"{db_path} is missing but its write-ahead log {wal} is present (the database "
            "was moved or deleted). walletd changed nothing: restore the database from a "
            "backup, or move the -wal and -shm files away to start with an empty state"
        )


def initial_rows(sealer: Sealer, subkeys: dict[str, bytes]) -> list[Statement]:
    rows: list[Statement] = [sql.insert_meta(CHECK_KEY, sealer.check_value())]
    rows += [
        sql.insert_meta(name, sealer.seal(key, subkey_aad(name))) for name, key in subkeys.items()
    ]
    # A tagged head from the start: a database without one that holds anything was emptied.
    rows.append(sql.put_audit_head(*AuditChain(subkeys[AUDIT_KEY]).pending_head()))
    return rows


def preflight(db_path: Path, master: MasterKey) -> LoadedState:
    """Check and load an existing database without changing any file; StartupError if unfit."""
    readonly = Store.open_readonly(db_path)
    try:
        verify_master_key(readonly, master)
        version = readonly.pragmas()["user_version"]
        if version < SCHEMA_VERSION:
            # Load what the migrated database will hold, from a migrated copy in memory:
            # the file itself is migrated only once everything has passed.
            sealer = master.sealer()
            if version >= ROW_TAGS_SINCE:
                row_key = load_subkeys(readonly, sealer, (ROW_TAG_KEY,))[ROW_TAG_KEY]
            else:
                row_key = secrets.token_bytes(32)
            migration = migration_values(readonly, sealer, version, row_key)
            preview = readonly.migrated_copy(RowTagger(row_key, migration))
            try:
                state = load_state(preview, master.sealer())
            finally:
                preview.close()
            state.migration = migration
            return state
        return load_state(readonly, master.sealer())
    finally:
        readonly.close()


def verify_master_key(store: Store, master: MasterKey) -> None:
    check = store.meta(CHECK_KEY)
    if check is None:
        raise StartupError(
            f"database {store.path} has no master key check value; it is not "
            "a complete walletd database. walletd changed nothing"
        )
    if not master.sealer().matches(check):
        raise StartupError(
            f"the master key ({master.source}) does not open {store.path}: it is the wrong key. "
            "walletd changed nothing; start it with the key this state was sealed with"
        )


def migration_values(
    store: Store, sealer: Sealer, version: int, row_key: bytes
) -> dict[str, bytes]:
    """What migrating ``store`` from ``version`` writes into meta, decided once beforehand.

    Before schema 5: a new row-tag sub-key, sealed (the first start computes every row's tag
    with it, trusting the rows as they are then: SECURITY.md says so), and a genesis audit
    head if there is none, which is legitimate only while nothing exists yet.
    """
    if version >= ROW_TAGS_SINCE:
        return {}
    values = {ROW_TAG_KEY: sealer.seal(row_key, subkey_aad(ROW_TAG_KEY))}
    if store.meta(HEAD_KEY) is None:
        (records,) = store.query(sql.COUNT_AUDIT)[0]
        wallets = sum(n for _, n in store.query(sql.COUNT_WALLETS_BY_OWNER))
        (rituals,) = store.query(sql.COUNT_RITUALS)[0]
        gone = missing_head(None, records, wallets, rituals)
        if gone is not None:
            raise StartupError(f"{store.path}: {gone}. walletd changed nothing")
        audit_key = load_subkeys(store, sealer, (AUDIT_KEY,))[AUDIT_KEY]
        values[HEAD_KEY], values[HEAD_TAG_KEY] = AuditChain(audit_key).pending_head()
    return values


_NO_OVERRIDE = PolicyOverride()


def load_state(store: Store, sealer: Sealer) -> LoadedState:
    """Everything the daemon keeps in memory, unsealed; StartupError naming what fails."""
    subkeys = load_subkeys(store, sealer)
    # Tags before keys: a refused row is refused before any key is unsealed.
    problems = tag_problems(store, subkeys[ROW_TAG_KEY])
    if problems:
        raise StartupError(_tag_failure(store.path, problems))
    wallets = load_wallets(store, sealer)
    rituals = load_rituals(store)
    return LoadedState(wallets, rituals, load_chain_head(store), subkeys)


_KEY_TYPES = {kind.value: kind for kind in KeyType}


def load_wallets(store: Store, sealer: Sealer) -> list[Wallet]:
    wallets = []
    failed: list[str] = []
    unseal = sealer.unseal
    for row in store.rows(sql.SELECT_WALLETS):
        user_id, address, owner, sealed, created, key_created, count, age, sigs, auto, rsv = row[
            :11
        ]
        type_name, version, seal_format = row[11:]
        try:
            key_type = _KEY_TYPES[type_name]  # a dict, not KeyType(...): ~3 µs per wallet less
            aad = sealed_key_aad(user_id, address, key_type, version, seal_format)
            key = bytearray(unseal(sealed, aad))
        except (UnsealError, ValueError, KeyError):
            failed.append(user_id)
            continue
        if age is None and sigs is None and auto is None:
            override = _NO_OVERRIDE  # frozen, so one instance serves every default wallet
        else:
            override = PolicyOverride(age, sigs, None if auto is None else bool(auto))
        wallets.append(
            Wallet(
                user_id,
                address,
                owner,
                key,
                created,
                key_created,
                count,
                override,
                rsv,
                key_type=key_type,
                version=version,
            )
        )
    if failed:
        for wallet in wallets:
            zero(wallet.key)
        raise StartupError(_unseal_failure(store.path, failed))
    return wallets


def sealed_key_aad(
    user_id: str, address: str, key_type: KeyType, version: int, seal_format: int
) -> bytes:
    """The associated data a row's sealed key must verify under; ValueError if none may.

    The first format (from before key types) is accepted only on an ``hmac-sha256`` row at
    version 1 (see walletd.storage.sealing.legacy_wallet_aad), so flipping a row's format
    marker cannot make a key readable as another type or version.
    """
    if seal_format == sql.SEAL_FORMAT:
        return wallet_aad(user_id, address, key_type, version)  # a StrEnum: .value is slow
    if seal_format == 1 and key_type is KeyType.HMAC_SHA256 and version == 1:
        return legacy_wallet_aad(user_id, address)
    raise ValueError("seal format not allowed for this row")


def load_rituals(store: Store) -> dict[str, Ritual]:
    return {
        user_id: Ritual(decode_steps(steps), attempts, locked_at)
        for user_id, steps, attempts, locked_at in store.query(sql.SELECT_RITUALS)
    }


def load_subkeys(
    store: Store, sealer: Sealer, names: tuple[str, ...] = SUBKEYS
) -> dict[str, bytes]:
    subkeys = {}
    for name in names:
        sealed_subkey = store.meta(name)
        try:
            if sealed_subkey is None:
                raise UnsealError(name)
            subkeys[name] = sealer.unseal(sealed_subkey, subkey_aad(name))
        except UnsealError:
            raise StartupError(
                f"the {name} in {store.path} is missing or fails to unseal; walletd changed nothing"
            ) from None
    return subkeys


def load_chain_head(store: Store) -> tuple[int, str]:
    head = store.meta(HEAD_KEY)
    if head is None:
        return (0, GENESIS_HASH)
    seq, _, hash_ = head.decode().partition(":")
    return (int(seq), hash_)


def _unseal_failure(path: Path | None, users: list[str]) -> str:
    named = ", ".join(repr(u) for u in users[:5]) + (", ..." if len(users) > 5 else "")
    if len(users) == 1:
        what = f"the key of user {named} in {path} fails"
    else:
        what = f"the keys of {len(users)} users ({named}) in {path} fail"
    return (
        f"{what} to unseal (tampered with, or moved from another row, key type or "
        "version); walletd changed "
        "nothing. Restore the database from a backup"
    )


def _tag_failure(path: Path | None, problems: list[str]) -> str:
    shown = "; ".join(problems[:5]) + (
        f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
    )
    return (
        f"{path} was changed outside walletd: {shown}. walletd changed nothing; restore the "
        "database from a backup ('walletd check' lists every problem)"
    )
