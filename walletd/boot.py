"""Opening the state: checks first, then load, then the objects that serve requests.

Startup refuses, with a message saying why and what to do, and without changing any file:
an unsafe state directory, a corrupt or truncated database, a database from a newer walletd, a
missing or wrong master key, or a key that fails to unseal.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from wallet_client import protocol as p

from .audit import GENESIS_HASH, HEAD_KEY, AuditChain
from .audit_queries import AuditQueries
from .backups import Backups, DirectoryVault, MemoryVault, Vault
from .config import Config
from .context import Context, default_policy
from .dispatch import Dispatcher, Handler
from .errors import StartupError
from .recovery import Recovery
from .ritual import Ritual, decode_steps
from .rotation import Rotation
from .sealing import MasterKey, Sealer, UnsealError, load_master_key, wallet_aad
from .service import WalletService
from .store import DB_NAME, AsyncStore, Store, check_state_dir
from .wallets import PolicyOverride, Wallet, WalletBook

log = structlog.get_logger("walletd")

CHECK_KEY = "master_key_check"
# Random sub-keys, sealed under the master key, so that a rekey re-seals them instead of
# changing them (which would break every audit hash and backup tag made before).
AUDIT_KEY = "audit_key"
BACKUP_KEY = "backup_key"
SUBKEYS = (AUDIT_KEY, BACKUP_KEY)


def subkey_aad(name: str) -> bytes:
    return b"walletd:subkey:v1\x00" + name.encode()


@dataclass
class Daemon:
    """Everything a running walletd serves from."""

    ctx: Context
    dispatcher: Dispatcher
    rotation: Rotation
    store: Store
    master_key: MasterKey


@dataclass
class LoadedState:
    wallets: list[Wallet]
    rituals: dict[str, Ritual]
    chain_head: tuple[int, str]
    subkeys: dict[str, bytes]


def fresh_subkeys() -> dict[str, bytes]:
    return {name: secrets.token_bytes(32) for name in SUBKEYS}


def empty_state() -> LoadedState:
    return LoadedState([], {}, (0, GENESIS_HASH), fresh_subkeys())


def open_store(config: Config) -> tuple[Store, MasterKey, LoadedState]:
    """The database, checked and loaded, and the master key that opens it."""
    if config.ephemeral:
        key = MasterKey(secrets.token_bytes(32), "ephemeral (memory only)")
        return Store.open_memory(), key, empty_state()
    state_dir = Path(config.state_dir)
    check_state_dir(state_dir)
    db_path = state_dir / DB_NAME
    existing = db_path.exists()
    master = load_master_key(
        state_dir,
        config.master_key_file,
        require_external=config.require_external_master_key,
        may_generate=not existing,
    )
    if not existing:
        store = Store.create(db_path)
        state = empty_state()
        sealer = master.sealer()
        store.write(
            [
                ("INSERT INTO meta (key, value) VALUES (?, ?)", (CHECK_KEY, sealer.check_value())),
                *(
                    (
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        (name, sealer.seal(key, subkey_aad(name))),
                    )
                    for name, key in state.subkeys.items()
                ),
            ]
        )
        return store, master, state
    # Check and load everything read-only first, so that a refusal leaves the files
    # byte-for-byte unchanged; only then open for writing.
    readonly = Store.open_readonly(db_path)
    try:
        verify_master_key(readonly, master)
        state = load_state(readonly, master.sealer())
    finally:
        readonly.close()
    return Store.open_writable(db_path), master, state


def verify_master_key(store: Store, master: MasterKey) -> None:
    check = store.meta(CHECK_KEY)
    if check is None:
        raise StartupError(
            f"database {store.path} has no master key check value; it is not "
            "a complete walletd database"
        )
    if not master.sealer().matches(check):
        raise StartupError(
            f"the master key ({master.source}) does not open {store.path}: it is the wrong key. "
            "walletd changed nothing; start it with the key this state was sealed with"
        )


def load_state(store: Store, sealer: Sealer) -> LoadedState:
    wallets = []
    rows = store.query(
        "SELECT user_id, address, owner_uid, sealed_key, created_at, key_created_at,"
        " signature_count, max_age_days, max_signatures, auto_rotate FROM wallets"
    )
    for user_id, address, owner, sealed, created, key_created, count, age, sigs, auto in rows:
        try:
            key = bytearray(sealer.unseal(sealed, wallet_aad(user_id, address)))
        except UnsealError:
            raise StartupError(
                f"the key of user {user_id!r} in {store.path} fails to unseal (tampered with, "
                "or moved from another row); walletd changed nothing"
            ) from None
        override = PolicyOverride(age, sigs, None if auto is None else bool(auto))
        wallets.append(Wallet(user_id, address, owner, key, created, key_created, count, override))
    rituals = {
        user_id: Ritual(decode_steps(steps), attempts, locked_at)
        for user_id, steps, attempts, locked_at in store.query(
            "SELECT user_id, steps, attempts, locked_at FROM rituals"
        )
    }
    subkeys = {}
    for name in SUBKEYS:
        sealed_subkey = store.meta(name)
        try:
            if sealed_subkey is None:
                raise UnsealError(name)
            subkeys[name] = sealer.unseal(sealed_subkey, subkey_aad(name))
        except UnsealError:
            raise StartupError(
                f"the {name} in {store.path} is missing or fails to unseal; walletd changed nothing"
            ) from None
    head = store.meta(HEAD_KEY)
    chain_head = (0, GENESIS_HASH)
    if head is not None:
        seq, _, hash_ = head.decode().partition(":")
        chain_head = (int(seq), hash_)
    return LoadedState(wallets, rituals, chain_head, subkeys)


def build_daemon(config: Config, *, clock: Callable[[], float] = time.time) -> Daemon:
    started = time.perf_counter()
    store, master, state = open_store(config)
    sealer = master.sealer()
    book = WalletBook(default_policy(config))
    for wallet in state.wallets:
        book.add(wallet)
    ctx = Context(
        config=config,
        book=book,
        store=AsyncStore(store),
        chain=AuditChain(state.subkeys[AUDIT_KEY], *state.chain_head),
        sealer=sealer,
        ephemeral=config.ephemeral,
        clock=clock,
        rituals=state.rituals,
    )
    vault: Vault = MemoryVault() if config.ephemeral else DirectoryVault(config.backups_path)
    rotation = Rotation(ctx)
    dispatcher = Dispatcher(
        handlers(
            WalletService(ctx, rotation),
            rotation,
            Backups(ctx, vault, state.subkeys[BACKUP_KEY]),
            Recovery(ctx, rotation),
            AuditQueries(ctx, state.subkeys[AUDIT_KEY]),
        )
    )
    log.info(
        "state_loaded",
        wallets=len(book),
        rituals=len(state.rituals),
        ephemeral=config.ephemeral,
        master_key_source=master.source,
        seconds=round(time.perf_counter() - started, 3),
    )
    if config.ephemeral:
        log.warning("ephemeral_mode", detail="state is in memory only and lost at exit")
    elif master.generated:
        log.warning(
            "master_key_beside_data",
            source=master.source,
            detail="the master key sits beside the data it protects; provide it via "
            "systemd credentials or master_key_file for production",
        )
    return Daemon(ctx, dispatcher, rotation, store, master)


def handlers(
    wallets: WalletService,
    rotation: Rotation,
    backups: Backups,
    recovery: Recovery,
    audit: AuditQueries,
) -> dict[type[p.Request], Handler]:
    return {
        p.Hello: wallets.hello,
        p.Status: wallets.status,
        p.CreateWallet: wallets.create_wallet,
        p.GetWalletAddress: wallets.get_wallet_address,
        p.HasWallet: wallets.has_wallet,
        p.ListWallets: wallets.list_wallets,
        p.DeleteWallet: wallets.delete_wallet,
        p.SignMessage: wallets.sign_message,
        p.VerifySignature: wallets.verify_signature,
        p.SignBatch: wallets.sign_batch,
        p.VerifyBatch: wallets.verify_batch,
        p.RotateKeys: rotation.rotate_keys,
        p.NeedsRotation: rotation.needs_rotation,
        p.RotationStatus: rotation.rotation_status,
        p.RotationHistory: rotation.rotation_history,
        p.GetPolicy: rotation.get_policy,
        p.SetPolicy: rotation.set_policy,
        p.BackupWallet: backups.backup_wallet,
        p.CreateBackup: backups.create_backup,
        p.ListBackups: backups.list_backups,
        p.VerifyBackup: backups.verify_backup,
        p.DeleteBackup: backups.delete_backup,
        p.AuditLog: audit.audit_log,
        p.AuditVerify: audit.audit_verify,
        p.RegisterRitual: recovery.register_ritual,
        p.UnregisterRitual: recovery.unregister_ritual,
        p.HasRitual: recovery.has_ritual,
        p.GetPrompts: recovery.get_prompts,
        p.GetRemainingAttempts: recovery.get_remaining_attempts,
        p.IsLocked: recovery.is_locked,
        p.InitiateRecovery: recovery.initiate_recovery,
        p.ResetAttempts: recovery.reset_attempts,
    }
