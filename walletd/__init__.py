"""walletd: a local signing daemon that holds wallets for AI agents (see README.md)."""

from __future__ import annotations

__version__ = "0.1.0"
