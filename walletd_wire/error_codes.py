"""The closed set of error codes every walletd response may carry.

Codes are for programs; messages are for people. Adding a code is a protocol change: the
clients map each code to one exception class (wallet_client.errors), and docs/PROTOCOL.md
lists them all.
"""

from __future__ import annotations

import enum

__all__ = ["ErrorCode"]


class ErrorCode(enum.StrEnum):
    """The closed set of error codes. Codes are for programs; messages are for people."""

    BAD_REQUEST = "bad_request"  # not MessagePack, not a map, missing/mistyped field, empty frame
    UNKNOWN_OP = "unknown_op"  # "op" names no operation this daemon speaks
    INVALID_ARGUMENT = "invalid_argument"  # well-typed but unacceptable value
    NOT_FOUND = "not_found"  # no such wallet / backup / history
    ALREADY_EXISTS = "already_exists"  # the user already has a wallet
    FORBIDDEN = "forbidden"  # the peer may not do this (ownership, admin-only, allow-lists)
    LOCKED = "locked"  # recovery attempts are exhausted
    NO_RITUAL = "no_ritual"  # the wallet has no recovery ritual registered
    INTEGRITY_ERROR = "integrity_error"  # a backup record failed its integrity check
    FRAME_TOO_LARGE = "frame_too_large"  # announced frame length over the limit; connection closes
    UNAVAILABLE = "unavailable"  # the daemon is at its connection limit or shutting down
    STORAGE_ERROR = "storage_error"  # the change could not be made durable; nothing changed
    INTERNAL = "internal"  # a bug in walletd; the message says nothing secret
    # Signing policy (issue 15): refusals of a signature the caller could otherwise make.
    POLICY_DENIED = "policy_denied"  # a policy rule refused it; names the rule and layer
    PAUSED = "paused"  # signing is paused for everything, the caller's uid or this wallet
    # A quota of the [quotas] table: not transient (retrying does not help) and not about who
    # the caller is (so not forbidden); the message names the quota and its value.
    QUOTA_EXCEEDED = "quota_exceeded"
    # Human approval (issue 16): how a held signature ended when it was not approved.
    APPROVAL_DENIED = "approval_denied"  # an approver denied it, or its requester cancelled it
    APPROVAL_TIMEOUT = "approval_timeout"  # nobody decided before it expired
