"""Child process for tests: import the client, drop to UID/GID, run CODE, print JSON.

Usage: run_as.py UID GID CODE [ARGS...]. CODE runs with ``WalletClient``, ``errors`` and
``ARGS`` in scope and sets ``result`` (printed as JSON). Privileges are dropped with
setgroups/setgid/setuid, which is irreversible, before CODE runs.
"""

from __future__ import annotations

import json
import os
import sys

import wallet_client
import wallet_client.walletctl  # imported before dropping privileges, see above
from wallet_client import AsyncWalletClient, RitualStep, WalletClient, hash_response
from wallet_client import errors as errors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    uid, gid, code, *args = sys.argv[1:]
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    assert os.getuid() == int(uid)
    assert os.geteuid() == int(uid)
    scope = {
        "WalletClient": WalletClient,
        "AsyncWalletClient": AsyncWalletClient,
        "RitualStep": RitualStep,
        "hash_response": hash_response,
        "errors": errors,
        "wallet_client": wallet_client,
        "ARGS": args,
        "result": None,
    }
    exec(code, scope)  # test code written by the test itself
    print(json.dumps(scope["result"]))


if __name__ == "__main__":
    main()
