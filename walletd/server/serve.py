"""The running daemon: listeners, connections, background tasks, signals, shutdown, reload.

Every task lives in one nursery. ``run`` reports readiness (``task_status.started`` and
sd_notify ``READY=1``) only once the state is loaded, the accept loops are running and the
signal handlers are installed (SIGHUP's default action would kill us), so whoever waits for
readiness may connect and signal at once.

Shutdown (SIGTERM/SIGINT, or :meth:`Server.shutdown`): stop accepting, close idle connections,
let connections in the middle of a request finish it within ``shutdown_grace`` seconds, flush
signature counters, remove the socket file we bound (an inherited one is only closed: the
socket unit owns it), and return.

Reload (SIGHUP, :meth:`Server.reload`): re-read the configuration file and apply what can
change live; what cannot (``config.RESTART_ONLY``) is logged as needing a restart. Open
connections stay open and keep the peer identity they were admitted with.
"""

from __future__ import annotations

import itertools
import signal
import socket
from collections.abc import AsyncIterator, Callable

import msgspec
import structlog
import trio

from walletd.config import RESTART_ONLY, Config, ConfigError
from walletd.errors import StartupError
from walletd.logs import configure_logging
from walletd.ops.context import default_policy
from walletd.ops.daemon import Daemon
from walletd.server.admission import RefusalLog, Slots
from walletd.server.connection import Connection, error_frame
from walletd.server.credentials import Gatekeeper, peer_credentials
from walletd.server.linger import Linger
from walletd.server.listener import BoundSocket, bind_unix_socket, inherited_sockets
from walletd.server.sdnotify import Notifier, watchdog_interval
from walletd_wire import ErrorCode

log = structlog.get_logger("walletd")

