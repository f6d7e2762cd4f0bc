"""The client's exceptions, one tree::

    WalletError                      base; .code is the wire error code (or a client-side one)
    ├── WalletNotFoundError          not_found: no such wallet, backup or history
    ├── WalletExistsError            already_exists: the user already has a wallet
    ├── PermissionDeniedError        forbidden: not the owner, not an admin, or not allowed in
    ├── InvalidArgumentError         invalid_argument: a value the daemon will not accept
    ├── WalletKeyError               the daemon could not store or use a key
    │   └── StorageError             storage_error: the change was not made durable; nothing changed
    ├── BackupIntegrityError         integrity_error: a backup record was tampered with
    ├── RitualError                  no_ritual, or a ritual the client refuses to send
    │   └── RitualLockedError        locked: recovery attempts are exhausted
    ├── ProtocolError                bad_request, unknown_op, frame_too_large, undecodable reply
    └── DaemonUnavailableError       socket missing/refused, timeout, unavailable, connection lost

Wire errors are data; :func:`error_from_wire` turns them into these classes at the boundary.
"""

from __future__ import annotations

from walletd_wire import ErrorCode

__all__ = [
    "BackupIntegrityError",
    "DaemonUnavailableError",
    "InvalidArgumentError",
    "PermissionDeniedError",
    "ProtocolError",
    "RitualError",
    "RitualLockedError",
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

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class WalletNotFoundError(WalletError):
    code = ErrorCode.NOT_FOUND


class WalletExistsError(WalletError):
    code = ErrorCode.ALREADY_EXISTS


class PermissionDeniedError(WalletError):
    code = ErrorCode.FORBIDDEN


class InvalidArgumentError(WalletError):
    code = ErrorCode.INVALID_ARGUMENT


class WalletKeyError(WalletError):
    pass


class StorageError(WalletKeyError):
    code = ErrorCode.STORAGE_ERROR


class BackupIntegrityError(WalletError):
    code = ErrorCode.INTEGRITY_ERROR


class RitualError(WalletError):
    code = ErrorCode.NO_RITUAL


class RitualLockedError(RitualError):
    code = ErrorCode.LOCKED


class ProtocolError(WalletError):
    code = ErrorCode.BAD_REQUEST


class DaemonUnavailableError(WalletError):
    code = ErrorCode.UNAVAILABLE


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
}


def error_from_wire(code: str, message: str) -> WalletError:
    """The exception for a wire error; unknown codes (a newer daemon) become WalletError."""
    return _BY_CODE.get(code, WalletError)(message, code=code)
