"""``walletd-mcp``: the command an MCP host runs. ``main(argv) -> int``, logs on stderr only.

stdout belongs to the protocol: nothing but JSON-RPC may be written there, so every log line
(structlog's and the SDK's stdlib logging) goes to stderr, and the SDK's stdio transport
points fd 1 at stderr while it serves, so even a stray print cannot corrupt the stream.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import structlog
import trio

from wallet_client.aio import AsyncWalletClient
from wallet_client.exitcodes import ExitCode

from .server import build_server, run_stdio
from .tools import WalletTools

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walletd-mcp",
        description="A Model Context Protocol server (stdio) for walletd: wallets for LLM "
        "agents that never see a key. It needs no credential: walletd knows its uid.",
    )
    parser.add_argument(
        "--socket", help="walletd's socket (default: $WALLETD_SOCKET or the system socket)"
    )
    parser.add_argument(
        "--user-id",
        action="append",
        default=[],
        dest="user_ids",
        metavar="USER_ID",
        help="only these wallets may be used (repeatable); default: whatever walletd allows",
    )
    parser.add_argument(
        "--read-only", action="store_true", help="no tool that creates a wallet or signs"
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    return parser


def _configure_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(
        stream=sys.stderr, level=numeric, format="%(levelname)s %(name)s %(message)s"
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


async def _serve(socket: str | None, user_ids: Sequence[str], read_only: bool) -> None:
    async with AsyncWalletClient(socket) as client:
        tools = WalletTools(client, pinned=user_ids, read_only=read_only)
        await run_stdio(build_server(tools))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return ExitCode.OK if exc.code == 0 else ExitCode.USAGE
    _configure_logging(args.log_level)
    trio.run(_serve, args.socket, args.user_ids, args.read_only)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
