"""Wallet operations: create, look up, list and delete wallets; ``hello`` and ``status``.

Signing and verifying live in :mod:`walletd.ops.signing`.
"""

from __future__ import annotations

import time

import structlog

import walletd_wire as wire
from walletd import __version__
from walletd.errors import AlreadyExists
from walletd.model.peer import Actor, Peer
from walletd.model.validation import check_user_id
from walletd.model.wallets import Wallet, new_address, new_key, zero
from walletd.ops.context import Context
from walletd.storage import sql
from walletd.storage.sealing import wallet_aad

log = structlog.get_logger("walletd")


class WalletOps:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.book = ctx.book

    # ------------------------------------------------------------------ create / delete

    async def create_wallet(self, peer: Peer, req: wire.CreateWallet) -> wire.AddressResult:
        user_id = check_user_id(req.user_id)
        ctx = self.ctx
        async with ctx.writer:
            if user_id in self.book.wallets:
                raise AlreadyExists(f"user {user_id!r} already has a wallet")
            key, address, now = new_key(), new_address(), ctx.now()
            sealed = ctx.sealer.seal(bytes(key), wallet_aad(user_id, address))
            entry = ctx.audit("wallet_created", user_id, [address], Actor.of(peer))
            try:
                await ctx.commit(
                    [sql.insert_wallet(user_id, address, peer.uid, sealed, now)], entry
                )
            except BaseException:
                zero(key)  # never stored: do not leave it in memory
                raise
            self.book.add(Wallet(user_id, address, peer.uid, key, now, now))
        return wire.AddressResult(address)

    async def delete_wallet(self, peer: Peer, req: wire.DeleteWallet) -> wire.DeletedResult:
        ctx = self.ctx
        async with ctx.writer:
            wallet = ctx.wallet_for(peer, req.user_id)
            entry = ctx.audit("wallet_deleted", wallet.user_id, [wallet.address], Actor.of(peer))
            await ctx.commit(
                [
                    sql.delete_wallet(wallet.user_id),
                    sql.delete_ritual(wallet.user_id),
                ],
                entry,
            )
            self.book.remove(wallet.user_id)
            ctx.rituals.pop(wallet.user_id, None)
        return wire.DeletedResult(True)

    # ------------------------------------------------------------------ reading

    def get_wallet_address(self, peer: Peer, req: wire.GetWalletAddress) -> wire.AddressResult:
        if req.user_id not in self.book.wallets:
            check_user_id(req.user_id)
            return wire.AddressResult(None)
        return wire.AddressResult(self.ctx.wallet_for(peer, req.user_id).address)

    def has_wallet(self, peer: Peer, req: wire.HasWallet) -> wire.ExistsResult:
        if req.user_id not in self.book.wallets:
            check_user_id(req.user_id)
            return wire.ExistsResult(False)
        self.ctx.wallet_for(peer, req.user_id)
        return wire.ExistsResult(True)

    def list_wallets(self, peer: Peer, req: wire.ListWallets) -> wire.WalletsResult:
        if peer.is_admin:
            wallets = list(self.book.wallets.values())
        else:
            wallets = self.book.owned_by(peer.uid)
        return wire.WalletsResult({w.user_id: w.address for w in wallets})

    # ------------------------------------------------------------------ status

    def hello(self, peer: Peer, req: wire.Hello) -> wire.HelloResult:
        return wire.HelloResult(wire.PROTOCOL_VERSION, f"walletd {__version__}", list(wire.OPS))

    def status(self, peer: Peer, req: wire.Status) -> wire.StatusResult:
        ctx = self.ctx
        wallets = len(self.book) if peer.is_admin else len(self.book.owned_by(peer.uid))
        return wire.StatusResult(
            uptime_s=round(time.monotonic() - ctx.started, 3),
            wallets=wallets,
            connections=ctx.connections,
            server=f"walletd {__version__}",
            ephemeral=ctx.ephemeral,
            requests=ctx.requests if peer.is_admin else 0,
            max_attempts=ctx.config.max_attempts,
        )
