"""Startup benchmark: time from exec to ready, and RSS, with a durable store of many wallets.

Targets (checked by ``python -m bench``): with 100,000 wallets of mixed key types (a third
each of hmac-sha256, ed25519 and secp256k1), ready in <= 2 s and RSS <= 250 MiB; 1,000,000 is
reported (``python -m bench.startup 1000000``).

The state is seeded with walletd's own store code in one transaction, exactly as the daemon
would have written it wallet by wallet: each wallet's key sealed under the master key, one
``wallet_created`` audit record per wallet chained under the audit key. Then a real walletd is
started on it (not ``--ephemeral``) and timed from exec to its socket accepting a connection,
and to the ``ready`` log event; its RSS is read from /proc/<pid>/status once it has answered.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import servers
from walletd.config import Config
from walletd.model.audit_chain import AuditChain
from walletd.model.key_material import new_key_material
from walletd.storage import sql
from walletd.storage.loader import AUDIT_KEY, open_store
from walletd.storage.sealing import wallet_aad
from walletd.storage.store import DB_NAME, Statement
from walletd_wire.schemes import KeyType

TIMEOUT_S = 600.0
MIX = (KeyType.HMAC_SHA256, KeyType.ED25519, KeyType.SECP256K1)


def seed_state(state_dir: Path, n: int) -> None:
    """A fresh state in ``state_dir`` holding ``n`` wallets (and their audit records)."""
    store, master, state = open_store(Config(state_dir=str(state_dir)))
    try:
        sealer = master.sealer()
        chain = AuditChain(state.subkeys[AUDIT_KEY], *state.chain_head)
        uid, pid, now = os.getuid(), os.getpid(), time.time()
        rows: list[Statement] = []
        for i in range(n):
            user = f"user{i:07d}"
            key_type = MIX[i % len(MIX)]
            fresh = new_key_material(key_type)
            sealed = sealer.seal(bytes(fresh.key), wallet_aad(user, fresh.address, key_type, 1))
            rows.append(sql.insert_wallet(user, fresh.address, uid, sealed, now, key_type))
            if fresh.public_key is not None:
                rows.append(
                    sql.insert_public_key(user, 1, key_type, fresh.public_key, fresh.address, now)
                )
            address = fresh.address
            entry = chain.prepare(
                timestamp=now,
                event="wallet_created",
                user_id=user,
                addresses=[address],
                actor_uid=uid,
                actor_pid=pid,
            )
            rows.append(sql.insert_audit(entry))
        rows.append(sql.put_audit_head(*chain.pending_head()))
        store.write(rows)
    finally:
        store.close()


def _event_time(log_path: Path, event: str) -> float | None:
    """The wall-clock time (epoch seconds) of the first ``event`` in walletd's JSON log."""
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
    return None


def _loaded_seconds(log_path: Path) -> float | None:
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "state_loaded":
            return float(record["seconds"])
    return None


def run_startup_bench(n: int) -> dict[str, Any]:
    """Start walletd on a store of ``n`` wallets; return at least these keys:

    ``ready_s`` (float, exec to socket accepting) and ``rss_mb`` (float, resident set size
    after ready, MiB). Also: ``seconds`` (the same as ready_s), ``ready_log_s`` (exec to the
    ``ready`` log event), ``load_s`` (the daemon's own figure for checking and loading the
    state), ``seed_s`` and ``db_mb``.
    """
    from wallet_client import WalletClient

    with tempfile.TemporaryDirectory(prefix="walletd-startup-") as tmp:
        workdir = Path(tmp)
        state_dir = workdir / "state"
        seed_started = time.perf_counter()
        seed_state(state_dir, n)
        seed_s = time.perf_counter() - seed_started
        sock = str(workdir / "walletd.sock")
        argv = [*servers.walletd_command(), "--state-dir", str(state_dir), "--socket", sock]
        argv += ["--log-level", "info", "--log-format", "json"]
        exec_wall = time.time()
        process, log = servers._spawn("walletd-startup", argv, workdir)
        server = servers.Server("walletd", "walletd", sock, process, log)
        try:
            ready_s = servers.wait_ready(sock, process, log, TIMEOUT_S)
            with WalletClient(sock, timeout=TIMEOUT_S) as client:
                wallets = client.status().wallets
                if wallets != n or (n and not client.has_wallet(f"user{n - 1:07d}")):
                    raise RuntimeError(f"walletd serves {wallets} wallets, expected {n}")
            rss_mb = servers.rss_bytes(process.pid) / (1 << 20)
        finally:
            server.stop()
        log_path = workdir / "walletd-startup.log"
        ready_at = _event_time(log_path, "ready")
        return {
            "wallets": n,
            "ready_s": round(ready_s, 3),
            "seconds": round(ready_s, 3),
            "ready_log_s": None if ready_at is None else round(ready_at - exec_wall, 3),
            "load_s": _loaded_seconds(log_path),
            "rss_mb": round(rss_mb, 1),
            "seed_s": round(seed_s, 3),
            "db_mb": round((state_dir / DB_NAME).stat().st_size / (1 << 20), 1),
        }


if __name__ == "__main__":
    import sys

    print(json.dumps(run_startup_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
