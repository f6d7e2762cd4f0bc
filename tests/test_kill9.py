"""kill -9 under load, many times over one state directory.

Two clients create and delete wallets as fast as they can and record every answer they get.
At a random moment the daemon gets SIGKILL. After each restart: every acknowledged create is
present with its address and signs as it did, every acknowledged delete is gone, no wallet
appears that nobody created, and the database passes ``PRAGMA integrity_check``. A change
whose answer never arrived may have gone either way; the ledger adopts what the daemon shows.

16 kills in the suite (about 11 s); ``make soak`` (``WALLETD_SOAK=long``) runs 200.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from wallet_client import DaemonUnavailableError, WalletClient
from walletd.storage.store import DB_NAME, Store

from .adversarial import figures
from .support import DaemonFactory, DaemonProcess

pytestmark = [pytest.mark.slow, pytest.mark.soak]

ROUNDS = 200 if figures.LONG_SOAK else 16
CLIENTS = 2
PROBE = b"probe"


@dataclass
class Ledger:
    """What the clients know for sure, and what they cannot know."""

    present: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)  # a request whose answer never came


class Load(threading.Thread):
    """Creates (and signs with) new wallets and deletes old ones until the daemon dies."""

    def __init__(
        self, proc: DaemonProcess, ledger: Ledger, prefix: str, rng: random.Random
    ) -> None:
        super().__init__(daemon=True)
        self.proc, self.ledger, self.prefix, self.rng = proc, ledger, prefix, rng
        # Taken before any thread runs: the ledger's dicts change while the clients run.
        self.mine = [u for u in ledger.present if u.startswith(prefix)]
        self.error: BaseException | None = None
        self.acks = 0

    def run(self) -> None:
        try:
            with WalletClient(self.proc.socket_path, timeout=30) as c:
                self._loop(c)
        except DaemonUnavailableError:
            pass  # the daemon was killed: expected
        except BaseException as exc:
            self.error = exc

    def _loop(self, c: WalletClient) -> None:
        ledger, mine, n = self.ledger, self.mine, 0
        while True:
            if mine and self.rng.random() < 0.4:
                user = mine.pop(self.rng.randrange(len(mine)))
                ledger.unknown.add(user)
                assert c.delete_wallet(user)
                ledger.unknown.discard(user)
                del ledger.present[user]
                ledger.deleted.add(user)
            else:
                n += 1
                user = f"{self.prefix}{time.monotonic_ns()}_{n}"
                ledger.unknown.add(user)
                address = c.create_wallet(user)
                ledger.unknown.discard(user)
                ledger.present[user] = (address, None)
                mine.append(user)
                self.acks += 1
                ledger.present[user] = (address, c.sign_message(user, PROBE))
            self.acks += 1


def _reconcile(c: WalletClient, ledger: Ledger, seed: int, round_: int) -> None:
    where = f"(seed {seed}, round {round_})"
    listed = c.list_wallets()
    for user in ledger.unknown:  # may have gone either way: adopt what the daemon says
        if user in listed:
            ledger.present[user] = (listed[user], None)
            ledger.deleted.discard(user)
        else:
            ledger.present.pop(user, None)
            ledger.deleted.add(user)
    ledger.unknown.clear()
    assert set(listed) == set(ledger.present), where
    assert not ledger.deleted & set(listed), where
    for user, (address, signature) in ledger.present.items():
        assert listed[user] == address, (user, where)
        signed = c.sign_message(user, PROBE)
        if signature is None:
            ledger.present[user] = (address, signed)
        else:
            assert signed == signature, (user, where)


def test_acknowledged_changes_survive_kill9_under_load(daemon: DaemonFactory) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    proc = daemon()
    ledger = Ledger()
    acks = 0
    for round_ in range(ROUNDS):
        proc.start()
        with WalletClient(proc.socket_path) as c:
            _reconcile(c, ledger, seed, round_)
        loads = [Load(proc, ledger, f"c{i}_", random.Random(rng.random())) for i in range(CLIENTS)]
        for load in loads:
            load.start()
        # The load window: how long the clients run before the kill (this is the random
        # moment of the crash, not a wait for readiness).
        time.sleep(rng.uniform(0.05, 0.3))
        proc.kill()
        for load in loads:
            load.join(30)
            assert not load.is_alive()
            if load.error is not None:
                raise AssertionError(f"client failed (seed {seed}, round {round_})") from load.error
            acks += load.acks
        store = Store.open_readonly(proc.state_dir / DB_NAME, quick=False)  # integrity_check
        store.close()
    proc.start()
    with WalletClient(proc.socket_path) as c:
        _reconcile(c, ledger, seed, ROUNDS)
        audit = c.audit_verify()
        assert audit.ok, (audit, seed)
    assert proc.stop() == 0
    assert acks > ROUNDS * 5, f"too little load to mean anything ({acks} answers)"
    assert ledger.deleted and ledger.present
