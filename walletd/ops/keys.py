"""Operations of the public-key wallet types: public keys and their history, EIP-712 signing,
and verification against a chosen key version.

The current key is answered from memory; an earlier version's public key is read from the
``public_keys`` table (its private key was destroyed by the rotation that replaced it), so a
signature made before a rotation still verifies. ``hmac-sha256`` wallets have no public key and
keep only their current key: for them only the current version exists.

There is no op that signs a caller-supplied hash, for any key type: a signer that signs bare
32-byte digests can be made to sign a transaction it cannot see. ``sign_typed_data`` receives
the whole EIP-712 document, validates it (walletd_wire.eip712) and hashes it itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import msgspec

import walletd_wire as wire
from walletd.errors import RequestError, invalid, not_found
from walletd.model.approval_summary import summarize_typed
from walletd.model.key_material import KeyType
from walletd.model.keys import Secp256k1Signer
from walletd.model.peer import Peer
from walletd.model.policy_request import SigningRequest
from walletd.model.signer import Signer
from walletd.model.wallets import Wallet
from walletd.ops.context import Context
from walletd.ops.ownership import Claim
from walletd.ops.policy_facts import typed_facts
from walletd.ops.policy_gate import ReviewNeeded
from walletd.ops.purpose import check_purpose
from walletd.ops.rotation import Rotation
from walletd.ops.signing import Signing, _check_batch
from walletd.storage import sql
from walletd_wire.eip712 import TypedData, TypedDataError, parse_typed_data
from walletd_wire.schemes import verify_offline

_NO_PUBLIC_KEY = "hmac-sha256 wallets have no public key (only walletd can verify them)"


class KeyOps:
    def __init__(self, ctx: Context, signing: Signing, rotation: Rotation) -> None:
        self.ctx = ctx
        self.book = ctx.book
        self.signing = signing
        self.rotation = rotation

    # ------------------------------------------------------------------ public keys

    def get_public_key(
        self, peer: Peer, req: wire.GetPublicKey
    ) -> wire.PublicKeyResult | Awaitable[wire.PublicKeyResult]:
        wallet = self.ctx.wallet_for(peer, req.user_id)
        if wallet.key_type is KeyType.HMAC_SHA256:
            raise invalid(_NO_PUBLIC_KEY)
        if req.version is None or req.version == wallet.version:
            return wire.PublicKeyResult(
                wallet.key_type,
                wallet.public_signer().public_key,
                wallet.address,
                wallet.version,
                wallet.key_created_at,
            )
        return self._stored_public_key(peer, wallet, req.version)

    async def _stored_public_key(
        self, peer: Peer, wallet: Wallet, version: int
    ) -> wire.PublicKeyResult:
        if not 1 <= version < wallet.version:
            raise not_found(
                f"user {wallet.user_id!r} has no key version {version} "
                f"(versions 1 to {wallet.version})"
            )
        claim = Claim.of(peer, wallet)
        rows = await self.ctx.store.query(sql.SELECT_PUBLIC_KEY, (wallet.user_id, version))
        # Re-check after the wait: the wallet may have been deleted or handed over meanwhile.
        claim.recheck(self.book)
        if not rows:
            raise not_found(f"user {wallet.user_id!r} has no key version {version}")
        stored_version, key_type, public_key, address, created_at = rows[0]
        return wire.PublicKeyResult(
            key_type, bytes(public_key), address, stored_version, created_at
        )

    # ------------------------------------------------------------------ EIP-712

    def sign_typed_data(
        self, peer: Peer, req: wire.SignTypedData
    ) -> wire.SignatureResult | Awaitable[wire.SignatureResult]:
        if req.purpose is not None:
            # Recorded in the audit log before the signature is returned: walletd.ops.purpose.
            check_purpose(req.purpose)
            signed = self.sign_typed_data(peer, msgspec.structs.replace(req, purpose=None))
            return self.signing.purposes.record(
                peer, "sign_typed_data", req.user_id, req.purpose, None, signed
            )
        wallet = self.ctx.wallet_for(peer, req.user_id)
        if wallet.key_type is not KeyType.SECP256K1:
            raise invalid(
                f"EIP-712 typed data is signed by secp256k1 wallets only; the wallet of user "
                f"{wallet.user_id!r} is {wallet.key_type}"
            )
        try:
            typed = parse_typed_data(req.typed_data)
        except TypedDataError as exc:
            raise invalid(f"invalid EIP-712 typed data: {exc}") from None
        if req.user_id in self.signing.policy.watched:
            return self._sign_typed_with_policy(peer, wallet, typed, req.wait_s)
        return self._sign_typed_now(peer, wallet, typed)

    def _sign_typed_now(
        self, peer: Peer, wallet: Wallet, typed: TypedData
    ) -> wire.SignatureResult | Awaitable[wire.SignatureResult]:
        if wallet.signature_count >= wallet.quiet_end:
            return self._sign_typed_guarded(Claim.of(peer, wallet), typed)
        signature = _typed_signer(typed)(wallet)(b"")
        wallet.signature_count += 1
        self.book.unflushed.add(wallet)
        return wire.SignatureResult(signature, wallet.address, wallet.key_type, wallet.version)

    def _sign_typed_with_policy(
        self, peer: Peer, wallet: Wallet, typed: TypedData, wait_s: float | None = None
    ) -> wire.SignatureResult | Awaitable[wire.SignatureResult]:
        request = SigningRequest("sign_typed_data", wallet.key_type, None, typed_facts(typed))
        try:
            pending = self.signing.gate.admit(peer, wallet, request)
        except ReviewNeeded as held:
            return self._review_typed(peer, wallet, held, request, typed, wait_s)
        if pending is None:
            return self._sign_typed_now(peer, wallet, typed)
        return self._sign_typed_after(pending, Claim.of(peer, wallet), typed, request, wait_s)

    def _review_typed(
        self,
        peer: Peer,
        wallet: Wallet,
        held: ReviewNeeded,
        request: SigningRequest,
        typed: TypedData,
        wait_s: float | None,
    ) -> Awaitable[wire.SignatureResult]:
        """A pending approval or a lease's signature, as in Signing._review, with the
        decoded document's summary."""
        review = self.signing.review
        assert review is not None

        def summarize() -> Mapping[str, object]:
            return summarize_typed(
                primary_type=typed.primary_type,
                domain=typed.domain,
                message=typed.message,
                digest=typed.digest(),
                max_bytes=self.signing.summary_max_bytes,
            )

        held_result = review.handle(
            peer,
            wallet,
            held,
            request=request,
            summarize=summarize,
            sign=lambda p, w: self._sign_typed_now(p, w, typed),
            wait_s=wait_s,
        )
        return held_result  # type: ignore[return-value]  # a pending result, see Signing._review

    async def _sign_typed_after(
        self,
        pending: Awaitable[None],
        claim: Claim,
        typed: TypedData,
        request: SigningRequest | None = None,
        wait_s: float | None = None,
    ) -> wire.SignatureResult:
        try:
            await pending
        except ReviewNeeded as held:
            assert request is not None
            wallet = claim.recheck(self.book)
            return await self._review_typed(claim.peer, wallet, held, request, typed, wait_s)
        peer, wallet = claim.peer, claim.recheck(self.book)
        result = self._sign_typed_now(peer, wallet, typed)
        return result if isinstance(result, wire.SignatureResult) else await result

    async def _sign_typed_guarded(self, claim: Claim, typed: TypedData) -> wire.SignatureResult:
        wallet = claim.wallet
        items: list[wire.SignedItem] = []
        try:
            await self.rotation.sign_guarded(claim, [b""], items, _typed_signer(typed))
        except RequestError:
            if not items:
                raise
            # Signed; only the rotation due after it failed (logged, and the next signature
            # fails closed on the same check), as in Signing._sign_guarded.
        (item,) = items
        assert item.signature is not None
        assert item.address is not None
        assert item.version is not None
        return wire.SignatureResult(item.signature, item.address, wallet.key_type, item.version)

    # ------------------------------------------------------------------ verification

    def verify_signature(
        self, peer: Peer, req: wire.VerifySignature
    ) -> wire.ValidResult | Awaitable[wire.ValidResult]:
        if req.version is None:
            return self.signing.verify_signature(peer, req)
        wallet = self.ctx.wallet_for(peer, req.user_id)
        if req.version == wallet.version:
            return wire.ValidResult(wallet.verify(req.message, req.signature))
        return self._verify_one(peer, wallet, req.version, req.message, req.signature)

    def verify_batch(
        self, peer: Peer, req: wire.VerifyBatch
    ) -> wire.VerifyBatchResult | Awaitable[wire.VerifyBatchResult]:
        if req.version is None:
            return self.signing.verify_batch(peer, req)
        _check_batch(len(req.items))
        wallet = self.ctx.wallet_for(peer, req.user_id)
        if req.version == wallet.version:
            return wire.VerifyBatchResult(
                [wallet.verify(i.message, i.signature) for i in req.items]
            )
        return self._verify_many(peer, wallet, req.version, req.items)

    async def _verify_one(
        self, peer: Peer, wallet: Wallet, version: int, message: bytes, signature: bytes
    ) -> wire.ValidResult:
        (valid,) = await self._verify_stored(peer, wallet, version, [(message, signature)])
        return wire.ValidResult(valid)

    async def _verify_many(
        self, peer: Peer, wallet: Wallet, version: int, items: list[wire.VerifyItem]
    ) -> wire.VerifyBatchResult:
        pairs = [(i.message, i.signature) for i in items]
        return wire.VerifyBatchResult(await self._verify_stored(peer, wallet, version, pairs))

    async def _verify_stored(
        self, peer: Peer, wallet: Wallet, version: int, pairs: list[tuple[bytes, bytes]]
    ) -> list[bool]:
        """Check ``pairs`` against the stored public key of an earlier ``version``."""
        if wallet.key_type is KeyType.HMAC_SHA256:
            raise invalid(
                f"hmac-sha256 keys are destroyed when rotated: only the current version "
                f"({wallet.version}) of user {wallet.user_id!r} can be verified"
            )
        key = await self._stored_public_key(peer, wallet, version)
        return [
            verify_offline(key.public_key, message, signature, key.key_type)
            for message, signature in pairs
        ]


def _typed_signer(typed: TypedData) -> Callable[[Wallet], Signer]:
    """``sign_with`` for Rotation.sign_guarded: sign ``typed`` with the wallet's current key
    (after a rotation, the new one); the per-item message it is handed is unused."""

    def sign_with(wallet: Wallet) -> Signer:
        signer = wallet.public_signer()
        if not isinstance(signer, Secp256k1Signer):  # checked by sign_typed_data already
            raise invalid("EIP-712 typed data is signed by secp256k1 wallets only")
        return lambda _message: signer.sign_typed_data(typed)

    return sign_with
