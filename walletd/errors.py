"""The daemon's refusals: an error code from the closed set and a message for people.

Domain code raises :class:`RequestError`; the dispatcher turns it into one error response. A
message must never contain key bytes, messages, signatures or ritual answers.
"""

from __future__ import annotations

from walletd_wire import ErrorCode


class RequestError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(what: str) -> RequestError:
    return RequestError(ErrorCode.NOT_FOUND, what)


def forbidden(what: str) -> RequestError:
    return RequestError(ErrorCode.FORBIDDEN, what)


def invalid(what: str) -> RequestError:
    return RequestError(ErrorCode.INVALID_ARGUMENT, what)


class StartupError(Exception):
    """walletd cannot start; the message says why and how to fix it. Nothing was changed."""
