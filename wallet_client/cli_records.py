"""walletctl's record commands: ``backup create|list|verify|delete|info`` and ``audit``.

Both read and write records *about* keys and events (hash-only backups, the hash-chained
audit log), never keys. The two "is it intact?" questions (``backup verify``, ``audit
verify``) answer with exit 0 for yes and 1 for no, and print which.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import msgspec

import walletd_wire as wire

from .cli_io import Output, UsageError, fields, format_time, json_text, parse_time, printable
from .client import WalletClient
from .errors import BackupIntegrityError, WalletNotFoundError
from .exitcodes import ExitCode

__all__ = ["add_commands"]


# --------------------------------------------------------------------------- backups


def cmd_backup_create(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    record = client.create_backup(args.user, args.metadata)
    out.result(record, record["backup_id"])
    return ExitCode.OK


def cmd_backup_list(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    backups = client.list_backups(args.user)
    out.result(
        {"backups": list(backups), "problems": backups.problems},
        (
            f"{b['backup_id']} {format_time(b['timestamp'])} {b['wallet_id']}"
            + (f" {json_text(b['metadata'])}" if b.get("metadata") else "")
            for b in backups
        ),
    )
    if not out.as_json:
        for problem in backups.problems:
            out.note(f"backup {problem['backup_id']}: {printable(problem['problem'])}")
    return ExitCode.OK


def cmd_backup_verify(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    try:
        status = "valid" if client.verify_backup(args.user, args.backup_id) else "stale"
    except BackupIntegrityError as exc:
        out.note(f"{exc.code}: {exc.message}")
        status = "tampered"
    out.result({"user_id": args.user, "backup_id": args.backup_id, "status": status}, status)
    return ExitCode.OK if status == "valid" else ExitCode.NO


def cmd_backup_delete(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    if not client.delete_backup(args.user, args.backup_id):
        raise WalletNotFoundError(message=f"no backup {args.backup_id} for user {args.user!r}")
    out.result({"user_id": args.user, "backup_id": args.backup_id, "deleted": True}, "deleted")
    return ExitCode.OK


def cmd_backup_info(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    info = client.backup_wallet(args.user)
    shown = {
        **info,
        "created_at": format_time(info["created_at"]),
        "backup_ts": format_time(info["backup_ts"]),
    }
    out.result(info, fields(shown))
    return ExitCode.OK


# --------------------------------------------------------------------------- audit


def cmd_audit(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    if args.user_option is not None and args.target is not None:
        raise UsageError("give USER or --user USER, not both")
    if args.target == "verify":
        return cmd_audit_verify(client, args, out)
    if args.target == "head":
        return cmd_audit_head(client, args, out)
    user = args.user_option if args.user_option is not None else args.target
    records = client.audit_log(user, since=args.since, limit=args.limit, before_seq=args.before_seq)
    out.result([msgspec.structs.asdict(r) for r in records], (_audit_line(r) for r in records))
    return ExitCode.OK


def _audit_line(r: wire.AuditRecord) -> str:
    line = (
        f"{r.seq} {format_time(r.timestamp)} {r.event} user={printable(r.user_id or '-')}"
        f" outcome={r.outcome} uid={r.actor_uid} pid={r.actor_pid}"
    )
    if r.addresses:
        line += " addresses=" + ",".join(r.addresses)
    if r.detail:
        line += " " + printable(json_text(r.detail))
    return line


def cmd_audit_verify(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    result = client.audit_verify()
    if result.ok:
        text = f"intact: {result.records} records"
    else:
        text = f"broken at record {result.first_broken_seq}: {result.problem}"
    out.result(msgspec.structs.asdict(result), text)
    return ExitCode.OK if result.ok else ExitCode.NO


def cmd_audit_head(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    """The checkpoint as one line of JSON in either mode: it is meant to be kept in a file
    (off this host) and handed to ``walletd check --expect-head FILE``."""
    head = msgspec.structs.asdict(client.audit_head())
    out.result(head, json_text(head))
    return ExitCode.OK


# --------------------------------------------------------------------------- parser


def _metadata(text: str) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("metadata must be a JSON object")
    return value


def add_commands(
    command: Callable[..., argparse.ArgumentParser],
    user: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    """Add ``backup ...`` and ``audit`` with walletctl's ``command``/``user`` helpers."""
    backup = command("backup", None, "hash-only backup records of USER's key")
    backup_sub = backup.add_subparsers(dest="backup_command", required=True, metavar="COMMAND")
    created = user(
        command("create", cmd_backup_create, "write a backup record; prints its id", backup_sub)
    )
    created.add_argument("--metadata", type=_metadata, metavar="JSON", help="a JSON object")
    user(
        command(
            "list",
            cmd_backup_list,
            "list USER's backup records (unverifiable ones are reported on stderr)",
            backup_sub,
        )
    )
    for name, func, text in (
        ("verify", cmd_backup_verify, "prints valid (exit 0), stale or tampered (exit 1)"),
        ("delete", cmd_backup_delete, "delete one backup record"),
    ):
        made = user(command(name, func, text, backup_sub))
        made.add_argument("backup_id", metavar="BACKUP_ID")
    user(
        command(
            "info",
            cmd_backup_info,
            "show the hash-only record of USER's current key, writing nothing",
            backup_sub,
        )
    )

    audit = command(
        "audit",
        cmd_audit,
        "list audit records, 'audit verify' the hash chain, or print its 'audit head'",
        description="List audit records (all you may see, or USER's), oldest first; "
        "'walletctl audit verify' walks the hash chain instead: exit 0 intact, 1 broken; "
        "'walletctl audit head' prints the chain's head as a tagged JSON checkpoint (admin) "
        "to keep off this host and give to 'walletd check --expect-head FILE'. "
        "For a user named 'verify' or 'head', use --user.",
    )
    audit.add_argument(
        "target",
        nargs="?",
        metavar="USER | verify | head",
        help="a user's records, verify the chain, or print its head",
    )
    audit.add_argument("--user", dest="user_option", metavar="USER", help="only USER's records")
    audit.add_argument(
        "--since",
        type=parse_time,
        metavar="T",
        help="records at or after T: Unix seconds, or an ISO-8601 date/time (local time "
        "unless it names a zone)",
    )
    audit.add_argument(
        "--limit", type=int, default=1000, metavar="N", help="at most N, the newest (1000)"
    )
    audit.add_argument(
        "--before-seq",
        type=int,
        metavar="SEQ",
        help="only records before SEQ: pass the first seq shown to page further back",
    )
