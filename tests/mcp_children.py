"""Functions that tests/run_as.py runs as another uid for the walletd-mcp tests."""

from __future__ import annotations

from wallet_client.mcp.main import main


def serve(*argv: str) -> int:
    """walletd-mcp's main with ``argv``: serves MCP on this child's stdin and stdout."""
    return main(list(argv))
