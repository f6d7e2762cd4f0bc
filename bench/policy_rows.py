"""The signing-policy rows of the bench: wallets that carry a policy, beside the plain one.

``walletd-policy`` is a view of the bench's ``walletd`` process (``ServerSpec.view_of``): the
same daemon, given two more wallets. ``bench-ten-rules`` has a 10-rule owner layer of the
shape the issue names (prefixes, a pattern, two limits; the bench's random 64-byte messages
are decided by the 9th rule, an allow with a limit, so every request walks the whole list and
charges a window), and ``bench-rolling`` has one rolling-window limit. The rows compare them
with the plain ``bench`` wallet of the same process, measured back to back: what differs
between the legs is the policy, not the daemon (two daemons doing the same work measure a few
per cent apart, their memory laid out differently).

Ephemeral windows are not durable (no reservation writes): what the rows measure is the cost
of evaluation and charging on the loop. A durable daemon adds at most one small commit per
rule per second or per ``count // 4`` uses (walletd.model.rate_window).
"""

from __future__ import annotations

from typing import Any

from bench.servers import BENCH_USER, Server
from bench.wire import call, create_wallet
from walletd_wire import SetSigningPolicy

TEN_RULES_USER = f"{BENCH_USER}-ten-rules"
ROLLING_USER = f"{BENCH_USER}-rolling"
# Large enough that no bench run uses them up (10**9 is the model's largest count).
BIG = 10**9

TEN_RULES: list[dict[str, Any]] = [
    {"id": "no-transfer", "action": "deny", "match": {"prefix": "transfer:"}},
    {"id": "no-withdraw", "action": "deny", "match": {"prefix": "withdraw:"}},
    {"id": "no-admin", "action": "deny", "match": {"prefix": "admin:"}},
    {"id": "no-keys", "action": "deny", "match": {"pattern": "(?i).*private key.*"}},
    {"id": "ed25519-small", "action": "deny", "match": {"key_types": "ed25519", "max_bytes": 8}},
    {
        "id": "orders",
        "action": "allow",
        "match": {"prefix": "order:"},
        "limit": {"count": BIG, "window_s": 3600},
    },
    {"id": "no-typed", "action": "deny", "match": {"ops": "sign_typed_data"}},
    {"id": "no-magic", "action": "deny", "match": {"prefix": {"hex": "00ff00ff00ff"}}},
    {"id": "per-minute", "action": "allow", "limit": {"count": BIG, "window_s": 60}},
    {"id": "rest", "action": "deny"},
]

ROLLING: list[dict[str, Any]] = [
    {"id": "hourly", "action": "allow", "limit": {"count": BIG, "window_s": 3600}},
    {"id": "rest", "action": "deny"},
]


def set_owner_layer(path: str, user_id: str, rules: list[dict[str, Any]]) -> None:
    call(
        path,
        SetSigningPolicy(id=1, user_id=user_id, layer="owner", rules=rules, expected_version=0),
    )


def add_policy_wallets(server: Server) -> Server:
    """Give the running ``server`` (the bench's walletd) the policy rows' wallets."""
    for user_id, rules in ((TEN_RULES_USER, TEN_RULES), (ROLLING_USER, ROLLING)):
        create_wallet(server.socket_path, user_id)
        set_owner_layer(server.socket_path, user_id, rules)
    return server
