"""Flooding children for the soak tests, run under another uid by :func:`tests.support.call_as`.

As in tests/children.py: each function takes the socket path and strings, imports only the
client and the standard library (the child imports this module as root, before it drops
privileges), and returns plain JSON values.
"""

from __future__ import annotations

import threading
import time

from wallet_client import WalletClient, WalletError

# What each flooded create_backup may answer, counted by the attacker.
OUTCOMES = ("created", "quota_exceeded", "other")


def backup_flood(socket_path: str, seconds: str, connections: str) -> dict[str, int]:
    """For ``seconds``, write 512-byte-metadata backups of one fresh wallet per connection
    (``connections`` threads, ``flood<n>`` each) as fast as the daemon answers; how many
    were created, refused with ``quota_exceeded``, or refused otherwise."""
    deadline = time.monotonic() + float(seconds)
    counts = dict.fromkeys(OUTCOMES, 0)
    lock = threading.Lock()

    def flood(n: int) -> None:
        with WalletClient(socket_path, timeout=30) as c:
            c.create_wallet(f"flood{n}")
            while time.monotonic() < deadline:
                try:
                    c.create_backup(f"flood{n}", {"pad": "x" * 512})
                    key = "created"
                except WalletError as exc:
                    key = "quota_exceeded" if exc.code == "quota_exceeded" else "other"
                with lock:
                    counts[key] += 1

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(int(connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts
