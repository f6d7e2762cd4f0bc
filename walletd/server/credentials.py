"""Peer credentials from the kernel, and the gatekeeper that admits a connection.

``SO_PEERCRED`` gives the pid, uid and gid of the process that connected; the gatekeeper turns
them into a :class:`~walletd.model.peer.Peer` (admin or not) or keeps the peer out when the
allow-lists say so.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct

from walletd.model.peer import Peer

_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected ``sock``."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def group_ids_of(uid: int, gid: int) -> set[int]:
    """The primary gid and the groups that list the uid's user name as a member."""
    groups = {gid}
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return groups
    groups.update(os.getgrouplist(name, gid))
    return groups


def resolve_group(name: str) -> int:
    """A group name (or numeric gid) to a gid; KeyError when it does not exist."""
    if name.isdigit():
        return int(name)
    return grp.getgrnam(name).gr_gid


class Gatekeeper:
    """Decides at accept time whether a peer may talk to us, and whether it is an admin."""

    def __init__(
        self,
        *,
        admin_group: str | None,
        allowed_uids: list[int] | None,
        allowed_groups: list[str] | None,
    ) -> None:
        self.own_uid = os.getuid()
        self.admin_gid = resolve_group(admin_group) if admin_group else None
        self.allowed_uids = None if allowed_uids is None else frozenset(allowed_uids)
        self.allowed_gids = (
            None if allowed_groups is None else frozenset(resolve_group(g) for g in allowed_groups)
        )

    def is_admin(self, uid: int, groups: set[int]) -> bool:
        if uid in (0, self.own_uid):
            return True
        return self.admin_gid is not None and self.admin_gid in groups

    def admit(self, pid: int, uid: int, gid: int) -> Peer | None:
        """The peer, or None when the allow-lists keep it out. Admins are always let in."""
        needs_groups = self.admin_gid is not None or self.allowed_gids is not None
        groups = group_ids_of(uid, gid) if needs_groups else {gid}
        admin = self.is_admin(uid, groups)
        if not admin and (self.allowed_uids is not None or self.allowed_gids is not None):
            by_uid = self.allowed_uids is not None and uid in self.allowed_uids
            by_gid = self.allowed_gids is not None and not self.allowed_gids.isdisjoint(groups)
            if not (by_uid or by_gid):
                return None
        return Peer(uid=uid, gid=gid, pid=pid, is_admin=admin)
