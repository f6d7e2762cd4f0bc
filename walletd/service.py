"""Wallet operations: create, look up, list, delete, sign and verify (single and batched).

Signing is the hot path and stays synchronous: look up, check ownership, one comparison of
the count with the key's ``quiet_end``, HMAC. Only when policy work falls due (a rotation, a
durable reservation of counts, a warning) does signing go through the guarded, possibly
waiting path of :mod:`walletd.rotation`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import structlog

from wallet_client import protocol as p

from . import __version__
from .context import Actor, Context
from .errors import RequestError, invalid
from .peer import Peer
from .sealing import wallet_aad
from .validation import check_user_id
from .wallets import Wallet, new_address, new_key, zero

if TYPE_CHECKING:
    from .rotation import Rotation

log = structlog.get_logger("walletd")
SignatureResult = p.SignatureResult  # bound once: the sign path uses it on every request

INSERT_WALLET = (
    "INSERT INTO wallets (user_id, address, owner_uid, sealed_key, created_at, key_created_at,"
    " signature_count) VALUES (?, ?, ?, ?, ?, ?, 0)"
)


class WalletService:
    def __init__(self, ctx: Context, rotation: Rotation) -> None:
        self.ctx = ctx
        self.book = ctx.book
        self.rotation = rotation
        # Bound once for the sign path; WalletBook never replaces these containers.
        self._wallets = ctx.book.wallets
        self._mark_unflushed = ctx.book.unflushed.add

    # ------------------------------------------------------------------ create / delete

    async def create_wallet(self, peer: Peer, req: p.CreateWallet) -> p.AddressResult:
        user_id = check_user_id(req.user_id)
        ctx = self.ctx
        async with ctx.writer:
            if user_id in self.book.wallets:
                raise RequestError(
                    p.ErrorCode.ALREADY_EXISTS, f"user {user_id!r} already has a wallet"
                )
            key, address, now = new_key(), new_address(), ctx.now()
            sealed = ctx.sealer.seal(bytes(key), wallet_aad(user_id, address))
            entry = ctx.audit("wallet_created", user_id, [address], Actor.of(peer))
            try:
                await ctx.commit(
                    [(INSERT_WALLET, (user_id, address, peer.uid, sealed, now, now))], entry
                )
            except BaseException:
                zero(key)  # never stored: do not leave it in memory
                raise
            self.book.add(Wallet(user_id, address, peer.uid, key, now, now))
        return p.AddressResult(address)

    async def delete_wallet(self, peer: Peer, req: p.DeleteWallet) -> p.DeletedResult:
        ctx = self.ctx
        async with ctx.writer:
            wallet = ctx.wallet_for(peer, req.user_id)
            entry = ctx.audit("wallet_deleted", wallet.user_id, [wallet.address], Actor.of(peer))
            await ctx.commit(
                [
                    ("DELETE FROM wallets WHERE user_id = ?", (wallet.user_id,)),
                    ("DELETE FROM rituals WHERE user_id = ?", (wallet.user_id,)),
                ],
                entry,
            )
            self.book.remove(wallet.user_id)
            ctx.rituals.pop(wallet.user_id, None)
        return p.DeletedResult(True)

    # ------------------------------------------------------------------ reading

    def get_wallet_address(self, peer: Peer, req: p.GetWalletAddress) -> p.AddressResult:
        if req.user_id not in self.book.wallets:
            check_user_id(req.user_id)
            return p.AddressResult(None)
        return p.AddressResult(self.ctx.wallet_for(peer, req.user_id).address)

    def has_wallet(self, peer: Peer, req: p.HasWallet) -> p.ExistsResult:
        if req.user_id not in self.book.wallets:
            check_user_id(req.user_id)
            return p.ExistsResult(False)
        self.ctx.wallet_for(peer, req.user_id)
        return p.ExistsResult(True)

    def list_wallets(self, peer: Peer, req: p.ListWallets) -> p.WalletsResult:
        if peer.is_admin:
            wallets = list(self.book.wallets.values())
        else:
            wallets = self.book.owned_by(peer.uid)
        return p.WalletsResult({w.user_id: w.address for w in wallets})

    # ------------------------------------------------------------------ signing

    def sign_message(
        self, peer: Peer, req: p.SignMessage
    ) -> p.SignatureResult | Awaitable[p.SignatureResult]:
        # The hot path: one lookup, the ownership rule, one comparison, one HMAC.
        wallet = self._wallets.get(req.user_id)
        if wallet is None or (wallet.owner_uid != peer.uid and not peer.is_admin):
            wallet = self.ctx.wallet_for(peer, req.user_id)  # raises the precise refusal
        count = wallet.signature_count
        if count >= wallet.quiet_end:
            return self._sign_guarded(wallet, req.message)
        wallet.signature_count = count + 1
        self._mark_unflushed(wallet)
        return SignatureResult(wallet.hmac(req.message), wallet.address)

    async def _sign_guarded(self, wallet: Wallet, message: bytes) -> p.SignatureResult:
        (item,) = await self.rotation.sign_guarded(wallet, [message])
        if item.error is not None:
            raise RequestError(p.ErrorCode(item.error.code), item.error.message)
        assert item.signature is not None
        assert item.address is not None
        return p.SignatureResult(item.signature, item.address)

    def verify_signature(self, peer: Peer, req: p.VerifySignature) -> p.ValidResult:
        wallet = self.ctx.wallet_for(peer, req.user_id)
        return p.ValidResult(wallet.verify(req.message, req.signature))

    def sign_batch(
        self, peer: Peer, req: p.SignBatch
    ) -> p.SignBatchResult | Awaitable[p.SignBatchResult]:
        """One authorization and policy check per batch; rotates between items at the limit."""
        _check_batch(len(req.messages))
        wallet = self.ctx.wallet_for(peer, req.user_id)
        messages = req.messages
        if wallet.signature_count + len(messages) > wallet.quiet_end:
            return self._sign_batch_guarded(wallet, messages)
        sign, address = wallet.hmac, wallet.address
        items = [p.SignedItem(sign(m), address) for m in messages]
        wallet.signature_count += len(messages)
        self.book.unflushed.add(wallet)
        return p.SignBatchResult(items)

    async def _sign_batch_guarded(self, wallet: Wallet, messages: list[bytes]) -> p.SignBatchResult:
        return p.SignBatchResult(await self.rotation.sign_guarded(wallet, messages))

    def verify_batch(self, peer: Peer, req: p.VerifyBatch) -> p.VerifyBatchResult:
        _check_batch(len(req.items))
        wallet = self.ctx.wallet_for(peer, req.user_id)
        return p.VerifyBatchResult([wallet.verify(i.message, i.signature) for i in req.items])

    # ------------------------------------------------------------------ status

    def hello(self, peer: Peer, req: p.Hello) -> p.HelloResult:
        return p.HelloResult(p.PROTOCOL_VERSION, f"walletd {__version__}", list(p.OPS))

    def status(self, peer: Peer, req: p.Status) -> p.StatusResult:
        ctx = self.ctx
        wallets = len(self.book) if peer.is_admin else len(self.book.owned_by(peer.uid))
        return p.StatusResult(
            uptime_s=round(time.monotonic() - ctx.started, 3),
            wallets=wallets,
            connections=ctx.connections,
            server=f"walletd {__version__}",
            ephemeral=ctx.ephemeral,
            requests=ctx.requests if peer.is_admin else 0,
            max_attempts=ctx.config.max_attempts,
        )


def _check_batch(size: int) -> None:
    if size > p.MAX_BATCH_ITEMS:
        raise invalid(f"a batch holds at most {p.MAX_BATCH_ITEMS} items, got {size}")
