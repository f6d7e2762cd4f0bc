"""Reading the audit log: listing records and walking the hash chain."""

from __future__ import annotations

import json

from wallet_client import protocol as p

from .audit import COLUMNS, HEAD_KEY, verify_rows
from .context import Context
from .errors import invalid
from .peer import Peer
from .validation import check_user_id

MAX_LIMIT = 100_000


class AuditQueries:
    def __init__(self, ctx: Context, audit_key: bytes) -> None:
        self.ctx = ctx
        self._key = audit_key

    async def audit_log(self, peer: Peer, req: p.AuditLog) -> p.AuditLogResult:
        """Admins see every record; others only records of wallets they own now."""
        if not 1 <= req.limit <= MAX_LIMIT:
            raise invalid(f"limit must be between 1 and {MAX_LIMIT}")
        where = ["timestamp >= ?"]
        params: list[object] = [req.since if req.since is not None else 0.0]
        if req.user_id is not None:
            user_id = check_user_id(req.user_id)
            if not peer.is_admin:
                self.ctx.wallet_for(peer, user_id)
            where.append("user_id = ?")
            params.append(user_id)
        elif not peer.is_admin:
            owned = [w.user_id for w in self.ctx.book.owned_by(peer.uid)]
            if not owned:
                return p.AuditLogResult([])
            where.append(f"user_id IN ({', '.join('?' * len(owned))})")
            params.extend(owned)
        rows = await self.ctx.store.query(
            f"SELECT {COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",  # noqa: S608 - placeholders only
            [*params, req.limit],
        )
        records = [
            p.AuditRecord(
                seq,
                ts,
                event,
                user_id,
                json.loads(addresses),
                uid,
                pid,
                outcome,
                json.loads(detail),
                prev_hash,
                hash_,
            )
            for (
                seq,
                ts,
                event,
                user_id,
                addresses,
                uid,
                pid,
                outcome,
                detail,
                prev_hash,
                hash_,
            ) in reversed(rows)
        ]
        return p.AuditLogResult(records)

    async def audit_verify(self, peer: Peer, req: p.AuditVerify) -> p.AuditVerifyResult:
        self.ctx.require_admin(peer, "audit_verify")
        async with self.ctx.writer:  # a consistent snapshot: no commit lands while we read
            rows = await self.ctx.store.query(f"SELECT {COLUMNS} FROM audit ORDER BY seq")  # noqa: S608
            head = await self.ctx.store.query("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,))
        broken, problem = verify_rows(self._key, rows, bytes(head[0][0]) if head else None)
        return p.AuditVerifyResult(broken is None, len(rows), broken, problem)
