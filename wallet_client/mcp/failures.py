"""Tool errors: every failure a model sees is ``{code, message, retryable, hint}``.

``code`` is walletd's wire error code (the closed set in walletd_wire.error_codes) or one of
walletd-mcp's own (``read_only``, ``not_pinned``, ``unsupported``); ``retryable`` says whether
the same call may succeed later unchanged; ``hint`` is what to do next, written for a model.
Messages come from the daemon or from this package, and neither ever holds a secret.
"""

from __future__ import annotations

from typing import Any, Final

from wallet_client.errors import DaemonUnavailableError, WalletError
from walletd_wire import ErrorCode

__all__ = ["ToolFailure", "failure_from"]

READ_ONLY: Final = "read_only"
NOT_PINNED: Final = "not_pinned"
UNSUPPORTED: Final = "unsupported"

_RETRYABLE: Final = frozenset({ErrorCode.UNAVAILABLE, ErrorCode.STORAGE_ERROR})

_HINTS: Final[dict[str, str]] = {
    ErrorCode.NOT_FOUND: "Check the user_id with wallet_list, or create it with wallet_create.",
    ErrorCode.ALREADY_EXISTS: "The wallet exists already: use it, or pick another user_id.",
    ErrorCode.FORBIDDEN: (
        "walletd refused: the wallet belongs to another user. Do not retry; ask the person "
        "who runs walletd."
    ),
    ErrorCode.INVALID_ARGUMENT: "Fix the argument the message names and call again.",
    ErrorCode.BAD_REQUEST: "Fix the arguments and call again.",
    ErrorCode.UNAVAILABLE: "walletd is not reachable or busy; try again in a few seconds.",
    ErrorCode.STORAGE_ERROR: "walletd could not save; nothing changed. Try again later.",
    "policy_denied": (
        "walletd's signing policy refuses this; do not retry the same request. "
        "wallet_explain_signing tells which rule decides."
    ),
    "paused": "Signing is paused by an administrator; tell the person, do not retry.",
    "approval_denied": "A person refused this signature. Do not retry without asking them.",
    "approval_expired": "Nobody approved in time; ask the person, then sign again.",
    READ_ONLY: "This walletd-mcp server is read-only: it cannot create wallets or sign.",
    NOT_PINNED: "This server may use only the wallets wallet_list shows.",
    UNSUPPORTED: "This walletd does not offer that yet; carry on without it.",
}


class ToolFailure(Exception):
    """A failure to report as a tool error (``isError``), never as a protocol error."""

    def __init__(self, code: str, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = code in _RETRYABLE if retryable is None else retryable

    def body(self) -> dict[str, Any]:
        """The ``error`` object of the tool result."""
        return {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "hint": _HINTS.get(self.code, "See the message."),
        }


def failure_from(exc: WalletError) -> ToolFailure:
    """A client exception as a tool failure: its wire code and message.

    The client's own "cannot reach walletd" messages name the socket path, which a model
    has no use for (and issue 17 keeps every path out of its sight): they are replaced.
    """
    if isinstance(exc, DaemonUnavailableError) and exc.code == ErrorCode.UNAVAILABLE:
        return ToolFailure(exc.code, "walletd is not reachable, or did not answer in time")
    return ToolFailure(str(exc.code), exc.message)
