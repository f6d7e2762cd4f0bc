"""Security edges: hostile identifiers and metadata, and secrets where they must never be.

The owner/other/admin/allow-list/socket-mode matrix is tests/test_authz.py; this module covers
values: user ids and metadata with control characters, huge sizes, invalid UTF-8 and path-like
text must be refused as ``invalid_argument`` / ``bad_request`` (or accepted as plain data),
never create a file outside the backup directory, and leave the daemon healthy. Then a scan of
responses, backup files, the database, its write-ahead log and the daemon log for key bytes,
messages, signatures, ritual answers and their SHA-256.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wallet_client import (
    InvalidArgumentError,
    ProtocolError,
    RitualStep,
    WalletClient,
    WalletError,
)
from walletd.config import Config
from walletd.model.validation import MAX_USER_ID_BYTES
from walletd.ops.daemon import build_daemon
from walletd.storage.loader import open_store
from walletd_wire.framing import encode_frame

from ..support import HELLO, DaemonProcess, request_frame
from . import figures
from .harness import (
    configured_daemon,
    raw_connect,
    read_responses,
    running_daemon,
    tracebacks,
)
from .wire import BAD_UTF8_BYTES, BAD_UTF8_MARK

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

PATH_LIKE = ["../", "/", "..", ".", "../../etc/passwd", "a/b", "/tmp/x", "~root", "\\..\\x"]
CONTROL = ["a\x00b", "\x00", "tab\there", "new\nline", "esc\x1b[31m", "del\x7f", "c1\x85"]


def bad_utf8_frame(doc: dict[str, Any], request_id: int = 1) -> bytes:
    """``doc`` as a request whose BAD_UTF8_MARK strings become invalid UTF-8 on the wire."""
    payload = msgspec.msgpack.encode({"id": request_id, **doc})
    return encode_frame(payload.replace(BAD_UTF8_MARK.encode(), BAD_UTF8_BYTES))


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def edge_daemon() -> Iterator[DaemonProcess]:
    with running_daemon("edges") as daemon:
        yield daemon


# --------------------------------------------------------------------------- invalid UTF-8


# One case over a real socket; every field that can hold a string is in the dispatcher's
# table (tests/test_dispatch_errors.py::test_invalid_utf8_is_bad_request).
@pytest.mark.parametrize(
    "doc",
    [{"op": "create_backup", "user_id": "x", "metadata": {"k": [BAD_UTF8_MARK]}}],
    ids=["metadata-value"],
)
def test_invalid_utf8_is_bad_request_and_the_connection_stays(
    edge_daemon: DaemonProcess, doc: dict[str, Any]
) -> None:
    """Regression: msgspec raises UnicodeDecodeError (not a MsgspecError) for a MessagePack str
    holding invalid UTF-8; walletd.dispatch.Dispatcher.decode let it escape, so the connection
    died without an answer and the log showed connection_failed with a traceback."""
    with raw_connect(edge_daemon.socket_path) as sock:
        sock.sendall(bad_utf8_frame(doc) + HELLO)
        responses, closed = read_responses(sock, 2)
        assert responses, "no answer to a request with invalid UTF-8 (connection closed)"
        assert responses[0]["ok"] is False
        assert responses[0]["error"]["code"] == "bad_request", responses[0]
        assert responses[0]["id"] in (1, None)
        assert len(responses) == 2 and responses[1]["ok"], "the connection did not survive"
        assert not closed


def test_dispatcher_decode_never_raises_on_invalid_utf8() -> None:
    """The same defect at the unit level (what the atheris harness finds within seconds)."""
    dispatcher = build_daemon(Config(ephemeral=True)).dispatcher
    payload = bad_utf8_frame({"op": "create_wallet", "user_id": BAD_UTF8_MARK})[4:]
    result = dispatcher.decode(payload)
    assert result.error.code == "bad_request"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- hostile values


def invalid_user_ids() -> list[str]:
    return [
        "",
        "x" * (MAX_USER_ID_BYTES + 1),
        "é" * (MAX_USER_ID_BYTES // 2 + 1),  # 2 bytes each: over the byte limit
        "y" * 200_000,
        *CONTROL,
    ]


def test_hostile_user_ids_metadata_and_backup_ids(edge_daemon: DaemonProcess) -> None:
    home = edge_daemon.state_dir.parent
    before = tree(home)
    mark = len(edge_daemon.log_lines())
    client = WalletClient(edge_daemon.socket_path, timeout=20)
    refused = 0
    for user_id in invalid_user_ids():
        for call in (
            lambda u=user_id: client.create_wallet(u),
            lambda u=user_id: client.sign_message(u, b"m"),
            lambda u=user_id: client.create_backup(u),
            lambda u=user_id: client.list_backups(u),
            lambda u=user_id: client.rotation_history(u),
            lambda u=user_id: client.register_ritual(u, [RitualStep("q", "a" * 64)]),
        ):
            with pytest.raises(InvalidArgumentError):
                call()
            refused += 1
    # Path-like ids are plain data: accepted, and they never name a file.
    for user_id in PATH_LIKE:
        client.create_wallet(user_id)
        record = client.create_backup(user_id, {"path": user_id, user_id: "../../x"})
        assert client.verify_backup(user_id, record["backup_id"])
        for backup_id in ["../" + record["backup_id"], "/etc/passwd", "..", "", "A" * 32]:
            with pytest.raises(InvalidArgumentError):
                client.verify_backup(user_id, backup_id)
            with pytest.raises(InvalidArgumentError):
                client.delete_backup(user_id, backup_id)
            refused += 2
    # Control characters and path-like text in metadata are data: stored escaped in the JSON.
    client.create_backup(PATH_LIKE[0], {"k\x00/../": "v\x00\n", "../../etc/passwd": "/"})
    # What the wire types bound (entries, depth, value types) the decoder refuses as
    # bad_request (ProtocolError) before any work; what only the daemon can judge (the JSON's
    # size, NaN) is invalid_argument.
    refused_metadata: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"k": "x" * 20_000}, InvalidArgumentError),
        (dict.fromkeys((f"k{i}" for i in range(3000)), 1), ProtocolError),
        ({"deep": _nested(40)}, ProtocolError),
        ({"nan": float("nan")}, InvalidArgumentError),
        ({"bin": b"\x00"}, ProtocolError),
    ]
    for metadata, expected in refused_metadata:
        with pytest.raises(expected):
            client.create_backup(PATH_LIKE[0], metadata)
        refused += 1
    with pytest.raises(InvalidArgumentError):
        client.rotate_keys(PATH_LIKE[0], "reason\x00with NUL")
    assert client.hello().protocol == 1
    assert client.audit_verify().ok
    client.close()
    backups = edge_daemon.state_dir / "backups"
    created = tree(home) - before
    outside = {p for p in created if not (home / p).is_relative_to(backups)}
    assert outside <= {"state/walletd.db-wal", "state/walletd.db-shm", "state/backups"}, outside
    assert all(len(Path(p).stem) == 32 for p in created - outside if p.endswith(".json"))
    assert not tracebacks(edge_daemon, after=mark)
    figures.record("security edges", cases=refused + len(PATH_LIKE), errors=0)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"d": value}
    return value


@settings(max_examples=300 if figures.LONG_FUZZ else 60, deadline=None)
@given(user_id=st.text(max_size=300))
def test_any_text_user_id_is_accepted_or_invalid(edge_daemon: DaemonProcess, user_id: str) -> None:
    """Any text: a wallet, or invalid_argument exactly when the id breaks the documented rule
    (1-256 bytes of UTF-8 without control characters); nothing else."""
    size = len(user_id.encode("utf-8", "surrogatepass"))
    valid = 1 <= size <= MAX_USER_ID_BYTES and not any(
        ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in user_id
    )
    with WalletClient(edge_daemon.socket_path, timeout=20) as client:
        outcome: Any
        try:
            outcome = client.create_wallet(user_id)
        except WalletError as exc:
            outcome = exc
        if isinstance(outcome, WalletError):
            # Hypothesis may draw the same valid id twice: already_exists is a valid outcome.
            created = outcome.code == "already_exists"
            assert created or outcome.code == "invalid_argument", outcome
        else:
            created = True
        assert created is valid, (user_id, size)
        if created:
            assert client.delete_wallet(user_id)  # keep the daemon small
    figures.record("security edges", cases=1)


def test_client_maps_unencodable_metadata_to_a_wallet_error(edge_daemon: DaemonProcess) -> None:
    """Regression: an int outside MessagePack's range in metadata made WalletClient raise a bare
    OverflowError from msgspec, outside the documented WalletError tree (errors.py)."""
    with WalletClient(edge_daemon.socket_path, timeout=20) as client:
        client.create_wallet("overflow")
        with pytest.raises(WalletError):
            client.create_backup("overflow", {"n": 2**64})
        assert client.hello().protocol == 1


# --------------------------------------------------------------------------- secrets


class Secrets:
    """Everything that must never leave the daemon except a signature to its requester."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def add(self, name: str, value: bytes) -> None:
        # Raw bytes, and the encodings a leak would most likely take.
        self.items[name] = value
        self.items[name + " (hex)"] = value.hex().encode()
        self.items[name + " (base64)"] = base64.b64encode(value).rstrip(b"=")

    def found_in(self, blob: bytes) -> list[str]:
        return [name for name, value in self.items.items() if len(value) >= 8 and value in blob]


