"""The wire contract shared by walletd and its clients (placeholder until the restructure lands)."""
