"""The running daemon: listeners, connections, background tasks, signals, shutdown, reload.

Every task lives in one nursery. ``run`` reports readiness (``task_status.started`` and
sd_notify ``READY=1``) only once the state is loaded and the listeners are accepting.

Shutdown (SIGTERM/SIGINT, or :meth:`Server.shutdown`): stop accepting, close idle connections,
let connections in the middle of a request finish it within ``shutdown_grace`` seconds, flush
signature counters, remove the socket file we bound, and return.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import time
from collections.abc import Callable

import msgspec
import structlog
import trio

from wallet_client.protocol import ErrorCode

from .boot import Daemon
from .config import RESTART_ONLY, Config
from .connection import Connection, State, error_frame
from .context import default_policy
from .listener import BoundSocket, bind_unix_socket, inherited_sockets
from .logs import configure_logging
from .peer import Gatekeeper, peer_credentials
from .sdnotify import Notifier, watchdog_interval

log = structlog.get_logger("walletd")

BACKLOG = 128


class Server:
    def __init__(
        self,
        daemon: Daemon,
        *,
        reload_config: Callable[[], Config] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.daemon = daemon
        self.ctx = daemon.ctx
        self.config = daemon.ctx.config
        self.reload_config = reload_config
        self.notifier = notifier or Notifier()
        self.gatekeeper = _gatekeeper(self.config)
        self.connections: dict[int, Connection] = {}
        self.sockets: list[BoundSocket] = []
        self._ids = itertools.count(1)
        self._stopping = trio.Event()
        self._drained = trio.Event()
        self.shutting_down = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        self.sockets = self._open_sockets()
        try:
            async with trio.open_nursery() as nursery:
                accept_scope = trio.CancelScope()
                for bound in self.sockets:
                    nursery.start_soon(self._accept_loop, bound, nursery, accept_scope)
                background = trio.CancelScope()
                nursery.start_soon(self._background, background)
                ready = f"serving {len(self.ctx.book)} wallets"
                log.info(
                    "ready",
                    sockets=[b.path or "inherited" for b in self.sockets],
                    wallets=len(self.ctx.book),
                )
                self.notifier.ready(ready)
                task_status.started(self)
                await self._stopping.wait()
                self.notifier.stopping()
                accept_scope.cancel()
                await self._drain()
                background.cancel()
            await self._final_flush()
        finally:
            for bound in self.sockets:
                bound.remove()
                bound.sock.close()
            self.daemon.store.close()
            log.info("stopped")

    def shutdown(self) -> None:
        self._stopping.set()

    def _open_sockets(self) -> list[BoundSocket]:
        inherited = inherited_sockets()
        if inherited:
            log.info("socket_activation", fds=len(inherited))
            return [BoundSocket(trio.socket.from_stdlib_socket(s), None) for s in inherited]
        config = self.config
        return [bind_unix_socket(config.socket, config.mode, config.socket_group, BACKLOG)]

    async def _drain(self) -> None:
        self.shutting_down = True
        for conn in list(self.connections.values()):
            if conn.state in (State.IDLE, State.READING):
                conn.scope.cancel()
            else:
                conn.closing = True  # finish the request at hand, send its answer, then close
        with trio.move_on_after(self.config.shutdown_grace):
            if self.connections:
                await self._drained.wait()
        for conn in list(self.connections.values()):
            log.warning("connection_cancelled_at_shutdown", conn=conn.conn_id)
            conn.scope.cancel()

    async def _final_flush(self) -> None:
        try:
            flushed = await self.ctx.flush_counters()
            log.debug("counters_flushed", wallets=flushed)
        except Exception as exc:
            log.error("counter_flush_failed", error=str(exc))

    # ------------------------------------------------------------------ connections

    async def _accept_loop(
        self, bound: BoundSocket, nursery: trio.Nursery, scope: trio.CancelScope
    ) -> None:
        listener = trio.SocketListener(bound.sock)
        with scope:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    # EMFILE and friends: wait for descriptors to free rather than spin.
                    log.error("accept_failed", error=exc.strerror)
                    await trio.sleep(0.1)
                    continue
                nursery.start_soon(self._handle, stream.socket)

    async def _handle(self, sock: trio.socket.SocketType) -> None:
        with sock:
            try:
                pid, uid, gid = peer_credentials(sock)  # type: ignore[arg-type]
            except OSError:
                return
            peer = self.gatekeeper.admit(pid, uid, gid)
            if peer is None:
                log.info("connection_refused", peer_uid=uid, peer_pid=pid, reason="not_allowed")
                await _refuse(sock, ErrorCode.FORBIDDEN, f"uid {uid} may not use this walletd")
                return
            if self.shutting_down or len(self.connections) >= self.config.max_connections:
                reason = "shutting down" if self.shutting_down else "at its connection limit"
                log.warning(
                    "connection_refused",
                    peer_uid=uid,
                    peer_pid=pid,
                    reason="shutting_down" if self.shutting_down else "max_connections",
                )
                await _refuse(sock, ErrorCode.UNAVAILABLE, f"walletd is {reason}; try again")
                return
            conn = Connection(
                next(self._ids), sock, peer, self.daemon.dispatcher, self.config.max_frame_bytes
            )
            self.connections[conn.conn_id] = conn
            self.ctx.connections = len(self.connections)
            structlog.contextvars.bind_contextvars(conn=conn.conn_id, peer_uid=uid, peer_pid=pid)
            log.debug("connection_opened", admin=peer.is_admin)
            try:
                await conn.serve(self.ctx)
            finally:
                del self.connections[conn.conn_id]
                self.ctx.connections = len(self.connections)
                log.debug("connection_closed")
                if self.shutting_down and not self.connections:
                    self._drained.set()

    def reap(self, now: float) -> int:
        """Cancel connections past a timeout; returns how many."""
        config = self.config
        reaped = 0
        for conn in list(self.connections.values()):
            reason = conn.expired(
                now, config.idle_timeout, config.frame_timeout, config.write_timeout
            )
            if reason is not None:
                log.info(
                    "connection_timed_out", conn=conn.conn_id, reason=reason, peer_uid=conn.peer.uid
                )
                conn.scope.cancel()
                reaped += 1
        return reaped

    # ------------------------------------------------------------------ background

    async def _background(self, scope: trio.CancelScope) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reaper)
                nursery.start_soon(self._flusher)
                nursery.start_soon(self.daemon.rotation.age_check_loop)
                nursery.start_soon(self._signals)
                interval = watchdog_interval()
                if interval is not None and self.notifier.enabled:
                    nursery.start_soon(self._watchdog, interval)

    async def _reaper(self) -> None:
        while True:
            config = self.config
            await trio.sleep(
                min(
                    1.0, config.frame_timeout / 4, config.idle_timeout / 4, config.write_timeout / 4
                )
            )
            self.reap(time.monotonic())

    async def _flusher(self) -> None:
        while True:
            await trio.sleep(self.config.counter_flush_interval)
            try:
                await self.ctx.flush_counters()
            except Exception as exc:
                log.error("counter_flush_failed", error=str(exc))

    async def _watchdog(self, interval: float) -> None:
        # This task runs only when the event loop does: a hung loop stops the pings and
        # systemd restarts us.
        while True:
            self.notifier.notify("WATCHDOG=1", f"STATUS={self.status_line()}")
            await trio.sleep(interval)

    def status_line(self) -> str:
        return f"{len(self.ctx.book)} wallets, {len(self.connections)} connections"

    async def _signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    self.reload()
                else:
                    log.info("shutdown_requested", signal=signal.Signals(signum).name)
                    self.shutdown()

    # ------------------------------------------------------------------ reload

    def reload(self) -> None:
        """Re-read the configuration and apply what can change without a restart."""
        self.notifier.reloading()
        try:
            if self.reload_config is None:
                log.info("reload_skipped", reason="no configuration file")
                return
            try:
                new = self.reload_config()
            except Exception as exc:
                log.error("reload_failed", error=str(exc))
                return
            old = self.config
            for name in sorted(RESTART_ONLY):
                if getattr(new, name) != getattr(old, name):
                    log.warning("reload_needs_restart", option=name)
            keep = {name: getattr(old, name) for name in RESTART_ONLY}
            new = msgspec.structs.replace(new, **keep)
            self.gatekeeper = _gatekeeper(new)
            configure_logging(new.log_level, new.log_format)
            self.config = self.ctx.config = new
            self.ctx.book.set_default_policy(default_policy(new))
            log.info("reloaded", log_level=new.log_level, max_connections=new.max_connections)
        finally:
            self.notifier.notify("READY=1", f"STATUS={self.status_line()}")


def _gatekeeper(config: Config) -> Gatekeeper:
    return Gatekeeper(
        admin_group=config.admin_group,
        allowed_uids=config.allowed_uids,
        allowed_groups=config.allowed_groups,
    )


async def _refuse(sock: trio.socket.SocketType, code: ErrorCode, message: str) -> None:
    with trio.move_on_after(1.0):
        with contextlib.suppress(OSError):
            await sock.send(error_frame(code, message))
