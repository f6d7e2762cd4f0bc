"""``walletd``: run the daemon (default), or ``check`` / ``rekey`` its state.

Logs go to stderr; stdout stays empty while serving. Exit codes: 0 clean stop, 1 a problem
found by ``check``, 2 usage or configuration error, 3 startup refused (the message says why).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from typing import Any

import trio

from walletd import __version__
from walletd.config import Config, ConfigError, load_config
from walletd.errors import StartupError
from walletd.logs import configure_logging

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walletd",
        description="Local signing daemon: holds wallets for AI agents; keys never leave it.",
        epilog="Without a subcommand walletd serves. Defaults put state and socket under "
        "./.walletd/; see docs/OPERATIONS.md for every option.",
    )
    parser.add_argument("--version", action="version", version=f"walletd {__version__}")
    _state_options(parser, None)
    serve = parser.add_argument_group("serving")
    serve.add_argument("--socket", help="Unix socket path (default .walletd/walletd.sock)")
    serve.add_argument("--socket-mode", help="socket file mode, octal (default 0600)")
    serve.add_argument("--socket-group", help="group owning the socket (use with mode 0660)")
    serve.add_argument("--admin-group", help="members of this group are walletd admins")
    serve.add_argument(
        "--ephemeral",
        action="store_const",
        const=True,
        default=None,
        help="keep everything in memory only; state is lost at exit",
    )
    serve.add_argument(
        "--log-format",
        choices=["json", "console"],
        help="json lines (default) or console for people",
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="default info; debug logs one event per request",
    )
    parser.set_defaults(func=cmd_serve)

    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    check = sub.add_parser("check", help="check the state read-only and print a summary")
    _state_options(check, argparse.SUPPRESS)
    check.add_argument("--json", action="store_true", help="print the summary as JSON")
    check.set_defaults(func=cmd_check)
    rekey = sub.add_parser("rekey", help="re-seal every key under a new master key")
    _state_options(rekey, argparse.SUPPRESS)
    rekey.add_argument(
        "--new-master-key-file",
        required=True,
        help="file holding the new key (32 raw bytes or 64 hex characters)",
    )
    rekey.set_defaults(func=cmd_rekey)
    return parser


def _state_options(parser: argparse.ArgumentParser, default: object) -> None:
    # Accepted before and after a subcommand. The subcommand's copies default to SUPPRESS so
    # that leaving them out there does not overwrite what was given before the subcommand.
    parser.add_argument(
        "--config", default=default, help="TOML file whose keys are the option names"
    )
    parser.add_argument("--state-dir", default=default, help="state directory (default ./.walletd)")
    parser.add_argument(
        "--master-key-file", default=default, help="master key: 32 raw bytes or 64 hex chars"
    )


def config_from(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {
        name: getattr(args, name, None)
        for name in (
            "socket",
            "socket_mode",
            "socket_group",
            "admin_group",
            "ephemeral",
            "log_format",
            "log_level",
            "state_dir",
            "master_key_file",
        )
    }
    return load_config(args.config, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from(args)
    except ConfigError as exc:
        print(f"walletd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(config.log_level, config.log_format)
    try:
        return int(args.func(args, config))
    except StartupError as exc:
        print(f"walletd: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return EXIT_OK


def harden() -> None:
    """No core dump, not dumpable, not ptrace-able: before anything reads a master key.

    ``serve``, ``check`` and ``rekey`` all unseal every key; a crash dump or a debugger
    attached by another process of the same uid would otherwise see them.
    """
    from walletd.server.hardening import harden_process

    try:
        harden_process()
    except OSError as exc:
        raise StartupError(f"cannot harden the process: {exc}") from exc


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from walletd.ops.daemon import build_daemon
    from walletd.server.serve import Server

    harden()
    daemon = build_daemon(config)

    def reload_config() -> Config:
        return config_from(args)

    server = Server(daemon, reload_config=reload_config if args.config else None)
    # Everything loaded so far (modules, the wallet book) lives as long as the process: keep
    # it out of the cyclic collector's full passes, which would otherwise walk all of it
    # every few thousand requests (and, with many wallets, stall the loop for milliseconds).
    gc.freeze()
    trio.run(server.run)
    return EXIT_OK


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    from walletd.storage.maintenance import check_state

    harden()
    return EXIT_OK if check_state(config, as_json=args.json) else EXIT_PROBLEMS


def cmd_rekey(args: argparse.Namespace, config: Config) -> int:
    from walletd.storage.maintenance import rekey_state

    harden()
    rekey_state(config, args.new_master_key_file)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
