"""Key rotation and the rotation policy, enforced by the daemon.

A rotation replaces the key (the old bytes are zeroed), issues a new address, resets the
signature count and key age, and records ``{user_id, old_wallet_id, new_wallet_id, timestamp,
reason, actor_uid}`` plus an audit entry, all in one transaction.

With ``auto_rotate`` on, no key signs more than ``max_signatures`` messages: the request whose
signature reaches the limit rotates the key before it is answered, a signature that finds the
key at its limit waits for the rotation, and counts are reserved durably ahead of use so that a
crash cannot reset them (see ``Rotation._reserve``). A background task rotates keys that
reached ``max_age_days``. With it off, signing goes on; ``needs_rotation`` reports the breach
and the log warns once per key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
import trio

import walletd_wire as wire
from walletd.errors import Forbidden, RequestError, invalid, not_found
from walletd.model.key_material import new_key_material
from walletd.model.peer import DAEMON, Actor, Peer
from walletd.model.signer import Signer
from walletd.model.validation import check_reason, check_user_id
from walletd.model.wallets import PolicyOverride, Wallet, zero
from walletd.ops.context import Context
from walletd.ops.ownership import Claim, hand_over
from walletd.storage import sql
from walletd.storage.sealing import wallet_aad

log = structlog.get_logger("walletd")

MAX_AGE_DAYS_LIMIT = 36500
MAX_SIGNATURES_LIMIT = 10**12

REASON_MAX_SIGNATURES = "policy:max_signatures"
REASON_MAX_AGE = "policy:max_age"


class Rotation:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.book = ctx.book

    # ------------------------------------------------------------------ the rotation itself

    async def rotate_locked(
        self,
        wallet: Wallet,
        reason: str,
        actor: Actor,
        *,
        new_owner: int | None = None,
        extra: list[Any] | None = None,
        event: str = "key_rotated",
    ) -> str:
        """Rotate ``wallet``'s key (writer lock held). ``new_owner`` hands the wallet over."""
        ctx = self.ctx
        fresh, now = new_key_material(wallet.key_type), ctx.now()
        key, address, version = fresh.key, fresh.address, wallet.version + 1
        owner = wallet.owner_uid if new_owner is None else new_owner
        detail: dict[str, Any] = {"reason": reason}
        if fresh.public_key is not None:  # HMAC records stay as they were
            detail.update(key_type=wallet.key_type, version=version)
        if new_owner is not None:
            detail.update(old_owner_uid=wallet.owner_uid, new_owner_uid=new_owner)
        try:
            aad = wallet_aad(wallet.user_id, address, wallet.key_type, version)
            sealed = ctx.sealer.seal(bytes(key), aad)
            statements = [
                sql.replace_key(wallet.user_id, address, sealed, now, owner, version),
                sql.insert_rotation(
                    wallet.user_id, wallet.address, address, now, reason, actor.uid
                ),
                *(extra or []),
            ]
            if fresh.public_key is not None:
                # The old versions' public keys stay (their private keys are destroyed), so a
                # signature made before this rotation can still be checked.
                statements.append(
                    sql.insert_public_key(
                        wallet.user_id, version, wallet.key_type, fresh.public_key, address, now
                    )
                )
            entry = ctx.audit(
                event, wallet.user_id, [wallet.address, address], actor, detail=detail
            )
            await ctx.commit(statements, entry)
        except BaseException:
            zero(key)  # the new key was never stored: do not leave it in memory
            raise
        wallet.replace_key(key, address, now)
        if new_owner is not None:
            hand_over(wallet, owner)  # in-flight work under the old tenure stops
        self.book.unflushed.discard(wallet)  # the new key starts at 0, already stored
        return address

    async def rotate_keys(self, peer: Peer, req: wire.RotateKeys) -> wire.AddressResult:
        reason = check_reason(req.reason)
        async with self.ctx.writer:
            wallet = self.ctx.wallet_for(peer, req.user_id)
            address = await self.rotate_locked(wallet, reason, Actor.of(peer))
        return wire.AddressResult(address)

    # ------------------------------------------------------------------ policy enforcement

    async def sign_guarded(
        self,
        claim: Claim,
        messages: list[bytes],
        items: list[wire.SignedItem],
        sign_with: Callable[[Wallet], Signer] | None = None,
    ) -> None:
        """Sign ``messages`` in order into ``items``, doing the policy work that falls due.

        The sign path comes here only when a signature is not "quiet" (see
        ``Wallet.requiet``): the key is at its auto-rotate limit (rotate first), its durably
        reserved count is used up (reserve more first), or the next signature reaches
        max_signatures (sign, then rotate; or warn once when auto-rotate is off). Quiet
        stretches in between are signed in a tight loop. When a rotation or reservation fails,
        its RequestError propagates with ``items`` holding what was signed before it: no key
        signs past what the policy allows.

        ``sign_with(wallet)`` gives the callable that signs one item with the wallet's current
        key (asked again after every rotation); by default its message signer. EIP-712 signing
        passes one that signs the typed document instead.

        ``claim`` is re-checked before every stretch of signing, that is after every wait: a
        wallet deleted or recovered meanwhile signs nothing more for this request.
        """
        wallet = claim.wallet
        done, total = 0, len(messages)
        try:
            while done < total:
                claim.recheck(self.book)
                quiet = min(wallet.quiet_end - wallet.signature_count, total - done)
                if quiet > 0:
                    sign = wallet.signer if sign_with is None else sign_with(wallet)
                    address, version = wallet.address, wallet.version
                    items.extend(
                        wire.SignedItem(sign(m), address, None, version)
                        for m in messages[done : done + quiet]
                    )
                    wallet.signature_count += quiet
                    done += quiet
                    continue
                if wallet.signature_count >= wallet.hard_limit:
                    await self._rotate_at_limit(claim)
                    continue
                if wallet.policy.auto_rotate and wallet.signature_count >= wallet.reserved:
                    await self._reserve(claim)
                    continue
                sign = wallet.signer if sign_with is None else sign_with(wallet)
                wallet.signature_count += 1
                signature = sign(messages[done])
                items.append(wire.SignedItem(signature, wallet.address, None, wallet.version))
                done += 1
                if wallet.signature_count >= wallet.policy.max_signatures:
                    if wallet.policy.auto_rotate:
                        await self._rotate_at_limit(claim)  # before any further signature
                    else:
                        self._warn_once(wallet, ["max_signatures"])
        except RequestError as exc:
            # Logged because the request may still succeed (its signature was made before the
            # rotation that then failed); the next signature fails closed on the same check.
            log.error("signing_policy_work_failed", user_id=wallet.user_id, error=exc.message)
            raise
        finally:
            self.book.unflushed.add(wallet)

    async def _rotate_at_limit(self, claim: Claim) -> None:
        async with self.ctx.writer:
            # After the wait for the lock: a rotation for a request whose claim lapsed would
            # rotate the new owner's key on the old owner's behalf.
            wallet = claim.recheck(self.book)
            if wallet.signature_count >= wallet.hard_limit:  # nobody rotated it meanwhile
                await self.rotate_locked(wallet, REASON_MAX_SIGNATURES, DAEMON)

    async def _reserve(self, claim: Claim) -> None:
        """Durably reserve the next block of signature counts for an auto-rotate key.

        Counts are otherwise written in batches (counter_flush_interval), so after a crash a
        key could resume from a count below what it really signed and then sign past
        max_signatures. So before an auto-rotate key signs past its reservation, the next block
        is reserved in ``reserved_count``; a load that finds a reservation (a clean stop clears
        them, see Context.flush_counters) takes it as used. A quarter of the limit at a time
        costs four small commits per key and, after a crash, at most a quarter of its life.
        """
        async with self.ctx.writer:
            wallet = claim.recheck(self.book)
            if wallet.signature_count < wallet.reserved or not wallet.policy.auto_rotate:
                return  # reserved meanwhile
            limit = wallet.policy.max_signatures
            reserved = min(limit, wallet.signature_count + max(1, limit // 4))
            await self.ctx.commit(
                [sql.set_reserved_count(wallet.user_id, wallet.address, reserved)]
            )
            wallet.reserved = reserved
            wallet.requiet()

    def _warn_once(self, wallet: Wallet, reasons: list[str]) -> None:
        if not wallet.warned:
            wallet.mark_warned()
            log.warning(
                "rotation_policy_breached",
                user_id=wallet.user_id,
                address=wallet.address,
                reasons=reasons,
                auto_rotate=False,
            )

    async def check_ages(self) -> int:
        """Rotate auto-rotate keys past max_age_days; warn for the others. Returns rotations."""
        now = self.ctx.now()
        rotated = 0
        for wallet in list(self.book.wallets.values()):
            if "max_age" not in wallet.breaches(now):
                continue
            if not wallet.policy.auto_rotate:
                self._warn_once(wallet, wallet.breaches(now))
                continue
            async with self.ctx.writer:
                # Re-check under the lock: the wallet may have been deleted, rotated, or had
                # auto_rotate turned off while we waited for it.
                if (
                    self.book.get(wallet.user_id) is wallet
                    and wallet.policy.auto_rotate
                    and "max_age" in wallet.breaches(self.ctx.now())
                ):
                    try:
                        await self.rotate_locked(wallet, REASON_MAX_AGE, DAEMON)
                        rotated += 1
                    except RequestError as exc:
                        log.error("auto_rotation_failed", user_id=wallet.user_id, error=exc.message)
        return rotated

    async def age_check_loop(self) -> None:
        # Check first: keys that aged past their limit while walletd was stopped are rotated
        # at startup, not one interval later.
        while True:
            try:
                await self.check_ages()
            except Exception:
                # A bug here must not take the daemon down with it; the next round retries.
                log.exception("age_check_failed")
            await trio.sleep(self.ctx.config.rotation_check_interval)

    # ------------------------------------------------------------------ reading

    def needs_rotation(self, peer: Peer, req: wire.NeedsRotation) -> wire.NeedsRotationResult:
        wallet = self.ctx.wallet_for(peer, req.user_id)
        return wire.NeedsRotationResult(bool(wallet.breaches(self.ctx.now())))

    def rotation_status(self, peer: Peer, req: wire.RotationStatus) -> wire.RotationStatusResult:
        wallet = self.ctx.wallet_for(peer, req.user_id)
        now = self.ctx.now()
        reasons = wallet.breaches(now)
        return wire.RotationStatusResult(
            needs_rotation=bool(reasons),
            reasons=reasons,
            signature_count=wallet.signature_count,
            key_age_days=round(wallet.key_age_days(now), 6),
            policy=wallet.policy,
            address=wallet.address,
            key_type=str(wallet.key_type),
            version=wallet.version,
        )

    async def rotation_history(
        self, peer: Peer, req: wire.RotationHistory
    ) -> wire.RotationHistoryResult:
        """Oldest first. Owners see their wallet's own chain of keys; admins every record."""
        user_id = check_user_id(req.user_id)
        wallet = self.book.get(user_id)
        claim = None if wallet is None else Claim.of(peer, self.ctx.wallet_for(peer, user_id))
        rows = await self.ctx.store.query(sql.SELECT_ROTATIONS, (user_id,))
        if claim is not None:
            claim.recheck(self.book)  # deleted or recovered while we read: answer nothing
        elif self.book.get(user_id) is not None:
            raise not_found(f"the wallet of user {user_id!r} changed while its history was read")
        if wallet is None:
            if not rows:
                raise not_found(f"no wallet and no rotation history for user {user_id!r}")
            # A deleted wallet's history: only an admin or a uid that rotated it may read it.
            if not peer.is_admin and all(row[5] != peer.uid for row in rows):
                raise Forbidden(
                    f"the history of user {user_id!r} belongs to another uid",
                )
        if wallet is not None and not peer.is_admin:
            # A user id deleted and created again by another uid: the earlier wallet's
            # rotations (its addresses, who rotated it) are not the new owner's to read.
            rows = current_chain(rows, wallet.address)
        return wire.RotationHistoryResult([wire.RotationRecord(*row) for row in rows])

    def get_policy(self, peer: Peer, req: wire.GetPolicy) -> wire.RotationPolicy:
        return self.ctx.wallet_for(peer, req.user_id).policy

    async def set_policy(self, peer: Peer, req: wire.SetPolicy) -> wire.RotationPolicy:
        _check_policy_values(req)
        ctx = self.ctx
        if req.max_age_days is None and req.max_signatures is None and req.auto_rotate is None:
            return ctx.wallet_for(peer, req.user_id).policy  # nothing to change, nothing to log
        async with ctx.writer:
            wallet = ctx.wallet_for(peer, req.user_id)
            old = wallet.override
            new = PolicyOverride(
                max_age_days=old.max_age_days if req.max_age_days is None else req.max_age_days,
                max_signatures=(
                    old.max_signatures if req.max_signatures is None else req.max_signatures
                ),
                auto_rotate=old.auto_rotate if req.auto_rotate is None else req.auto_rotate,
            )
            effective = new.apply(self.book.default_policy)
            entry = ctx.audit(
                "policy_changed",
                wallet.user_id,
                [wallet.address],
                Actor.of(peer),
                detail={
                    "max_age_days": effective.max_age_days,
                    "max_signatures": effective.max_signatures,
                    "auto_rotate": effective.auto_rotate,
                },
            )
            await ctx.commit(
                [
                    sql.set_rotation_policy(
                        wallet.user_id, new.max_age_days, new.max_signatures, new.auto_rotate
                    )
                ],
                entry,
            )
            wallet.override = new
            wallet.apply_policy(self.book.default_policy)
            if wallet.signature_count >= wallet.hard_limit:
                # A lowered limit the key already passed: rotate now. The policy change is
                # committed either way; if this rotation fails, the key still cannot sign
                # (the sign path retries the rotation first and fails closed).
                try:
                    await self.rotate_locked(wallet, REASON_MAX_SIGNATURES, DAEMON)
                except RequestError as exc:
                    log.error("auto_rotation_failed", user_id=wallet.user_id, error=exc.message)
        return wallet.policy


def current_chain(rows: list[tuple[Any, ...]], address: str) -> list[tuple[Any, ...]]:
    """The rows (by seq, as from the rotations table) that lead to ``address``, oldest first.

    Addresses are random and never reused, so following ``new_wallet_id -> old_wallet_id``
    back from the current address picks exactly this wallet's rotations.
    """
    by_new = {row[2]: row for row in rows}
    chain: list[tuple[Any, ...]] = []
    while (row := by_new.pop(address, None)) is not None:
        chain.append(row)
        address = row[1]
    chain.reverse()
    return chain


def _check_policy_values(req: wire.SetPolicy) -> None:
    if req.max_age_days is not None and not 1 <= req.max_age_days <= MAX_AGE_DAYS_LIMIT:
        raise invalid(f"max_age_days must be between 1 and {MAX_AGE_DAYS_LIMIT}")
    if req.max_signatures is not None and not 1 <= req.max_signatures <= MAX_SIGNATURES_LIMIT:
        raise invalid(f"max_signatures must be between 1 and {MAX_SIGNATURES_LIMIT}")
