"""``walletd check`` and ``walletd rekey``: offline work on the state directory.

Neither ever prints key material. ``check`` opens the database read-only (it changes no file and
may run beside a serving daemon), runs the full ``integrity_check``, unseals every key and walks
the audit chain, and reports every problem it finds rather than stopping at the first.
``rekey`` takes the state directory's lock (so it refuses while a daemon serves that state),
re-seals every key and sub-key under the new master key in one transaction, and checks that the
new key opens the result.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec

from walletd.config import Config
from walletd.errors import StartupError
from walletd.model.audit_anchor import Checkpoint, compare, parse_checkpoint
from walletd.model.audit_chain import HEAD_KEY, HEAD_TAG_KEY, AuditChain, verify_chain
from walletd.model.audit_state import cross_check, missing_head
from walletd.storage import sql
from walletd.storage.loader import (
    AUDIT_KEY,
    CHECK_KEY,
    ROW_TAG_KEY,
    STATE_FILES,
    SUBKEYS,
    load_rituals,
    load_subkeys,
    load_wallets,
    preflight,
    subkey_aad,
    verify_master_key,
)
from walletd.storage.row_tagging import RowTagger, tag_problems
from walletd.storage.schema import SCHEMA_VERSION
from walletd.storage.sealing import (
    MasterKey,
    check_key_file,
    load_master_key,
    read_key_file,
    wallet_aad,
)
from walletd.storage.statedir import StateLock, check_state_dir, tighten_state_files
from walletd.storage.store import DB_NAME, Statement, Store


def _master_key(config: Config) -> MasterKey:
    return load_master_key(
        Path(config.state_dir),
        config.master_key_file,
        require_external=config.require_external_master_key,
        may_generate=False,
    )


# ---------------------------------------------------------------------- check


def read_checkpoint(path: str) -> Checkpoint:
    """The ``--expect-head`` file; ValueError with a message naming the file and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the expected head {path}: {exc}") from None
    try:
        return parse_checkpoint(text)
    except ValueError as exc:
        raise ValueError(
            f"{path} is not an audit head from 'walletctl audit head': {exc}"
        ) from None


def check_state(config: Config, *, as_json: bool = False, expect: Checkpoint | None = None) -> bool:
    """Print a summary of the state; True when no problem was found."""
    summary = inspect_state(config, expect)
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        for name, value in summary.items():
            if name == "owners":
                value = ", ".join(f"{_user(uid)}: {n}" for uid, n in value.items()) or "none"
            elif name == "key_types":
                value = ", ".join(f"{kind}: {n}" for kind, n in value.items()) or "none"
            if name != "problems":
                print(f"{name}: {value}")
        problems = summary["problems"]
        print("problems: none" if not problems else f"problems ({len(problems)}):")
        for problem in problems:
            print(f"  - {problem}")
    return not summary["problems"]


def _user(uid: str) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(int(uid)).pw_name})"
    except KeyError:
        return f"uid {uid}"


def inspect_state(config: Config, expect: Checkpoint | None = None) -> dict[str, Any]:
    """The summary ``check`` prints: counts, owners, sources and every problem found."""
    state_dir = Path(config.state_dir)
    db_path = state_dir / DB_NAME
    summary: dict[str, Any] = {"database": str(db_path), "problems": []}
    problems: list[str] = summary["problems"]
    try:
        check_state_dir(state_dir, create=False)
        loose = tighten_state_files(state_dir, STATE_FILES, fix=False)
        if loose:
            summary["warnings"] = [f"{f}; the next start makes it 0600" for f in loose]
        store = Store.open_readonly(db_path, verify=False)
    except StartupError as exc:
        problems.append(str(exc))
        return summary
    try:
        _inspect(config, store, summary, problems, expect)
    except sqlite3.DatabaseError as exc:
        problems.append(f"database {db_path} is unreadable or corrupt ({exc})")
    finally:
        store.close()
    return summary


def _inspect(
    config: Config,
    store: Store,
    summary: dict[str, Any],
    problems: list[str],
    expect: Checkpoint | None = None,
) -> None:
    version = store.pragmas()["user_version"]
    summary["schema_version"] = version
    if not 1 <= version <= SCHEMA_VERSION:
        problems.append(
            f"schema version {version} is not one this walletd reads (1 to {SCHEMA_VERSION})"
        )
        return
    integrity = store.integrity_check()
    if integrity != ["ok"]:
        problems.extend(f"integrity: {line}" for line in integrity[:20])
        if len(integrity) > 20:
            problems.append(f"integrity: ... and {len(integrity) - 20} more")
    if version < SCHEMA_VERSION:
        summary["schema_version"] = f"{version} (the next start migrates it to {SCHEMA_VERSION})"
        # In memory (the file stays as it is), with a throwaway key and no migration values:
        # the tags the next start computes are not checked, since that start trusts the rows.
        view = store.migrated_copy(RowTagger(os.urandom(32)))
        summary["row_tags"] = "computed at the next start (the database predates them)"
        try:
            _inspect_content(config, view, summary, problems, expect)
        finally:
            view.close()
    else:
        _inspect_content(config, store, summary, problems, expect)


