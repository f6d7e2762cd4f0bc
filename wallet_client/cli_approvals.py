"""walletctl's approval commands: ``approvals list | approve | deny | leases | revoke | watch``.

- ``approvals list`` prints the signing requests waiting for a person: what each would sign
  (the daemon's summary) and which program asked (uid, pid, executable, unit, command line);
- ``approvals approve ID [--for 10m] [--uses 20] [--scope process|uid|wallet]`` approves one,
  granting a lease when any lease option is given (the scope defaults to ``process``, the
  narrowest);
- ``approvals deny ID [--reason TEXT]``;
- ``approvals leases`` and ``approvals revoke LEASE_ID``;
- ``approvals watch``: the live view (:mod:`wallet_client.approval_watch`).

Everything shown comes from other programs (the requester chose its command line and its
message), so it is printed through ``printable`` and cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from walletd_wire.approvals import ApprovalInfo, LeaseInfo, LeaseSpec

from .cli_io import Output, format_time, printable
from .client import WalletClient
from .exitcodes import ExitCode

__all__ = ["add_commands", "describe", "parse_duration"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SCOPES = ("process", "uid", "wallet")


def parse_duration(text: str) -> float:
    """``90s``, ``10m``, ``1h30m``, ``2d`` or plain seconds, as seconds."""
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration such as 90s, 10m or 1h30m"
            ) from None
        seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a duration must be positive")
    return seconds


def _in(expires_at: float, now: float) -> str:
    left = max(0, int(expires_at - now))
    return f"{left // 60}m{left % 60:02d}s" if left >= 60 else f"{left}s"


def summary_lines(summary: Mapping[str, Any], *, max_lines: int = 8) -> list[str]:
    """The daemon's summary of what would be signed, as lines for a terminal."""
    kind = summary.get("kind")
    lines: list[str] = []
    if kind == "text":
        text = str(summary.get("text", ""))
        body = text.split("\n")
        lines.append(f"message ({summary.get('length')} bytes, text):")
        lines.extend("  | " + printable(line) for line in body[:max_lines])
        if len(body) > max_lines or summary.get("truncated"):
            lines.append("  | …")
        lines.append(f"  sha256 {summary.get('sha256')}")
    elif kind == "typed_data":
        lines.append(f"typed data: {printable(str(summary.get('primary_type')))}")
        domain = summary.get("domain") or {}
        shown = ", ".join(f"{k}={v}" for k, v in domain.items())
        lines.append(f"  domain: {printable(shown)}")
        fields = list((summary.get("fields") or {}).items())
        lines.extend(f"  {printable(str(k))} = {printable(str(v))}" for k, v in fields[:max_lines])
        omitted = int(summary.get("omitted_fields") or 0) + max(0, len(fields) - max_lines)
        if omitted:
            lines.append(f"  … {omitted} more fields")
    else:
        lines.append(f"message ({summary.get('length')} bytes, not text)")
        lines.append(f"  sha256 {summary.get('sha256')}")
    return lines


def describe(entry: ApprovalInfo, now: float | None = None) -> list[str]:
    """One pending request for people: who asked, under which rule, what it would sign."""
    now = time.time() if now is None else now
    who = entry.requester
    rule = f"{entry.layer} rule {entry.rule_id!r}" if entry.rule_id else "review"
    reason = f" ({entry.reason})" if entry.reason else ""
    cmdline = " ".join(str(a) for a in who.get("cmdline") or [])
    lines = [
        f"{entry.approval_id}  {entry.op} with {printable(entry.user_id)}'s wallet, "
        f"expires in {_in(entry.expires_at, now)}",
        f"  by {rule}{printable(reason)}",
        f"  asked by uid {who.get('uid')} pid {who.get('pid')}"
        f" exe {printable(str(who.get('exe') or '?'))}"
        + (f" unit {printable(str(who['unit']))}" if who.get("unit") else ""),
    ]
    if cmdline:
        lines.append(f"  command: {printable(cmdline)[:200]}")
    lines.extend("  " + line for line in summary_lines(entry.summary))
    return lines


