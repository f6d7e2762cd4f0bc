"""The recovery ritual: knowledge-based recovery with a durable lockout.

At registration the client sends, per step, a prompt and the SHA-256 hex of the answer. The
daemon stores only ``scrypt(sha256_hex, salt)`` with a per-step random salt and the scrypt
parameters beside it; never the SHA-256 it received and never an answer.

An attempt is counted durably *before* it is checked; every step is checked whatever the others
gave, and compared in constant time; a wrong number of responses is a failed attempt. Failure
says nothing about which step failed, to the caller or the log. Success hands the wallet to the
caller's uid and rotates the key (reason ``recovery``) in one transaction, and resets the count.

scrypt runs in worker threads behind a small capacity limiter, fair across uids, so a flood of
attempts cannot starve signing (which never waits for it) nor another uid's recovery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import walletd_wire as wire
from walletd.errors import Locked, NoRitual, StartupError, invalid
from walletd.model.lockout import LockoutRule
from walletd.model.peer import Actor, Peer
from walletd.model.ritual import (
    Ritual,
    check_responses,
    check_scrypt_params,
    encode_steps,
    hash_steps,
)
from walletd.model.validation import (
    check_prompt,
    check_sha256_hex,
    check_user_id,
)
from walletd.ops.context import Context
from walletd.ops.fair import FairLimiter
from walletd.ops.ownership import Claim
from walletd.ops.rotation import Rotation
from walletd.storage import sql

MAX_STEPS = wire.MAX_RITUAL_STEPS
MAX_PROMPT_BYTES = 1024

T = TypeVar("T")


class Recovery:
    def __init__(self, ctx: Context, rotation: Rotation) -> None:
        self.ctx = ctx
        self.rotation = rotation
        self.rituals = ctx.rituals
        config = ctx.config
        try:
            # Refuse at startup what would otherwise fail every registration as "internal".
            check_scrypt_params(config.scrypt_n, config.scrypt_r, config.scrypt_p)
        except ValueError as exc:
            raise StartupError(f"unusable recovery settings: {exc}") from None
        # scrypt is memory-hard and slow on purpose: at most this many run at once, in worker
        # threads (hashlib releases the GIL), so a flood of attempts queues here while signing,
        # which never waits on this limiter, goes on. The queue is served round robin by uid
        # (walletd.ops.fair), so one uid's flood delays another uid's attempt by at most one
        # check per waiting uid, not by the whole flood (issue 12, item 9).
        self._limiter = FairLimiter(config.recovery_concurrency)

    async def _hash(self, peer: Peer, fn: Callable[..., T], *args: Any) -> T:
        return await self._limiter.run_sync(peer.uid, fn, *args)

    def _ritual(self, user_id: str) -> Ritual:
        ritual = self.rituals.get(user_id)
        if ritual is None:
            check_user_id(user_id)
            raise NoRitual(f"user {user_id!r} has no recovery ritual")
        return ritual

    def _rule(self) -> LockoutRule:
        # Built per call: a reload may change the settings (they are live).
        config = self.ctx.config
        return LockoutRule(config.max_attempts, config.lockout_duration, config.lockout_max_seconds)

    def _locked(self, ritual: Ritual, now: float) -> bool:
        return self._rule().locked(ritual.attempts, ritual.locked_at, now)

    def remaining(self, ritual: Ritual, now: float) -> int:
        return self._rule().remaining(ritual.attempts, ritual.locked_at, now)

    # ------------------------------------------------------------------ management

    async def register_ritual(self, peer: Peer, req: wire.RegisterRitual) -> wire.RitualInfoResult:
        steps = _check_steps(req.steps)
        claim = Claim.of(peer, self.ctx.wallet_for(peer, req.user_id))
        # One scrypt job per step: a 16-step registration is 16 turns of the fair queue, not
        # one 16-hash turn that another uid's single check would wait behind.
        stored = []
        for step in steps:
            stored += await self._hash(peer, hash_steps, [step], self.ctx.config)
        ctx = self.ctx
        async with ctx.writer:
            # The same wallet, still this peer's: not one deleted and re-created, or
            # recovered by another uid, while scrypt ran.
            wallet = claim.recheck(ctx.book)
            entry = ctx.audit(
                "ritual_registered",
                wallet.user_id,
                [wallet.address],
                Actor.of(peer),
                detail={"steps": len(stored)},
            )
            await ctx.commit(
                [sql.put_ritual(wallet.user_id, encode_steps(stored))],
                entry,
            )
            self.rituals[wallet.user_id] = Ritual(stored)
        return wire.RitualInfoResult(len(stored), self.ctx.config.max_attempts)

    async def unregister_ritual(self, peer: Peer, req: wire.UnregisterRitual) -> wire.RemovedResult:
        ctx = self.ctx
        async with ctx.writer:
            wallet = ctx.wallet_for(peer, req.user_id)
            if wallet.user_id not in self.rituals:
                return wire.RemovedResult(False)
            entry = ctx.audit("ritual_removed", wallet.user_id, [wallet.address], Actor.of(peer))
            await ctx.commit([sql.delete_ritual(wallet.user_id)], entry)
            del self.rituals[wallet.user_id]
        return wire.RemovedResult(True)

    async def reset_attempts(self, peer: Peer, req: wire.ResetAttempts) -> wire.RemainingResult:
        ctx = self.ctx
        ctx.require_admin(peer, "reset_attempts")
        async with ctx.writer:
            ritual = self._ritual(req.user_id)
            entry = ctx.audit(
                "recovery_attempts_reset",
                req.user_id,
                [],
                Actor.of(peer),
                detail={"attempts_before": ritual.attempts},
            )
            await ctx.commit(
                [sql.reset_ritual_attempts(req.user_id)],
                entry,
            )
            ritual.attempts, ritual.locked_at = 0, None
        return wire.RemainingResult(ctx.config.max_attempts)

    # ------------------------------------------------------------------ reading (any peer)

    def has_ritual(self, peer: Peer, req: wire.HasRitual) -> wire.ExistsResult:
        check_user_id(req.user_id)
        return wire.ExistsResult(req.user_id in self.rituals)

    def get_prompts(self, peer: Peer, req: wire.GetPrompts) -> wire.PromptsResult:
        return wire.PromptsResult([s.prompt for s in self._ritual(req.user_id).steps])

    def get_remaining_attempts(
        self, peer: Peer, req: wire.GetRemainingAttempts
    ) -> wire.RemainingResult:
        return wire.RemainingResult(self.remaining(self._ritual(req.user_id), self.ctx.now()))

    def is_locked(self, peer: Peer, req: wire.IsLocked) -> wire.LockedResult:
        return wire.LockedResult(self._locked(self._ritual(req.user_id), self.ctx.now()))

    # ------------------------------------------------------------------ recovery

    async def initiate_recovery(
        self, peer: Peer, req: wire.InitiateRecovery
    ) -> wire.RecoveryResult:
        ctx = self.ctx
        user_id = check_user_id(req.user_id)
        if user_id not in ctx.book.wallets:
            return wire.RecoveryResult(False)  # as before: unknown user, nothing counted
        # A wrong number of responses (any number) is an ordinary failed attempt: it is counted
        # below, and the check's work depends on the stored steps alone, never on the responses.
        actor = Actor.of(peer)
        # 1. Count the attempt durably, before any checking.
        async with ctx.writer:
            ritual = self._ritual(user_id)
            now = ctx.now()
            if self._locked(ritual, now):
                raise Locked(
                    f"recovery for user {user_id!r} is locked: too many attempts",
                )
            attempts, locked_at = self._rule().next_attempt(ritual.attempts, now)
            entry = ctx.audit(
                "recovery_attempted", user_id, [], actor, detail={"attempt": attempts}
            )
            await ctx.commit(
                [sql.set_ritual_attempts(user_id, attempts, locked_at)],
                entry,
            )
            ritual.attempts, ritual.locked_at = attempts, locked_at
        # 2. Check, outside the writer lock (scrypt is slow on purpose).
        # One scrypt job per step, as at registration; every step is still hashed and compared
        # whatever the others gave (a missing response against a dummy, as check_responses does).
        ok = len(req.responses) == len(ritual.steps)
        for index, step in enumerate(ritual.steps):
            given = req.responses[index] if index < len(req.responses) else ""
            ok &= await self._hash(peer, check_responses, [step], [given])
        # 3. Record the outcome of *this* attempt. Several attempts may be checked at once:
        # what the ritual's state is now says nothing about which of them locked it, so each
        # event is decided by what this attempt's own count did (issue 12, item 5).
        async with ctx.writer:
            wallet = ctx.book.get(user_id)
            if wallet is None or self.rituals.get(user_id) is not ritual:
                # Deleted or re-registered meanwhile: the attempt was counted against a
                # ritual that no longer exists, and its answers were not used.
                await ctx.commit(
                    [],
                    ctx.audit(
                        "recovery_abandoned",
                        user_id,
                        [],
                        actor,
                        outcome="failed",
                        detail={"attempt": attempts, "why": _abandoned_why(wallet)},
                    ),
                )
                return wire.RecoveryResult(False)
            if not ok:
                await ctx.commit(
                    [],
                    ctx.audit(
                        "recovery_locked" if locked_at is not None else "recovery_failed",
                        user_id,
                        [],
                        actor,
                        outcome="failed",
                        detail={"attempt": attempts},
                    ),
                )
                return wire.RecoveryResult(False)
            reset = sql.reset_ritual_attempts(user_id)
            address = await self.rotation.rotate_locked(
                wallet,
                "recovery",
                actor,
                new_owner=peer.uid,
                extra=[reset],
                event="recovery_succeeded",
            )
            ritual.attempts, ritual.locked_at = 0, None
        return wire.RecoveryResult(True, address)


def _abandoned_why(wallet: object) -> str:
    return "wallet_deleted" if wallet is None else "ritual_replaced"


def _check_steps(steps: list[wire.RitualStep]) -> list[wire.RitualStep]:
    if not 1 <= len(steps) <= MAX_STEPS:
        raise invalid(f"a ritual has 1 to {MAX_STEPS} steps, got {len(steps)}")
    out = []
    for number, step in enumerate(steps, 1):
        check_prompt(step.prompt, number)
        digest = check_sha256_hex(step.expected_response_hash, f"the hash of step {number}")
        out.append(wire.RitualStep(step.prompt, digest))
    return out