def _inspect_content(
    config: Config,
    store: Store,
    summary: dict[str, Any],
    problems: list[str],
    expect: Checkpoint | None = None,
) -> None:
    owners = store.query(sql.COUNT_WALLETS_BY_OWNER)
    summary["wallets"] = sum(count for _, count in owners)
    summary["owners"] = {str(uid): count for uid, count in sorted(owners)}
    try:
        key_types = store.query(sql.COUNT_WALLETS_BY_KEY_TYPE)
    except sqlite3.OperationalError:  # a database from before key types: all hmac-sha256
        key_types = [("hmac-sha256", summary["wallets"])] if summary["wallets"] else []
    summary["key_types"] = dict(sorted(key_types))
    try:
        rituals = load_rituals(store)
    except msgspec.MsgspecError:
        # Undecodable steps: the row tags below name whose they are.
        problems.append("rituals: a ritual's steps cannot be decoded")
        rituals = {}
    summary["rituals"] = len(rituals)
    summary["locked_rituals"] = sum(1 for r in rituals.values() if r.locked_at is not None)
    try:
        master = _master_key(config)
        summary["master_key"] = master.source
        verify_master_key(store, master)
        sealer = master.sealer()
        tagged = "row_tags" not in summary
        subkeys = load_subkeys(store, sealer, SUBKEYS if tagged else (AUDIT_KEY,))
    except StartupError as exc:
        problems.append(str(exc))
        return
    if tagged:
        found = tag_problems(store, subkeys[ROW_TAG_KEY])
        summary["row_tags"] = "intact" if not found else f"{len(found)} problems"
        problems.extend(found)
    try:
        summary["keys_unsealed"] = len(load_wallets(store, sealer))
    except StartupError as exc:
        problems.append(str(exc))
    rows = store.query(sql.SELECT_AUDIT)
    summary["audit_records"] = len(rows)
    broken, why = verify_chain(
        subkeys[AUDIT_KEY], rows, store.meta(HEAD_KEY), store.meta(HEAD_TAG_KEY)
    )
    if broken is not None:
        problems.append(f"audit chain broken at record {broken}: {why}")
    problems.extend(audit_against_state(store, rows))
    if expect is not None:
        # The outside anchor (walletd.model.audit_anchor): the one check an older copy of
        # the whole state cannot pass.
        differs = compare(subkeys[AUDIT_KEY], expect, [row[-1] for row in rows])
        summary["expected_head"] = "contained" if differs is None else "not contained"
        if differs is not None:
            problems.append(f"audit: {differs}")


def audit_against_state(store: Store, rows: list[tuple[Any, ...]]) -> list[str]:
    """A missing head, and wallets the chain does not explain (walletd.model.audit_state)."""
    wallets = dict(store.query(sql.SELECT_WALLET_ADDRESSES))
    (rituals,) = store.query(sql.COUNT_RITUALS)[0]
    problems = []
    gone = missing_head(store.meta(HEAD_KEY), len(rows), len(wallets), rituals)
    if gone is not None:
        problems.append(f"audit: {gone}")
    problems.extend(f"audit: {p}" for p in cross_check(rows, wallets))
    return problems


# ---------------------------------------------------------------------- rekey


def rekey_state(config: Config, new_key_file: str) -> None:
    state_dir = Path(config.state_dir)
    db_path = state_dir / DB_NAME
    check_state_dir(state_dir, create=False)
    lock = StateLock.acquire(state_dir)  # no daemon serves this state while we hold it
    try:
        old = _master_key(config)
        check_key_file(Path(new_key_file))  # it becomes master_key_file: the same rules
        new = MasterKey(read_key_file(Path(new_key_file)), f"file {new_key_file}")
        state = preflight(db_path, old)
        statements = _reseal(state.wallets, state.subkeys, state.chain_head, new)
        # With the row tagger: re-sealing changes seal_format, and its triggers re-tag.
        store = Store.open_writable(db_path, state.tagger())
        try:
            store.write(statements)
        finally:
            store.close()
        preflight(db_path, new)  # the new key opens everything we just wrote
    finally:
        lock.release()
    print(f"re-sealed {len(state.wallets)} wallet keys under the master key in {new_key_file}.")
    print(
        "Start walletd with that key from now on (master_key_file or the systemd credential);"
        " the old key no longer opens this state."
    )
    if old.generated:
        print(f"The old generated key ({old.source}) is now useless; delete it.")


def _reseal(
    wallets: list[Any], subkeys: dict[str, bytes], chain_head: tuple[int, str], new: MasterKey
) -> list[Statement]:
    sealer = new.sealer()
    statements: list[Statement] = [
        sql.update_meta(CHECK_KEY, sealer.check_value()),
    ]
    statements += [sql.update_meta(n, sealer.seal(subkeys[n], subkey_aad(n))) for n in SUBKEYS]
    statements += [
        sql.reseal_key(
            w.user_id,
            sealer.seal(bytes(w.key), wallet_aad(w.user_id, w.address, w.key_type, w.version)),
        )
        for w in wallets
    ]
    chain = AuditChain(subkeys[AUDIT_KEY], *chain_head)
    entry = chain.prepare(
        timestamp=time.time(),
        event="master_key_rotated",
        user_id=None,
        addresses=[],
        actor_uid=os.getuid(),
        actor_pid=os.getpid(),
        detail={"wallets": len(wallets), "new_source": new.source},
    )
    statements += [sql.insert_audit(entry), sql.put_audit_head(*chain.pending_head())]
    return statements
