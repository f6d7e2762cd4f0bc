"""Which backup files exist and whose they are, in memory (pure: no I/O, no trio).

Before this index, every ``list_backups`` read and verified every file in the backup directory,
so one uid's flood of records made another uid's empty listing take 0.8 s. The index maps each
file (by backup id) to the user id its verified record names, its size and, for a file that
failed to verify, the problem and the user id it claims. A listing then reads only the files of
the user asked for, and the quotas (records and bytes per wallet) are sums over one user's
entries.

The index is filled once from the directory (at the first backup op after startup) and kept up
to date by the daemon's own writes and deletes; files added or removed by someone else are
picked up when the directory's modification stamp changes (walletd.ops.backups).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["BackupIndex", "Entry"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One file. ``user_id``: the verified owner, or the user a damaged file claims (or None)."""

    user_id: str | None
    size: int
    problem: str | None = None


@dataclass(slots=True)
class BackupIndex:
    by_id: dict[str, Entry] = field(default_factory=dict)
    _by_user: dict[str | None, dict[str, Entry]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.by_id)

    def put(self, backup_id: str, entry: Entry) -> None:
        self.remove(backup_id)
        self.by_id[backup_id] = entry
        self._by_user.setdefault(entry.user_id, {})[backup_id] = entry

    def remove(self, backup_id: str) -> None:
        old = self.by_id.pop(backup_id, None)
        if old is None:
            return
        mine = self._by_user[old.user_id]
        del mine[backup_id]
        if not mine:
            del self._by_user[old.user_id]

    def replace_all(self, entries: Iterable[tuple[str, Entry]]) -> None:
        self.by_id.clear()
        self._by_user.clear()
        for backup_id, entry in entries:
            self.put(backup_id, entry)

    def of_user(self, user_id: str) -> dict[str, Entry]:
        """The files attributed to ``user_id`` (good records and damaged ones claiming it)."""
        return dict(self._by_user.get(user_id, {}))

    def has_user(self, user_id: str) -> bool:
        return user_id in self._by_user

    def usage(self, user_id: str) -> tuple[int, int]:
        """How many files, and how many bytes, are attributed to ``user_id``."""
        mine = self._by_user.get(user_id, {})
        return len(mine), sum(e.size for e in mine.values())

    def problems(self, user_id: str, *, admin: bool) -> list[tuple[str, str]]:
        """``(backup_id, problem)`` for the damaged files the asker may see.

        Admins see every problem. Others see those of files that claim ``user_id`` and those of
        files that claim no one (unreadable, not JSON), since such a file may be anyone's.
        """
        if admin:
            pool: Iterable[tuple[str, Entry]] = self.by_id.items()
        else:
            pool = [
                *self._by_user.get(user_id, {}).items(),
                *self._by_user.get(None, {}).items(),
            ]
        return sorted((bid, e.problem) for bid, e in pool if e.problem is not None)
