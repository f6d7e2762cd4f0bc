"""From one frame's payload to one response: decode, route (the op table), run, map errors.

Handlers are ``handler(peer, request) -> result`` and may return an awaitable when they must
wait (a commit, scrypt, a rotation); most reads and signing return their result directly, so
the common path creates no coroutine. Every failure becomes exactly one error response; only a
broken frame (handled by the connection) closes a connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import CoroutineType
from typing import Any

import msgspec
import structlog

import walletd_wire as wire
from walletd.errors import RequestError
from walletd.model.peer import Peer
from walletd.ops.approval_ops import ApprovalOps
from walletd.ops.audit import AuditQueries
from walletd.ops.backups import Backups
from walletd.ops.keys import KeyOps
from walletd.ops.peek import peek_request
from walletd.ops.policy import PolicyOps
from walletd.ops.recovery import Recovery
from walletd.ops.rotation import Rotation
from walletd.ops.signing import Signing
from walletd.ops.typed_data_bound import (
    SCAN_ABOVE_BYTES,
    check_typed_data_frame,
    may_carry_typed_data,
    scan_typed_data_frame,
)
from walletd.ops.wallets import WalletOps
from walletd_wire import ErrorCode

log = structlog.get_logger("walletd")

Handler = Callable[[Peer, Any], Any]
Response = wire.OkResponse | wire.ErrorResponse

_TOO_DEEP = "request is nested too deeply"
_BAD_UTF8 = "a string is not valid UTF-8"


@dataclass(frozen=True)
class OpFamilies:
    """One object per operation family (see walletd/ops/): the op table's handlers."""

    wallets: WalletOps
    signing: Signing
    rotation: Rotation
    backups: Backups
    recovery: Recovery
    audit: AuditQueries
    keys: KeyOps
    policy: PolicyOps
    approvals: ApprovalOps


def op_table(f: OpFamilies) -> dict[type[wire.Request], Handler]:
    """The routing table: every request type to the method that answers it."""
    return {
        wire.Hello: f.wallets.hello,
        wire.Status: f.wallets.status,
        wire.CreateWallet: f.wallets.create_wallet,
        wire.GetWalletAddress: f.wallets.get_wallet_address,
        wire.HasWallet: f.wallets.has_wallet,
        wire.ListWallets: f.wallets.list_wallets,
        wire.DeleteWallet: f.wallets.delete_wallet,
        wire.SignMessage: f.signing.sign_message,
        wire.VerifySignature: f.keys.verify_signature,
        wire.SignBatch: f.signing.sign_batch,
        wire.VerifyBatch: f.keys.verify_batch,
        wire.GetPublicKey: f.keys.get_public_key,
        wire.SignTypedData: f.keys.sign_typed_data,
        wire.RotateKeys: f.rotation.rotate_keys,
        wire.NeedsRotation: f.rotation.needs_rotation,
        wire.RotationStatus: f.rotation.rotation_status,
        wire.RotationHistory: f.rotation.rotation_history,
        wire.GetPolicy: f.rotation.get_policy,
        wire.SetPolicy: f.rotation.set_policy,
        wire.BackupWallet: f.backups.backup_wallet,
        wire.CreateBackup: f.backups.create_backup,
        wire.ListBackups: f.backups.list_backups,
        wire.VerifyBackup: f.backups.verify_backup,
        wire.DeleteBackup: f.backups.delete_backup,
        wire.AuditLog: f.audit.audit_log,
        wire.AuditVerify: f.audit.audit_verify,
        wire.AuditHead: f.audit.audit_head,
        wire.RegisterRitual: f.recovery.register_ritual,
        wire.UnregisterRitual: f.recovery.unregister_ritual,
        wire.HasRitual: f.recovery.has_ritual,
        wire.GetPrompts: f.recovery.get_prompts,
        wire.GetRemainingAttempts: f.recovery.get_remaining_attempts,
        wire.IsLocked: f.recovery.is_locked,
        wire.InitiateRecovery: f.recovery.initiate_recovery,
        wire.ResetAttempts: f.recovery.reset_attempts,
        wire.GetSigningPolicy: f.policy.get_signing_policy,
        wire.SetSigningPolicy: f.policy.set_signing_policy,
        wire.ExplainSigning: f.policy.explain_signing,
        wire.PauseSigning: f.policy.pause_signing,
        wire.ResumeSigning: f.policy.resume_signing,
        wire.ListPending: f.approvals.list_pending,
        wire.Approve: f.approvals.approve,
        wire.Deny: f.approvals.deny,
        wire.AwaitApproval: f.approvals.await_approval,
        wire.CancelApproval: f.approvals.cancel_approval,
        wire.ListLeases: f.approvals.list_leases,
        wire.RevokeLease: f.approvals.revoke_lease,
    }


