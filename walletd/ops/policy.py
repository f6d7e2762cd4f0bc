"""The signing-policy operations: read and replace a layer, explain a decision, pause, resume.

Who may do what:

- ``get_signing_policy`` / ``explain_signing``: whoever may use the wallet (owner or admin)
  and members of ``[signing] policy_group``.
- ``set_signing_policy``: the ``admin`` layer by admins and ``policy_group`` members only
  (an owner trying is ``forbidden``); the ``owner`` layer by the owner (and admins). Since
  layers combine as deny > review > allow, nothing in the owner layer can allow what the
  admin layer refuses: the owner can only tighten.
- ``pause_signing`` / ``resume_signing``: admins only.

A layer is replaced whole, by compare-and-set on its version (0 before the first set): two
admins cannot overwrite each other unseen. The document is compiled before anything is
stored; any problem is ``invalid_argument`` and changes nothing. The new version, its
document, the deletion of rate windows of rules that are gone and the
``signing_policy_changed`` audit record are one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import walletd_wire as wire
from walletd.errors import forbidden, invalid
from walletd.model.peer import Actor, Peer
from walletd.model.policy_eval import ADMIN, OWNER, evaluate
from walletd.model.policy_request import OPS, SigningRequest
from walletd.model.policy_rules import PolicyError, compile_layer
from walletd.model.validation import check_user_id
from walletd.model.wallets import Wallet
from walletd.ops.context import Context
from walletd.ops.policy_facts import typed_facts
from walletd.ops.policy_state import LAYERS, LayerMeta, WalletPolicy, pause_key
from walletd.storage import sql
from walletd.storage.store import Statement
from walletd_wire.eip712 import TypedDataError, parse_typed_data

_SCOPES = ("all", "uid", "wallet")


class PolicyOps:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ who may

    def _in_policy_group(self, peer: Peer) -> bool:
        group = self.ctx.policy.policy_group
        return group is not None and self.ctx.member_of(peer, group)

    def _wallet_to_read(self, peer: Peer, user_id: str) -> Wallet:
        wallet = self.ctx.book.get(user_id)
        if wallet is not None and self._in_policy_group(peer):
            return wallet
        return self.ctx.wallet_for(peer, user_id)

    # ------------------------------------------------------------------ reading

    def get_signing_policy(
        self, peer: Peer, req: wire.GetSigningPolicy
    ) -> wire.SigningPolicyResult:
        wallet = self._wallet_to_read(peer, req.user_id)
        return self._result(wallet, self.ctx.policy.policy_of(wallet.user_id))

    def _result(self, wallet: Wallet, policy: WalletPolicy) -> wire.SigningPolicyResult:
        state = self.ctx.policy

        def info(name: str) -> wire.PolicyLayerInfo:
            meta = policy.meta[name]
            return wire.PolicyLayerInfo(
                meta.version,
                policy.layer(name).to_document(),
                meta.updated_at,
                meta.updated_by_uid,
            )

        return wire.SigningPolicyResult(
            wallet.user_id,
            info(ADMIN),
            info(OWNER),
            state.default.value,
            state.paused_for(wallet.user_id, wallet.owner_uid),
        )

    def explain_signing(self, peer: Peer, req: wire.ExplainSigning) -> wire.ExplainResult:
        wallet = self._wallet_to_read(peer, req.user_id)
        request = self._request(wallet, req)
        state = self.ctx.policy
        policy = state.policy_of(wallet.user_id)
        # evaluate consumes nothing: this is exactly what a signature would be decided by.
        decision = evaluate(
            policy.admin, policy.owner, state.default, request, self.ctx.now(), policy.windows
        )
        return wire.ExplainResult(
            decision.action.value,
            decision.layer,
            decision.rule_id,
            decision.reason,
            decision.admin.rule_id,
            decision.owner.rule_id,
            [
                wire.LimitInfo(s.layer, s.rule_id, s.count, s.window_s, s.remaining)
                for s in decision.limits
            ],
            state.paused_for(wallet.user_id, wallet.owner_uid),
        )

    def _request(self, wallet: Wallet, req: wire.ExplainSigning) -> SigningRequest:
        if (req.message is None) == (req.typed_data is None):
            raise invalid("explain_signing takes exactly one of message and typed_data")
        op = req.for_op or ("sign_message" if req.message is not None else "sign_typed_data")
        if op not in OPS:
            raise invalid(f"op must be one of {', '.join(OPS)}")
        if req.typed_data is not None:
            if op != "sign_typed_data":
                raise invalid("typed_data is explained for op sign_typed_data only")
            try:
                typed = parse_typed_data(req.typed_data)
            except TypedDataError as exc:
                raise invalid(f"invalid EIP-712 typed data: {exc}") from None
            return SigningRequest(op, wallet.key_type, None, typed_facts(typed))
        if op == "sign_typed_data":
            raise invalid("op sign_typed_data is explained with typed_data, not message")
        return SigningRequest(op, wallet.key_type, req.message)

    # ------------------------------------------------------------------ replacing a layer

    async def set_signing_policy(
        self, peer: Peer, req: wire.SetSigningPolicy
    ) -> wire.SigningPolicyResult:
        ctx = self.ctx
        if req.layer not in LAYERS:
            raise invalid(f"layer must be {ADMIN!r} or {OWNER!r}")
        try:
            compiled = compile_layer(req.rules, timezone=ctx.policy.timezone)
        except PolicyError as exc:
            raise invalid(f"invalid signing policy: {exc}") from None
        document = compiled.to_document()
        async with ctx.writer:
            wallet = self._wallet_to_write(peer, req.user_id, req.layer)
            state = ctx.policy
            policy = state.policy_of(wallet.user_id)
            current = policy.meta[req.layer].version
            if req.expected_version != current:
                raise invalid(
                    f"the {req.layer} layer of user {wallet.user_id!r} is at version {current}, "
                    f"not {req.expected_version}: read it again and retry (compare-and-set)"
                )
            version, now = current + 1, ctx.now()
            limits = compiled.limits()
            statements: list[Statement] = [
                sql.put_signing_policy(
                    wallet.user_id,
                    req.layer,
                    version,
                    json.dumps(document, separators=(",", ":")),
                    now,
                    peer.uid,
                ),
                *(
                    sql.delete_rate_window(wallet.user_id, req.layer, rule_id)
                    for rule_id in policy.windows.table(req.layer)
                    if rule_id not in limits
                ),
            ]
            entry = ctx.audit(
                "signing_policy_changed",
                wallet.user_id,
                [wallet.address],
                Actor.of(peer),
                detail={
                    "layer": req.layer,
                    "old_version": current,
                    "new_version": version,
                    "rules": len(compiled),
                },
            )
            await ctx.commit(statements, entry)
            state.install(
                wallet.user_id, req.layer, compiled, LayerMeta(version, now, peer.uid), policy
            )
            return self._result(wallet, policy)

    def _wallet_to_write(self, peer: Peer, user_id: str, layer: str) -> Wallet:
        if layer == ADMIN:
            wallet = self.ctx.book.get(user_id)
            if wallet is None:
                check_user_id(user_id)
                return self.ctx.wallet_for(peer, user_id)  # raises not_found
            if not (peer.is_admin or self._in_policy_group(peer)):
                raise forbidden(
                    "the admin layer of a signing policy is for admins and the policy group; "
                    "the owner writes the owner layer"
                )
            return wallet
        return self.ctx.wallet_for(peer, user_id)

    # ------------------------------------------------------------------ the kill switch

    def pause_signing(
        self, peer: Peer, req: wire.PauseSigning
    ) -> wire.SigningPausesResult | Awaitable[wire.SigningPausesResult]:
        self.ctx.require_admin(peer, "pause_signing")
        return self._set_pause(peer, _scope(req.scope, req.uid, req.user_id), pause=True)

    def resume_signing(
        self, peer: Peer, req: wire.ResumeSigning
    ) -> wire.SigningPausesResult | Awaitable[wire.SigningPausesResult]:
        self.ctx.require_admin(peer, "resume_signing")
        return self._set_pause(peer, _scope(req.scope, req.uid, req.user_id), pause=False)

    async def _set_pause(
        self, peer: Peer, scope: tuple[str, int | None, str | None], *, pause: bool
    ) -> wire.SigningPausesResult:
        ctx = self.ctx
        key = pause_key(*scope)
        async with ctx.writer:
            state = ctx.policy
            if pause != (key in state.pauses):
                now = ctx.now()
                statement = (
                    sql.put_signing_pause(key, now, peer.uid)
                    if pause
                    else sql.delete_signing_pause(key)
                )
                user_id = scope[2]
                entry = ctx.audit(
                    "signing_paused" if pause else "signing_resumed",
                    user_id,
                    [],
                    Actor.of(peer),
                    detail={"scope": scope[0], "uid": scope[1]},
                )
                await ctx.commit([statement], entry)
                if pause:
                    state.pauses[key] = (now, peer.uid)
                    for hook in state.pause_hooks:
                        hook(scope[1], scope[2])
                else:
                    del state.pauses[key]
                state.refresh_watched()
            return pauses_result(state.pauses)


def _scope(scope: str, uid: int | None, user_id: str | None) -> tuple[str, int | None, str | None]:
    if scope not in _SCOPES:
        raise invalid("scope must be 'all', 'uid' (with uid) or 'wallet' (with user_id)")
    if scope == "all":
        if uid is not None or user_id is not None:
            raise invalid("scope 'all' takes neither uid nor user_id")
        return ("all", None, None)
    if scope == "uid":
        if uid is None or user_id is not None:
            raise invalid("scope 'uid' takes a uid (and no user_id)")
        return ("uid", uid, None)
    if user_id is None or uid is not None:
        raise invalid("scope 'wallet' takes a user_id (and no uid)")
    check_user_id(user_id)
    return ("wallet", None, user_id)


def pauses_result(pauses: dict[str, tuple[float, int]]) -> wire.SigningPausesResult:
    out: list[wire.PauseInfo] = []
    for key, (since, actor_uid) in sorted(pauses.items()):
        kind, _, rest = key.partition(":")
        uid: Any = int(rest) if kind == "uid" else None
        out.append(wire.PauseInfo(kind, uid, rest if kind == "wallet" else None, since, actor_uid))
    return wire.SigningPausesResult(out)
