"""A rate-window limit of the signing policy survives ``kill -9``.

A client signs under a limit of ``COUNT`` an hour while the daemon is SIGKILLed at a random
moment, again and again over one state directory. However often it dies, the signatures
acknowledged over all the lives of the daemon never exceed ``COUNT``: the reservation written
before each block of uses counts as used when it is loaded (walletd.model.rate_window).
"""

from __future__ import annotations

import random
import threading

import pytest

from wallet_client import DaemonUnavailableError, PolicyDeniedError, WalletClient

from .support import DaemonFactory, DaemonProcess

pytestmark = pytest.mark.slow

COUNT = 100_000  # large enough that no round reaches it before the kill
ROUNDS = 3  # each kill costs at most one reserved block (COUNT // 4) of the hour
RULES = [
    {"id": "hourly", "action": "allow", "limit": {"count": COUNT, "window_s": 3600}},
    {"id": "over", "action": "deny"},
]


class Signer(threading.Thread):
    """Signs until the daemon dies or the limit refuses; counts acknowledged signatures."""

    def __init__(self, proc: DaemonProcess) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.acks = 0
        self.denied = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with WalletClient(self.proc.socket_path, timeout=30) as c:
                while True:
                    c.sign_message("agent", b"order")
                    self.acks += 1
        except DaemonUnavailableError:
            pass  # killed: expected
        except PolicyDeniedError:
            self.denied = True
        except BaseException as exc:
            self.error = exc


def test_kill_9_cannot_reset_a_rate_limit(daemon: DaemonFactory) -> None:
    rng = random.Random(15)
    proc = daemon().start()
    with WalletClient(proc.socket_path, timeout=30) as c:
        c.create_wallet("agent")
        c.set_signing_policy("agent", "owner", RULES, 0)
    total = 0
    for _ in range(ROUNDS):
        signer = Signer(proc)
        signer.start()
        # A random moment: after some signatures, before the limit (the loop is fast).
        signer.join(rng.uniform(0.02, 0.3))
        proc.kill()
        signer.join(30)
        assert signer.error is None, signer.error
        assert signer.acks and not signer.denied
        total += signer.acks
        proc.start()
        with WalletClient(proc.socket_path, timeout=30) as c:
            remaining = c.explain_signing("agent", b"order").limits[0].remaining
        # Never more left than the limit minus what was acknowledged: what the killed daemon
        # had reserved but not used counts as used.
        assert remaining <= COUNT - total
    with WalletClient(proc.socket_path, timeout=30) as c:
        assert c.sign_message("agent", b"order")  # what is left is still usable
        assert c.explain_signing("agent", b"order").limits[0].remaining < remaining
    print(f"\n{total} signed over {ROUNDS} kills, {remaining} of {COUNT} left")
    proc.stop()
