"""Wallet operations: create, look up, list and delete wallets; ``hello`` and ``status``.

Signing and verifying live in :mod:`walletd.ops.signing`.
"""

from __future__ import annotations

import time

import structlog

import walletd_wire as wire
from walletd import __version__
from walletd.errors import AlreadyExists, invalid
from walletd.model.key_material import KEY_TYPES, KeyType, new_key_material, parse_key_type
from walletd.model.peer import Actor, Peer
from walletd.model.validation import check_user_id
from walletd.model.wallets import Wallet, zero
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
        try:
            key_type = parse_key_type(req.key_type)
        except ValueError as exc:
            raise invalid(str(exc)) from None
        ctx = self.ctx
        async with ctx.writer:
            if user_id in self.book.wallets:
                raise AlreadyExists(f"user {user_id!r} already has a wallet")
            fresh, now = new_key_material(key_type), ctx.now()
            key, address = fresh.key, fresh.address
            try:
                sealed = ctx.sealer.seal(bytes(key), wallet_aad(user_id, address, key_type, 1))
                rows = [sql.insert_wallet(user_id, address, peer.uid, sealed, now, key_type)]
                if fresh.public_key is not None:
                    rows.append(
                        sql.insert_public_key(user_id, 1, key_type, fresh.public_key, address, now)
                    )
                detail = None if key_type is KeyType.HMAC_SHA256 else {"key_type": key_type}
                entry = ctx.audit(
                    "wallet_created", user_id, [address], Actor.of(peer), detail=detail
                )
                await ctx.commit(rows, entry)
            except BaseException:
                zero(key)  # never stored: do not leave it in memory
                raise
            self.book.add(Wallet(user_id, address, peer.uid, key, now, now, key_type=key_type))
        return wire.AddressResult(address)

    async def delete_wallet(self, peer: Peer, req: wire.DeleteWallet) -> wire.DeletedResult:
        ctx = self.ctx
        async with ctx.writer:
            wallet = ctx.wallet_for(peer, req.user_id)
            entry = ctx.audit("wallet_deleted", wallet.user_id, [wallet.address], Actor.of(peer))
            await ctx.commit(
                [
                    sql.delete_wallet(wallet.user_id),
                    sql.delete_public_keys(wallet.user_id),
                    sql.delete_ritual(wallet.user_id),
                    *sql.delete_signing_state(wallet.user_id),
                ],
                entry,
            )
            self.book.remove(wallet.user_id)
            ctx.rituals.pop(wallet.user_id, None)
            ctx.policy.forget(wallet.user_id)
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
        return wire.WalletsResult(
            {w.user_id: w.address for w in wallets}, {w.user_id: w.key_type for w in wallets}
        )

    # ------------------------------------------------------------------ status

    def hello(self, peer: Peer, req: wire.Hello) -> wire.HelloResult:
        limits = wire.Limits(
            self.ctx.config.max_frame_bytes, wire.MAX_BATCH_ITEMS, dict(wire.LIST_LIMITS)
        )
        return wire.HelloResult(
            wire.PROTOCOL_VERSION,
            f"walletd {__version__}",
            list(wire.OPS),
            list(KEY_TYPES),
            limits,
        )

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