def _lease_line(lease: LeaseInfo, now: float) -> str:
    pid = f" pid {lease.pid}" if lease.pid is not None else ""
    return (
        f"{lease.lease_id}  {printable(lease.user_id)} rule {printable(lease.rule_id)!r} "
        f"({lease.layer}), scope {lease.scope} uid {lease.uid}{pid}, "
        f"{lease.uses_left} uses left, ends in {_in(lease.expires_at, now)} "
        f"({format_time(lease.expires_at)})"
    )


# --------------------------------------------------------------------------- commands


def cmd_list(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    pending = client.list_pending()
    now = time.time()
    lines = [line for entry in pending for line in [*describe(entry, now), ""]]
    out.result(msgspec.to_builtins(pending), lines or ["no signing requests are waiting"])
    return ExitCode.OK


def _lease_spec(args: argparse.Namespace) -> LeaseSpec | None:
    if args.scope is None and args.ttl is None and args.uses is None:
        return None
    return LeaseSpec(scope=args.scope or "process", ttl_s=args.ttl, max_uses=args.uses)


def cmd_approve(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    result = client.approve(args.approval_id, lease=_lease_spec(args))
    text = [f"approved {result.approval_id}"]
    if result.lease is not None:
        text.append("lease " + _lease_line(result.lease, time.time()))
    out.result(msgspec.to_builtins(result), text)
    return ExitCode.OK


def cmd_deny(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    result = client.deny(args.approval_id, reason=args.reason)
    out.result(msgspec.to_builtins(result), f"denied {result.approval_id}")
    return ExitCode.OK


def cmd_leases(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    leases = client.list_leases()
    now = time.time()
    out.result(
        msgspec.to_builtins(leases), [_lease_line(ls, now) for ls in leases] or ["no leases"]
    )
    return ExitCode.OK


def cmd_revoke(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    result = client.revoke_lease(args.lease_id)
    out.result(msgspec.to_builtins(result), f"revoked {result.lease_id} (used {result.uses} times)")
    return ExitCode.OK


def cmd_watch(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    from .approval_watch import watch  # the terminal code is only needed here

    return watch(client, interval=args.interval)


# --------------------------------------------------------------------------- parser


def add_commands(command: Any, user: Any) -> None:
    """Add ``approvals ...`` to walletctl (``command`` as in walletctl.build_parser)."""
    del user  # no approval command names a wallet
    approvals = command("approvals", None, "list, approve or deny held signing requests")
    sub = approvals.add_subparsers(dest="approvals_command", required=True, metavar="COMMAND")
    command("list", cmd_list, "show the signing requests waiting for approval", sub)
    approve = command("approve", cmd_approve, "approve one request (and grant a lease)", sub)
    approve.add_argument("approval_id", metavar="ID")
    approve.add_argument(
        "--for",
        dest="ttl",
        type=parse_duration,
        metavar="DURATION",
        help="grant a lease this long (10m, 1h); the daemon bounds it",
    )
    approve.add_argument(
        "--uses", type=int, metavar="N", help="the lease covers at most N more signatures"
    )
    approve.add_argument(
        "--scope",
        choices=SCOPES,
        help="whom the lease covers: the same process (default), uid, or any requester",
    )
    deny = command("deny", cmd_deny, "deny one request", sub)
    deny.add_argument("approval_id", metavar="ID")
    deny.add_argument("--reason", help="shown to the requester and in the audit log")
    command("leases", cmd_leases, "show the live leases", sub)
    revoke = command("revoke", cmd_revoke, "end a lease now", sub)
    revoke.add_argument("lease_id", metavar="LEASE_ID")
    watch = command("watch", cmd_watch, "a live view: a approves, d denies, q quits", sub)
    watch.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="refresh every S seconds"
    )
