"""The trio client: one Unix-socket connection; concurrent callers take turns on it.

All request building and response mapping lives in :mod:`wallet_client.calls`; this module only
moves bytes, through :mod:`wallet_client._trio_transport`. It reconnects lazily after a lost
connection.

This file is the single source of both clients. ``scripts/unasync.py`` turns it into the
blocking :mod:`wallet_client.client` by explicit substitutions (``async``/``await`` dropped,
``AsyncWalletClient`` -> ``WalletClient``, ``aclose`` -> ``close``, ``_trio_transport`` ->
``_sync_transport``, ...), so write nothing here that only trio can do: what differs between
the flavours (connecting, sending, receiving, timeouts, closing) belongs in the two transport
modules, which define the same names. Comments and docstrings are copied as they are, so keep
them true of both flavours (the script refuses output that still names trio or awaiting).

To add a method (usually for a new op in :mod:`walletd_wire`):

1. describe it once in :mod:`wallet_client.calls`: a function returning a ``Call`` (the
   request, the result's wire type, the conversion to the return value);
2. add ``async def name(...) -> T: return await self._call(calls.name(...))`` below, with the
   docstring both clients will share; give an awaited value a name before using it
   (``result = await ...``, then ``result.field``), which generates as plain code;
3. run ``make generate`` (``python scripts/unasync.py``) to rewrite ``client.py``; ``make lint``
   and ``tests/test_client_parity.py`` fail until you do; commit both files;
4. if the method's name is not the op's, map the op in ``METHOD_FOR_OP`` in
   ``tests/test_client_parity.py``; a method that is no op goes in ``EXTRA_METHODS`` there;
   both with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import walletd_wire as wire
from walletd_wire.approvals import (
    ApprovalInfo,
    ApproveResult,
    CancelledResult,
    DeniedResult,
    LeaseInfo,
    LeaseSpec,
    RevokedResult,
)

from . import _trio_transport as transport
from . import approval_calls, calls, calls_policy
from ._unix import check_server_uid, connection_dropped, resolve_socket_path
from .calls import BackupList, Call, ClientCore
from .errors import DaemonUnavailableError, WalletError

T = TypeVar("T")

__all__ = ["AsyncWalletClient"]

# Errors a call re-raises as they are, after dropping the connection: whatever answer is still
# on its way would otherwise be read as the next call's.
_ABANDONED: tuple[type[BaseException], ...] = (WalletError, *transport.CANCELLED)


class AsyncWalletClient:
    """Talks to walletd from trio code. ``async with AsyncWalletClient() as client: ...``"""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = calls.DEFAULT_TIMEOUT,
        expect_uid: int | None = None,
    ) -> None:
        """``expect_uid``: the uid walletd runs as; a socket served by any other uid (root
        excepted) is refused with PermissionDeniedError before anything is sent on it."""
        self.socket_path = resolve_socket_path(socket_path)
        self.timeout = timeout
        self.expect_uid = expect_uid
        self._core = ClientCore()
        self._stream: transport.Connection | None = None
        self._lock = transport.Lock()

    async def __aenter__(self) -> AsyncWalletClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._drop()
        await transport.checkpoint()

    def _drop(self) -> None:
        # Synchronous, so it also works while the call that failed is being cancelled.
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    async def _connect(self) -> transport.Connection:
        try:
            connection = await transport.Connection.open(self.socket_path, self.timeout)
        except OSError as exc:
            raise DaemonUnavailableError(
                f"cannot connect to walletd at {self.socket_path}: {exc.strerror or exc} "
                "(is walletd running? set $WALLETD_SOCKET or pass the socket path if it "
                "listens elsewhere)"
            ) from exc
        if self.expect_uid is not None:
            try:
                check_server_uid(connection.fileno(), self.expect_uid, self.socket_path)
            except BaseException:
                connection.close()
                raise
        self._core.reset()
        return connection

    async def _call(self, call: Call[T]) -> T:
        async with self._lock:
            try:
                timeout = None if self.timeout is None else self.timeout + call.wait_s
                with transport.deadline(timeout):
                    if self._stream is not None and connection_dropped(self._stream.fileno()):
                        # walletd closed this idle connection (idle timeout, restart). Nothing
                        # was sent on it since, so a new connection cannot repeat a request.
                        self._drop()
                    if self._stream is None:
                        self._stream = await self._connect()
                    request_id, frame = self._core.encode(call)
                    try:
                        await self._stream.send_all(frame)
                    except transport.SEND_BROKEN:
                        refusal = await self._refusal(self._stream)
                        if refusal is None:
                            raise
                        raise refusal from None
                    while (response := self._core.next_response()) is None:
                        data = await self._stream.receive_some()
                        if not data:
                            raise transport.ClosedByPeer("walletd closed the connection")
                        self._core.feed(data)
            except transport.TIMED_OUT as exc:
                self._drop()  # a late reply would be read as the next request's answer
                raise DaemonUnavailableError(
                    f"walletd at {self.socket_path} did not answer within {self.timeout}s"
                ) from exc
            except transport.LOST as exc:
                self._drop()
                raise DaemonUnavailableError(
                    f"lost the connection to walletd at {self.socket_path}: {exc}"
                ) from exc
            except _ABANDONED:
                self._drop()
                raise
            return self._core.result(call, request_id, response)

    async def _refusal(self, connection: transport.Connection) -> WalletError | None:
        # The daemon closed while we were sending: read what it said before it did (it will
        # not block, the connection is closed).
        try:
            while data := await connection.receive_some():
                self._core.feed(data)
        except transport.LOST:
            pass
        return self._core.refusal()

    # ------------------------------------------------------------------ methods

    async def hello(self) -> wire.HelloResult:
        return await self._call(calls.hello())

    async def status(self) -> wire.StatusResult:
        return await self._call(calls.status())

    async def create_wallet(self, user_id: str, key_type: str = "hmac-sha256") -> str:
        """A new wallet for ``user_id``; its address. ``key_type``: "hmac-sha256" (only walletd
        verifies), "ed25519" or "secp256k1" (anyone verifies, see wallet_client.verify)."""
        return await self._call(calls.create_wallet(user_id, key_type))

    async def get_public_key(
        self, user_id: str, version: int | None = None
    ) -> wire.PublicKeyResult:
        """The public key of a public-key wallet: the current one, or an earlier ``version``."""
        return await self._call(calls.get_public_key(user_id, version))

    async def get_wallet_address(self, user_id: str) -> str | None:
        return await self._call(calls.get_wallet_address(user_id))

    async def has_wallet(self, user_id: str) -> bool:
        return await self._call(calls.has_wallet(user_id))

    async def list_wallets(self) -> dict[str, str]:
        return await self._call(calls.list_wallets())

    async def delete_wallet(self, user_id: str) -> bool:
        return await self._call(calls.delete_wallet(user_id))

    async def sign_message(
        self,
        user_id: str,
        message: bytes,
        *,
        purpose: str | None = None,
        wait: float | None = None,
    ) -> bytes:
        """The wallet's signature of ``message``. A ``purpose`` (why, in a sentence) is
        recorded in the audit log with the signature, which then costs one commit.

        When the signing policy holds the request for a person: without ``wait``, raises
        PendingApproval (its ``approval_id`` is for await_approval); with ``wait=S``, waits
        up to S seconds and returns the signature if approved, raising ApprovalDeniedError
        or ApprovalTimeoutError otherwise."""
        call = approval_calls.sign_message(user_id, message, purpose, wait)
        return await self._call(call)

    async def sign_message_detailed(
        self,
        user_id: str,
        message: bytes,
        *,
        purpose: str | None = None,
        wait: float | None = None,
    ) -> wire.SignatureResult:
        """Like sign_message, with the signing key's address, key type and version."""
        call = approval_calls.sign_message_detailed(user_id, message, purpose, wait)
        return await self._call(call)

    async def sign_typed_data(
        self,
        user_id: str,
        typed_data: Mapping[str, Any],
        *,
        purpose: str | None = None,
        wait: float | None = None,
    ) -> bytes:
        """The EIP-712 signature (65 bytes r || s || v) of an ``eth_signTypedData_v4``
        document, by a secp256k1 wallet. The daemon validates and hashes the document.
        ``purpose`` and ``wait``: as for sign_message."""
        call = approval_calls.sign_typed_data(user_id, typed_data, purpose, wait)
        return await self._call(call)

    async def sign_typed_data_detailed(
        self,
        user_id: str,
        typed_data: Mapping[str, Any],
        *,
        purpose: str | None = None,
        wait: float | None = None,
    ) -> wire.SignatureResult:
        """Like sign_typed_data, with the signing key's address, key type and version."""
        call = approval_calls.sign_typed_data_detailed(user_id, typed_data, purpose, wait)
        return await self._call(call)

    async def verify_signature(
        self, user_id: str, message: bytes, signature: bytes, version: int | None = None
    ) -> bool:
        """Whether ``signature`` is the wallet's over ``message``, by its current key or by
        key ``version`` (public-key wallets keep every version's public key)."""
        return await self._call(calls.verify_signature(user_id, message, signature, version))

    async def sign_batch(self, user_id: str, messages: Sequence[bytes]) -> list[wire.SignedItem]:
        return await self._call(calls.sign_batch(user_id, messages))

    async def verify_batch(
        self, user_id: str, items: Iterable[tuple[bytes, bytes]], version: int | None = None
    ) -> list[bool]:
        return await self._call(calls.verify_batch(user_id, items, version))

    async def rotate_keys(self, user_id: str, reason: str = "manual") -> str:
        return await self._call(calls.rotate_keys(user_id, reason))

    async def needs_rotation(self, user_id: str) -> bool:
        return await self._call(calls.needs_rotation(user_id))

    async def rotation_status(self, user_id: str) -> wire.RotationStatusResult:
        return await self._call(calls.rotation_status(user_id))

    async def rotation_history(
        self, user_id: str, *, limit: int = 1000, before_seq: int | None = None
    ) -> list[wire.RotationRecord]:
        """Oldest first, at most ``limit``; pass the first record's ``seq`` as ``before_seq``
        to read further back."""
        return await self._call(calls.rotation_history(user_id, limit=limit, before_seq=before_seq))

    async def get_policy(self, user_id: str) -> wire.RotationPolicy:
        return await self._call(calls.get_policy(user_id))

    async def set_policy(
        self,
        user_id: str,
        *,
        max_age_days: int | None = None,
        max_signatures: int | None = None,
        auto_rotate: bool | None = None,
    ) -> wire.RotationPolicy:
        return await self._call(
            calls.set_policy(
                user_id,
                max_age_days=max_age_days,
                max_signatures=max_signatures,
                auto_rotate=auto_rotate,
            )
        )

    async def backup_wallet(self, user_id: str) -> dict[str, Any]:
        return await self._call(calls.backup_wallet(user_id))

    async def create_backup(
        self, user_id: str, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return await self._call(calls.create_backup(user_id, metadata))

    async def list_backups(self, user_id: str) -> BackupList:
        return await self._call(calls.list_backups(user_id))

    async def verify_backup(self, user_id: str, backup_id: str) -> bool:
        return await self._call(calls.verify_backup(user_id, backup_id))

    async def delete_backup(self, user_id: str, backup_id: str) -> bool:
        return await self._call(calls.delete_backup(user_id, backup_id))

    async def audit_log(
        self,
        user_id: str | None = None,
        *,
        since: float | None = None,
        limit: int = 1000,
        before_seq: int | None = None,
    ) -> list[wire.AuditRecord]:
        """The newest ``limit`` matching records, oldest first; pass the first one's ``seq``
        as ``before_seq`` to page further back."""
        return await self._call(
            calls.audit_log(user_id, since=since, limit=limit, before_seq=before_seq)
        )

    async def audit_verify(self) -> wire.AuditVerifyResult:
        return await self._call(calls.audit_verify())

    async def audit_head(self) -> wire.AuditHeadResult:
        """The audit chain's head as a tagged checkpoint (admin): keep it off this host and
        compare with ``walletd check --expect-head FILE``."""
        return await self._call(calls.audit_head())

    async def register_ritual(self, user_id: str, steps: Sequence[wire.RitualStep]) -> int:
        return await self._call(calls.register_ritual(user_id, steps))

    async def unregister_ritual(self, user_id: str) -> bool:
        return await self._call(calls.unregister_ritual(user_id))

    async def has_ritual(self, user_id: str) -> bool:
        return await self._call(calls.has_ritual(user_id))

    async def get_prompts(self, user_id: str) -> list[str]:
        return await self._call(calls.get_prompts(user_id))

    async def get_remaining_attempts(self, user_id: str) -> int:
        return await self._call(calls.get_remaining_attempts(user_id))

    async def is_locked(self, user_id: str) -> bool:
        return await self._call(calls.is_locked(user_id))

    async def reset_attempts(self, user_id: str) -> int:
        return await self._call(calls.reset_attempts(user_id))

    async def initiate_recovery(self, user_id: str, responses: Sequence[str]) -> bool:
        """Answer ``user_id``'s ritual with the answers as typed (only their hashes are sent)."""
        result = await self._call(calls.initiate_recovery_result(user_id, responses))
        return result.recovered

    # ------------------------------------------------------------------ signing policy

    async def get_signing_policy(self, user_id: str) -> wire.SigningPolicyResult:
        """Both layers of the wallet's signing policy, each with its version."""
        return await self._call(calls_policy.get_signing_policy(user_id))

    async def set_signing_policy(
        self, user_id: str, layer: str, rules: Sequence[Any], expected_version: int
    ) -> wire.SigningPolicyResult:
        """Replace ``layer`` ("admin" or "owner") if it is still at ``expected_version``
        (compare-and-set); a stale version or a bad document raises InvalidArgumentError."""
        return await self._call(
            calls_policy.set_signing_policy(user_id, layer, rules, expected_version)
        )

    async def explain_signing(
        self,
        user_id: str,
        message: bytes | None = None,
        typed_data: Mapping[str, Any] | None = None,
        op: str | None = None,
    ) -> wire.ExplainResult:
        """What the policy would decide for this signature, and why; consumes nothing."""
        return await self._call(calls_policy.explain_signing(user_id, message, typed_data, op))

    async def pause_signing(
        self, scope: str = "all", uid: int | None = None, user_id: str | None = None
    ) -> list[wire.PauseInfo]:
        """Admins: stop signing at once for everything, one uid's wallets or one wallet."""
        return await self._call(calls_policy.pause_signing(scope, uid, user_id))

    async def resume_signing(
        self, scope: str = "all", uid: int | None = None, user_id: str | None = None
    ) -> list[wire.PauseInfo]:
        """Admins: lift the pause of that scope (others stay); returns the pauses left."""
        return await self._call(calls_policy.resume_signing(scope, uid, user_id))

    async def recover(self, user_id: str, responses: Sequence[str]) -> str:
        """Like initiate_recovery, but return the new address and raise RitualError on failure."""
        result = await self._call(calls.initiate_recovery_result(user_id, responses))
        return calls.recovered_address(result)

    # ------------------------------------------------------------------ approvals

    async def list_pending(self) -> list[ApprovalInfo]:
        """Signing requests waiting for a person: all of them for approvers (admins and
        members of approver_group), else the caller's own."""
        return await self._call(approval_calls.list_pending())

    async def approve(self, approval_id: str, lease: LeaseSpec | None = None) -> ApproveResult:
        """Approve a held signature (never one your own uid asked for), optionally granting
        a lease: ``LeaseSpec(scope="process", ttl_s=600, max_uses=20)``."""
        return await self._call(approval_calls.approve(approval_id, lease))

    async def deny(self, approval_id: str, reason: str | None = None) -> DeniedResult:
        return await self._call(approval_calls.deny(approval_id, reason))

    async def await_approval(self, approval_id: str, timeout_s: float = 30.0) -> bytes:
        """The signature once approved; ApprovalDeniedError, or ApprovalTimeoutError when it
        is not decided within ``timeout_s`` (``approval_id`` on the error when it still
        waits) or has expired."""
        return await self._call(approval_calls.await_approval(approval_id, timeout_s))

    async def cancel_approval(self, approval_id: str) -> CancelledResult:
        return await self._call(approval_calls.cancel_approval(approval_id))

    async def list_leases(self) -> list[LeaseInfo]:
        return await self._call(approval_calls.list_leases())

    async def revoke_lease(self, lease_id: str) -> RevokedResult:
        return await self._call(approval_calls.revoke_lease(lease_id))
