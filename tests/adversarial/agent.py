"""A long-lived client process under another uid, driven by JSON lines on stdin.

``tests.support.call_as`` starts one Python child per call (~0.2 s); a model-based test makes
thousands of calls, so each uid gets one of these instead. Like tests/run_as.py it starts as
root, imports everything it will ever need (the interpreter may live where the target uid
cannot read), drops to UID/GID for good, and only then serves:

    stdin:  one JSON array per line, each item [method, args, kwargs]
    stdout: one JSON array per line, each item {"value": ...} or {"error": code, "type": name,
            "message": text} (a WalletError) or {"crash": repr} (anything else: a client bug)

Bytes travel as ``{"$b": hex}`` and ritual steps as ``{"$step": [prompt, hash]}`` both ways
(see :func:`encode` / :func:`decode`, which the test side imports). The WalletClient is kept for
the agent's life, as an agent process would keep it; it reconnects by itself after a restart.

Usage: agent.py UID GID SOCKET [TIMEOUT]
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import msgspec

from wallet_client import RitualStep, WalletClient
from wallet_client import errors as errors


def encode(value: Any) -> Any:
    """A JSON-able form of a client argument or return value."""
    if isinstance(value, bytes | bytearray):
        return {"$b": bytes(value).hex()}
    if isinstance(value, RitualStep):
        return {"$step": [value.prompt, value.expected_response_hash]}
    if isinstance(value, msgspec.Struct):
        return encode(msgspec.structs.asdict(value))
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (structs come back as dicts)."""
    if isinstance(value, dict):
        if set(value) == {"$b"}:
            return bytes.fromhex(value["$b"])
        if set(value) == {"$step"}:
            return RitualStep(*value["$step"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def run_call(client: WalletClient, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    try:
        value = getattr(client, method)(*decode(args), **decode(kwargs))
    except errors.WalletError as exc:
        return {"error": exc.code, "type": type(exc).__name__, "message": exc.message}
    except Exception as exc:
        return {"crash": repr(exc)}
    return {"value": encode(value)}


def main() -> None:
    uid, gid, socket_path, *rest = sys.argv[1:]
    timeout = float(rest[0]) if rest else 20.0
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    assert os.getuid() == int(uid) and os.geteuid() == int(uid)
    client = WalletClient(socket_path, timeout=timeout)
    print(json.dumps({"ready": os.getuid()}), flush=True)
    for line in sys.stdin:
        calls = json.loads(line)
        results = [run_call(client, method, args, kwargs) for method, args, kwargs in calls]
        sys.stdout.write(json.dumps(results) + "\n")
        sys.stdout.flush()
    client.close()


if __name__ == "__main__":
    main()
