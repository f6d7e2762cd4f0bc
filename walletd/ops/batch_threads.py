"""Large public-key batches signed on worker threads, in parallel and off the event loop.

An Ed25519 signature costs about 27 µs and a secp256k1 one about 40 µs here, against about
1.5 µs for HMAC-SHA256. A ``sign_batch`` of 256 public-key messages signed inline would hold
the event loop for 7-10 ms, during which no other connection is answered, and would use one
core of a machine that has more. Both libraries release the GIL while they sign (cffi does
around every C call), so the batch is cut into one slice per worker thread and the slices are
signed at once, while the loop goes on serving other connections.

Only batches worth it go this way: a thread hand-off costs tens of microseconds, so HMAC
batches (whose whole batch costs less than that) and small public-key batches stay inline.
The threads sign with the signer the batch started with; the key object stays alive (and is
zeroed only when freed) until the last slice is done, even if a rotation replaces it
meanwhile. The caller re-checks its claim on the wallet afterwards, as after every wait.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import trio

from walletd_wire.schemes import KeyType

__all__ = ["OFF_LOOP_MIN_ITEMS", "BatchThreads", "default_threads"]

# Below this many public-key signatures (~0.9 ms of Ed25519) the batch is signed inline.
OFF_LOOP_MIN_ITEMS = 32
MAX_THREADS = 4


def default_threads() -> int:
    """One worker per CPU this process may run on, at most MAX_THREADS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cpus))


class BatchThreads:
    """Signs a batch's messages on up to ``threads`` worker threads at once."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads if threads is not None else default_threads()
        # Shared by every batch in flight: never more signing threads than CPUs.
        self._limiter = trio.CapacityLimiter(self.threads)

    def worth_it(self, key_type: KeyType, items: int) -> bool:
        return (
            self.threads > 1 and key_type is not KeyType.HMAC_SHA256 and items >= OFF_LOOP_MIN_ITEMS
        )

    async def sign(self, sign: Callable[[bytes], bytes], messages: list[bytes]) -> list[bytes]:
        """``[sign(m) for m in messages]``, in order, computed on the worker threads."""
        step = -(-len(messages) // self.threads)  # ceiling division: at most `threads` slices
        slices = [messages[start : start + step] for start in range(0, len(messages), step)]
        signed: list[list[bytes]] = [[] for _ in slices]

        async def run(index: int) -> None:
            part = slices[index]
            signed[index] = await trio.to_thread.run_sync(
                lambda: [sign(m) for m in part], limiter=self._limiter
            )

        async with trio.open_nursery() as nursery:
            for index in range(len(slices)):
                nursery.start_soon(run, index)
        return [signature for part in signed for signature in part]
