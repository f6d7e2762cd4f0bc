"""The client's exceptions, one tree::

    WalletError                      base; .code is the wire error code (or a client-side one)
    ├── WalletNotFoundError          not_found: no such wallet, backup or history
    ├── WalletExistsError            already_exists: the user already has a wallet
    ├── PermissionDeniedError        forbidden: not the owner, not an admin, or not allowed in
    │   └── QuotaExceededError       quota_exceeded: a quota of the daemon's [quotas] table
    ├── InvalidArgumentError         invalid_argument: a value the daemon will not accept
    ├── WalletKeyError               the daemon could not store or use a key
    │   └── StorageError             storage_error: the change was not made durable; nothing changed
    ├── BackupIntegrityError         integrity_error: a backup record was tampered with
    ├── RitualError                  no_ritual, or a ritual the client refuses to send
    │   └── RitualLockedError        locked: recovery attempts are exhausted
    ├── PolicyDeniedError            policy_denied: a signing-policy rule refused the signature
    ├── SigningPausedError           paused: signing is paused by an admin (the kill switch)
    ├── ProtocolError                bad_request, unknown_op, frame_too_large, undecodable reply
    ├── DaemonUnavailableError       socket missing/refused, timeout, unavailable, connection lost
    ├── ApprovalDeniedError          approval_denied: a held signature was denied or cancelled
    └── ApprovalTimeoutError         approval_timeout: a held signature was not decided in time

Wire errors are data; :func:`error_from_wire` turns them into these classes at the boundary.

The constructors also take the forms of the library walletd replaces (Codomyrmex's
``codomyrmex.wallet.exceptions``): no-argument construction with a default message, ``code``
and ``details`` after the message, ``WalletNotFoundError(user_id, message=...)``,
``WalletKeyError(message, key_type=...)`` and ``RitualError(message, ritual_step=...)``, and
the ``error_dict`` view. ``code`` stays walletd's wire code unless one is given, so programs
keep matching on one closed set; :func:`error_from_wire` builds every error by keyword.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from walletd_wire import ErrorCode

__all__ = [
    "ApprovalDeniedError",
    "ApprovalTimeoutError",
    "BackupIntegrityError",
    "DaemonUnavailableError",
    "InvalidArgumentError",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "ProtocolError",
    "QuotaExceededError",
    "RitualError",
    "RitualLockedError",
    "SigningPausedError",
    "StorageError",
    "WalletError",
    "WalletExistsError",
    "WalletKeyError",
    "WalletNotFoundError",
    "error_from_wire",
]


class WalletError(Exception):
    """Base of every error the client raises."""

    code: str = ErrorCode.INTERNAL
    #: The message of a no-argument construction.
    default_message: ClassVar[str] = ""

    def __init__(
        self,
        message: str | None = None,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        if message is None:
            message = self.default_message
        super().__init__(message)
        self.message = message
        # An empty code (Codomyrmex's default) keeps the class's wire code: "" matches nothing.
        if code:
            self.code = code
        self.details: dict[str, Any] = dict(details) if details else {}

    @property
    def error_dict(self) -> dict[str, Any]:
        """A plain-data view for logs and tool results: type, code, message and details."""
        return {
            "error_type": type(self).__name__,
            "code": self.code,
            "message": str(self),
            "details": dict(self.details),
        }


class WalletNotFoundError(WalletError):
    """No such wallet, backup or history. ``user_id`` comes first, as in Codomyrmex."""

    code = ErrorCode.NOT_FOUND

    def __init__(
        self,
        user_id: str = "",
        message: str = "Wallet not found",
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.user_id = user_id
        text = f"{message}: {user_id}" if user_id else message
        super().__init__(text, code, {"user_id": user_id, **(details or {})})


class WalletExistsError(WalletError):
    code = ErrorCode.ALREADY_EXISTS


class PermissionDeniedError(WalletError):
    code = ErrorCode.FORBIDDEN


class InvalidArgumentError(WalletError):
    code = ErrorCode.INVALID_ARGUMENT


class WalletKeyError(WalletError):
    """The daemon could not store or use a key; ``key_type`` as in Codomyrmex."""

    default_message = "Key operation failed"

    def __init__(
        self,
        message: str | None = None,
        key_type: str = "",
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.key_type = key_type
        super().__init__(message, code, {"key_type": key_type, **(details or {})})


class StorageError(WalletKeyError):
    code = ErrorCode.STORAGE_ERROR


class BackupIntegrityError(WalletError):
    code = ErrorCode.INTEGRITY_ERROR


class RitualError(WalletError):
    """A ritual problem; ``ritual_step`` as in Codomyrmex (walletd never says which step)."""

    code = ErrorCode.NO_RITUAL
    default_message = "Ritual failed"

    def __init__(
        self,
        message: str | None = None,
        ritual_step: str = "",
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.ritual_step = ritual_step
        super().__init__(message, code, {"ritual_step": ritual_step, **(details or {})})


class RitualLockedError(RitualError):
    code = ErrorCode.LOCKED


class PolicyDeniedError(WalletError):
    """The daemon's signing policy refused the signature; the message names the rule and the
    layer that decided (never what was to be signed). ``explain_signing`` says more."""

    code = ErrorCode.POLICY_DENIED


class SigningPausedError(WalletError):
    """Signing is paused (for everything, the caller's uid or this wallet) until an admin
    resumes it."""

    code = ErrorCode.PAUSED


class ProtocolError(WalletError):
    code = ErrorCode.BAD_REQUEST


class DaemonUnavailableError(WalletError):
    code = ErrorCode.UNAVAILABLE


class QuotaExceededError(PermissionDeniedError):
    """A quota (wallets per uid, backups per wallet): refused until something is deleted.

    A PermissionDeniedError, so code that catches refusals catches this too; its own code,
    so a program can tell "not yours" from "too many".
    """

    code = ErrorCode.QUOTA_EXCEEDED


class ApprovalDeniedError(WalletError):
    """A signature held for approval was denied by an approver (or cancelled)."""

    code = ErrorCode.APPROVAL_DENIED


class ApprovalTimeoutError(WalletError):
    """A signature held for approval was not decided in time.

    ``approval_id`` and ``expires_at`` are set when the approval is still pending (the wait
    ran out first): ``await_approval(approval_id)`` may still get the signature."""

    code = ErrorCode.APPROVAL_TIMEOUT
    approval_id: str | None = None
    expires_at: float | None = None


_BY_CODE: dict[str, type[WalletError]] = {
    ErrorCode.BAD_REQUEST: ProtocolError,
    ErrorCode.UNKNOWN_OP: ProtocolError,
    ErrorCode.FRAME_TOO_LARGE: ProtocolError,
    ErrorCode.INVALID_ARGUMENT: InvalidArgumentError,
    ErrorCode.NOT_FOUND: WalletNotFoundError,
    ErrorCode.ALREADY_EXISTS: WalletExistsError,
    ErrorCode.FORBIDDEN: PermissionDeniedError,
    ErrorCode.LOCKED: RitualLockedError,
    ErrorCode.NO_RITUAL: RitualError,
    ErrorCode.INTEGRITY_ERROR: BackupIntegrityError,
    ErrorCode.UNAVAILABLE: DaemonUnavailableError,
    ErrorCode.STORAGE_ERROR: StorageError,
    ErrorCode.POLICY_DENIED: PolicyDeniedError,
    ErrorCode.PAUSED: SigningPausedError,
    ErrorCode.QUOTA_EXCEEDED: QuotaExceededError,
    ErrorCode.APPROVAL_DENIED: ApprovalDeniedError,
    ErrorCode.APPROVAL_TIMEOUT: ApprovalTimeoutError,
}


def error_from_wire(code: str, message: str) -> WalletError:
    """The exception for a wire error; unknown codes (a newer daemon) become WalletError."""
    # By keyword: WalletNotFoundError's first positional parameter is a user id.
    return _BY_CODE.get(code, WalletError)(message=message, code=code)
