"""Who is calling and who made a change: plain values, filled in by the server from the kernel.

The kernel (``SO_PEERCRED``, read in :mod:`walletd.server.credentials`), never the caller,
says which uid/gid/pid is on the other end of a connection. Admins are uid 0, the daemon's own
uid, and members of ``admin_group``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Peer:
    uid: int
    gid: int
    pid: int
    is_admin: bool

    def may_use(self, owner_uid: int) -> bool:
        """Owner or admin: the one rule for every operation on a wallet."""
        return self.uid == owner_uid or self.is_admin


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change, for the audit log: a peer, or the daemon acting on a policy."""

    uid: int
    pid: int

    @classmethod
    def of(cls, peer: Peer) -> Actor:
        return cls(peer.uid, peer.pid)


DAEMON = Actor(os.getuid(), os.getpid())
