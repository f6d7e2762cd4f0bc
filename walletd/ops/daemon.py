"""Assembling a running walletd: the loaded state, the operations, and the dispatcher.

``build_daemon`` opens the state (every check first; see :mod:`walletd.storage.loader`), then
builds the context every operation shares and one object per operation family, and hands
their methods to the dispatcher's op table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from walletd.config import Config
from walletd.errors import StartupError
from walletd.model.audit_chain import AuditChain
from walletd.model.ritual import check_scrypt_params
from walletd.model.wallets import WalletBook
from walletd.ops.approval_ops import ApprovalOps, settings_of
from walletd.ops.approvals import ApprovalDesk
from walletd.ops.audit import AuditQueries
from walletd.ops.backups import Backups, DirectoryVault, MemoryVault, Vault
from walletd.ops.context import Context, default_policy
from walletd.ops.dispatch import Dispatcher, OpFamilies
from walletd.ops.keys import KeyOps
from walletd.ops.policy import PolicyOps
from walletd.ops.policy_gate import PolicyGate
from walletd.ops.policy_state import PolicyState
from walletd.ops.recovery import Recovery
from walletd.ops.review import Review
from walletd.ops.rotation import Rotation
from walletd.ops.signing import Signing
from walletd.ops.wallets import WalletOps
from walletd.storage import sql
from walletd.storage.loader import AUDIT_KEY, BACKUP_KEY, LoadedState, open_store
from walletd.storage.sealing import MasterKey
from walletd.storage.store import AsyncStore, Store

log = structlog.get_logger("walletd")


@dataclass
class Daemon:
    """Everything a running walletd serves from."""

    ctx: Context
    dispatcher: Dispatcher
    rotation: Rotation
    store: Store
    master_key: MasterKey
    policy_gate: PolicyGate
    approvals: ApprovalDesk


def build_daemon(config: Config, *, clock: Callable[[], float] = time.time) -> Daemon:
    started = time.perf_counter()
    try:
        check_scrypt_params(config.scrypt_n, config.scrypt_r, config.scrypt_p)
    except ValueError as exc:
        raise StartupError(f"unusable scrypt parameters: {exc}") from None
    store, master, state = open_store(config)
    try:
        return _assemble(config, clock, store, master, state, started)
    except BaseException:
        store.close()  # releases the state directory's lock
        raise


def _assemble(
    config: Config,
    clock: Callable[[], float],
    store: Store,
    master: MasterKey,
    state: LoadedState,
    started: float,
) -> Daemon:
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
        policy=_load_policy(config, store, book),
    )
    vault: Vault = MemoryVault() if config.ephemeral else DirectoryVault(config.backups_path)
    backups = Backups(ctx, vault, state.subkeys[BACKUP_KEY])
    backups.prime()  # the backup index (issue 12): one read of the directory, before serving
    rotation = Rotation(ctx)
    signing = Signing(ctx, rotation)
    desk = ApprovalDesk(ctx, settings_of(config), wall=clock)
    signing.review = Review(ctx, desk)
    signing.gate.holds_reviews = True
    signing.gate.desk = desk
    ctx.policy.pause_hooks.append(desk.on_pause)
    dispatcher = Dispatcher(
        OpFamilies(
            wallets=WalletOps(ctx),
            signing=signing,
            rotation=rotation,
            backups=backups,
            recovery=Recovery(ctx, rotation),
            audit=AuditQueries(ctx, state.subkeys[AUDIT_KEY]),
            keys=KeyOps(ctx, signing, rotation),
            policy=PolicyOps(ctx),
            approvals=ApprovalOps(desk),
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
    return Daemon(ctx, dispatcher, rotation, store, master, signing.gate, desk)


def _load_policy(config: Config, store: Store, book: WalletBook) -> PolicyState:
    """Every wallet's signing policy, rate windows and the pauses, from the store."""
    state = PolicyState(config.signing, durable=not config.ephemeral)
    state.load(
        store.query(sql.SELECT_SIGNING_POLICIES),
        store.query(sql.SELECT_RATE_WINDOWS),
        store.query(sql.SELECT_SIGNING_PAUSES),
        book.wallets,
    )
    return state
