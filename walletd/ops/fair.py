"""A capacity limiter that is fair across uids: waiting work is served round robin by uid.

``trio.CapacityLimiter`` is first come, first served. In front of scrypt (slow on purpose,
~50 ms a check at the production cost) that let one uid's flood of recovery attempts fill the
queue, and another uid's single attempt waited for every queued attempt before it: seconds
under a flood of a few connections (issue 12, item 9).

Here every uid has its own first-in-first-out queue, and a freed slot goes to the uid after
the one served last, in the order uids first queued. One uid with a thousand waiting jobs and
another with one then alternate, so the other uid waits for at most one job per waiting uid
(plus the one slot that must free up), not for the whole flood. Within one uid order is kept.

The work runs in the limiter's own ``capacity`` worker threads, which run at a lower CPU
priority (nice +10, Linux sets it per thread): scrypt is slow on purpose and memory-hard, and on
a small machine two threads of it otherwise take the cores the event loop needs, which raised
another uid's signing p99 from ~2 ms to 12-20 ms under a recovery flood. At nice +10 the
kernel gives the event loop about nine tenths of a core it shares with a hashing thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import trio

__all__ = ["WORKER_NICE", "FairLimiter"]

T = TypeVar("T")

#: How much lower than the daemon's the workers' CPU priority is.
WORKER_NICE = 10


def _lower_priority() -> None:
    # PRIO_PROCESS with a thread id sets that thread's nice value (Linux); never raised back,
    # which would need CAP_SYS_NICE: these threads do nothing else.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)


class _Waiter:
    """One job waiting for a slot; ``granted`` is set once a slot is handed to it."""

    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.granted = False


class FairLimiter:
    """At most ``capacity`` jobs at once; waiting jobs are served round robin by uid."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a limiter needs at least one slot")
        self.capacity = capacity
        self._busy = 0
        # uid -> its waiting jobs, in the order the uids take their turns: the first key is
        # the next uid to serve. The uid served last, if it still waits, is parked and goes to
        # the end only at the next turn, so that a uid which started waiting meanwhile comes
        # before it: that is what makes the order round robin.
        self._queues: OrderedDict[int, deque[_Waiter]] = OrderedDict()
        self._parked: tuple[int, deque[_Waiter]] | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=capacity, thread_name_prefix="walletd-scrypt", initializer=_lower_priority
        )

    @property
    def busy(self) -> int:
        """Slots in use now."""
        return self._busy

    def waiting(self, uid: int | None = None) -> int:
        """Jobs waiting for a slot (of ``uid``, or of everyone)."""
        queues = dict(self._queues)
        if self._parked is not None:
            queues[self._parked[0]] = self._parked[1]
        if uid is not None:
            return len(queues.get(uid, ()))
        return sum(len(q) for q in queues.values())

    async def run_sync(self, uid: int, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker thread once a slot is ours."""
        await self._acquire(uid)
        try:
            future: Future[T] = self._pool.submit(fn, *args)
            done = trio.Event()
            token = trio.lowlevel.current_trio_token()
            future.add_done_callback(lambda _: token.run_sync_soon(done.set))
            # Like trio.to_thread.run_sync: a cancelled caller still waits for its job, so the
            # slot is never handed on while the job runs.
            with trio.CancelScope(shield=True):
                await done.wait()
            return future.result()
        finally:
            self._release()

    def close(self) -> None:
        """Let the worker threads go (after the jobs already given to them)."""
        self._pool.shutdown(wait=False)

    async def _acquire(self, uid: int) -> None:
        if self._busy < self.capacity and not self._queues and self._parked is None:
            self._busy += 1
            await trio.lowlevel.checkpoint()
            return
        waiter = _Waiter()
        if self._parked is not None and self._parked[0] == uid:
            self._parked[1].append(waiter)  # still behind everyone else's turn
        else:
            self._queues.setdefault(uid, deque()).append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                # Cancelled in the instant between the grant and our waking: the slot is ours,
                # so pass it on rather than lose it.
                self._release()
            else:
                self._forget(uid, waiter)
            raise

    def _forget(self, uid: int, waiter: _Waiter) -> None:
        """Take a cancelled job out of its uid's queue."""
        if self._parked is not None and self._parked[0] == uid:
            self._parked[1].remove(waiter)
            if not self._parked[1]:
                self._parked = None
            return
        queue = self._queues[uid]
        queue.remove(waiter)
        if not queue:
            del self._queues[uid]

    def _release(self) -> None:
        # The slot goes straight to the next waiter (busy stays the same), else it is freed.
        if self._parked is not None:
            self._queues[self._parked[0]] = self._parked[1]  # to the end of the turn order
            self._parked = None
        if not self._queues:
            self._busy -= 1
            return
        uid = next(iter(self._queues))
        queue = self._queues.pop(uid)
        waiter = queue.popleft()
        if queue:
            self._parked = (uid, queue)
        waiter.granted = True
        waiter.event.set()