# Generous: on Linux a non-blocking connect() to a Unix socket whose backlog is full fails
# with EAGAIN, which async clients (trio's among them) can mistake for "in progress". The
# kernel caps it at net.core.somaxconn; max_connections still bounds what we serve.
BACKLOG = 4096
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: How often STATUS= is refreshed (only sent when it changed) if there is no watchdog to
#: ping: at most one message a second to the manager, however busy the daemon is.
STATUS_INTERVAL = 1.0


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
        self._own_notifier = notifier is None
        self.notifier = notifier or Notifier()
        try:
            self.gatekeeper = _gatekeeper(self.config)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
        self.connections: dict[int, Connection] = {}
        self.slots = Slots()
        self.refusals = RefusalLog(trio.current_time)
        self.linger = Linger()
        self.sockets: list[BoundSocket] = []
        self._ids = itertools.count(1)
        self._stopping = trio.Event()
        self._drained = trio.Event()
        self._ready = trio.Event()
        self.shutting_down = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        # Signals are ours from before READY=1 (SIGHUP's default action would kill us) until
        # the state is flushed and closed: a second SIGTERM meanwhile is only logged, and one
        # that arrives during the final clean-up is delivered (by trio) once it is done.
        with trio.open_signal_receiver(*SIGNALS) as signals:
            self.sockets = self._open_sockets()
            try:
                async with trio.open_nursery() as nursery:
                    signal_scope = trio.CancelScope()
                    nursery.start_soon(self._signals, signals, signal_scope)
                    accept_scope = trio.CancelScope()
                    for bound in self.sockets:
                        await nursery.start(self._accept_loop, bound, nursery, accept_scope)
                    background = trio.CancelScope()
                    await nursery.start(self._background, background)
                    log.info(
                        "ready",
                        sockets=[b.name for b in self.sockets],
                        wallets=len(self.ctx.book),
                    )
                    self.notifier.ready(self.status_line())
                    self._ready.set()
                    task_status.started(self)
                    await self._stopping.wait()
                    self.notifier.stopping()
                    accept_scope.cancel()
                    await self._drain()
                    background.cancel()
                    signal_scope.cancel()
                await self._final_flush()
            finally:
                for bound in self.sockets:
                    bound.remove()
                    bound.sock.close()
                self.daemon.store.close()
                if self._own_notifier:
                    self.notifier.close()
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
        self.daemon.approvals.close()  # waiting connections answer at once
        for conn in list(self.connections.values()):
            if conn.state in ("idle", "reading"):
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
            flushed = await self.ctx.flush_counters(final=True)
            log.debug("counters_flushed", wallets=flushed)
        except Exception as exc:
            log.error("counter_flush_failed", error=str(exc))
        try:
            # Denials aggregated this minute, and the signing policy's exact rate windows.
            await self.daemon.policy_gate.final_flush()
        except Exception as exc:
            log.error("policy_flush_failed", error=str(exc))

    # ------------------------------------------------------------------ connections

    async def _accept_loop(
        self,
        bound: BoundSocket,
        nursery: trio.Nursery,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listener = trio.SocketListener(bound.sock)
        task_status.started()
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

    async def _handle(self, trio_sock: trio.socket.SocketType) -> None:
        # Connections do their own non-blocking I/O on the stdlib socket (see connection.py).
        sock = socket.socket(fileno=trio_sock.detach())
        with sock:
            try:
                pid, uid, gid = peer_credentials(sock)
            except OSError:
                return
            peer = self.gatekeeper.admit(pid, uid, gid)
            if peer is None:
                self.refusals.refused(uid, pid, "not_allowed")
                await self._refuse(sock, ErrorCode.FORBIDDEN, f"uid {uid} may not use this walletd")
                return
            config = self.config
            refusal = "shutting_down" if self.shutting_down else None
            refusal = refusal or self.slots.refusal(
                uid,
                peer.is_admin,
                max_connections=config.max_connections,
                per_uid=config.max_connections_per_uid,
                reserve=config.admin_reserved_connections,
            )
            if refusal is not None:
                self.refusals.refused(uid, pid, refusal)
                await self._refuse(sock, ErrorCode.UNAVAILABLE, _REFUSALS[refusal])
                return
            conn = Connection(
                next(self._ids), sock, peer, self.daemon.dispatcher, config.max_frame_bytes
            )
            self.connections[conn.conn_id] = conn
            self.slots.take(uid)
            self.ctx.connections = len(self.connections)
            structlog.contextvars.bind_contextvars(conn=conn.conn_id, peer_uid=uid, peer_pid=pid)
            log.debug("connection_opened", admin=peer.is_admin)
            try:
                await conn.serve(self.ctx)
                if conn.lingering:
                    await self.linger.close(sock)
            finally:
                del self.connections[conn.conn_id]
                self.slots.give_back(uid)
                self.ctx.connections = len(self.connections)
                log.debug("connection_closed")
                if self.shutting_down and not self.connections:
                    self._drained.set()

    async def _refuse(self, sock: socket.socket, code: ErrorCode, message: str) -> None:
        # One answer, then a lingering close so that a peer still writing reads it.
        await self.linger.close(sock, error_frame(code, message))

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

    async def _background(
        self,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reaper)
                nursery.start_soon(self._flusher)
                nursery.start_soon(self.daemon.rotation.age_check_loop)
                nursery.start_soon(self.daemon.policy_gate.flush_loop)
                nursery.start_soon(self.daemon.approvals.run)
                if self.notifier.enabled:
                    nursery.start_soon(self._notify_loop, watchdog_interval())
                task_status.started()

    async def _reaper(self) -> None:
        while True:
            config = self.config
            await trio.sleep(
                min(
                    1.0, config.frame_timeout / 4, config.idle_timeout / 4, config.write_timeout / 4
                )
            )
            self.reap(trio.current_time())

    async def _flusher(self) -> None:
        while True:
            await trio.sleep(self.config.counter_flush_interval)
            try:
                await self.ctx.flush_counters()
            except Exception as exc:
                log.error("counter_flush_failed", error=str(exc))

    async def _notify_loop(self, watchdog: float | None) -> None:
        """STATUS= when it changed (checked every second) and, when systemd asked for a
        watchdog, WATCHDOG=1 every ``watchdog`` seconds.

        The pings come from a task of the event loop itself: if the loop wedges (a blocking
        call, a busy loop), they stop and systemd kills and restarts walletd. An idle daemon
        sends nothing but the pings.
        """
        period = STATUS_INTERVAL if watchdog is None else min(watchdog, STATUS_INTERVAL)
        await self._ready.wait()  # READY=1 goes first, with its own STATUS=
        sent = self.status_line()
        next_ping = trio.current_time()
        while True:
            status = self.status_line()
            lines = [] if status == sent else [f"STATUS={status}"]
            now = trio.current_time()
            if watchdog is not None and now >= next_ping:
                lines.append("WATCHDOG=1")
                next_ping = now + watchdog
            if lines and self.notifier.notify(*lines):
                sent = status
            await trio.sleep(period)

    def status_line(self) -> str:
        state = "stopping: " if self.shutting_down else ""
        return f"{state}{len(self.ctx.book)} wallets, {len(self.connections)} connections"

    async def _signals(self, signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
        with scope:
            async for signum in signals:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    self.reload()
                elif self._stopping.is_set():
                    log.info("shutdown_in_progress", signal=name)
                else:
                    log.info("shutdown_requested", signal=name)
                    self.shutdown()

    # ------------------------------------------------------------------ reload

    def reload(self) -> None:
        """Re-read the configuration and apply what can change without a restart.

        Live: logging, limits and timeouts, allow-lists and admin group (for connections
        accepted from now on; open ones keep the identity they were admitted with), the
        default rotation policy, recovery attempts and lockout. A bad file changes nothing.
        """
        self.notifier.reloading()
        try:
            self._reload()
        finally:
            self.notifier.notify("READY=1", f"STATUS={self.status_line()}")

    def _reload(self) -> None:
        if self.reload_config is None:
            log.info("reload_skipped", reason="no configuration file")
            return
        old = self.config
        try:
            new = self.reload_config()
            gatekeeper = _gatekeeper(new)
            # All or nothing, and nothing can fail after it: the signing policy's [signing]
            # table (a new timezone recompiles every stored layer first).
            self.ctx.policy.reconfigure(new.signing)
        except Exception as exc:
            # Everything is validated before anything is applied: a half-applied reload
            # would be worse than none.
            log.error("reload_failed", error=str(exc))
            return
        needs_restart = [n for n in sorted(RESTART_ONLY) if getattr(new, n) != getattr(old, n)]
        for name in needs_restart:
            log.warning("reload_needs_restart", option=name)
        new = msgspec.structs.replace(new, **{n: getattr(old, n) for n in RESTART_ONLY})
        changed = [n for n in new.__struct_fields__ if getattr(new, n) != getattr(old, n)]
        self.gatekeeper = gatekeeper
        configure_logging(new.log_level, new.log_format)
        self.config = self.ctx.config = new
        self.ctx.book.set_default_policy(default_policy(new))
        log.info("reloaded", changed=changed, needs_restart=needs_restart)


def _gatekeeper(config: Config) -> Gatekeeper:
    try:
        return Gatekeeper(
            admin_group=config.admin_group,
            allowed_uids=config.allowed_uids,
            allowed_groups=config.allowed_groups,
        )
    except KeyError as exc:
        groups = [config.admin_group, *(config.allowed_groups or [])]
        raise ConfigError(
            f"admin_group/allowed_groups name a group that does not exist "
            f"(one of {', '.join(g for g in groups if g)}): {exc.args[0] if exc.args else exc}"
        ) from None


_REFUSALS = {
    "shutting_down": "walletd is shutting down; try again",
    "max_connections": "walletd is at its connection limit; try again",
    "admin_reserve": "walletd is at its connection limit for non-admin uids; try again",
    "max_connections_per_uid": "this uid holds as many connections as it may; close one",
}
