"""The secret scan for the public-key types: Ed25519 seeds (and the SHA-512 expansion that is
the real signing scalar) and secp256k1 scalars appear in no response, backup, database page,
write-ahead log or log line, before or after rotations, EIP-712 signing and recovery."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import msgspec
import pytest

from wallet_client import RitualStep, WalletClient
from walletd.config import Config
from walletd.model.keys import signer_for
from walletd.storage.loader import open_store

from ..support import request_frame
from ..test_eip712 import mail
from .harness import raw_connect, read_responses
from .test_security_edges import Secrets, state_files

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

TYPES = ("ed25519", "secp256k1")


def keys_at_rest(config: Config) -> dict[str, tuple[str, bytes]]:
    """user id -> (key type, private key) of a stopped daemon, loaded as walletd does."""
    store, _master, state = open_store(config)
    try:
        return {w.user_id: (w.key_type.value, bytes(w.key)) for w in state.wallets}
    finally:
        store.close()


def add_key(secret: Secrets, name: str, key: bytes) -> None:
    secret.add(name, key)
    # Ed25519 signs with the first half of SHA-512(seed) (clamped) and uses the second half
    # as the nonce key: neither may leak either.
    expanded = hashlib.sha512(key).digest()
    secret.add(name + " expanded scalar", expanded[:32])
    secret.add(name + " nonce key", expanded[32:])


def test_no_public_key_type_secret_anywhere(make_daemon: Any) -> None:
    daemon = make_daemon(log_level="debug").start()
    config = Config(state_dir=str(daemon.state_dir))
    secret = Secrets()
    client = WalletClient(daemon.socket_path, timeout=20)
    for key_type in TYPES:
        client.create_wallet(key_type, key_type)
    probe = {t: client.sign_message(t, b"probe") for t in TYPES}
    daemon.stop()
    for user, (key_type, key) in keys_at_rest(config).items():
        # The scan is only as good as the keys it looks for: they sign as the daemon did.
        assert signer_for(key_type, key).sign_message(b"probe") == probe[user]
        add_key(secret, f"{user} key v1", key)
    daemon.start()
    for key_type in TYPES:
        message = b"SECRET-MESSAGE-" + secrets.token_hex(16).encode()
        secret.add(f"message of {key_type}", message)
        client.sign_message(key_type, message)
        client.sign_batch(key_type, [message, message + b"2"])
        answer = hashlib.sha256(b"ANSWER-" + secrets.token_hex(12).encode()).digest()
        secret.add(f"answer hash of {key_type}", answer)
        client.register_ritual(key_type, [RitualStep("question?", answer.hex())])
        client.create_backup(key_type, {"note": "scan"})
        client.rotate_keys(key_type)
        client.create_backup(key_type, {"note": "after rotation"})
    doc = mail()
    doc["message"]["contents"] = "SECRET-CONTENTS-" + secrets.token_hex(16)
    secret.add("typed data contents", doc["message"]["contents"].encode())
    client.sign_typed_data("secp256k1", doc)
    client.set_policy("ed25519", max_signatures=2, auto_rotate=True)
    for n in range(5):
        client.sign_message("ed25519", b"SECRET-AUTO-%d" % n)
    reads = [request_frame("list_wallets", 1), request_frame("audit_log", 2, limit=10_000)]
    for n, user in enumerate(TYPES):
        for op in ("rotation_history", "list_backups", "backup_wallet", "rotation_status"):
            reads.append(request_frame(op, 10 + n, user_id=user))
        for version in (1, 2):
            reads.append(request_frame("get_public_key", 20 + n, user_id=user, version=version))
    with raw_connect(daemon.socket_path) as sock:
        sock.sendall(b"".join(reads))
        responses, _ = read_responses(sock, len(reads))
    assert len(responses) == len(reads)
    assert [r["error"] for r in responses if not r["ok"]] == []
    wire = msgspec.msgpack.encode(responses)
    running = state_files(daemon)
    client.close()
    assert daemon.stop() == 0
    for user, (_key_type, key) in keys_at_rest(config).items():
        add_key(secret, f"{user} key after rotations", key)
    stopped = state_files(daemon)
    leaks = {"responses": secret.found_in(wire)}
    for name, blob in {**running, **stopped}.items():
        leaks[name] = secret.found_in(blob)
    leaks = {where: found for where, found in leaks.items() if found}
    assert not leaks, leaks
    assert any(n.startswith("backups/") for n in stopped), "no backup file was scanned"
    assert any(n.endswith("-wal") for n in running), "no write-ahead log was scanned"
