"""Signatures that say why: the ``purpose`` of a sign request, recorded in the audit log.

Signing writes no audit record of its own (a record per signature would put one fsync on the
hot path of every agent). A request that carries a ``purpose`` (``sign_message``,
``sign_typed_data``; walletd-mcp always sends one) asks for the opposite trade: its signature
is returned only after an audit record of it is durable, so a model's stated reason for a
signature can be read back later (``audit_log``, the MCP tool ``wallet_recent_activity``) and
is covered by the audit chain like every other record.

The record (event ``message_signed`` or ``typed_data_signed``) holds the purpose, the key
version and, for a message, its length; never the message, its hash or the signature: the
audit log is readable by the wallet's owner and by admins, and what was signed is the caller's
business. When the record cannot be made durable the caller gets ``storage_error`` and no
signature (the signature count still moved: failing closed costs one count, never a record).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Final

import walletd_wire as wire
from walletd.errors import invalid
from walletd.model.peer import Actor, Peer
from walletd.ops.context import Context

__all__ = ["MAX_PURPOSE_CHARS", "PurposeLog", "check_purpose"]

#: The daemon's limit on a purpose: a sentence or two for the audit log, not a document.
MAX_PURPOSE_CHARS: Final = 256

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

EVENTS: Final = {"sign_message": "message_signed", "sign_typed_data": "typed_data_signed"}


def check_purpose(purpose: str) -> str:
    """1-256 characters without control characters (they would forge lines in a log view)."""
    if not 1 <= len(purpose) <= MAX_PURPOSE_CHARS or _CONTROL.search(purpose):
        raise invalid(
            f"purpose must be 1-{MAX_PURPOSE_CHARS} characters without control characters"
        )
    return purpose


class PurposeLog:
    """Writes the audit record of a signature that carries a purpose, then hands it back."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def record(
        self,
        peer: Peer,
        op: str,
        user_id: str,
        purpose: str,
        size: int | None,
        signed: wire.SignatureResult | Awaitable[wire.SignatureResult],
    ) -> wire.SignatureResult:
        """``signed`` (made already, or being made) once its audit record is durable."""
        result = signed if isinstance(signed, wire.SignatureResult) else await signed
        if not isinstance(result, wire.SignatureResult):
            return result  # held for approval (a pending result): nothing was signed yet
        detail: dict[str, object] = {"purpose": purpose, "version": result.version}
        if size is not None:  # a message's length; typed data is recorded by its purpose only
            detail["message_bytes"] = size
        async with self.ctx.writer:
            entry = self.ctx.audit(
                EVENTS[op], user_id, [result.address], Actor.of(peer), detail=detail
            )
            await self.ctx.commit([], entry)
        return result
