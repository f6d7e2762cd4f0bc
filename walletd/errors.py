"""The daemon's exceptions, in one tree.

::

    WalletdError
    ├── RequestError            a refusal: one error response with ``code`` and ``message``
    │   ├── BadRequest          bad_request       the frame is not a well-formed request
    │   ├── UnknownOp           unknown_op        "op" names no operation
    │   ├── InvalidArgument     invalid_argument  well-typed, unacceptable value
    │   ├── NotFound            not_found         no such wallet / backup / history
    │   ├── AlreadyExists       already_exists    the user already has a wallet
    │   ├── Forbidden           forbidden         ownership, admin-only, allow-lists
    │   ├── Locked              locked            recovery attempts are exhausted
    │   ├── NoRitual            no_ritual         the wallet has no recovery ritual
    │   ├── IntegrityFailure    integrity_error   a record failed its integrity check
    │   ├── Unavailable         unavailable       at a limit, or shutting down
    │   ├── StorageFailure      storage_error     the change was not made durable
    │   ├── PolicyDenied        policy_denied     a signing-policy rule refused the signature
    │   ├── SigningPaused       paused            signing is paused (the kill switch)
    │   ├── QuotaExceeded       quota_exceeded    a [quotas] limit of a non-admin uid
    │   ├── ApprovalDenied      approval_denied   a held signature was denied or cancelled
    │   └── ApprovalTimeout     approval_timeout  a held signature expired undecided
    └── StartupError            walletd cannot start; nothing was changed

``frame_too_large`` is answered by the connection itself (the stream is lost), and
``internal`` is what the dispatcher answers for any other exception (a bug): neither is
raised as a RequestError.

Operations raise; the dispatcher (walletd.ops.dispatch) turns a RequestError into one error
response. A message must never contain key bytes, messages, signatures or ritual answers.
"""

from __future__ import annotations

from typing import ClassVar

from walletd_wire import ErrorCode

__all__ = [
    "AlreadyExists",
    "ApprovalDenied",
    "ApprovalTimeout",
    "BadRequest",
    "Forbidden",
    "IntegrityFailure",
    "InvalidArgument",
    "Locked",
    "NoRitual",
    "NotFound",
    "PolicyDenied",
    "QuotaExceeded",
    "RequestError",
    "SigningPaused",
    "StartupError",
    "StorageFailure",
    "Unavailable",
    "UnknownOp",
    "WalletdError",
    "forbidden",
    "invalid",
    "not_found",
]


class WalletdError(Exception):
    """The root of every exception walletd raises on purpose."""


class RequestError(WalletdError):
    """A refusal of one request. ``RequestError(code, message)``, or a subclass(message)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Coded(RequestError):
    code_of_class: ClassVar[ErrorCode]

    def __init__(self, message: str) -> None:
        super().__init__(self.code_of_class, message)


class BadRequest(_Coded):
    code_of_class = ErrorCode.BAD_REQUEST


class UnknownOp(_Coded):
    code_of_class = ErrorCode.UNKNOWN_OP


class InvalidArgument(_Coded):
    code_of_class = ErrorCode.INVALID_ARGUMENT


class NotFound(_Coded):
    code_of_class = ErrorCode.NOT_FOUND


class AlreadyExists(_Coded):
    code_of_class = ErrorCode.ALREADY_EXISTS


class Forbidden(_Coded):
    code_of_class = ErrorCode.FORBIDDEN


class Locked(_Coded):
    code_of_class = ErrorCode.LOCKED


class NoRitual(_Coded):
    code_of_class = ErrorCode.NO_RITUAL


class IntegrityFailure(_Coded):
    code_of_class = ErrorCode.INTEGRITY_ERROR


class Unavailable(_Coded):
    code_of_class = ErrorCode.UNAVAILABLE


class StorageFailure(_Coded):
    code_of_class = ErrorCode.STORAGE_ERROR


class PolicyDenied(_Coded):
    code_of_class = ErrorCode.POLICY_DENIED


class SigningPaused(_Coded):
    code_of_class = ErrorCode.PAUSED


class QuotaExceeded(_Coded):
    code_of_class = ErrorCode.QUOTA_EXCEEDED


class ApprovalDenied(_Coded):
    code_of_class = ErrorCode.APPROVAL_DENIED


class ApprovalTimeout(_Coded):
    code_of_class = ErrorCode.APPROVAL_TIMEOUT


# Short spellings for the three refusals most operations raise.
not_found = NotFound
forbidden = Forbidden
invalid = InvalidArgument


class StartupError(WalletdError):
    """walletd cannot start; the message says why and how to fix it. Nothing was changed."""
