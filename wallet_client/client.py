"""The blocking client: one Unix-socket connection, one request at a time.

All request building and response mapping lives in :mod:`wallet_client.calls`; this module only
moves bytes over a plain :mod:`socket`. It reconnects lazily after a lost connection.
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import walletd_wire as wire

from . import calls
from .calls import BackupList, Call, ClientCore
from .errors import DaemonUnavailableError, WalletError

T = TypeVar("T")

__all__ = ["WalletClient", "connection_dropped", "resolve_socket_path"]

_RECV_BYTES = 1 << 16


def connection_dropped(fd: int) -> bool:
    """True when walletd has closed (or reset) an idle connection.

    walletd never speaks unprompted and every answer is read before a call returns, so an idle
    connection that polls readable has reached end-of-file or an error.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def resolve_socket_path(socket_path: str | os.PathLike[str] | None) -> str:
    """The argument, else ``$WALLETD_SOCKET``, else the system socket."""
    if socket_path is not None:
        return os.fspath(socket_path)
    return os.environ.get("WALLETD_SOCKET") or calls.DEFAULT_SOCKET


class WalletClient:
    """Talks to walletd over its Unix socket. Use it as a context manager, or call close()."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = calls.DEFAULT_TIMEOUT,
    ) -> None:
        self.socket_path = resolve_socket_path(socket_path)
        self.timeout = timeout
        self._core = ClientCore()
        self._sock: socket.socket | None = None

    def __enter__(self) -> WalletClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except (
            FileNotFoundError,
            ConnectionRefusedError,
            PermissionError,
            TimeoutError,
            OSError,
        ) as exc:
            sock.close()
            raise DaemonUnavailableError(
                f"cannot connect to walletd at {self.socket_path}: {exc.strerror or exc}"
            ) from exc
        self._core.reset()
        return sock

    def _call(self, call: Call[T]) -> T:
        sock = self._sock
        if sock is not None and connection_dropped(sock.fileno()):
            # walletd closed this idle connection (idle timeout, restart). Nothing was sent on
            # it since, so a new connection cannot repeat a request.
            self.close()
            sock = None
        if sock is None:
            sock = self._sock = self._connect()
        request_id, frame = self._core.encode(call)
        try:
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                refusal = self._refusal(sock)
                if refusal is None:
                    raise
                raise refusal from None
            while (response := self._core.next_response()) is None:
                data = sock.recv(_RECV_BYTES)
                if not data:
                    raise ConnectionResetError("walletd closed the connection")
                self._core.feed(data)
        except TimeoutError as exc:
            self.close()  # a late reply would be read as the answer to the next request
            raise DaemonUnavailableError(
                f"walletd at {self.socket_path} did not answer within {self.timeout}s"
            ) from exc
        except OSError as exc:
            self.close()
            raise DaemonUnavailableError(
                f"lost the connection to walletd at {self.socket_path}: {exc}"
            ) from exc
        except WalletError:
            self.close()
            raise
        return self._core.result(call, request_id, response)

    def _refusal(self, sock: socket.socket) -> WalletError | None:
        # The daemon closed while we were sending: read what it said before it did (it will
        # not block, the connection is closed).
        try:
            while data := sock.recv(_RECV_BYTES):
                self._core.feed(data)
        except OSError:
            pass
        return self._core.refusal()

    # ------------------------------------------------------------------ methods

    def hello(self) -> wire.HelloResult:
        return self._call(calls.hello())

    def status(self) -> wire.StatusResult:
        return self._call(calls.status())

    def create_wallet(self, user_id: str) -> str:
        return self._call(calls.create_wallet(user_id))

    def get_wallet_address(self, user_id: str) -> str | None:
        return self._call(calls.get_wallet_address(user_id))

    def has_wallet(self, user_id: str) -> bool:
        return self._call(calls.has_wallet(user_id))

    def list_wallets(self) -> dict[str, str]:
        return self._call(calls.list_wallets())

    def delete_wallet(self, user_id: str) -> bool:
        return self._call(calls.delete_wallet(user_id))

    def sign_message(self, user_id: str, message: bytes) -> bytes:
        return self._call(calls.sign_message(user_id, message))

    def verify_signature(self, user_id: str, message: bytes, signature: bytes) -> bool:
        return self._call(calls.verify_signature(user_id, message, signature))

    def sign_batch(self, user_id: str, messages: Sequence[bytes]) -> list[wire.SignedItem]:
        return self._call(calls.sign_batch(user_id, messages))

    def verify_batch(self, user_id: str, items: Iterable[tuple[bytes, bytes]]) -> list[bool]:
        return self._call(calls.verify_batch(user_id, items))

    def rotate_keys(self, user_id: str, reason: str = "manual") -> str:
        return self._call(calls.rotate_keys(user_id, reason))

    def needs_rotation(self, user_id: str) -> bool:
        return self._call(calls.needs_rotation(user_id))

    def rotation_status(self, user_id: str) -> wire.RotationStatusResult:
        return self._call(calls.rotation_status(user_id))

    def rotation_history(self, user_id: str) -> list[wire.RotationRecord]:
        return self._call(calls.rotation_history(user_id))

    def get_policy(self, user_id: str) -> wire.RotationPolicy:
        return self._call(calls.get_policy(user_id))

    def set_policy(
        self,
        user_id: str,
        *,
        max_age_days: int | None = None,
        max_signatures: int | None = None,
        auto_rotate: bool | None = None,
    ) -> wire.RotationPolicy:
        return self._call(
            calls.set_policy(
                user_id,
                max_age_days=max_age_days,
                max_signatures=max_signatures,
                auto_rotate=auto_rotate,
            )
        )

    def backup_wallet(self, user_id: str) -> dict[str, Any]:
        return self._call(calls.backup_wallet(user_id))

    def create_backup(
        self, user_id: str, metadata: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._call(calls.create_backup(user_id, metadata))

    def list_backups(self, user_id: str) -> BackupList:
        return self._call(calls.list_backups(user_id))

    def verify_backup(self, user_id: str, backup_id: str) -> bool:
        return self._call(calls.verify_backup(user_id, backup_id))

    def delete_backup(self, user_id: str, backup_id: str) -> bool:
        return self._call(calls.delete_backup(user_id, backup_id))

    def audit_log(
        self,
        user_id: str | None = None,
        *,
        since: float | None = None,
        limit: int = 1000,
        before_seq: int | None = None,
    ) -> list[wire.AuditRecord]:
        """The newest ``limit`` matching records, oldest first; pass the first one's ``seq``
        as ``before_seq`` to page further back."""
        return self._call(calls.audit_log(user_id, since=since, limit=limit, before_seq=before_seq))

    def audit_verify(self) -> wire.AuditVerifyResult:
        return self._call(calls.audit_verify())

    def register_ritual(self, user_id: str, steps: Sequence[wire.RitualStep]) -> int:
        return self._call(calls.register_ritual(user_id, steps))

    def unregister_ritual(self, user_id: str) -> bool:
        return self._call(calls.unregister_ritual(user_id))

    def has_ritual(self, user_id: str) -> bool:
        return self._call(calls.has_ritual(user_id))

    def get_prompts(self, user_id: str) -> list[str]:
        return self._call(calls.get_prompts(user_id))

    def get_remaining_attempts(self, user_id: str) -> int:
        return self._call(calls.get_remaining_attempts(user_id))

    def is_locked(self, user_id: str) -> bool:
        return self._call(calls.is_locked(user_id))

    def reset_attempts(self, user_id: str) -> int:
        return self._call(calls.reset_attempts(user_id))

    def initiate_recovery(self, user_id: str, responses: Sequence[str]) -> bool:
        """Answer ``user_id``'s ritual; ``responses`` are :func:`hash_response` of each answer."""
        return self._call(calls.initiate_recovery_result(user_id, responses)).recovered

    def recover(self, user_id: str, responses: Sequence[str]) -> str:
        """Like initiate_recovery, but return the new address and raise RitualError on failure."""
        result = self._call(calls.initiate_recovery_result(user_id, responses))
        return calls.recovered_address(result)
