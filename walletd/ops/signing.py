"""Signing and verifying, single and batched: the hot path of walletd.

``sign_message`` stays synchronous in the common case: find the wallet the caller may use
(:meth:`Context.wallet_for`, the one ownership rule), one comparison of the count with the
key's ``quiet_end``, the signature. Only when rotation-policy work falls due (a rotation, a
durable reservation of counts, a warning) does it go through the guarded, possibly waiting
path in :mod:`walletd.ops.rotation`, which raises :class:`RequestError` like every other op.
A batch turns such a failure into per-item errors for the items it did not sign, because
that is what the wire wants for a batch.
"""

from __future__ import annotations

from collections.abc import Awaitable

import msgspec

import walletd_wire as wire
from walletd.errors import RequestError, invalid
from walletd.model.peer import Peer
from walletd.ops.context import Context
from walletd.ops.ownership import Claim
from walletd.ops.purpose import PurposeLog, check_purpose
from walletd.ops.rotation import Rotation


class Signing:
    def __init__(self, ctx: Context, rotation: Rotation) -> None:
        self.ctx = ctx
        self.book = ctx.book
        self.rotation = rotation
        self.purposes = PurposeLog(ctx)

    def sign_message(
        self, peer: Peer, req: wire.SignMessage
    ) -> wire.SignatureResult | Awaitable[wire.SignatureResult]:
        if req.purpose is not None:
            return self._sign_with_purpose(peer, req, req.purpose)
        wallet = self.ctx.wallet_for(peer, req.user_id)
        count = wallet.signature_count
        if count >= wallet.quiet_end:
            return self._sign_guarded(Claim.of(peer, wallet), req.message)
        wallet.signature_count = count + 1
        self.book.unflushed.add(wallet)
        return wire.SignatureResult(
            wallet.signer(req.message), wallet.address, wallet.key_type, wallet.version
        )

    async def _sign_guarded(self, claim: Claim, message: bytes) -> wire.SignatureResult:
        wallet = claim.wallet
        items: list[wire.SignedItem] = []
        try:
            await self.rotation.sign_guarded(claim, [message], items)
        except RequestError:
            if not items:
                raise
            # The signature was made; only the rotation due after it failed (logged), and the
            # next signature fails closed on the same check.
        (item,) = items
        assert item.signature is not None
        assert item.address is not None
        assert item.version is not None
        return wire.SignatureResult(item.signature, item.address, wallet.key_type, item.version)

    def _sign_with_purpose(
        self, peer: Peer, req: wire.SignMessage, purpose: str
    ) -> Awaitable[wire.SignatureResult]:
        # Checked before signing, so a bad purpose costs no count; see walletd.ops.purpose.
        check_purpose(purpose)
        signed = self.sign_message(peer, msgspec.structs.replace(req, purpose=None))
        size = len(req.message)
        return self.purposes.record(peer, "sign_message", req.user_id, purpose, size, signed)

    def verify_signature(self, peer: Peer, req: wire.VerifySignature) -> wire.ValidResult:
        wallet = self.ctx.wallet_for(peer, req.user_id)
        return wire.ValidResult(wallet.verify(req.message, req.signature))

    def sign_batch(
        self, peer: Peer, req: wire.SignBatch
    ) -> wire.SignBatchResult | Awaitable[wire.SignBatchResult]:
        """One authorization and policy check per batch; rotates between items at the limit."""
        _check_batch(len(req.messages))
        wallet = self.ctx.wallet_for(peer, req.user_id)
        messages = req.messages
        if wallet.signature_count + len(messages) > wallet.quiet_end:
            return self._sign_batch_guarded(Claim.of(peer, wallet), messages)
        sign, address, version = wallet.signer, wallet.address, wallet.version
        items = [wire.SignedItem(sign(m), address, None, version) for m in messages]
        wallet.signature_count += len(messages)
        self.book.unflushed.add(wallet)
        return wire.SignBatchResult(items)

    async def _sign_batch_guarded(
        self, claim: Claim, messages: list[bytes]
    ) -> wire.SignBatchResult:
        items: list[wire.SignedItem] = []
        try:
            await self.rotation.sign_guarded(claim, messages, items)
        except RequestError as exc:
            # The items signed before the failure stand; the rest carry its error.
            body = wire.ErrorBody(exc.code, exc.message)
            items.extend(wire.SignedItem(error=body) for _ in messages[len(items) :])
        return wire.SignBatchResult(items)

    def verify_batch(self, peer: Peer, req: wire.VerifyBatch) -> wire.VerifyBatchResult:
        _check_batch(len(req.items))
        wallet = self.ctx.wallet_for(peer, req.user_id)
        return wire.VerifyBatchResult([wallet.verify(i.message, i.signature) for i in req.items])


def _check_batch(size: int) -> None:
    if size > wire.MAX_BATCH_ITEMS:
        raise invalid(f"a batch holds at most {wire.MAX_BATCH_ITEMS} items, got {size}")
