"""``walletd check`` and ``walletd rekey``: offline work on the state directory.

Neither ever prints key material. ``check`` opens the database read-only. ``rekey`` refuses to
run while a daemon is serving the configured socket, and re-seals every key and sub-key under
the new master key in one transaction.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .audit import COLUMNS, HEAD_KEY, AuditChain, verify_rows
from .boot import AUDIT_KEY, CHECK_KEY, SUBKEYS, load_state, subkey_aad, verify_master_key
from .config import Config
from .errors import StartupError
from .sealing import MasterKey, load_master_key, read_key_file, wallet_aad
from .store import DB_NAME, Store


def _master_key(config: Config) -> MasterKey:
    return load_master_key(
        Path(config.state_dir),
        config.master_key_file,
        require_external=config.require_external_master_key,
        may_generate=False,
    )


def check_state(config: Config, *, as_json: bool = False) -> bool:
    """Print a summary of the state; True when no problem was found."""
    db_path = Path(config.state_dir) / DB_NAME
    summary: dict[str, Any] = {"database": str(db_path), "problems": []}
    problems: list[str] = summary["problems"]
    store = Store.open_readonly(db_path)  # refuses corrupt / newer databases with a message
    try:
        integrity = store.integrity_check()
        if integrity != ["ok"]:
            problems.extend(f"integrity: {line}" for line in integrity[:20])
        master = _master_key(config)
        summary["master_key"] = master.source
        verify_master_key(store, master)
        try:
            state = load_state(store, master.sealer())
        except StartupError as exc:
            problems.append(str(exc))
        else:
            summary["wallets"] = len(state.wallets)
            summary["owners"] = dict(Counter(str(w.owner_uid) for w in state.wallets))
            summary["rituals"] = len(state.rituals)
            summary["locked_rituals"] = sum(
                1 for r in state.rituals.values() if r.locked_at is not None
            )
            rows = store.query(f"SELECT {COLUMNS} FROM audit ORDER BY seq")  # noqa: S608
            summary["audit_records"] = len(rows)
            broken, why = verify_rows(state.subkeys[AUDIT_KEY], rows, store.meta(HEAD_KEY))
            if broken is not None:
                problems.append(f"audit chain broken at record {broken}: {why}")
    finally:
        store.close()
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        for name, value in summary.items():
            if name != "problems":
                print(f"{name}: {value}")
        print("problems: none" if not problems else "problems:")
        for problem in problems:
            print(f"  - {problem}")
    return not problems


def rekey_state(config: Config, new_key_file: str) -> None:
    _refuse_if_serving(config.socket)
    db_path = Path(config.state_dir) / DB_NAME
    old = _master_key(config)
    new = MasterKey(read_key_file(Path(new_key_file)), f"file {new_key_file}")
    readonly = Store.open_readonly(db_path)
    try:
        verify_master_key(readonly, old)
        state = load_state(readonly, old.sealer())
    finally:
        readonly.close()
    sealer = new.sealer()
    statements: list[tuple[str, Any]] = [
        ("UPDATE meta SET value = ? WHERE key = ?", (sealer.check_value(), CHECK_KEY)),
    ]
    statements += [
        (
            "UPDATE meta SET value = ? WHERE key = ?",
            (sealer.seal(state.subkeys[n], subkey_aad(n)), n),
        )
        for n in SUBKEYS
    ]
    statements += [
        (
            "UPDATE wallets SET sealed_key = ? WHERE user_id = ?",
            (sealer.seal(bytes(w.key), wallet_aad(w.user_id, w.address)), w.user_id),
        )
        for w in state.wallets
    ]
    chain = AuditChain(state.subkeys[AUDIT_KEY], *state.chain_head)
    entry = chain.prepare(
        timestamp=time.time(),
        event="master_key_rotated",
        user_id=None,
        addresses=[],
        actor_uid=os.getuid(),
        actor_pid=os.getpid(),
        detail={"wallets": len(state.wallets), "new_source": new.source},
    )
    statements += [entry.statement(), chain.head_statement()]
    store = Store.open_writable(db_path)
    try:
        store.write(statements)
    finally:
        store.close()
    print(f"re-sealed {len(state.wallets)} wallet keys under the master key in {new_key_file}.")
    print(
        "Start walletd with that key from now on (master_key_file or the systemd credential);"
        " the old key no longer opens this state."
    )
    if old.generated:
        print(f"The old generated key ({old.source}) is now useless; delete it.")


def _refuse_if_serving(path: str) -> None:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return
    finally:
        probe.close()
    raise StartupError(f"walletd is serving {path}; stop it before rekeying")
