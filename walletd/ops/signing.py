"""Signing and verifying, single and batched: the hot path of walletd.

``sign_message`` stays synchronous in the common case: find the wallet the caller may use
(:meth:`Context.wallet_for`, the one ownership rule), one comparison of the count with the
key's ``quiet_end``, the signature. Only when rotation-policy work falls due (a rotation, a
durable reservation of counts, a warning) does it go through the guarded, possibly waiting
path in :mod:`walletd.ops.rotation`, which raises :class:`RequestError` like every other op.
A batch turns such a failure into per-item errors for the items it did not sign, because
that is what the wire wants for a batch. A large batch on a public-key wallet is signed on
worker threads, off the loop (walletd.ops.batch_threads).

The signing policy costs a wallet without rules one set lookup (``user_id in
policy.watched``); wallets that have rules (or every wallet, while something is paused or
the default is deny) go through :class:`~walletd.ops.policy_gate.PolicyGate` first, and a
batch is decided item by item: refused items carry their error, the others are signed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

import msgspec

import walletd_wire as wire
from walletd.errors import RequestError, invalid
from walletd.model.approval_summary import summarize_message
from walletd.model.peer import Peer
from walletd.model.policy_request import SigningRequest
from walletd.model.signer import Signer
from walletd.model.wallets import Wallet
from walletd.ops.batch_threads import BatchThreads
from walletd.ops.context import Context
from walletd.ops.ownership import Claim
from walletd.ops.policy_gate import PolicyGate, ReviewNeeded
from walletd.ops.purpose import PurposeLog, check_purpose
from walletd.ops.rotation import Rotation

if TYPE_CHECKING:
    from walletd.ops.review import Review


class Signing:
    def __init__(self, ctx: Context, rotation: Rotation) -> None:
        self.ctx = ctx
        self.book = ctx.book
        self.rotation = rotation
        self.purposes = PurposeLog(ctx)
        self.policy = ctx.policy
        self.gate = PolicyGate(ctx)
        self.review: Review | None = None  # human approval (walletd.ops.review), set by the daemon
        self.summary_max_bytes = ctx.config.approvals.summary_max_bytes
        self.threads = BatchThreads()

    def sign_message(
        self, peer: Peer, req: wire.SignMessage
    ) -> wire.SignatureResult | Awaitable[wire.SignatureResult]:
        if req.purpose is not None:
            return self._sign_with_purpose(peer, req, req.purpose)
        wallet = self.ctx.wallet_for(peer, req.user_id)
        if req.user_id in self.policy.watched:
            # The gate is asked inline, not through a helper: the helper's call frame was a
            # tenth of what a watched request adds (19 of 193 bytecodes). Raises
            # PolicyDenied / SigningPaused.
            try:
                # The message alone: no request object unless a slow path needs one.
                pending = self.gate.admit_subject(peer, wallet, "sign_message", req.message)
            except ReviewNeeded as held:
                request = SigningRequest("sign_message", wallet.key_type, req.message)
                return self._review(peer, wallet, held, request, req.wait_s)
            if pending is not None:  # a reservation or the first denial record to commit
                return self._sign_after(pending, Claim.of(peer, wallet), req.message, req.wait_s)
            # Admitted and charged: signed below, exactly as a wallet with no policy.
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
        if req.user_id in self.policy.watched:
            return self._sign_batch_with_policy(peer, wallet, req.messages)
        return self._sign_many(peer, wallet, req.messages)

    def _sign_many(
        self, peer: Peer, wallet: Wallet, messages: list[bytes]
    ) -> wire.SignBatchResult | Awaitable[wire.SignBatchResult]:
        if wallet.signature_count + len(messages) > wallet.quiet_end:
            return self._sign_batch_guarded(Claim.of(peer, wallet), messages)
        sign, count = wallet.signer, len(messages)
        if self.threads.worth_it(wallet.key_type, count):
            wallet.signature_count += count
            self.book.unflushed.add(wallet)
            return self._sign_off_loop(Claim.of(peer, wallet), sign, messages)
        signatures = [sign(m) for m in messages]
        wallet.signature_count += count
        self.book.unflushed.add(wallet)
        return signed_items(wallet.address, wallet.version, signatures)

    async def _sign_off_loop(
        self, claim: Claim, sign: Signer, messages: list[bytes]
    ) -> wire.SignBatchResult:
        """A counted batch signed on the worker threads, then re-checked like every wait."""
        wallet = claim.wallet
        address, version = wallet.address, wallet.version  # of the key that signs
        signatures = await self.threads.sign(sign, messages)
        claim.recheck(self.book)  # deleted or recovered meanwhile: the signatures are not given
        return signed_items(address, version, signatures)

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

    # ------------------------------------------------------------------ under a policy

    def _review(
        self,
        peer: Peer,
        wallet: Wallet,
        held: ReviewNeeded,
        request: SigningRequest,
        wait_s: float | None,
    ) -> Awaitable[wire.SignatureResult]:
        """A pending approval, or a lease's signature (issue 16). Its ``pending`` result
        travels where a signature result would: the wire's result is typed by what the
        client expects."""
        assert self.review is not None
        message = request.message
        assert message is not None
        held_result = self.review.handle(
            peer,
            wallet,
            held,
            request=request,
            summarize=lambda: summarize_message(message, max_bytes=self.summary_max_bytes),
            sign=lambda p, w: self._sign_now(p, w, request.message or b""),
            wait_s=wait_s,
        )
        return held_result  # type: ignore[return-value]

    def _sign_now(
        self, peer: Peer, wallet: Wallet, message: bytes
    ) -> wire.SignatureResult | Awaitable[wire.SignatureResult]:
        """``sign_message``'s own path, once the policy has admitted the signature."""
        count = wallet.signature_count
        if count >= wallet.quiet_end:
            return self._sign_guarded(Claim.of(peer, wallet), message)
        wallet.signature_count = count + 1
        self.book.unflushed.add(wallet)
        return wire.SignatureResult(
            wallet.signer(message), wallet.address, wallet.key_type, wallet.version
        )

    async def _sign_after(
        self, pending: Awaitable[None], claim: Claim, message: bytes, wait_s: float | None = None
    ) -> wire.SignatureResult:
        try:
            await pending
        except ReviewNeeded as held:
            wallet = claim.recheck(self.book)
            request = SigningRequest("sign_message", wallet.key_type, message)
            return await self._review(claim.peer, wallet, held, request, wait_s)
        peer, wallet = claim.peer, claim.recheck(self.book)
        result = self._sign_now(peer, wallet, message)
        return result if isinstance(result, wire.SignatureResult) else await result

    def _sign_batch_with_policy(
        self, peer: Peer, wallet: Wallet, messages: list[bytes]
    ) -> wire.SignBatchResult | Awaitable[wire.SignBatchResult]:
        key_type = wallet.key_type
        verdicts = self.gate.admit_many(
            peer, wallet, [SigningRequest("sign_batch", key_type, m) for m in messages]
        )
        if isinstance(verdicts, list):
            return self._sign_admitted(peer, wallet, messages, verdicts)
        return self._sign_batch_after(verdicts, Claim.of(peer, wallet), messages)

    async def _sign_batch_after(
        self,
        pending: Awaitable[list[wire.ErrorBody | None]],
        claim: Claim,
        messages: list[bytes],
    ) -> wire.SignBatchResult:
        verdicts = await pending
        peer, wallet = claim.peer, claim.recheck(self.book)
        result = self._sign_admitted(peer, wallet, messages, verdicts)
        return result if isinstance(result, wire.SignBatchResult) else await result

    def _sign_admitted(
        self,
        peer: Peer,
        wallet: Wallet,
        messages: list[bytes],
        verdicts: list[wire.ErrorBody | None],
    ) -> wire.SignBatchResult | Awaitable[wire.SignBatchResult]:
        admitted = [m for m, v in zip(messages, verdicts, strict=True) if v is None]
        signed = self._sign_many(peer, wallet, admitted) if admitted else wire.SignBatchResult([])
        if isinstance(signed, wire.SignBatchResult):
            return merge_items(verdicts, signed.items)
        return self._merge_after(signed, verdicts)

    async def _merge_after(
        self, signed: Awaitable[wire.SignBatchResult], verdicts: list[wire.ErrorBody | None]
    ) -> wire.SignBatchResult:
        result = await signed
        return merge_items(verdicts, result.items)


def signed_items(address: str, version: int, signatures: list[bytes]) -> wire.SignBatchResult:
    return wire.SignBatchResult([wire.SignedItem(s, address, None, version) for s in signatures])


def merge_items(
    verdicts: Sequence[wire.ErrorBody | None], signed: list[wire.SignedItem]
) -> wire.SignBatchResult:
    """The batch's items in order: each refused one's error, the signed ones in between."""
    it = iter(signed)
    return wire.SignBatchResult(
        [wire.SignedItem(error=v) if v is not None else next(it) for v in verdicts]
    )


def _check_batch(size: int) -> None:
    if size > wire.MAX_BATCH_ITEMS:
        raise invalid(f"a batch holds at most {wire.MAX_BATCH_ITEMS} items, got {size}")
