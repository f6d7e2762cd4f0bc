"""``walletctl``: talk to walletd from a shell.

Every subcommand maps onto one or a few calls of the blocking :class:`WalletClient`. Results
go to stdout (``--json`` for programs: one JSON document, nothing else), errors to stderr as
``walletctl: <code>: <message>``, and the exit code says what happened
(:mod:`wallet_client.exitcodes`). This module holds the parser, ``main`` and the wallet,
signing and rotation commands; the backup and audit commands are in
:mod:`wallet_client.cli_records`, the ritual and recovery commands (which talk to the
terminal) in :mod:`wallet_client.cli_ritual`, printing and parsing in
:mod:`wallet_client.cli_io`.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec

import walletd_wire as wire

from . import __version__, cli_approvals, cli_keys, cli_policy, cli_records, cli_ritual
from .calls import DEFAULT_SOCKET, DEFAULT_TIMEOUT
from .cli_io import (
    Output,
    UsageError,
    decode_signature,
    encode_signature,
    fields,
    format_time,
    printable,
    read_input,
    read_message,
)
from .cli_peer import confirm_delete, expected_server_uid, uid_or_user
from .client import WalletClient, resolve_socket_path
from .errors import DaemonUnavailableError, WalletError, WalletNotFoundError
from .exitcodes import ExitCode

__all__ = ["build_parser", "main"]

Command = Callable[[WalletClient, argparse.Namespace, Output], int]

# Split big --batch files so that no request nears the daemon's 1 MiB default frame limit.
_BATCH_BYTES = 512 * 1024

EPILOG = f"""\
exit codes: 0 ok, 1 a "no" (invalid signature, stale/tampered backup, broken audit chain,
wrong recovery answers), 2 usage error, 3 walletd unreachable, 4 refused by walletd.
The socket is --socket, else $WALLETD_SOCKET, else {DEFAULT_SOCKET}."""


# --------------------------------------------------------------------------- wallets


def cmd_status(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    status = msgspec.structs.asdict(client.status())
    out.result(status, fields(status))
    return ExitCode.OK


def cmd_hello(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    hello = msgspec.to_builtins(client.hello())
    limits = hello.pop("limits", None) or {}
    shown = {**hello, "ops": " ".join(hello["ops"])}
    if limits:
        shown["max_frame_bytes"] = limits.get("max_frame_bytes")
        shown["max_batch_items"] = limits.get("max_batch_items")
        shown["list_limits"] = " ".join(f"{k}={v}" for k, v in limits.get("lists", {}).items())
    out.result({**hello, "limits": limits}, fields(shown))
    return ExitCode.OK


def cmd_create(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    address = client.create_wallet(args.user)
    out.result({"user_id": args.user, "address": address}, address)
    return ExitCode.OK


def cmd_address(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    address = client.get_wallet_address(args.user)
    if address is None:
        # The library answers None; on a command line "no such wallet" is a refusal.
        raise WalletNotFoundError(message=f"no wallet for user {args.user!r}")
    out.result({"user_id": args.user, "address": address}, address)
    return ExitCode.OK


def cmd_list(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    wallets = client.list_wallets()
    out.result(wallets, (f"{printable(u)} {a}" for u, a in sorted(wallets.items())))
    return ExitCode.OK


def cmd_delete(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    if not confirm_delete(args.user, assume_yes=args.yes):
        out.note("not deleted")
        return ExitCode.NO
    deleted = client.delete_wallet(args.user)
    out.result({"user_id": args.user, "deleted": deleted}, "deleted")
    return ExitCode.OK


# --------------------------------------------------------------------------- signing


def cmd_sign(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    if args.batch is not None:
        return _sign_batch(client, args, out)
    signature = encode_signature(client.sign_message(args.user, read_message(args)), args.base64)
    encoding = "base64" if args.base64 else "hex"
    out.result({"user_id": args.user, "signature": signature, "encoding": encoding}, signature)
    return ExitCode.OK


def _sign_batch(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    items: list[wire.SignedItem] = []
    for chunk in _chunks(_batch_messages(args.batch)):
        items.extend(client.sign_batch(args.user, chunk))
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    for index, item in enumerate(items):
        if item.signature is None:
            error = item.error or wire.ErrorBody(
                wire.ErrorCode.INTERNAL, "no signature and no error"
            )
            rows.append({"index": index, "error": {"code": error.code, "message": error.message}})
            lines.append(f"{index} error {error.code}: {error.message}")
        else:
            signature = encode_signature(item.signature, args.base64)
            rows.append({"index": index, "address": item.address, "signature": signature})
            lines.append(f"{index} {item.address} {signature}")
    out.result(rows, lines)
    failed = sum("error" in row for row in rows)
    if failed:
        out.note(f"{failed} of {len(rows)} messages were not signed")
        return ExitCode.REFUSED
    return ExitCode.OK


def _batch_messages(path: str) -> list[bytes]:
    """A JSON array of strings when the file starts with ``[``, else one message per line."""
    data = read_input(path)
    if data.startswith(b"["):
        try:
            return [s.encode("utf-8") for s in msgspec.json.decode(data, type=list[str])]
        except (msgspec.DecodeError, UnicodeEncodeError) as exc:
            raise UsageError(f"{path} is not a JSON array of strings: {exc}") from None
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the file's final newline ends the last line; it is not an empty message
    return lines


def _chunks(messages: list[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for message in messages:
        if chunk and (len(chunk) == wire.MAX_BATCH_ITEMS or size + len(message) > _BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(message)
        size += len(message) + 8  # + MessagePack's per-item header, generously
    if chunk:
        yield chunk


def cmd_verify(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    valid = client.verify_signature(args.user, read_message(args), args.signature)
    out.result({"user_id": args.user, "valid": valid}, "valid" if valid else "invalid")
    return ExitCode.OK if valid else ExitCode.NO


# --------------------------------------------------------------------------- rotation


def cmd_rotate(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    address = client.rotate_keys(args.user, args.reason)
    out.result({"user_id": args.user, "address": address}, address)
    return ExitCode.OK


def cmd_history(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    records = client.rotation_history(args.user)
    out.result(
        [msgspec.structs.asdict(r) for r in records],
        (
            f"{format_time(r.timestamp)} {printable(r.reason)} "
            f"{r.old_wallet_id} -> {r.new_wallet_id} uid={r.actor_uid}"
            for r in records
        ),
    )
    return ExitCode.OK


def _policy_lines(policy: wire.RotationPolicy) -> list[str]:
    return [
        f"max_age_days: {policy.max_age_days}",
        f"max_signatures: {policy.max_signatures}",
        f"auto_rotate: {'on' if policy.auto_rotate else 'off'}",
    ]


def cmd_policy_show(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    policy = client.get_policy(args.user)
    out.result(msgspec.structs.asdict(policy), _policy_lines(policy))
    return ExitCode.OK


def cmd_policy_set(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    if args.max_age_days is None and args.max_signatures is None and args.auto_rotate is None:
        raise UsageError("policy set needs --max-age-days, --max-signatures or --auto-rotate")
    policy = client.set_policy(
        args.user,
        max_age_days=args.max_age_days,
        max_signatures=args.max_signatures,
        auto_rotate=None if args.auto_rotate is None else args.auto_rotate == "on",
    )
    out.result(msgspec.structs.asdict(policy), _policy_lines(policy))
    return ExitCode.OK


def cmd_rotation_status(client: WalletClient, args: argparse.Namespace, out: Output) -> int:
    status = client.rotation_status(args.user)
    data = msgspec.to_builtins(status)
    text = {**data, "reasons": status.reasons, "key_age_days": round(status.key_age_days, 2)}
    del text["policy"]
    out.result(data, [*fields(text), *(f"policy.{line}" for line in _policy_lines(status.policy))])
    return ExitCode.OK


# --------------------------------------------------------------------------- parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--socket/--json/--timeout, on the main parser and (suppressed) on every subcommand,
    so they may come before or after the subcommand without one clobbering the other."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=default(None),
        help=f"walletd's socket (default: $WALLETD_SOCKET, else {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the result as JSON on stdout, and nothing else there",
    )
    parser.add_argument(
        "--expect-uid",
        type=uid_or_user,
        metavar="UID|USER",
        default=default(None),
        help="refuse a socket not served by this uid or root (default: the walletd user's "
        "uid for the system socket, else no check)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        default=default(DEFAULT_TIMEOUT),
        help=f"give up on walletd after this long (default {DEFAULT_TIMEOUT:g})",
    )


def _message_options(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--message", metavar="TEXT", help="the message (its bytes as given)")
    source.add_argument(
        "--file", metavar="PATH", help="read the message from PATH (raw bytes; - is stdin)"
    )
    return source


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walletctl",
        description="Talk to walletd, the local signing daemon: wallets, signatures,\n"
        "rotation, backups, the audit log and recovery rituals.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"walletctl {__version__}")
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, func: Command | None, help: str, where: Any = sub, **kw: Any
    ) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = where.add_parser(
            name, parents=[common], help=help, description=kw.pop("description", help), **kw
        )
        if func is not None:
            made.set_defaults(func=func)
        return made

    def user(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("user", metavar="USER", help="the wallet's user id")
        return parser

    command("status", cmd_status, "show walletd's status (uptime, wallets, connections)")
    command("hello", cmd_hello, "show walletd's version, protocol and operations")
    user(command("create", cmd_create, "create a wallet for USER and print its address"))
    user(command("address", cmd_address, "print USER's address (exit 4 if there is none)"))
    command("list", cmd_list, "list the wallets you may use: one 'USER ADDRESS' a line")
    delete = user(command("delete", cmd_delete, "delete USER's wallet, its key and its ritual"))
    delete.add_argument(
        "--yes", "-y", action="store_true", help="do not ask for confirmation on a terminal"
    )

    sign = user(
        command(
            "sign",
            cmd_sign,
            "sign a message (or --batch of them) with USER's key",
            description="Sign a message with USER's key and print the signature (hex, or "
            "base64 with --base64). The message is --message TEXT, --file PATH, or stdin.",
        )
    )
    source = _message_options(sign)
    source.add_argument(
        "--batch",
        metavar="FILE",
        help="sign many messages: one per line (the newline is not signed), or a JSON "
        "array of strings when FILE starts with '['; prints 'INDEX ADDRESS SIGNATURE' lines",
    )
    sign.add_argument("--base64", action="store_true", help="print signatures as base64")

    verify = user(
        command(
            "verify",
            cmd_verify,
            "check a signature: prints valid (exit 0) or invalid (exit 1)",
            description="Check SIGNATURE (hex or base64) over a message (--message TEXT, "
            "--file PATH, or stdin) with USER's current key. Exit 0 valid, 1 invalid.",
        )
    )
    verify.add_argument(
        "signature",
        metavar="SIGNATURE",
        type=decode_signature,
        help="hex (0x optional) or base64, as printed by sign",
    )
    _message_options(verify)

    rotate = user(command("rotate", cmd_rotate, "replace USER's key; prints the new address"))
    rotate.add_argument("--reason", default="manual", help="recorded in the history and audit")
    user(command("history", cmd_history, "show USER's key rotations, oldest first"))
    user(
        command(
            "rotation-status",
            cmd_rotation_status,
            "show whether USER's key is due for rotation, and why",
        )
    )

    policy = command("policy", None, "show or set USER's rotation policy")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    user(command("show", cmd_policy_show, "show USER's rotation policy", policy_sub))
    policy_set = user(command("set", cmd_policy_set, "change USER's rotation policy", policy_sub))
    policy_set.add_argument("--max-age-days", type=int, metavar="N", help="rotate after N days")
    policy_set.add_argument(
        "--max-signatures", type=int, metavar="N", help="rotate after N signatures"
    )
    policy_set.add_argument(
        "--auto-rotate", choices=["on", "off"], help="let walletd rotate when the policy says so"
    )

    cli_records.add_commands(command, user)
    cli_ritual.add_commands(command, user)
    cli_keys.add_commands(command, user, sub)
    cli_policy.add_commands(command, user, sub)
    cli_approvals.add_commands(command, user)
    return parser


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits: 2 for a usage error, 0 for --help/--version
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    out = Output(args.json)
    try:
        socket_path = resolve_socket_path(args.socket)
        expect_uid = expected_server_uid(args.expect_uid, socket_path)
        with WalletClient(socket_path, timeout=args.timeout, expect_uid=expect_uid) as client:
            return int(args.func(client, args, out))
    except UsageError as exc:
        out.note(f"error: {exc}")
        return ExitCode.USAGE
    except DaemonUnavailableError as exc:
        out.note(f"{exc.code}: {exc.message}")
        return ExitCode.UNREACHABLE
    except WalletError as exc:
        out.note(f"{exc.code}: {exc.message}")
        return ExitCode.REFUSED
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (walletctl audit | head): stop quietly, as a tool killed by
        # SIGPIPE would, and keep the interpreter's final flush from raising again.
        _drop_stdout()
        return ExitCode.BROKEN_PIPE


def _drop_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # stdout is not a file (tests capture it): nothing will flush to a closed pipe


if __name__ == "__main__":
    sys.exit(main())