class Dispatcher:
    def __init__(self, handlers: OpFamilies | dict[type[wire.Request], Handler]) -> None:
        if isinstance(handlers, OpFamilies):
            handlers = op_table(handlers)
        missing = set(wire.REQUEST_TYPES) - set(handlers)
        if missing:
            raise RuntimeError(f"no handler for {sorted(t.__name__ for t in missing)}")
        self._handlers = handlers
        self._decoder = msgspec.msgpack.Decoder(wire.AnyRequest)
        self._strict_decode = self._decoder.decode

    def decode(self, payload: bytes | memoryview) -> wire.Request | wire.ErrorResponse:
        """The typed request, or the error response that explains why there is none."""
        if (early := _bounded_typed_data(payload)) is not None:
            return early
        try:
            request: wire.Request = self._decoder.decode(payload)
        except Exception as exc:
            return self.explain(payload, exc)
        return request

    def explain(self, payload: bytes | memoryview, exc: Exception) -> wire.ErrorResponse:
        """The error response for ``payload``, whose strict decode raised ``exc``.

        The payload is not decoded again: a bounded scan (walletd.ops.peek) reads the id to
        echo and the op, and finds what the decoder's message would not say plainly (bytes
        after the map, a key given twice). The id is kept whenever the scan could read it.
        """
        if not payload:
            return wire.error(
                None, ErrorCode.BAD_REQUEST, "empty frame: expected a MessagePack map"
            )
        if not isinstance(exc, msgspec.MsgspecError | UnicodeDecodeError | RecursionError):
            raise exc  # not a decoding failure: a bug, for the caller's internal-error path
        # ValidationError subclasses DecodeError: only the latter means "not MessagePack".
        malformed = isinstance(exc, msgspec.DecodeError) and not isinstance(
            exc, msgspec.ValidationError
        )
        seen = peek_request(payload)
        if not seen.is_map:
            if malformed:
                return wire.error(
                    None, ErrorCode.BAD_REQUEST, f"frame is not valid MessagePack: {exc}"
                )
            return wire.error(None, ErrorCode.BAD_REQUEST, f"request must be a map: {exc}")
        request_id = seen.request_id
        if seen.trailing > 0:
            return wire.error(
                request_id,
                ErrorCode.BAD_REQUEST,
                f"{seen.trailing} bytes after the request map; a frame holds exactly one "
                "MessagePack map",
            )
        if seen.duplicate is not None:
            return wire.error(
                request_id,
                ErrorCode.BAD_REQUEST,
                f"invalid request: key {seen.duplicate!r} appears more than once in the map",
            )
        if seen.too_deep or isinstance(exc, RecursionError):
            # msgspec refuses nesting deeper than the interpreter's recursion limit with a
            # RecursionError (not a MsgspecError); a 200 KB frame of nested arrays does it.
            return wire.error(request_id, ErrorCode.BAD_REQUEST, _TOO_DEEP)
        if seen.bad_utf8 or isinstance(exc, UnicodeDecodeError):
            # A MessagePack str that is not UTF-8 raises this, not a MsgspecError.
            return wire.error(request_id, ErrorCode.BAD_REQUEST, f"invalid request: {_BAD_UTF8}")
        if seen.op is not None and seen.op not in wire.OPS:
            return wire.error(
                request_id,
                ErrorCode.UNKNOWN_OP,
                f"unknown op {seen.op[:64]!r}; 'hello' lists the supported ops",
            )
        if malformed:
            return wire.error(
                request_id, ErrorCode.BAD_REQUEST, f"frame is not valid MessagePack: {exc}"
            )
        return wire.error(request_id, ErrorCode.BAD_REQUEST, f"invalid request: {exc}")

    def respond(self, peer: Peer, payload: bytes | memoryview) -> Response | Awaitable[Response]:
        """The response to one frame's payload: ``decode`` then ``run``.

        The strict decode is tried once; a frame that fails it is explained from the
        exception and a bounded scan, never decoded a second time. A frame that may carry
        typed data is scanned first, yielding to other connections as it goes
        (walletd.ops.typed_data_bound).
        """
        if len(payload) > SCAN_ABOVE_BYTES and may_carry_typed_data(payload):
            return self._respond_typed_data(peer, payload)
        try:
            request: wire.Request = self._strict_decode(payload)
        except Exception as exc:
            return self.explain(payload, exc)
        return self.run(peer, request)

    async def _respond_typed_data(self, peer: Peer, payload: bytes | memoryview) -> Response:
        refusal = await scan_typed_data_frame(payload)
        if refusal is not None:
            return wire.error(refusal.request_id, ErrorCode.BAD_REQUEST, refusal.message)
        try:
            request: wire.Request = self._strict_decode(payload)
        except Exception as exc:
            return self.explain(payload, exc)
        response = self.run(peer, request)
        if response.__class__ is CoroutineType:
            return await response  # type: ignore[no-any-return]
        return response  # type: ignore[return-value]

    def run(self, peer: Peer, request: wire.Request) -> Response | Awaitable[Response]:
        """The response to ``request``; an awaitable when the handler has to wait."""
        try:
            result = self._handlers[request.__class__](peer, request)
        except RequestError as exc:
            return wire.ErrorResponse(request.id, False, wire.ErrorBody(exc.code, exc.message))
        except Exception:
            return self._internal(request)
        if result.__class__ is CoroutineType:
            return self._finish(request, result)
        return wire.OkResponse(request.id, True, result)

    async def _finish(self, request: wire.Request, pending: Awaitable[Any]) -> Response:
        try:
            return wire.OkResponse(request.id, True, await pending)
        except RequestError as exc:
            return wire.ErrorResponse(request.id, False, wire.ErrorBody(exc.code, exc.message))
        except Exception:
            return self._internal(request)

    def _internal(self, request: wire.Request) -> wire.ErrorResponse:
        # The traceback goes to the log (exceptions built by walletd never hold secrets; the
        # redaction processor still runs); the client gets no detail.
        log.exception("internal_error", op=type(request).__struct_config__.tag, id=request.id)
        return wire.error(request.id, ErrorCode.INTERNAL, "internal error; see the walletd log")


def _bounded_typed_data(payload: bytes | memoryview) -> wire.ErrorResponse | None:
    """The refusal of a sign_typed_data frame too large to decode (walletd.ops.typed_data_bound),
    checked before msgspec would build it; None for every other frame."""
    refusal = check_typed_data_frame(payload)
    if refusal is None:
        return None
    return wire.error(refusal.request_id, ErrorCode.BAD_REQUEST, refusal.message)