def keys_at_rest(daemon: DaemonProcess) -> list[bytes]:
    """The wallet keys of a stopped daemon, loaded as walletd itself does."""
    store, _master, state = open_store(Config(state_dir=str(daemon.state_dir)))
    try:
        return [bytes(w.key) for w in state.wallets]
    finally:
        store.close()


def state_files(daemon: DaemonProcess) -> dict[str, bytes]:
    files = {}
    for path in sorted(daemon.state_dir.rglob("*")):
        if path.is_file() and path.name != "master.key":
            files[str(path.relative_to(daemon.state_dir))] = path.read_bytes()
    files["walletd log"] = daemon.log_path.read_bytes()
    return files


def test_no_secret_in_responses_backups_database_wal_or_log(make_daemon: Any) -> None:
    daemon = make_daemon(log_level="debug").start()
    secret = Secrets()
    users = [f"s{i}" for i in range(3)]
    client = WalletClient(daemon.socket_path, timeout=20)
    for user in users:
        client.create_wallet(user)
    daemon.stop()
    for i, key in enumerate(keys_at_rest(daemon)):
        secret.add(f"key {i} (before rotation)", key)
    daemon.start()
    answers = {}
    signatures = []
    for user in users:
        message = b"SECRET-MESSAGE-" + secrets.token_hex(16).encode()
        secret.add(f"message of {user}", message)
        signatures.append(client.sign_message(user, message))
        answer = "ANSWER-" + secrets.token_hex(12)
        answers[user] = answer
        secret.add(f"answer of {user}", answer.encode())
        digest = hashlib.sha256(answer.encode()).digest()
        secret.add(f"sha256 of {user}'s answer", digest)
        client.register_ritual(user, [RitualStep(f"question for {user}?", digest.hex())])
    client.rotate_keys(users[0])
    assert not client.initiate_recovery(users[1], ["wrong"])
    assert client.initiate_recovery(users[2], [answers[users[2]]])
    for user in users:
        message = b"SECRET-MESSAGE-" + secrets.token_hex(16).encode()
        secret.add(f"second message of {user}", message)
        signatures.append(client.sign_message(user, message))
        client.create_backup(user, {"note": "scan"})
    for i, signature in enumerate(signatures):
        secret.add(f"signature {i}", signature)
    # Every read a client can make, raw off the wire.
    reads = [request_frame("list_wallets", 1), request_frame("status", 2)]
    reads += [request_frame("audit_log", 3, limit=100_000), request_frame("audit_verify", 4)]
    for n, user in enumerate(users):
        for op in ("rotation_status", "rotation_history", "list_backups", "backup_wallet"):
            reads.append(request_frame(op, 10 + n, user_id=user))
        for op in ("get_prompts", "get_policy", "get_remaining_attempts", "has_ritual"):
            reads.append(request_frame(op, 20 + n, user_id=user))
        reads.append(request_frame("initiate_recovery", 30 + n, user_id=user, responses=["0" * 64]))
    with raw_connect(daemon.socket_path) as sock:
        sock.sendall(b"".join(reads))
        responses, _ = read_responses(sock, len(reads))
    assert len(responses) == len(reads)
    wire = msgspec.msgpack.encode(responses)
    running = state_files(daemon)  # the write-ahead log holds the recent commits
    assert any(name.endswith("-wal") for name in running), sorted(running)
    client.close()
    assert daemon.stop() == 0
    for i, key in enumerate(keys_at_rest(daemon)):
        secret.add(f"key {i} (after rotation and recovery)", key)
    stopped = state_files(daemon)
    leaks = {"responses": secret.found_in(wire)}
    for name, blob in {**running, **stopped}.items():
        leaks[name] = secret.found_in(blob)
    leaks = {where: found for where, found in leaks.items() if found}
    figures.record("secret scan", cases=len(secret.items), errors=sum(map(len, leaks.values())))
    assert not leaks, leaks
    assert any(n.startswith("backups/") for n in stopped), "no backup file was scanned"
    assert os.path.getsize(daemon.log_path) > 0


def test_keys_at_rest_helper_sees_the_keys(open_tmp: Path) -> None:
    """The scan above is only as good as keys_at_rest: it must return the real keys (a sign
    made with them matches the daemon's signature)."""
    import hmac

    daemon = configured_daemon(open_tmp).start()
    try:
        with WalletClient(daemon.socket_path, timeout=20) as client:
            client.create_wallet("k")
            signature = client.sign_message("k", b"probe")
        daemon.stop()
        (key,) = keys_at_rest(daemon)
        assert hmac.digest(key, b"probe", "sha256") == signature
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill()
