"""Secrets never reach the log: the redaction processor, and a scan of a real daemon's log."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path

import pytest
import structlog

from wallet_client import RitualStep, WalletClient, hash_response
from walletd.config import Config
from walletd.logs import REDACTED, configure_logging, redact_secrets
from walletd.storage.loader import open_store

from . import recovery_children
from .support import DaemonFactory, call_as_nobody

pytestmark = pytest.mark.slow


def test_processor_replaces_bytes_and_secret_fields() -> None:
    event = {
        "event": "x",
        "message": "hello",
        "signature": "abcd",
        "responses": ["a"],
        "payload": b"\x00secret",
        "nested": {"key": "k", "ok": 1, "blob": bytearray(b"zz")},
        "items": [b"abc", "text"],
        "user_id": "alice",
    }
    out = redact_secrets(None, "info", dict(event))
    assert out["message"] == out["signature"] == out["responses"] == REDACTED
    assert out["payload"] == "<7 bytes>"
    assert out["nested"] == {"key": REDACTED, "ok": 1, "blob": "<2 bytes>"}
    assert out["items"] == ["<3 bytes>", "text"]
    assert out["user_id"] == "alice"


def test_processor_runs_before_the_renderer() -> None:
    stream = io.StringIO()
    configure_logging("debug", "json", stream=stream)
    try:
        structlog.get_logger("t").info("careless", message=b"top secret", key=b"k" * 32)
    finally:
        configure_logging("warning", "json")
    line = json.loads(stream.getvalue())
    assert line["message"] == REDACTED and line["key"] == REDACTED
    assert "top secret" not in stream.getvalue()


def _forms(secret: bytes) -> list[bytes]:
    """The ways a secret could show up in a text log."""
    forms = [secret.hex().encode(), base64.b64encode(secret), secret.hex().upper().encode()]
    if len(secret) >= 8:
        forms.append(secret)
        forms.append(repr(secret)[2:-1].encode())  # Python's bytes repr, as in b'...'
    return forms


@pytest.mark.root
def test_no_secret_in_a_real_daemon_log(daemon: DaemonFactory) -> None:
    """A whole scenario at debug level, then every line the daemon wrote is scanned."""
    proc = daemon().start()
    answers = ["correct horse battery", "blue-green sea"]
    messages = [os.urandom(24) for _ in range(5)] + [b"plain text message that is secret"]
    signatures: list[bytes] = []
    with WalletClient(proc.socket_path) as c:
        for user in ("alice", "bob"):
            c.create_wallet(user)
            for m in messages:
                signatures.append(c.sign_message(user, m))
                assert c.verify_signature(user, m, signatures[-1])
            signatures.extend(i.signature for i in c.sign_batch(user, messages) if i.signature)
            c.verify_batch(user, [(m, s) for m, s in zip(messages, signatures, strict=False)])
        c.register_ritual(
            "alice", [RitualStep(f"q{i}?", hash_response(a)) for i, a in enumerate(answers)]
        )
        assert not c.initiate_recovery("alice", ["nope", "x"])
        backup = c.create_backup("alice", {"purpose": "scan"})
        c.rotate_keys("alice")
        assert c.verify_backup("alice", backup["backup_id"]) is False
        c.set_policy("bob", max_signatures=3, auto_rotate=True)
        for m in messages:
            signatures.append(c.sign_message("bob", m))
    call_as_nobody(recovery_children.recover_wallet, str(proc.socket_path), "alice", *answers)
    assert proc.stop() == 0

    config = Config(state_dir=str(proc.state_dir))
    store, _master, state = open_store(config)
    store.close()
    keys = [bytes(w.key) for w in state.wallets]
    assert len(keys) == 2

    log = proc.log_path.read_bytes()
    assert b'"event": "request"' in log  # debug logging really was on
    secrets = keys + messages + signatures
    secrets += [a.encode() for a in answers]
    secrets += [hash_response(a).encode() for a in answers]
    secrets += [hashlib.sha256(a.encode()).digest() for a in answers]
    for secret in secrets:
        for form in _forms(secret):
            assert form not in log, f"a secret appeared in the log ({len(secret)} bytes)"


def test_master_key_file_contents_never_logged(daemon: DaemonFactory, open_tmp: Path) -> None:
    key = os.urandom(32)
    key_file = open_tmp / "master.key"
    key_file.write_bytes(key.hex().encode())
    key_file.chmod(0o600)
    proc = daemon("--master-key-file", str(key_file)).start()
    with WalletClient(proc.socket_path) as c:
        c.create_wallet("carol")
    assert proc.stop() == 0
    log = proc.log_path.read_bytes()
    for form in _forms(key):
        assert form not in log
